#include "sim/world.hpp"

// The simulated network. Every seam request is handled synchronously in the
// sender's context (the io actor calls the host's backend inline); whatever it
// causes is put on one event queue keyed by (virtual time, sequence number),
// which the driver drains with deliver_due(). Same-time events keep FIFO order
// and all randomness comes from one seeded generator: that is the determinism.
//
// A stream connection is a pair of ends. Each end keeps an outbox: what it
// sent toward its peer that has not arrived yet, in stream order, with
// delivery times that never decrease. A partition parks an outbox at its
// head; healing re-times it. The receiving end keeps an inbox for arrivals it
// cannot hand out yet (not adopted, or reading paused).

#include <algorithm>
#include <deque>
#include <functional>
#include <map>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "caf/actor.hpp"
#include "caf/actor_cast.hpp"
#include "caf/actor_clock.hpp"
#include "caf/actor_system.hpp"
#include "caf/exit_reason.hpp"
#include "caf/send.hpp"
#include "net/seam/assert.hpp"
#include "net/seam/io.hpp"
#include "net/seam/io_actor.hpp"
#include "net/wire/handshake.hpp"

namespace drtp::sim {

namespace {

/// What a lost segment costs: one retransmission timeout.
constexpr uint64_t retransmit_us = 200'000;
/// Unread bytes a receiving end buffers (its kernel's receive buffer): past
/// this, a writer's `sent` events wait until the reader catches up, so an
/// application that does not read holds its peers back as on a real host.
constexpr uint64_t receive_buffer_bytes = 256 * 1024;
/// Port 0 in a listen_req picks the next free port from here.
constexpr uint16_t first_listen_port = 10000;
/// Local ports of outgoing connections (only shown to the peer).
constexpr uint16_t first_ephemeral_port = 40000;

enum class flight_kind : uint8_t { data, fin, rst };

/// One item travelling one direction of a connection.
struct flight {
  uint64_t due_us = 0;
  flight_kind kind = flight_kind::data;
  net::chunk data;
};

struct conn_end {
  net::conn_id id = 0;
  net::conn_id peer_id = 0;
  std::string host;
  std::string peer_host;
  uint16_t local_port = 0;
  uint16_t peer_port = 0;
  caf::actor owner;     // null until adopted (accepted ends)
  bool adopted = false; // reads only once adopted
  bool paused = false;
  bool report_sent = true; // `sent` events wanted
  /// The seam's write queue cap (net/seam/io.hpp). The simulated transport
  /// buffers without limit, so the queue is all this end wrote that its
  /// peer's owner has not taken yet.
  uint64_t write_queue_bytes_max = net::write_queue_bytes_default;
  std::deque<flight> inbox;  // arrived, not yet handed to the owner
  uint64_t inbox_bytes = 0;  // data bytes in the inbox
  std::deque<uint64_t> sent_deferred; // `sent` held while the peer's buffer is full
  std::deque<flight> outbox; // on the way to the peer, stream order
  uint64_t last_out_us = 0;  // delivery time of the newest outbox item
  uint64_t last_sent_event_us = 0; // newest `sent` scheduled for the owner
  bool wr_shut = false;         // FIN queued (shutdown_write or close)
  bool rd_eof = false;          // read_closed handed to the owner
  bool close_requested = false; // close_req or abort_req: no more reading
  bool finished = false;        // `closed` decided; nothing reported after
  uint64_t bytes_written = 0;
  uint64_t bytes_received = 0;
};

struct listener_state {
  net::listener_id id = 0;
  std::string host;
  uint16_t port = 0;
  caf::actor owner;
  bool tls = false; // its links carry a channel binding, as TLS ones do
  bool request_client_cert = false; // accepted carries the dialer's cert
};

struct host_state {
  std::string name;
  caf::actor io;
  bool up = true;
  crash_mode down_mode = crash_mode::reset;
  uint64_t epoch = 0; // bumped by crash: stale in-flight connects die with it
  uint16_t next_listen_port = first_listen_port;
  uint16_t next_ephemeral_port = first_ephemeral_port;
  std::map<uint16_t, net::listener_id> ports;
  std::vector<caf::actor> registered;
};

using host_pair = std::pair<std::string, std::string>;

host_pair undirected(const std::string& a, const std::string& b) {
  return a < b ? host_pair{a, b} : host_pair{b, a};
}

const char* to_cstr(crash_mode m) {
  return m == crash_mode::reset ? "reset" : "silent";
}

} // namespace

struct world::impl : std::enable_shared_from_this<world::impl> {
  impl(caf::actor_system& sys, uint64_t seed,
       std::shared_ptr<net::tracer> trace)
    : sys(sys), start(sys.clock().now()), trace(std::move(trace)), rng(seed),
      binding_rng(seed ^ 0x6368616e6e656cULL) {
  }

  caf::actor_system& sys;
  caf::actor_clock::time_point start;
  std::shared_ptr<net::tracer> trace;
  std::mt19937_64 rng;
  /// Channel bindings of TLS links: seeded, distinct per link, and apart from
  /// `rng` so that they do not shift the draws of latency and loss.
  std::mt19937_64 binding_rng;
  bool alive = true; // false once the world object is gone

  link_params default_link;
  std::map<host_pair, link_params> links; // undirected
  std::map<std::string, host_state> hosts;
  std::map<net::conn_id, conn_end> conns;
  std::map<net::listener_id, listener_state> listeners;
  std::set<host_pair> held;                  // directed: traffic parked
  std::map<host_pair, uint64_t> wire_free_us; // directed: bandwidth queue
  std::set<caf::actor_id> watched; // owners with a termination hook
  net::conn_id next_conn_id = 1;
  net::listener_id next_listener_id = 1;

  uint64_t seq = 0;
  std::map<std::pair<uint64_t, uint64_t>, std::function<void()>> events;

  uint64_t total_bytes_written = 0;
  uint64_t total_bytes_delivered = 0;
  world::tap_fn tap; // tests: what hosts read

  // -- time, randomness, tracing ---------------------------------------------

  uint64_t now_us() const {
    auto d = sys.clock().now() - start;
    return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(d).count());
  }

  void at(uint64_t due_us, std::function<void()> fn) {
    due_us = std::max(due_us, now_us());
    events.emplace(std::make_pair(due_us, seq++), std::move(fn));
  }

  const link_params& link(const std::string& a, const std::string& b) const {
    auto i = links.find(undirected(a, b));
    return i != links.end() ? i->second : default_link;
  }

  /// One-way delay a -> b: latency plus seeded uniform jitter.
  uint64_t one_way_us(const std::string& a, const std::string& b) {
    auto& l = link(a, b);
    uint64_t d = l.latency_us;
    if (l.jitter_us > 0)
      d += rng() % (uint64_t{l.jitter_us} + 1); // modulo: portable, unlike
                                                 // std distributions
    return d;
  }

  bool lost(const std::string& a, const std::string& b) {
    auto& l = link(a, b);
    if (l.loss <= 0.0)
      return false; // draw nothing: lossless runs keep their rng sequence
    double x = static_cast<double>(rng() >> 11) * 0x1.0p-53;
    return x < l.loss;
  }

  bool is_held(const std::string& a, const std::string& b) const {
    return held.count(host_pair{a, b}) > 0;
  }

  void emit(const std::string& host, const std::string& what) {
    if (trace)
      trace->emit(host, "net", what);
  }

  /// Per-connection events: only for tracers that want the detail.
  void emit_verbose(const std::string& host, const std::string& what) {
    if (trace && trace->verbose())
      trace->emit(host, "net", what);
  }

  host_state* find_host(const std::string& name) {
    auto i = hosts.find(name);
    return i != hosts.end() ? &i->second : nullptr;
  }

  bool up(const std::string& name) {
    auto h = find_host(name);
    return h != nullptr && h->up;
  }

  conn_end* find_conn(net::conn_id id) {
    auto i = conns.find(id);
    return i != conns.end() ? &i->second : nullptr;
  }

  /// The end `id` if `host`'s io may act on it: requests for unknown or
  /// closed connections are ignored (seam rule).
  conn_end* usable_conn(const std::string& host, net::conn_id id) {
    auto e = find_conn(id);
    if (e == nullptr || e->host != host || e->finished || !up(host))
      return nullptr;
    return e;
  }

  template <class T>
  static void tell(const caf::actor& dest, T&& msg) {
    if (dest)
      caf::anon_send(dest, std::forward<T>(msg));
  }

  // -- owner lifetime -----------------------------------------------------------

  /// An owner that terminates without closing leaves its sockets behind; as a
  /// kernel does for a dead process, abort its connections and drop its
  /// listeners, so peers learn of it and nothing leaks.
  void watch(const caf::actor& owner) {
    if (!owner || !watched.insert(owner.id()).second)
      return;
    std::weak_ptr<impl> weak = shared_from_this();
    auto aid = owner.id();
    // May run synchronously if the owner is already gone: call last.
    owner->attach_functor([weak, aid] {
      if (auto self = weak.lock(); self && self->alive)
        self->on_owner_down(aid);
    });
  }

  void on_owner_down(caf::actor_id aid) {
    watched.erase(aid);
    std::vector<net::conn_id> ids;
    for (auto& [id, e] : conns)
      if (!e.finished && e.owner && e.owner.id() == aid)
        ids.push_back(id);
    for (auto id : ids) {
      auto e = find_conn(id);
      emit_verbose(e->host, "conn #" + std::to_string(id)
                              + " aborted: its owner terminated");
      e->owner = nullptr; // the owner is gone: it hears nothing
      abort_end(*e);
    }
    std::vector<net::listener_id> lids;
    for (auto& [id, l] : listeners)
      if (l.owner && l.owner.id() == aid)
        lids.push_back(id);
    for (auto id : lids)
      remove_listener(id, "its owner terminated");
  }

  // -- listeners ----------------------------------------------------------------

  void remove_listener(net::listener_id id, const std::string& why) {
    auto i = listeners.find(id);
    if (i == listeners.end())
      return;
    if (auto h = find_host(i->second.host))
      h->ports.erase(i->second.port);
    emit_verbose(i->second.host, "stop listening on port "
                                   + std::to_string(i->second.port) + " ("
                                   + why + ")");
    listeners.erase(i);
  }

  void on_listen(const std::string& host, caf::actor sender,
                 net::listen_req req) {
    auto h = find_host(host);
    if (h == nullptr || !h->up)
      return;
    auto port = req.port;
    auto fail = [&](std::string what) {
      emit_verbose(host, "listen port " + std::to_string(req.port) + " -> "
                           + what);
      at(now_us(), [sender, msg = net::listen_failed{req.tag, what}] {
        tell(sender, msg);
      });
    };
    if (port == 0) {
      // Next free port, wrapping within the dynamic range.
      uint16_t p = h->next_listen_port;
      for (uint32_t n = 0; n < 65536u - first_listen_port; ++n) {
        if (h->ports.count(p) == 0) {
          port = p;
          break;
        }
        p = p == 65535 ? first_listen_port : static_cast<uint16_t>(p + 1);
      }
      if (port == 0)
        return fail("no free port");
      h->next_listen_port =
        port == 65535 ? first_listen_port : static_cast<uint16_t>(port + 1);
    } else if (h->ports.count(port) > 0) {
      return fail("address already in use");
    }
    auto id = next_listener_id++;
    listeners.emplace(id, listener_state{id, host, port, sender, req.tls, req.tls && req.request_client_cert});
    h->ports.emplace(port, id);
    emit_verbose(host, "listen port " + std::to_string(port) + " -> listener #"
                         + std::to_string(id));
    at(now_us(), [sender, msg = net::listening{req.tag, id, port}] {
      tell(sender, msg);
    });
    watch(sender);
  }

  void on_stop_listen(const std::string& host, net::stop_listen_req req) {
    auto i = listeners.find(req.id);
    if (i == listeners.end() || i->second.host != host)
      return;
    remove_listener(req.id, "stop_listen_req");
  }

  // -- connecting ---------------------------------------------------------------

  void connect_failed(const std::string& host, const caf::actor& sender,
                      uint64_t tag, const std::string& target,
                      net::connect_error reason, uint64_t due_us) {
    std::string what = std::string(net::to_string(reason)) + " (" + target
                       + ")";
    at(due_us, [this, host, sender, tag, target, reason, what] {
      emit_verbose(host, "connect " + target + " -> "
                           + net::to_string(reason));
      tell(sender, net::connect_failed{tag, reason, what});
    });
  }

  /// No SYN gets through: a silent host or a partition never answers.
  bool no_answer(const std::string& src, const std::string& dst) {
    auto d = find_host(dst);
    return (!d->up && d->down_mode == crash_mode::silent)
           || is_held(src, dst) || is_held(dst, src);
  }

  void on_connect(const std::string& host, caf::actor sender,
                  net::connect_req req) {
    auto h = find_host(host);
    if (h == nullptr || !h->up)
      return;
    auto now = now_us();
    auto target = req.host + ":" + std::to_string(req.port);
    auto timeout_us = uint64_t{req.timeout_ms} * 1000;
    auto dst = find_host(req.host);
    if (dst == nullptr)
      return connect_failed(host, sender, req.tag, target,
                            net::connect_error::unreachable, now);
    if (no_answer(host, req.host))
      return connect_failed(host, sender, req.tag, target,
                            net::connect_error::timed_out, now + timeout_us);
    auto rtt_us = one_way_us(host, req.host) + one_way_us(req.host, host);
    if (rtt_us > timeout_us)
      return connect_failed(host, sender, req.tag, target,
                            net::connect_error::timed_out, now + timeout_us);
    auto epoch = h->epoch;
    at(now + rtt_us, [this, host, sender, req = std::move(req), target, epoch,
                      deadline_us = now + timeout_us] {
      auto h = find_host(host);
      if (h == nullptr || !h->up || h->epoch != epoch)
        return; // the requester's host crashed meanwhile: it is dead
      if (no_answer(host, req.host))
        return connect_failed(host, sender, req.tag, target,
                              net::connect_error::timed_out, deadline_us);
      auto dst = find_host(req.host);
      auto p = dst->up ? dst->ports.find(req.port) : dst->ports.end();
      if (p == dst->ports.end())
        // A down host in reset mode models a crashed process: its kernel
        // still answers with RST.
        return connect_failed(host, sender, req.tag, target,
                              net::connect_error::refused, now_us());
      establish(*h, sender, req.tag, *dst, listeners.at(p->second), req.report_sent,
                req.write_queue_bytes_max,
                req.tls ? req.tls->cert_pem : std::string{});
    });
  }

  void establish(host_state& src, const caf::actor& sender, uint64_t tag,
                 host_state& dst, const listener_state& l, bool report_sent,
                 uint64_t write_queue_bytes_max, const std::string& client_cert_pem) {
    auto a_id = next_conn_id++;
    auto b_id = next_conn_id++;
    auto& a = conns[a_id];
    a.id = a_id;
    a.peer_id = b_id;
    a.host = src.name;
    a.peer_host = dst.name;
    a.local_port = src.next_ephemeral_port;
    src.next_ephemeral_port = src.next_ephemeral_port == 65535
                                ? first_ephemeral_port
                                : static_cast<uint16_t>(
                                  src.next_ephemeral_port + 1);
    a.peer_port = l.port;
    a.owner = sender;
    a.adopted = true; // a connecting end reads at once
    a.report_sent = report_sent;
    if (write_queue_bytes_max != 0)
      a.write_queue_bytes_max = write_queue_bytes_max;
    auto& b = conns[b_id];
    b.id = b_id;
    b.peer_id = a_id;
    b.host = dst.name;
    b.peer_host = src.name;
    b.local_port = l.port;
    b.peer_port = a.local_port;
    emit_verbose(src.name, "connect " + dst.name + ":" + std::to_string(l.port)
                             + " -> conn #" + std::to_string(a_id)
                             + ", accepted as conn #" + std::to_string(b_id));
    // Both ends of a TLS link see the same binding (a TLS exporter in real
    // runs); 32 random bytes make it distinct per link.
    std::string binding;
    if (l.tls)
      for (size_t i = 0; i < net::channel_binding_bytes; ++i)
        binding.push_back(static_cast<char>(binding_rng() & 0xff));
    tell(sender, net::connected{tag, a_id, binding});
    net::accepted acc{l.id, b_id, src.name, a.local_port, binding};
    // The simulator trusts possession: a dialer that names a certificate
    // holds its key (the real TLS handshake proves it). Whether the
    // certificate is any good, the listener's owner decides.
    if (l.request_client_cert)
      acc.peer_cert_pem = client_cert_pem;
    tell(l.owner, std::move(acc));
    watch(sender); // last: may abort `a` at once if the requester is gone
  }

  // -- streams ------------------------------------------------------------------

  void push_flight(conn_end& e, uint64_t due_us, flight_kind kind,
                   net::chunk data = {}) {
    // Stream order: a direction never delivers anything earlier than what
    // it already scheduled.
    due_us = std::max(due_us, e.last_out_us);
    DRTP_ASSERT(e.outbox.empty() || e.outbox.back().due_us <= due_us,
                "a direction of a connection delivers in the order it scheduled");
    e.last_out_us = due_us;
    e.outbox.push_back(flight{due_us, kind, std::move(data)});
    at(due_us, [this, id = e.id] { wake(id); });
  }

  /// When bytes of size `n` leave the sender: after what the link still has
  /// to serialize.
  uint64_t transmit_end_us(conn_end& e, uint64_t n) {
    auto& l = link(e.host, e.peer_host);
    uint64_t ser_us = 0;
    if (l.bandwidth_bytes_per_s > 0)
      ser_us = (n * 1'000'000 + l.bandwidth_bytes_per_s - 1)
               / l.bandwidth_bytes_per_s;
    auto& wire = wire_free_us[host_pair{e.host, e.peer_host}];
    auto tx_end = std::max(now_us(), wire) + ser_us;
    wire = tx_end;
    return tx_end;
  }

  void push_fin(conn_end& e) {
    auto due = transmit_end_us(e, 0) + one_way_us(e.host, e.peer_host);
    push_flight(e, due, flight_kind::fin);
  }

  /// Hands due items of `sender_id`'s outbox to the peer, unless the
  /// direction is partitioned (then they wait for heal()).
  void wake(net::conn_id sender_id) {
    for (;;) {
      auto s = find_conn(sender_id);
      if (s == nullptr)
        return;
      if (s->outbox.empty() || s->outbox.front().due_us > now_us()
          || is_held(s->host, s->peer_host)) {
        maybe_erase(*s);
        return;
      }
      auto f = std::move(s->outbox.front());
      s->outbox.pop_front();
      arrive(s->peer_id, s->peer_host, sender_id, std::move(f));
    }
  }

  /// `f` reaches the end `id` on `host`.
  void arrive(net::conn_id id, const std::string& host, net::conn_id from,
              flight f) {
    if (!up(host))
      return; // a crashed host swallows everything
    auto r = find_conn(id);
    if (r == nullptr || r->finished) {
      // Nobody holds this connection any more (closed, or the host
      // restarted): like a kernel, answer data with a reset.
      if (f.kind == flight_kind::data)
        reply_rst(host, from);
      return;
    }
    if (r->close_requested) {
      // Closed locally, `closed` pending: data earns the peer a reset, the
      // rest changes nothing.
      if (f.kind == flight_kind::data)
        reply_rst(host, from);
      return;
    }
    if (f.kind == flight_kind::rst && r->adopted) {
      // A reset discards unread data, paused or not.
      inbox_clear(*r);
      finish(*r, net::close_reason::reset, "connection reset by peer");
      return;
    }
    if (r->adopted && !r->paused && r->inbox.empty())
      consume(*r, std::move(f));
    else
      inbox_push(*r, std::move(f));
  }

  /// `r` reads `f` now.
  void consume(conn_end& r, flight f) {
    switch (f.kind) {
      case flight_kind::data:
        if (r.close_requested) {
          // Data for a socket closed locally: the peer gets a reset.
          reply_rst(r.host, r.peer_id);
          return;
        }
        r.bytes_received += f.data.size();
        total_bytes_delivered += f.data.size();
        if (tap)
          tap(r.host, r.id, f.data.to_string());
        tell(r.owner, net::received{r.id, std::move(f.data)});
        return;
      case flight_kind::fin:
        if (r.close_requested || r.rd_eof)
          return;
        r.rd_eof = true;
        tell(r.owner, net::read_closed{r.id});
        if (r.wr_shut)
          finish_later(r, net::close_reason::peer, "closed by peer");
        return;
      case flight_kind::rst:
        inbox_clear(r);
        finish(r, net::close_reason::reset, "connection reset by peer");
        return;
    }
  }

  void inbox_push(conn_end& r, flight f) {
    if (f.kind == flight_kind::data)
      r.inbox_bytes += f.data.size();
    r.inbox.push_back(std::move(f));
  }

  void inbox_clear(conn_end& r) {
    r.inbox.clear();
    r.inbox_bytes = 0;
    at(now_us(), [this, id = r.id] { release_sent(id); });
  }

  /// The writer's `sent` for `n` bytes: now, or once the reader of `id`'s
  /// peer has room in its receive buffer.
  void report_sent(net::conn_id id, uint64_t n) {
    auto e = find_conn(id);
    if (e == nullptr || e->finished || !e->adopted)
      return;
    auto peer = find_conn(e->peer_id);
    bool full = peer != nullptr && !peer->finished
                && peer->inbox_bytes > receive_buffer_bytes;
    if (full || !e->sent_deferred.empty()) {
      e->sent_deferred.push_back(n);
      return;
    }
    tell(e->owner, net::sent{id, n});
  }

  /// The reader end `reader_id` read (or dropped) some of its inbox: its
  /// peer's held `sent` events go out while there is room.
  void release_sent(net::conn_id reader_id) {
    auto r = find_conn(reader_id);
    auto w = r ? find_conn(r->peer_id) : nullptr;
    if (w == nullptr || w->finished || !w->adopted)
      return;
    while (!w->sent_deferred.empty()
           && (r->finished || r->inbox_bytes <= receive_buffer_bytes)) {
      auto n = w->sent_deferred.front();
      w->sent_deferred.pop_front();
      tell(w->owner, net::sent{w->id, n});
    }
  }

  /// Hands queued arrivals to the owner, in order, while it reads.
  void flush(net::conn_id id) {
    for (;;) {
      auto r = find_conn(id);
      if (r == nullptr || r->finished || !r->adopted || r->paused
          || r->inbox.empty())
        return;
      auto f = std::move(r->inbox.front());
      r->inbox.pop_front();
      if (f.kind == flight_kind::data)
        r->inbox_bytes -= f.data.size();
      consume(*r, std::move(f));
      release_sent(id);
    }
  }

  /// A reset from `host` to the end `to`, outside its stream (the sending
  /// end may be gone). Takes one latency; partitions do not hold it.
  void reply_rst(const std::string& host, net::conn_id to) {
    auto to_end = find_conn(to);
    if (to_end == nullptr || to_end->finished)
      return;
    auto due = now_us() + one_way_us(host, to_end->host);
    at(due, [this, to] {
      auto r = find_conn(to);
      if (r == nullptr || r->finished || !up(r->host))
        return;
      if (r->adopted) {
        inbox_clear(*r);
        finish(*r, net::close_reason::reset, "connection reset by peer");
      } else {
        inbox_push(*r, flight{now_us(), flight_kind::rst, {}});
      }
    });
  }

  /// Reports `closed` (once) and forgets the end when nothing of it is in
  /// flight any more.
  void finish(conn_end& e, net::close_reason reason, const std::string& what) {
    if (e.finished)
      return;
    e.finished = true;
    inbox_clear(e);
    if (reason == net::close_reason::reset)
      e.outbox.clear(); // nothing more leaves a reset connection
    emit_verbose(e.host, "conn #" + std::to_string(e.id) + " closed ("
                           + net::to_string(reason) + "), wrote "
                           + std::to_string(e.bytes_written) + " B, read "
                           + std::to_string(e.bytes_received) + " B");
    if (e.adopted)
      tell(e.owner, net::closed{e.id, reason, what});
    maybe_erase(e);
  }

  /// `closed` after every `sent` already scheduled for this end.
  void finish_later(conn_end& e, net::close_reason reason, std::string what) {
    at(std::max(now_us(), e.last_sent_event_us),
       [this, id = e.id, reason, what = std::move(what)] {
         if (auto e = find_conn(id))
           finish(*e, reason, what);
       });
  }

  void maybe_erase(conn_end& e) {
    if (e.finished && e.outbox.empty())
      conns.erase(e.id);
  }

  /// Reset: drop what this end still had to send, tell the peer.
  void abort_end(conn_end& e) {
    e.close_requested = true;
    e.outbox.clear();
    e.last_out_us = 0;
    auto due = now_us() + one_way_us(e.host, e.peer_host);
    push_flight(e, due, flight_kind::rst);
    finish(e, net::close_reason::local, "aborted locally");
  }

  void on_adopt(const std::string& host, net::adopt_req req) {
    auto e = usable_conn(host, req.id);
    if (e == nullptr)
      return;
    e->owner = std::move(req.owner);
    e->adopted = true;
    e->report_sent = req.report_sent;
    if (req.write_queue_bytes_max != 0)
      e->write_queue_bytes_max = req.write_queue_bytes_max;
    at(now_us(), [this, id = e->id] { flush(id); });
    watch(e->owner);
  }

  void on_write(const std::string& host, net::write_req req) {
    auto e = usable_conn(host, req.id);
    if (e == nullptr || e->wr_shut || e->close_requested)
      return;
    auto n = static_cast<uint64_t>(net::total_size(req.data));
    if (n == 0)
      return;
    auto tx_end = transmit_end_us(*e, n);
    auto due = tx_end + one_way_us(e->host, e->peer_host);
    if (lost(e->host, e->peer_host))
      due += retransmit_us; // later bytes wait behind it: head-of-line
    for (auto& c : req.data)
      if (!c.empty())
        push_flight(*e, due, flight_kind::data, std::move(c));
    e->bytes_written += n;
    total_bytes_written += n;
    if (over_write_cap(*e))
      return;
    if (!e->report_sent)
      return;
    e->last_sent_event_us = std::max(e->last_sent_event_us, tx_end);
    at(tx_end, [this, id = e->id, n] { report_sent(id, n); });
  }

  /// The seam's hard cap: an end whose peer does not take its bytes is
  /// reset once it has more than its cap waiting (as asio_io does).
  bool over_write_cap(conn_end& e) {
    auto peer = find_conn(e.peer_id);
    if (peer == nullptr)
      return false; // nobody left to take them: the bytes go nowhere
    auto taken = std::min(peer->bytes_received, e.bytes_written);
    if (e.bytes_written - taken <= e.write_queue_bytes_max)
      return false;
    e.close_requested = true;
    e.outbox.clear();
    e.last_out_us = 0;
    push_flight(e, now_us() + one_way_us(e.host, e.peer_host), flight_kind::rst);
    finish(e, net::close_reason::error,
           "write queue over " + std::to_string(e.write_queue_bytes_max)
             + " bytes: the peer does not read");
    return true;
  }

  void on_shutdown_write(const std::string& host, net::shutdown_write_req req) {
    auto e = usable_conn(host, req.id);
    if (e == nullptr || e->wr_shut || e->close_requested)
      return;
    e->wr_shut = true;
    push_fin(*e);
    if (e->rd_eof)
      finish_later(*e, net::close_reason::peer, "closed by peer");
  }

  void on_close(const std::string& host, net::close_req req) {
    auto e = usable_conn(host, req.id);
    if (e == nullptr || e->close_requested)
      return;
    e->close_requested = true;
    if (!e->wr_shut) {
      e->wr_shut = true;
      push_fin(*e);
    }
    // Closing with unread data resets the peer, as TCP does.
    bool unread = std::any_of(e->inbox.begin(), e->inbox.end(),
                              [](const flight& f) {
                                return f.kind == flight_kind::data;
                              });
    inbox_clear(*e);
    if (unread)
      reply_rst(e->host, e->peer_id);
    finish_later(*e, net::close_reason::local, "closed locally");
  }

  void on_abort(const std::string& host, net::abort_req req) {
    auto e = usable_conn(host, req.id);
    if (e == nullptr)
      return;
    abort_end(*e);
  }

  void on_pause_read(const std::string& host, net::pause_read_req req) {
    if (auto e = usable_conn(host, req.id))
      e->paused = true;
  }

  void on_resume_read(const std::string& host, net::resume_read_req req) {
    auto e = usable_conn(host, req.id);
    if (e == nullptr || !e->paused)
      return;
    e->paused = false;
    at(now_us(), [this, id = e->id] { flush(id); });
  }

  // -- faults -------------------------------------------------------------------

  void crash(const std::string& host, crash_mode mode) {
    auto h = find_host(host);
    if (h == nullptr || !h->up)
      return;
    h->up = false;
    h->down_mode = mode;
    ++h->epoch;
    emit(host, std::string("crash ") + host + " (" + to_cstr(mode) + ")");
    std::vector<caf::actor> victims;
    std::vector<net::conn_id> ids;
    for (auto& [id, e] : conns)
      if (e.host == host)
        ids.push_back(id);
    for (auto id : ids) {
      auto& e = conns.at(id);
      if (e.owner)
        victims.push_back(e.owner);
      if (mode == crash_mode::reset && !e.finished)
        reply_rst(host, e.peer_id);
      conns.erase(id);
    }
    for (auto i = listeners.begin(); i != listeners.end();) {
      if (i->second.host == host) {
        victims.push_back(i->second.owner);
        i = listeners.erase(i);
      } else {
        ++i;
      }
    }
    h->ports.clear();
    for (auto& a : h->registered)
      victims.push_back(a);
    h->registered.clear();
    std::set<caf::actor_id> killed;
    for (auto& a : victims)
      if (a && killed.insert(a.id()).second)
        caf::anon_send_exit(a, caf::exit_reason::kill);
  }

  void restart(const std::string& host) {
    auto h = find_host(host);
    if (h == nullptr || h->up)
      return;
    h->up = true;
    emit(host, "restart " + host);
  }

  /// Re-times everything parked on directions that are no longer held:
  /// released at now + latency, in order.
  void release(const std::set<host_pair>& dirs) {
    auto now = now_us();
    for (auto& [id, e] : conns) {
      if (e.outbox.empty() || dirs.count(host_pair{e.host, e.peer_host}) == 0)
        continue;
      auto base = now + one_way_us(e.host, e.peer_host);
      for (auto& f : e.outbox)
        f.due_us = std::max(f.due_us, base); // stays non-decreasing
      e.last_out_us = std::max(e.last_out_us, e.outbox.back().due_us);
      at(e.outbox.front().due_us, [this, id = id] { wake(id); });
    }
  }

  void partition(const std::string& a, const std::string& b, bool both_ways) {
    held.insert(host_pair{a, b});
    if (both_ways)
      held.insert(host_pair{b, a});
    emit(a, "partition " + a + (both_ways ? " <-> " : " -> ") + b);
  }

  void heal(const std::string& a, const std::string& b) {
    std::set<host_pair> dirs;
    for (auto& d : {host_pair{a, b}, host_pair{b, a}})
      if (held.erase(d) > 0)
        dirs.insert(d);
    if (dirs.empty())
      return;
    emit(a, "heal " + a + " <-> " + b);
    release(dirs);
  }

  void heal_all() {
    if (held.empty())
      return;
    auto dirs = std::move(held);
    held.clear();
    emit("*", "heal all");
    release(dirs);
  }

  /// The world object goes away: kill every actor it knows of and let go of
  /// every handle, so the actor system can shut down.
  void shutdown() {
    alive = false;
    std::vector<caf::actor> victims;
    for (auto& [id, e] : conns)
      victims.push_back(e.owner);
    for (auto& [id, l] : listeners)
      victims.push_back(l.owner);
    for (auto& [name, h] : hosts)
      for (auto& a : h.registered)
        victims.push_back(a);
    events.clear();
    conns.clear();
    listeners.clear();
    hosts.clear(); // drops the io actors
    held.clear();
    std::set<caf::actor_id> killed;
    for (auto& a : victims)
      if (a && killed.insert(a.id()).second)
        caf::anon_send_exit(a, caf::exit_reason::kill);
  }
};

namespace {

/// One per host: the io actor of that host calls it, so every request knows
/// where it comes from. Holds the world weakly: the world holds the io actor.
class host_backend final : public net::io_backend {
public:
  host_backend(std::weak_ptr<world::impl> w, std::string host)
    : world_(std::move(w)), host_(std::move(host)) {
  }

  void on_listen(caf::actor sender, net::listen_req req) override {
    if (auto w = get())
      w->on_listen(host_, std::move(sender), std::move(req));
  }
  void on_stop_listen(net::stop_listen_req req) override {
    if (auto w = get())
      w->on_stop_listen(host_, req);
  }
  void on_set_identity(caf::actor sender, net::set_identity_req) override {
    // Simulated links carry no TLS (the sim is trusted): nothing to swap.
    if (sender)
      caf::anon_send(sender, net::identity_set{true, {}});
  }
  void on_connect(caf::actor sender, net::connect_req req) override {
    if (auto w = get())
      w->on_connect(host_, std::move(sender), std::move(req));
  }
  void on_adopt(net::adopt_req req) override {
    if (auto w = get())
      w->on_adopt(host_, std::move(req));
  }
  void on_write(net::write_req req) override {
    if (auto w = get())
      w->on_write(host_, std::move(req));
  }
  void on_shutdown_write(net::shutdown_write_req req) override {
    if (auto w = get())
      w->on_shutdown_write(host_, req);
  }
  void on_close(net::close_req req) override {
    if (auto w = get())
      w->on_close(host_, req);
  }
  void on_abort(net::abort_req req) override {
    if (auto w = get())
      w->on_abort(host_, req);
  }
  void on_pause_read(net::pause_read_req req) override {
    if (auto w = get())
      w->on_pause_read(host_, req);
  }
  void on_resume_read(net::resume_read_req req) override {
    if (auto w = get())
      w->on_resume_read(host_, req);
  }

private:
  std::shared_ptr<world::impl> get() const {
    auto w = world_.lock();
    return w && w->alive ? w : nullptr;
  }

  std::weak_ptr<world::impl> world_;
  std::string host_;
};

} // namespace

world::world(caf::actor_system& sys, uint64_t seed,
             std::shared_ptr<net::tracer> trace)
  : impl_(std::make_shared<impl>(sys, seed, std::move(trace))) {
}

world::~world() {
  impl_->shutdown();
}

caf::actor world::add_host(const std::string& name) {
  auto& h = impl_->hosts[name];
  if (!h.io) {
    h.name = name;
    h.io = net::make_io_actor(impl_->sys,
                              std::make_shared<host_backend>(impl_, name));
  }
  return h.io;
}

caf::actor world::io(const std::string& name) const {
  auto h = impl_->find_host(name);
  return h != nullptr ? h->io : caf::actor{};
}

void world::set_default_link(link_params p) {
  impl_->default_link = p;
}

void world::set_link(const std::string& a, const std::string& b,
                     link_params p) {
  impl_->links[undirected(a, b)] = p;
}

void world::crash(const std::string& host, crash_mode mode) {
  impl_->crash(host, mode);
}

void world::restart(const std::string& host) {
  impl_->restart(host);
}

bool world::is_up(const std::string& host) const {
  return impl_->up(host);
}

void world::register_actor(const std::string& host, caf::actor a) {
  if (auto h = impl_->find_host(host))
    h->registered.push_back(std::move(a));
}

void world::partition(const std::string& a, const std::string& b,
                      bool both_ways) {
  impl_->partition(a, b, both_ways);
}

void world::heal(const std::string& a, const std::string& b) {
  impl_->heal(a, b);
}

void world::heal_all() {
  impl_->heal_all();
}

bool world::next_event_us(uint64_t& t) const {
  if (impl_->events.empty())
    return false;
  t = impl_->events.begin()->first.first;
  return true;
}

void world::deliver_due(uint64_t now_us) {
  auto& evs = impl_->events;
  while (!evs.empty() && evs.begin()->first.first <= now_us) {
    auto fn = std::move(evs.begin()->second);
    evs.erase(evs.begin());
    fn(); // may schedule more, also at now_us: delivered in this loop
  }
}

size_t world::open_connections() const {
  size_t n = 0;
  for (auto& [id, e] : impl_->conns)
    if (!e.finished)
      ++n;
  return n;
}

std::vector<std::string> world::open_connections_off_port(uint16_t port) const {
  std::vector<std::string> out;
  for (auto& [id, e] : impl_->conns)
    if (!e.finished && e.local_port != port && e.peer_port != port)
      out.push_back(e.host + ":" + std::to_string(e.local_port) + " -> " + e.peer_host
                    + ":" + std::to_string(e.peer_port));
  return out;
}

void world::set_tap(tap_fn fn) {
  impl_->tap = std::move(fn);
}

size_t world::open_listeners() const {
  return impl_->listeners.size();
}

} // namespace drtp::sim
