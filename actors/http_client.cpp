#include "actors/http_client.hpp"

#include <chrono>
#include <deque>
#include <map>

#include "caf/all.hpp"
#include "net/seam/assert.hpp"

namespace drtp {

namespace {

using fetch_timeout_atom = caf::atom_constant<caf::atom("hfetchtmo")>;
using watch_idle_atom = caf::atom_constant<caf::atom("hwatchidle")>;

constexpr caf::atom_value http_category = caf::atom("http");
/// Fetches waiting for the link: past this a fetch fails at once.
constexpr size_t fetch_queue_max = 1024;
/// Watches at once on one client (each is a link of its own).
constexpr size_t watches_max = 64;

const char* to_string(http_errc x) {
  switch (x) {
    case http_errc::connect_failed: return "cannot connect";
    case http_errc::connection_lost: return "connection lost";
    case http_errc::timed_out: return "timed out";
    case http_errc::bad_response: return "bad response";
    case http_errc::overloaded: return "overloaded";
  }
  return "unknown";
}

bool idempotent(const std::string& method) {
  return method == "GET" || method == "HEAD" || method == "PUT" || method == "DELETE";
}

/// "Connection: close" (or a list holding it, any case).
bool says_close(std::string v) {
  for (auto& c : v)
    c = static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  return v.find("close") != std::string::npos;
}

/// What of a refused watch's body is kept for its one-line reason.
constexpr size_t watch_reason_bytes_max = 200;

struct fetch_entry {
  uint64_t seq = 0;
  http_fetch f;
  caf::response_promise rp;
  bool retried = false;
};

struct watch_entry {
  http_watch w;
  uint64_t connect_tag = 0;
  net::conn_id id = 0; // 0 until connected
  http::response_parser parser;
  std::string line; // a line not yet complete
  uint64_t activity = 0;
  explicit watch_entry(const http::limits& l) : parser(l) {
    parser.set_stream_chunks(true);
  }
};

class http_client final : public caf::event_based_actor {
public:
  http_client(caf::actor_config& cfg, http_client_params p)
    : caf::event_based_actor(cfg), p_(std::move(p)), parser_(p_.limits) {
    DRTP_ASSERT(!p_.host.empty() && p_.port != 0, "a client knows its server");
  }

  const char* name() const override {
    return "drtp.http_client";
  }

  caf::behavior make_behavior() override {
    return {
      [this](http_fetch& f) { on_fetch(std::move(f)); },
      [this](http_watch& w) { on_watch(std::move(w)); },
      [this](const http_unwatch& u) { stop_watch(u.tag, nullptr); },
      [this](http_set_authorization& a) {
        p_.authorization = std::move(a.authorization);
        // The link signed in by the old credentials: the next fetch signs
        // in anew on a new one (an in-flight fetch finishes first).
        if (in_flight_)
          relink_ = true;
        else if (link_ == link_state::up)
          drop_link(false); // idle: nothing queued behind it
      },
      [this](const net::connected& ev) { on_connected(ev); },
      [this](const net::connect_failed& ev) { on_connect_failed(ev); },
      [this](net::received& ev) { on_received(ev); },
      [this](const net::read_closed& ev) { on_read_closed(ev); },
      [](const net::sent&) {},
      [this](const net::closed& ev) { on_closed(ev); },
      [this](fetch_timeout_atom, uint64_t seq) { on_fetch_timeout(seq); },
      [this](watch_idle_atom, uint64_t tag, uint64_t activity) {
        on_watch_idle(tag, activity);
      },
    };
  }

private:
  enum class link_state : uint8_t { none, connecting, up };

  void trace(const std::string& what) {
    p_.e.trace->emit(p_.e.host, p_.name, what);
  }

  template <class Atom, class... Ts>
  void after_ms(uint32_t ms, Atom a, Ts... xs) {
    delayed_send(this, p_.e.clock->real_delay(std::chrono::milliseconds(ms)), a, xs...);
  }

  std::string host_header() const {
    return p_.host + ":" + std::to_string(p_.port);
  }

  uint64_t dial() {
    auto tag = ++connect_tag_;
    send(p_.e.io, net::connect_req{tag, p_.host, p_.port, p_.connect_timeout_ms, p_.tls,
                                   false, 0});
    return tag;
  }

  std::string request_bytes(const std::string& method, const std::string& target,
                            http::header_list headers, const std::string& body,
                            const std::string& auth) {
    if (!auth.empty() && http::find_header(headers, "Authorization") == nullptr)
      headers.emplace_back("Authorization", auth);
    return http::write_request(method, target, host_header(), headers, body);
  }

  void write(net::conn_id id, const std::string& bytes) {
    send(p_.e.io, net::write_req{id, {net::chunk::copy_of(bytes)}});
  }

  // -- fetches ------------------------------------------------------------------

  void on_fetch(http_fetch f) {
    auto rp = make_response_promise();
    if (queue_.size() >= fetch_queue_max) {
      rp.deliver(make_error(http_errc::overloaded,
                            std::to_string(fetch_queue_max) + " fetches queued"));
      return;
    }
    queue_.push_back(fetch_entry{++fetch_seq_, std::move(f), rp, false});
    after_ms(p_.request_timeout_ms, fetch_timeout_atom::value, fetch_seq_);
    pump();
  }

  /// Sends the next queued fetch when the link is up and free.
  void pump() {
    if (queue_.empty() || in_flight_)
      return;
    if (link_ == link_state::none) {
      link_ = link_state::connecting;
      link_tag_ = dial();
      return;
    }
    if (link_ != link_state::up)
      return;
    auto& e = queue_.front();
    parser_ = http::response_parser(p_.limits);
    if (e.f.method == "HEAD")
      parser_.expect_no_body();
    in_flight_ = true;
    got_bytes_ = false;
    reused_ = link_requests_++ > 0;
    write(link_id_, request_bytes(e.f.method, e.f.target, e.f.headers, e.f.body, link_auth_));
  }

  void finish_front(caf::error err, http::response* r) {
    DRTP_ASSERT(!queue_.empty(), "a finished fetch was queued");
    auto e = std::move(queue_.front());
    queue_.pop_front();
    in_flight_ = false;
    if (r != nullptr)
      e.rp.deliver(std::move(*r));
    else
      e.rp.deliver(std::move(err));
  }

  void drop_link(bool abort) {
    if (link_ == link_state::up)
      send(p_.e.io, abort ? caf::make_message(net::abort_req{link_id_})
                          : caf::make_message(net::close_req{link_id_}));
    link_ = link_state::none;
    link_id_ = 0;
    link_requests_ = 0;
    relink_ = false;
  }

  void on_fetch_response() {
    auto r = parser_.take();
    const auto* conn = r.header("Connection");
    bool close = conn != nullptr && says_close(*conn);
    finish_front({}, &r);
    if (close || relink_)
      drop_link(false);
    pump();
  }

  void on_fetch_bytes(const char* data, size_t n) {
    got_bytes_ = true;
    size_t pos = 0;
    while (in_flight_ && pos < n) {
      size_t used = 0;
      auto st = parser_.feed(data + pos, n - pos, used);
      pos += used;
      if (st == http::parse_state::error) {
        trace("bad response: " + parser_.error());
        finish_front(make_error(http_errc::bad_response, parser_.error()), nullptr);
        drop_link(true);
        pump();
        return;
      }
      if (st == http::parse_state::done)
        on_fetch_response();
    }
    if (pos < n) {
      trace("response bytes without a request: link dropped");
      drop_link(true);
      pump();
    }
  }

  /// The link went away: the fetch on it fails, or goes again once when
  /// it is idempotent and the link was a reused one that the server may
  /// have closed as idle just as the request left.
  void on_fetch_link_lost(const std::string& what) {
    link_ = link_state::none;
    link_id_ = 0;
    link_requests_ = 0;
    if (in_flight_) {
      in_flight_ = false;
      auto& e = queue_.front();
      if (reused_ && !got_bytes_ && !e.retried && idempotent(e.f.method)) {
        e.retried = true;
      } else {
        in_flight_ = true;
        finish_front(make_error(http_errc::connection_lost, what), nullptr);
      }
    }
    pump();
  }

  void on_fetch_timeout(uint64_t seq) {
    for (auto i = queue_.begin(); i != queue_.end(); ++i) {
      if (i->seq != seq)
        continue;
      auto err = make_error(http_errc::timed_out, "no response within "
                                                    + std::to_string(p_.request_timeout_ms)
                                                    + " ms");
      if (i == queue_.begin() && in_flight_) {
        finish_front(std::move(err), nullptr);
        drop_link(true); // a late answer must not be taken for the next one
      } else {
        i->rp.deliver(std::move(err));
        queue_.erase(i);
      }
      pump();
      return;
    }
  }

  // -- watches ------------------------------------------------------------------

  void on_watch(http_watch w) {
    stop_watch(w.tag, nullptr);
    if (watches_.size() >= watches_max) {
      send(w.owner, http_watch_ended{w.tag, 0, std::to_string(watches_max)
                                                 + " watches already on this client"});
      return;
    }
    auto tag = w.tag;
    auto it = watches_.emplace(tag, std::make_unique<watch_entry>(p_.limits)).first;
    it->second->w = std::move(w);
    it->second->connect_tag = dial();
  }

  watch_entry* watch_by_conn(net::conn_id id) {
    for (auto& [tag, w] : watches_)
      if (w->id == id && id != 0)
        return w.get();
    return nullptr;
  }

  /// Ends a watch: the owner hears `why` unless it asked to stop (null).
  void stop_watch(uint64_t tag, const std::string* why) {
    auto i = watches_.find(tag);
    if (i == watches_.end())
      return;
    auto& w = *i->second;
    if (w.id != 0)
      send(p_.e.io, net::abort_req{w.id});
    if (why != nullptr) {
      int status = w.parser.headers_done() ? w.parser.head().status : 0;
      send(w.w.owner, http_watch_ended{tag, status, *why});
    }
    watches_.erase(i);
  }

  void start_watch(watch_entry& w, const net::connected& ev) {
    w.id = ev.id;
    std::string auth = p_.authorization ? p_.authorization(ev.channel_binding) : "";
    http::header_list headers;
    if (!w.w.body.empty())
      headers.emplace_back("Content-Type", "application/json");
    write(ev.id, request_bytes(w.w.method.empty() ? "GET" : w.w.method, w.w.target,
                               std::move(headers), w.w.body, auth));
    after_ms(p_.watch_idle_timeout_ms, watch_idle_atom::value, w.w.tag, w.activity);
  }

  void on_watch_bytes(watch_entry& w, const char* data, size_t n) {
    ++w.activity;
    size_t used = 0;
    auto st = w.parser.feed(data, n, used);
    if (st == http::parse_state::error) {
      auto why = "bad watch response: " + w.parser.error();
      stop_watch(w.w.tag, &why);
      return;
    }
    if (w.parser.headers_done() && w.parser.chunked()) {
      if (w.parser.head().status != 200) {
        keep_reason(w); // a refusal sent in chunks: only its start matters
      } else if (!split_lines(w)) {
        return;
      }
    }
    if (st == http::parse_state::done)
      end_watch_done(w);
  }

  /// Hands complete lines to the owner; false when the watch was stopped.
  bool split_lines(watch_entry& w) {
    std::string piece;
    while (w.parser.next_chunk(piece))
      if (!emit_lines(w, piece))
        return false;
    return true;
  }

  bool emit_lines(watch_entry& w, const std::string& piece) {
    size_t start = 0;
    for (auto nl = piece.find('\n'); nl != std::string::npos; nl = piece.find('\n', start)) {
      w.line.append(piece, start, nl - start);
      start = nl + 1;
      if (!w.line.empty() && w.line.back() == '\r')
        w.line.pop_back();
      if (!w.line.empty())
        send(w.w.owner, http_watch_line{w.w.tag, std::move(w.line)});
      w.line.clear();
    }
    w.line.append(piece, start, std::string::npos);
    if (w.line.size() <= p_.limits.body_bytes_max)
      return true;
    std::string why = "watch line over " + std::to_string(p_.limits.body_bytes_max) + " bytes";
    stop_watch(w.w.tag, &why);
    return false;
  }

  void keep_reason(watch_entry& w) {
    std::string piece;
    while (w.parser.next_chunk(piece))
      if (w.line.size() < watch_reason_bytes_max)
        w.line.append(piece, 0, watch_reason_bytes_max - w.line.size());
  }

  void end_watch_done(watch_entry& w) {
    auto r = w.parser.take();
    if (r.body.empty() && r.status != 200)
      r.body = w.line;
    std::string why;
    if (r.status == 200) {
      // A whole (not chunked) answer: its lines are the stream. The body
      // is within limits.body_bytes_max, and so is its last line.
      if (!r.body.empty())
        emit_lines(w, r.body + "\n");
      why = "the server ended the stream";
    } else {
      auto nl = r.body.find('\n');
      why = "status " + std::to_string(r.status) + ": " + r.body.substr(0, std::min(nl, watch_reason_bytes_max));
    }
    auto tag = w.w.tag;
    auto i = watches_.find(tag);
    DRTP_ASSERT(i != watches_.end(), "a watch being read is known");
    if (w.id != 0)
      send(p_.e.io, net::close_req{w.id});
    send(w.w.owner, http_watch_ended{tag, r.status, why});
    watches_.erase(i);
  }

  void on_watch_idle(uint64_t tag, uint64_t activity) {
    auto i = watches_.find(tag);
    if (i == watches_.end() || i->second->id == 0)
      return;
    if (i->second->activity != activity) {
      after_ms(p_.watch_idle_timeout_ms, watch_idle_atom::value, tag, i->second->activity);
      return;
    }
    std::string why = "watch silent for " + std::to_string(p_.watch_idle_timeout_ms) + " ms";
    stop_watch(tag, &why);
  }

  // -- seam events ----------------------------------------------------------------

  void on_connected(const net::connected& ev) {
    if (link_ == link_state::connecting && ev.tag == link_tag_) {
      link_ = link_state::up;
      link_id_ = ev.id;
      link_requests_ = 0;
      link_auth_ = p_.authorization ? p_.authorization(ev.channel_binding) : "";
      pump();
      return;
    }
    for (auto& [tag, w] : watches_) {
      if (w->connect_tag == ev.tag && w->id == 0) {
        start_watch(*w, ev);
        return;
      }
    }
    send(p_.e.io, net::abort_req{ev.id}); // a link no one waits for any more
  }

  void on_connect_failed(const net::connect_failed& ev) {
    auto what = host_header() + ": " + ev.what;
    if (link_ == link_state::connecting && ev.tag == link_tag_) {
      trace("cannot connect to " + what);
      link_ = link_state::none;
      while (!queue_.empty()) {
        queue_.front().rp.deliver(make_error(http_errc::connect_failed, what));
        queue_.pop_front();
      }
      return;
    }
    for (auto& [tag, w] : watches_) {
      if (w->connect_tag == ev.tag && w->id == 0) {
        std::string why = "cannot connect to " + what;
        stop_watch(tag, &why);
        return;
      }
    }
  }

  void on_received(net::received& ev) {
    if (link_ == link_state::up && ev.id == link_id_) {
      on_fetch_bytes(ev.data.data(), ev.data.size());
      return;
    }
    if (auto* w = watch_by_conn(ev.id))
      on_watch_bytes(*w, ev.data.data(), ev.data.size());
  }

  void on_read_closed(const net::read_closed& ev) {
    if (link_ == link_state::up && ev.id == link_id_) {
      if (in_flight_) {
        size_t used = 0;
        if (parser_.feed(nullptr, 0, used) == http::parse_state::done) {
          auto r = parser_.take();
          finish_front({}, &r);
        }
      }
      drop_link(false);
      if (in_flight_)
        on_fetch_link_lost("the server closed the connection mid-response");
      pump();
      return;
    }
    if (auto* w = watch_by_conn(ev.id)) {
      size_t used = 0;
      if (w->parser.feed(nullptr, 0, used) == http::parse_state::done) {
        end_watch_done(*w);
        return;
      }
      std::string why = "the server closed the watch";
      stop_watch(w->w.tag, &why);
    }
  }

  void on_closed(const net::closed& ev) {
    if (link_ == link_state::up && ev.id == link_id_) {
      on_fetch_link_lost("connection closed: " + ev.what);
      return;
    }
    if (auto* w = watch_by_conn(ev.id)) {
      w->id = 0; // gone already: nothing to abort
      std::string why = "watch connection closed: " + ev.what;
      stop_watch(w->w.tag, &why);
    }
  }

  // Our links go with us (anon_send: a terminated actor's own send is not
  // to be relied on). Owners hold each other's handles: let go of them.
  void on_exit() override {
    if (link_ == link_state::up)
      caf::anon_send(p_.e.io, net::abort_req{link_id_});
    for (auto& [tag, w] : watches_)
      if (w->id != 0)
        caf::anon_send(p_.e.io, net::abort_req{w->id});
    watches_.clear();
    queue_.clear();
    p_ = {};
  }

  http_client_params p_;
  http::response_parser parser_;
  std::deque<fetch_entry> queue_; // the front is in flight when in_flight_
  std::map<uint64_t, std::unique_ptr<watch_entry>> watches_;
  link_state link_ = link_state::none;
  net::conn_id link_id_ = 0;
  uint64_t link_tag_ = 0;
  std::string link_auth_;
  uint64_t link_requests_ = 0;
  uint64_t connect_tag_ = 0;
  uint64_t fetch_seq_ = 0;
  bool in_flight_ = false;
  bool relink_ = false; // new credentials: drop the link after this fetch
  bool got_bytes_ = false;
  bool reused_ = false;
};

} // namespace

caf::error make_error(http_errc x, std::string what) {
  return caf::error(static_cast<uint8_t>(x), http_category, caf::make_message(std::move(what)));
}

std::string describe_http_error(const caf::error& err) {
  if (err.category() == http_category) {
    std::string s = to_string(static_cast<http_errc>(err.code()));
    if (err.context().match_elements<std::string>())
      s += ": " + err.context().get_as<std::string>(0);
    return s;
  }
  if (err.category() == caf::atom("system"))
    return caf::to_string(static_cast<caf::sec>(err.code()));
  return caf::to_string(err);
}

caf::actor spawn_http_client(caf::actor_system& sys, http_client_params p) {
  return sys.spawn<http_client>(std::move(p));
}

} // namespace drtp
