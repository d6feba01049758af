#include "sim/apps.hpp"

#include <cstring>
#include <unordered_map>

#include "caf/all.hpp"
#include "net/seam/io.hpp"

namespace drtp::sim {

namespace {

constexpr size_t header_bytes = 9;

net::chunk pattern_chunk(uint64_t seed, uint64_t offset, size_t n, uint8_t key) {
  char* out = nullptr;
  auto c = net::chunk::allocate(n, &out);
  for (size_t i = 0; i < n; ++i)
    out[i] = static_cast<char>(pattern_byte(seed, offset + i) ^ key);
  return c;
}

net::chunk header(char mode, uint64_t v) {
  char h[header_bytes];
  h[0] = mode;
  for (int i = 0; i < 8; ++i)
    h[1 + i] = static_cast<char>(v >> (56 - 8 * i));
  return net::chunk::copy_of(h, sizeof(h));
}

uint64_t read_be64(const char* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i)
    v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}

struct app_conn {
  std::string head;
  char mode = 0;
  uint64_t count = 0;
};

caf::behavior app_service(caf::event_based_actor* self, caf::actor io,
                          uint16_t port, uint8_t key) {
  self->send(io, net::listen_req{1, "0.0.0.0", port, false});
  auto conns = std::make_shared<std::unordered_map<net::conn_id, app_conn>>();
  return {
    [](const net::listening&) {},
    [self](const net::listen_failed&) { self->quit(); },
    [=](const net::accepted& ev) {
      (*conns)[ev.id];
      self->send(io, net::adopt_req{ev.id, self});
    },
    [=](net::received& ev) {
      auto& c = (*conns)[ev.id];
      size_t off = 0;
      if (c.mode == 0) {
        while (c.head.size() < header_bytes && off < ev.data.size())
          c.head.push_back(ev.data.data()[off++]);
        if (c.head.size() < header_bytes)
          return;
        c.mode = c.head[0];
        if (c.mode == 'D') {
          auto n = read_be64(c.head.data() + 1);
          for (uint64_t sent = 0; sent < n;) {
            auto k = std::min<uint64_t>(16 * 1024, n - sent);
            self->send(io, net::write_req{ev.id, {pattern_chunk(n, sent, k, key)}});
            sent += k;
          }
          self->send(io, net::shutdown_write_req{ev.id});
        } else if (c.mode != 'E' && c.mode != 'U') {
          self->send(io, net::abort_req{ev.id});
          return;
        }
      }
      auto rest = ev.data.size() - off;
      if (rest == 0)
        return;
      if (c.mode == 'E') {
        char* out = nullptr;
        auto back = net::chunk::allocate(rest, &out);
        for (size_t i = 0; i < rest; ++i)
          out[i] = static_cast<char>(ev.data.data()[off + i] ^ key);
        self->send(io, net::write_req{ev.id, {std::move(back)}});
      } else if (c.mode == 'U') {
        c.count += rest;
      }
    },
    [=](const net::read_closed& ev) {
      auto& c = (*conns)[ev.id];
      if (c.mode == 'U') {
        char n[8];
        for (int i = 0; i < 8; ++i)
          n[i] = static_cast<char>((c.count >> (56 - 8 * i)) ^ key);
        self->send(io, net::write_req{ev.id, {net::chunk::copy_of(n, 8)}});
      }
      if (c.mode != 'D')
        self->send(io, net::shutdown_write_req{ev.id});
    },
    [](const net::sent&) {},
    [=](const net::closed& ev) { conns->erase(ev.id); },
  };
}

struct visitor_state {
  visitor_params p;
  net::conn_id conn = 0;
  uint64_t round = 0;         // request_response: current round
  uint64_t expect_total = 0;  // bytes expected back in all
  std::string upload_answer;
};

caf::behavior visitor(caf::event_based_actor* self, visitor_params p) {
  auto st = std::make_shared<visitor_state>();
  st->p = std::move(p);
  auto res = st->p.result;
  res->started_us = st->p.now_us ? st->p.now_us() : 0;
  res->target = st->p.host + ":" + std::to_string(st->p.port);
  switch (st->p.kind) {
    case workload_kind::echo: st->expect_total = st->p.bytes; break;
    case workload_kind::upload: st->expect_total = 8; break;
    case workload_kind::download: st->expect_total = st->p.bytes; break;
    case workload_kind::request_response:
      st->expect_total = st->p.bytes * st->p.rounds;
      break;
  }
  auto dial = [self, st] {
    net::connect_req req;
    req.tag = 1;
    req.host = st->p.host;
    req.port = st->p.port;
    req.timeout_ms = st->p.connect_timeout_ms;
    self->send(st->p.io, std::move(req));
  };
  dial();
  auto finish = [self, st, res](bool ok, const std::string& why) {
    if (res->done)
      return;
    res->done = true;
    res->ok = ok;
    res->error = why;
    res->finished_us = st->p.now_us ? st->p.now_us() : 0;
    if (st->conn != 0 && !ok)
      self->send(st->p.io, net::abort_req{st->conn});
    self->quit();
  };
  auto send_payload = [self, st](uint64_t offset, uint64_t n) {
    for (uint64_t off = 0; off < n;) {
      auto k = std::min<uint64_t>(st->p.write_bytes, n - off);
      self->send(st->p.io, net::write_req{st->conn, {pattern_chunk(st->p.seed,
                                                                  offset + off, k, 0)}});
      off += k;
    }
    st->p.result->bytes_sent += n;
  };
  return {
    [=](const net::connected& ev) {
      st->conn = ev.id;
      switch (st->p.kind) {
        case workload_kind::echo:
          self->send(st->p.io, net::write_req{ev.id, {header('E', 0)}});
          send_payload(0, st->p.bytes);
          self->send(st->p.io, net::shutdown_write_req{ev.id});
          break;
        case workload_kind::upload:
          self->send(st->p.io, net::write_req{ev.id, {header('U', 0)}});
          send_payload(0, st->p.bytes);
          self->send(st->p.io, net::shutdown_write_req{ev.id});
          break;
        case workload_kind::download:
          self->send(st->p.io, net::write_req{ev.id, {header('D', st->p.bytes)}});
          self->send(st->p.io, net::shutdown_write_req{ev.id});
          break;
        case workload_kind::request_response:
          self->send(st->p.io, net::write_req{ev.id, {header('E', 0)}});
          send_payload(0, st->p.bytes);
          if (st->p.rounds <= 1)
            self->send(st->p.io, net::shutdown_write_req{ev.id});
          break;
      }
    },
    [=](const net::connect_failed& ev) {
      if (!st->p.fallback_hosts.empty()) {
        st->p.host = st->p.fallback_hosts.front();
        st->p.fallback_hosts.erase(st->p.fallback_hosts.begin());
        res->target = st->p.host + ":" + std::to_string(st->p.port);
        dial();
        return;
      }
      finish(false, "connect: " + ev.what);
    },
    [=](const net::received& ev) {
      auto back = res->bytes_back;
      for (size_t i = 0; i < ev.data.size(); ++i) {
        auto at = back + i;
        if (at >= st->expect_total) {
          res->corrupt = true;
          finish(false, "extra byte at offset " + std::to_string(at));
          return;
        }
        char want;
        if (st->p.kind == workload_kind::upload) {
          want = static_cast<char>((st->p.bytes >> (56 - 8 * at)) ^ st->p.key);
        } else if (st->p.kind == workload_kind::download) {
          want = static_cast<char>(pattern_byte(st->p.bytes, at) ^ st->p.key);
        } else {
          want = static_cast<char>(pattern_byte(st->p.seed, at) ^ st->p.key);
        }
        if (ev.data.data()[i] != want) {
          res->corrupt = true;
          finish(false, "wrong byte at offset " + std::to_string(at));
          return;
        }
      }
      res->bytes_back += ev.data.size();
      if (st->p.kind == workload_kind::request_response) {
        // A full response opens the next round.
        while (res->bytes_back >= (st->round + 1) * st->p.bytes
               && st->round + 1 < st->p.rounds) {
          ++st->round;
          send_payload(st->round * st->p.bytes, st->p.bytes);
          if (st->round + 1 == st->p.rounds)
            self->send(st->p.io, net::shutdown_write_req{st->conn});
        }
      }
    },
    [=](const net::read_closed&) {
      if (res->bytes_back == st->expect_total) {
        st->conn = 0; // closes by itself once both sides are done
        finish(true, "");
      } else {
        finish(false, "EOF after " + std::to_string(res->bytes_back) + " of "
                        + std::to_string(st->expect_total) + " bytes");
      }
    },
    [](const net::sent&) {},
    [=](const net::closed& ev) {
      st->conn = 0;
      finish(false, std::string("connection ") + net::to_string(ev.reason)
                      + " after " + std::to_string(res->bytes_back) + " bytes");
    },
  };
}

} // namespace

const char* to_string(workload_kind k) noexcept {
  switch (k) {
    case workload_kind::echo: return "echo";
    case workload_kind::upload: return "upload";
    case workload_kind::download: return "download";
    case workload_kind::request_response: return "request-response";
  }
  return "?";
}

char pattern_byte(uint64_t seed, uint64_t i) noexcept {
  uint64_t x = seed * 0x9E3779B97F4A7C15ull + i * 0xBF58476D1CE4E5B9ull;
  x ^= x >> 31;
  return static_cast<char>(x & 0xff);
}

caf::actor spawn_app_service(caf::actor_system& sys, caf::actor io,
                             uint16_t port, uint8_t key) {
  return sys.spawn(app_service, std::move(io), port, key);
}

caf::actor spawn_visitor(caf::actor_system& sys, visitor_params p) {
  return sys.spawn(visitor, std::move(p));
}

} // namespace drtp::sim
