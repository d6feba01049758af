#include "sim/apps.hpp"

#include <cstring>
#include <random>
#include <unordered_map>

#include "caf/all.hpp"
#include "net/io.hpp"

namespace drtp::sim {

namespace {

caf::behavior echo_service(caf::event_based_actor* self, caf::actor io,
                           uint16_t port) {
  self->send(io, net::listen_req{1, "0.0.0.0", port, false});
  return {
    [](const net::listening&) {},
    [self](const net::listen_failed&) { self->quit(); },
    [=](const net::accepted& ev) {
      self->send(io, net::adopt_req{ev.id, self});
    },
    [=](net::received& ev) {
      // The same chunk goes back out: no copy.
      self->send(io, net::write_req{ev.id, {std::move(ev.data)}});
    },
    [=](const net::read_closed& ev) {
      self->send(io, net::shutdown_write_req{ev.id});
    },
    [](const net::sent&) {},
    [](const net::closed&) {},
  };
}

net::chunk payload_bytes(uint64_t seed, uint64_t offset, size_t n) {
  // Byte i of a visitor's stream is a function of (seed, i): the checker
  // needs no copy of what was sent.
  std::vector<char> v(n);
  for (size_t i = 0; i < n; ++i) {
    uint64_t x = seed * 0x9E3779B97F4A7C15ull + (offset + i) * 0xBF58476D1CE4E5B9ull;
    x ^= x >> 31;
    v[i] = static_cast<char>(x & 0xff);
  }
  return net::chunk::adopt(std::move(v));
}

char expected_byte(uint64_t seed, uint64_t i) {
  uint64_t x = seed * 0x9E3779B97F4A7C15ull + i * 0xBF58476D1CE4E5B9ull;
  x ^= x >> 31;
  return static_cast<char>(x & 0xff);
}

caf::behavior visitor(caf::event_based_actor* self, visitor_params p) {
  auto res = p.result;
  res->started_us = p.now_us ? p.now_us() : 0;
  net::connect_req req;
  req.tag = 1;
  req.host = p.host;
  req.port = p.port;
  req.timeout_ms = p.connect_timeout_ms;
  self->send(p.io, std::move(req));
  auto conn = std::make_shared<net::conn_id>(0);
  auto finish = [=](bool ok, const std::string& why) {
    if (res->done)
      return;
    res->done = true;
    res->ok = ok;
    res->error = why;
    res->finished_us = p.now_us ? p.now_us() : 0;
    if (*conn != 0)
      self->send(p.io, net::abort_req{*conn});
    self->quit();
  };
  return {
    [=](const net::connected& ev) {
      *conn = ev.id;
      uint64_t off = 0;
      while (off < p.bytes) {
        auto n = std::min<uint64_t>(p.write_bytes, p.bytes - off);
        self->send(p.io, net::write_req{ev.id, {payload_bytes(p.seed, off, n)}});
        off += n;
      }
      res->bytes_sent = p.bytes;
      self->send(p.io, net::shutdown_write_req{ev.id});
    },
    [=](const net::connect_failed& ev) { finish(false, "connect: " + ev.what); },
    [=](const net::received& ev) {
      for (size_t i = 0; i < ev.data.size(); ++i) {
        if (res->bytes_back + i >= p.bytes
            || ev.data.data()[i] != expected_byte(p.seed, res->bytes_back + i)) {
          finish(false, "corrupt or extra byte at offset "
                          + std::to_string(res->bytes_back + i));
          return;
        }
      }
      res->bytes_back += ev.data.size();
    },
    [=](const net::read_closed&) {
      if (res->bytes_back == p.bytes) {
        *conn = 0; // closes by itself once both sides are done
        finish(true, "");
      } else {
        finish(false, "EOF after " + std::to_string(res->bytes_back) + " of "
                        + std::to_string(p.bytes) + " bytes");
      }
    },
    [](const net::sent&) {},
    [=](const net::closed& ev) {
      *conn = 0;
      finish(false, std::string("connection ") + net::to_string(ev.reason) + " after "
               + std::to_string(res->bytes_back) + " bytes");
    },
  };
}

} // namespace

caf::actor spawn_echo_service(caf::actor_system& sys, caf::actor io,
                              uint16_t port) {
  return sys.spawn(echo_service, std::move(io), port);
}

caf::actor spawn_visitor(caf::actor_system& sys, visitor_params p) {
  return sys.spawn(visitor, std::move(p));
}

} // namespace drtp::sim
