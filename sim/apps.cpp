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

/// One visitor session: dial (falling back to other hosts), send the
/// workload, check every byte that comes back, and report how it ended.
class visitor_session {
public:
  visitor_session(caf::event_based_actor* self, visitor_params p)
    : self_(self), p_(std::move(p)), res_(p_.result) {
    res_->started_us = p_.now_us ? p_.now_us() : 0;
    res_->target = p_.host + ":" + std::to_string(p_.port);
    switch (p_.kind) {
      case workload_kind::echo: expect_total_ = p_.bytes; break;
      case workload_kind::upload: expect_total_ = 8; break;
      case workload_kind::download: expect_total_ = p_.bytes; break;
      case workload_kind::request_response:
        expect_total_ = p_.bytes * p_.rounds;
        break;
    }
  }

  void dial() {
    net::connect_req req;
    req.tag = 1;
    req.host = p_.host;
    req.port = p_.port;
    req.timeout_ms = p_.connect_timeout_ms;
    self_->send(p_.io, std::move(req));
  }

  void on_connected(const net::connected& ev) {
    conn_ = ev.id;
    switch (p_.kind) {
      case workload_kind::echo:
        self_->send(p_.io, net::write_req{ev.id, {header('E', 0)}});
        send_payload(0, p_.bytes);
        self_->send(p_.io, net::shutdown_write_req{ev.id});
        break;
      case workload_kind::upload:
        self_->send(p_.io, net::write_req{ev.id, {header('U', 0)}});
        send_payload(0, p_.bytes);
        self_->send(p_.io, net::shutdown_write_req{ev.id});
        break;
      case workload_kind::download:
        self_->send(p_.io, net::write_req{ev.id, {header('D', p_.bytes)}});
        self_->send(p_.io, net::shutdown_write_req{ev.id});
        break;
      case workload_kind::request_response:
        self_->send(p_.io, net::write_req{ev.id, {header('E', 0)}});
        send_payload(0, p_.bytes);
        if (p_.rounds <= 1)
          self_->send(p_.io, net::shutdown_write_req{ev.id});
        break;
    }
  }

  void on_connect_failed(const net::connect_failed& ev) {
    if (!p_.fallback_hosts.empty()) {
      p_.host = p_.fallback_hosts.front();
      p_.fallback_hosts.erase(p_.fallback_hosts.begin());
      res_->target = p_.host + ":" + std::to_string(p_.port);
      dial();
      return;
    }
    finish(false, "connect: " + ev.what);
  }

  void on_received(const net::received& ev) {
    if (!check_bytes(ev))
      return;
    res_->bytes_back += ev.data.size();
    if (p_.kind == workload_kind::request_response)
      next_rounds();
  }

  void on_read_closed() {
    if (res_->bytes_back == expect_total_) {
      conn_ = 0; // closes by itself once both sides are done
      finish(true, "");
    } else {
      finish(false, "EOF after " + std::to_string(res_->bytes_back) + " of "
                      + std::to_string(expect_total_) + " bytes");
    }
  }

  void on_closed(const net::closed& ev) {
    conn_ = 0;
    finish(false, std::string("connection ") + net::to_string(ev.reason) + " after "
                    + std::to_string(res_->bytes_back) + " bytes");
  }

private:
  void finish(bool ok, const std::string& why) {
    if (res_->done)
      return;
    res_->done = true;
    res_->ok = ok;
    res_->error = why;
    res_->finished_us = p_.now_us ? p_.now_us() : 0;
    if (conn_ != 0 && !ok)
      self_->send(p_.io, net::abort_req{conn_});
    self_->quit();
  }

  void send_payload(uint64_t offset, uint64_t n) {
    for (uint64_t off = 0; off < n;) {
      auto k = std::min<uint64_t>(p_.write_bytes, n - off);
      self_->send(p_.io,
                  net::write_req{conn_, {pattern_chunk(p_.seed, offset + off, k, 0)}});
      off += k;
    }
    res_->bytes_sent += n;
  }

  /// The byte the service must send back at offset `at`.
  char expected_byte(uint64_t at) const {
    if (p_.kind == workload_kind::upload)
      return static_cast<char>((p_.bytes >> (56 - 8 * at)) ^ p_.key);
    if (p_.kind == workload_kind::download)
      return static_cast<char>(pattern_byte(p_.bytes, at) ^ p_.key);
    return static_cast<char>(pattern_byte(p_.seed, at) ^ p_.key);
  }

  /// False (and the session over, corrupt) at the first wrong or extra byte.
  bool check_bytes(const net::received& ev) {
    auto back = res_->bytes_back;
    for (size_t i = 0; i < ev.data.size(); ++i) {
      auto at = back + i;
      if (at >= expect_total_) {
        res_->corrupt = true;
        finish(false, "extra byte at offset " + std::to_string(at));
        return false;
      }
      if (ev.data.data()[i] != expected_byte(at)) {
        res_->corrupt = true;
        finish(false, "wrong byte at offset " + std::to_string(at));
        return false;
      }
    }
    return true;
  }

  /// request_response: a full response opens the next round.
  void next_rounds() {
    while (res_->bytes_back >= (round_ + 1) * p_.bytes && round_ + 1 < p_.rounds) {
      ++round_;
      send_payload(round_ * p_.bytes, p_.bytes);
      if (round_ + 1 == p_.rounds)
        self_->send(p_.io, net::shutdown_write_req{conn_});
    }
  }

  caf::event_based_actor* self_;
  visitor_params p_;
  std::shared_ptr<visitor_result> res_;
  net::conn_id conn_ = 0;
  uint64_t round_ = 0;        // request_response: current round
  uint64_t expect_total_ = 0; // bytes expected back in all
};

caf::behavior visitor(caf::event_based_actor* self, visitor_params p) {
  auto v = std::make_shared<visitor_session>(self, std::move(p));
  v->dial();
  return {
    [v](const net::connected& ev) { v->on_connected(ev); },
    [v](const net::connect_failed& ev) { v->on_connect_failed(ev); },
    [v](const net::received& ev) { v->on_received(ev); },
    [v](const net::read_closed&) { v->on_read_closed(); },
    [](const net::sent&) {},
    [v](const net::closed& ev) { v->on_closed(ev); },
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
