#include "actors/http_server.hpp"

#include <chrono>
#include <map>

#include "caf/all.hpp"
#include "net/seam/assert.hpp"
#include "net/seam/io.hpp"

namespace drtp {

namespace {

using conn_idle_atom = caf::atom_constant<caf::atom("hconnidle")>;
using evict_atom = caf::atom_constant<caf::atom("hevict")>;
using req_timeout_atom = caf::atom_constant<caf::atom("hreqtmo")>;
using idle_timeout_atom = caf::atom_constant<caf::atom("hidletmo")>;

/// Bytes a client may send ahead (pipelined) while its request is with the
/// handler or a stream runs: past this the connection stops being read.
size_t pending_bytes_max(const http::limits& l) {
  return l.header_bytes_max + l.body_bytes_max;
}

struct conn_params {
  std::shared_ptr<const http_server_params> p;
  caf::actor server;
  net::conn_id id = 0;
  std::string peer_host;
  uint16_t peer_port = 0;
  std::string channel_binding;
  uint64_t serial = 0;
};

/// One connection: parses requests, hands each to the handler in order,
/// writes the answers (whole or streamed).
class http_conn final : public caf::event_based_actor {
public:
  http_conn(caf::actor_config& cfg, conn_params c)
    : caf::event_based_actor(cfg), c_(std::move(c)), p_(*c_.p), parser_(p_.limits) {
  }

  const char* name() const override {
    return "drtp.http_conn";
  }

  caf::behavior make_behavior() override {
    send(p_.e.io, net::adopt_req{c_.id, this, false, p_.stream_write_queue_bytes_max});
    // A server that stops takes its connections with it.
    monitor(c_.server);
    set_down_handler([this](caf::down_msg&) {
      if (streaming_)
        send(p_.handler, http_stream_gone{c_.serial});
      send(p_.e.io, net::abort_req{c_.id});
      quit();
    });
    arm_idle();
    return {
      [this](net::received& ev) { on_received(ev); },
      [this](const net::read_closed&) {
        read_closed_ = true;
        if (!busy_ && !streaming_ && pending_.empty())
          close("");
      },
      [](const net::sent&) {},
      [this](const net::closed& ev) { on_closed(ev); },
      [this](http_stream_chunk& x) {
        if (streaming_ && !closing_ && !x.data.empty())
          write(http::write_chunk(x.data));
      },
      [this](http_stream_end) { on_stream_end(); },
      [this](req_timeout_atom, uint64_t gen) {
        if (gen == req_gen_ && in_request_ && !busy_ && !closing_)
          fail(408, "request not complete within " + std::to_string(p_.request_timeout_ms)
                      + " ms");
      },
      [this](idle_timeout_atom, uint64_t gen) {
        if (gen == idle_gen_ && idle())
          close("idle for " + std::to_string(p_.idle_timeout_ms) + " ms");
      },
      [this](evict_atom) { close("evicted: too many connections"); },
    };
  }

private:
  void trace(const std::string& what) {
    p_.e.trace->emit(p_.e.host, p_.name, what);
  }

  bool idle() const {
    return !busy_ && !streaming_ && !in_request_ && !closing_;
  }

  void set_idle_flag() {
    bool now = idle();
    if (now != told_idle_) {
      told_idle_ = now;
      send(c_.server, conn_idle_atom::value, c_.serial, now);
    }
    if (now)
      arm_idle();
  }

  void arm_idle() {
    ++idle_gen_;
    delayed_send(this, p_.e.clock->real_delay(std::chrono::milliseconds(p_.idle_timeout_ms)),
                 idle_timeout_atom::value, idle_gen_);
  }

  void write(std::string bytes) {
    if (bytes.empty())
      return;
    send(p_.e.io, net::write_req{c_.id, {net::chunk::copy_of(bytes)}});
  }

  void on_received(net::received& ev) {
    if (closing_)
      return;
    ++idle_gen_; // not idle: cancels the idle timer
    if (busy_ || streaming_ || !pending_.empty()) {
      pending_.append(ev.data.data(), ev.data.size());
      if (pending_.size() > pending_bytes_max(p_.limits) && !paused_) {
        paused_ = true;
        send(p_.e.io, net::pause_read_req{c_.id});
      }
      return;
    }
    parse(ev.data.data(), ev.data.size());
  }

  /// Feeds bytes to the parser; a whole request goes to the handler and
  /// the bytes after it wait in pending_ until the answer is written.
  void parse(const char* data, size_t n) {
    size_t pos = 0;
    while (pos < n && !busy_ && !closing_) {
      if (!in_request_) {
        in_request_ = true;
        ++req_gen_;
        set_idle_flag();
        delayed_send(this,
                     p_.e.clock->real_delay(std::chrono::milliseconds(p_.request_timeout_ms)),
                     req_timeout_atom::value, req_gen_);
      }
      size_t used = 0;
      auto st = parser_.feed(data + pos, n - pos, used);
      pos += used;
      if (st == http::parse_state::error) {
        fail(parser_.error_status(), parser_.error());
        return;
      }
      if (st == http::parse_state::done)
        dispatch(parser_.take());
    }
    if (pos < n && !closing_)
      pending_.insert(0, data + pos, n - pos);
  }

  void dispatch(http::request req) {
    in_request_ = false;
    ++req_gen_;
    busy_ = true;
    keep_alive_ = req.keep_alive;
    head_ = req.method == "HEAD";
    http_call call{std::move(req), c_.peer_host, c_.peer_port, c_.channel_binding, this,
                   c_.serial};
    // Two kinds of answer: the handle's then() takes one, so the response
    // handler is a behaviour of its own (anything else is an error).
    auto rh = request(p_.handler, std::chrono::milliseconds(p_.handler_timeout_ms),
                      std::move(call));
    add_multiplexed_response_handler(
      rh.id(), caf::behavior{
                 [this](http::response& r) { answer(r); },
                 [this](http_stream_begin& b) { on_stream_begin(b); },
                 [this](caf::error& err) {
                   bool late = err == caf::sec::request_timeout;
                   trace(late ? "handler gave no answer in time"
                              : "handler failed: " + system().render(err));
                   answer(http::response{late ? 503 : 500, {{"Content-Type", "text/plain"}},
                                         late ? "the handler did not answer in time\n"
                                              : "internal error\n"});
                 },
               });
  }

  void on_stream_begin(const http_stream_begin& b) {
    if (closing_)
      return;
    busy_ = false;
    streaming_ = true;
    count_response(b.status);
    write(http::write_chunked_head(b.status, b.headers));
  }

  void answer(const http::response& r) {
    if (closing_)
      return;
    bool keep = keep_alive_ && !read_closed_;
    count_response(r.status);
    auto bytes = http::write_response(r, keep);
    if (head_)
      bytes.resize(bytes.size() - r.body.size());
    write(std::move(bytes));
    busy_ = false;
    next(keep);
  }

  void on_stream_end() {
    if (!streaming_ || closing_)
      return;
    write(http::write_last_chunk());
    streaming_ = false;
    next(keep_alive_ && !read_closed_);
  }

  /// After an answer: the next pipelined request, or close.
  void next(bool keep) {
    if (!keep) {
      close("");
      return;
    }
    if (paused_) {
      paused_ = false;
      send(p_.e.io, net::resume_read_req{c_.id});
    }
    auto rest = std::move(pending_);
    pending_.clear();
    if (!rest.empty())
      parse(rest.data(), rest.size());
    if (read_closed_ && idle() && pending_.empty())
      close("");
    else
      set_idle_flag();
  }

  /// A request the parser refused (or too slow): its 4xx, then close.
  /// drtp_http_responses_total, by the status's class (a bounded label).
  void count_response(int status) {
    static const char* classes[] = {"1xx", "2xx", "3xx", "4xx", "5xx"};
    auto k = status / 100;
    p_.e.stats
      ->counter(net::metric::http_responses_total,
                {p_.name, k >= 1 && k <= 5 ? classes[k - 1] : "5xx"})
      .add();
  }

  void fail(int status, const std::string& what) {
    count_response(status);
    trace(std::to_string(status) + " to " + c_.peer_host + ": " + what);
    http::response r{status, {{"Content-Type", "text/plain"}}, what + "\n"};
    write(http::write_response(r, false));
    close("");
  }

  void close(const std::string& why) {
    if (closing_)
      return;
    if (!why.empty())
      trace("closing connection from " + c_.peer_host + ": " + why);
    closing_ = true;
    set_idle_flag();
    send(p_.e.io, net::close_req{c_.id});
  }

  void on_closed(const net::closed& ev) {
    if (streaming_)
      send(p_.handler, http_stream_gone{c_.serial});
    if (ev.reason != net::close_reason::local && ev.reason != net::close_reason::peer)
      trace("connection from " + c_.peer_host + " closed: " + ev.what);
    quit();
  }

  // The handler may hold this connection's handle (a stream): let go of
  // each other's handles so that no cycle outlives the connection.
  void on_exit() override {
    c_ = {};
    p_ = {};
  }

  conn_params c_;
  http_server_params p_;
  http::request_parser parser_;
  std::string pending_; // bytes after the request being answered
  uint64_t req_gen_ = 0;
  uint64_t idle_gen_ = 0;
  bool in_request_ = false; // some bytes of a request have come
  bool busy_ = false;       // the handler has the request
  bool streaming_ = false;
  bool keep_alive_ = true;
  bool head_ = false;
  bool read_closed_ = false;
  bool paused_ = false;
  bool closing_ = false;
  bool told_idle_ = true;
};

/// The listener: accepts, keeps the connection count under its cap.
class http_server final : public caf::event_based_actor {
public:
  http_server(caf::actor_config& cfg, http_server_params p)
    : caf::event_based_actor(cfg),
      p_(std::make_shared<const http_server_params>(std::move(p))) {
    DRTP_ASSERT(p_->connections_max >= 1, "a server takes a connection");
    DRTP_ASSERT(p_->handler != nullptr, "a server has a handler");
  }

  const char* name() const override {
    return "drtp.http_server";
  }

  caf::behavior make_behavior() override {
    set_down_handler([this](caf::down_msg& dm) { on_down(dm); });
    send(p_->e.io, net::listen_req{1, p_->host, p_->port, p_->tls});
    return {
      [this](const net::listening& ev) {
        trace("listening on " + p_->host + ":" + std::to_string(ev.port));
        if (p_->observer)
          send(p_->observer, http_listening{ev.port});
      },
      [this](const net::listen_failed& ev) {
        if (p_->observer)
          send(p_->observer, http_listen_failed{ev.what});
        quit();
      },
      [this](const net::accepted& ev) { on_accepted(ev); },
      [this](conn_idle_atom, uint64_t serial, bool idle) {
        auto i = conns_.find(serial);
        if (i != conns_.end())
          i->second.idle = idle;
      },
      // Connections refused at the cap are ours until they close.
      [](const net::received&) {},
      [](const net::read_closed&) {},
      [](const net::sent&) {},
      [](const net::closed&) {},
    };
  }

private:
  struct conn_entry {
    caf::actor actor;
    caf::actor_addr addr;
    bool idle = true;
  };

  void trace(const std::string& what) {
    p_->e.trace->emit(p_->e.host, p_->name, what);
  }

  void on_accepted(const net::accepted& ev) {
    if (conns_.size() >= p_->connections_max && !evict_oldest_idle()) {
      trace("refused a connection from " + ev.peer_host + ": "
            + std::to_string(p_->connections_max) + " connections busy");
      send(p_->e.io, net::adopt_req{ev.id, this, false, 0});
      p_->e.stats->counter(net::metric::http_responses_total, {p_->name, "5xx"}).add();
      http::response r{503, {{"Content-Type", "text/plain"}}, "too many connections\n"};
      auto bytes = http::write_response(r, false);
      send(p_->e.io, net::write_req{ev.id, {net::chunk::copy_of(bytes)}});
      send(p_->e.io, net::close_req{ev.id});
      return;
    }
    DRTP_ASSERT(conns_.size() < p_->connections_max, "eviction made room");
    conn_params c{p_, this, ev.id, ev.peer_host, ev.peer_port, ev.channel_binding, ++serial_};
    auto a = system().spawn<http_conn>(std::move(c));
    monitor(a);
    conns_.emplace(serial_, conn_entry{a, a.address(), true});
  }

  /// The oldest idle connection goes (serials grow with age).
  bool evict_oldest_idle() {
    for (auto i = conns_.begin(); i != conns_.end(); ++i) {
      if (i->second.idle) {
        send(i->second.actor, evict_atom::value);
        conns_.erase(i);
        return true;
      }
    }
    return false;
  }

  void on_down(const caf::down_msg& dm) {
    for (auto i = conns_.begin(); i != conns_.end(); ++i) {
      if (i->second.addr == dm.source) {
        conns_.erase(i);
        return;
      }
    }
  }

  void on_exit() override {
    conns_.clear();
  }

  std::shared_ptr<const http_server_params> p_;
  std::map<uint64_t, conn_entry> conns_; // by serial: oldest first
  uint64_t serial_ = 0;
};

} // namespace

caf::actor spawn_http_server(caf::actor_system& sys, http_server_params p) {
  return sys.spawn<http_server>(std::move(p));
}

} // namespace drtp
