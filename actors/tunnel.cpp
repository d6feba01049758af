#include "actors/tunnel.hpp"

#include <algorithm>

#include "actors/messages.hpp"
#include "caf/all.hpp"
#include "net/seam/assert.hpp"

namespace drtp {

using net::frame;
using net::frame_type;

tunnel_actor::tunnel_actor(caf::actor_config& cfg, env e, caf::actor parent,
                           opener self)
  : caf::event_based_actor(cfg),
    e_(std::move(e)),
    parent_(std::move(parent)),
    self_(self),
    next_sid_(self == opener::dialer ? 1 : 2) {
  // nop
}

void tunnel_actor::start() {
  who_ = "tunnel#" + std::to_string(id());
  last_rx_ = e_.clock->now(clock());
}

caf::message_handler tunnel_actor::common_handlers() {
  return {
    [this](net::received& ev) { on_received(ev); },
    [this](net::read_closed& ev) {
      if (ev.id == conn_)
        fail(peer_name() + " closed the tunnel");
    },
    [this](net::closed& ev) {
      if (ev.id != conn_)
        return;
      conn_ = 0;
      fail(peer_name() + " link " + net::to_string(ev.reason)
           + (ev.what.empty() ? "" : ": " + ev.what));
    },
    [](const net::sent&) {
      // Flow control is per stream (sessions); nothing to do per tunnel.
    },
    [this](heartbeat_atom) { on_heartbeat(); },
    [this](set_owner& ev) {
      if (ev.owner)
        adopt_stream(ev.sid, ev.owner);
      else
        refuse_stream(ev.sid, static_cast<net::rst_code>(ev.code));
    },
    [this](stream_window& ev) { on_stream_window(ev); },
    [this](stream_rst& ev) {
      if (streams_.erase(ev.sid)) {
        write(writer_.rst(ev.sid, ev.code));
        streams_changed();
      }
    },
    [this](stream_done& ev) {
      if (streams_.erase(ev.sid))
        streams_changed();
    },
    [this](stream_violation& ev) {
      // Only for a stream still carried: a late report is moot.
      if (conn_ != 0 && streams_.count(ev.sid))
        protocol_error(ev.what + " on stream " + std::to_string(ev.sid));
    },
  };
}

void tunnel_actor::trace(const std::string& what) {
  e_.trace->emit(e_.host, who_, what);
}

void tunnel_actor::write(net::chunk c) {
  DRTP_ASSERT(conn_ != 0, "no frame is written before the link exists or after it closed");
  send(e_.io, net::write_req{conn_, {std::move(c)}});
}

void tunnel_actor::write_control(frame_type t, uint32_t sid, const net::chunk& payload) {
  write(writer_.control(t, sid, payload));
}

bool tunnel_actor::protocol_error(const std::string& what) {
  on_protocol_error();
  fail("protocol error from " + peer_name() + ": " + what);
  return false;
}

template <class T>
void tunnel_actor::deliver(stream_state& s, T msg) {
  if (s.session)
    send(s.session, std::move(msg));
  else
    s.pending.push_back(caf::make_message(std::move(msg)));
}

void tunnel_actor::on_received(net::received& ev) {
  if (ev.id != conn_)
    return;
  // Any byte is a sign of life, whatever it carries.
  last_rx_ = e_.clock->now(clock());
  frames_.clear();
  auto st = decoder_.feed(ev.data, frames_);
  // Heartbeats go ahead of bulk work: a pong answered after a batch of a
  // thousand opens could come too late for the peer's liveness check. Ping
  // and pong belong to no stream, so answering them first reorders nothing.
  heartbeats_ahead_ = heartbeat_interval_ms_ != 0;
  if (heartbeats_ahead_)
    for (auto& f : frames_)
      if ((f.type == frame_type::ping || f.type == frame_type::pong) && !on_heartbeat_frame(f))
        return;
  // One batch may hold the end of the handshake and the first stream
  // frames: each frame is read by the state the one before it left.
  for (auto& f : frames_) {
    if (!on_frame(f))
      return;
  }
  if (st != net::frame_decoder::status::ok)
    protocol_error(to_string(st));
}

// -- frames once up ----------------------------------------------------------------

bool tunnel_actor::on_up_frame(const frame& f) {
  switch (f.type) {
    case frame_type::data:
      return on_data(f);
    case frame_type::window: {
      auto credit = net::read_u32(f.payload.data());
      // Credit returns what the peer took of what we sent: one grant above
      // the window is never honest (the owner checks the sum, see
      // stream_violation).
      if (credit > e_.limits.window_bytes)
        return protocol_error("credit of " + std::to_string(credit)
                              + " bytes above the window on stream "
                              + std::to_string(f.stream_id));
      auto i = streams_.find(f.stream_id);
      if (i != streams_.end())
        deliver(i->second, stream_window{f.stream_id, credit});
      return true;
    }
    case frame_type::fin: {
      auto i = streams_.find(f.stream_id);
      if (i != streams_.end())
        deliver(i->second, stream_fin{f.stream_id});
      return true;
    }
    case frame_type::rst:
      return on_rst(f);
    case frame_type::open:
      return on_open_frame(f);
    case frame_type::renew:
      if (f.stream_id != 0)
        return protocol_error("renew on stream " + std::to_string(f.stream_id));
      return on_renew(f);
    case frame_type::ping:
    case frame_type::pong:
      // Answered ahead of the batch (see on_received), unless this batch
      // also held the end of the handshake.
      return heartbeats_ahead_ || on_heartbeat_frame(f);
    case frame_type::goaway:
      return on_goaway_frame(f);
    default:
      return protocol_error(std::string("unexpected ") + to_string(f.type));
  }
}

bool tunnel_actor::on_data(const frame& f) {
  auto i = streams_.find(f.stream_id);
  if (i == streams_.end())
    return true; // late data for a stream we already reset
  auto& s = i->second;
  s.recv_outstanding_bytes += f.payload.size();
  if (s.recv_outstanding_bytes > e_.limits.window_bytes) {
    auto code = static_cast<uint32_t>(net::rst_code::flow_violation);
    deliver(s, stream_rst{f.stream_id, code});
    write(writer_.rst(f.stream_id, code));
    streams_.erase(i);
    streams_changed();
    return true;
  }
  DRTP_ASSERT(s.recv_outstanding_bytes <= e_.limits.window_bytes,
              "a stream in the table never holds more than its window uncredited");
  deliver(s, stream_data{f.stream_id, f.payload});
  return true;
}

bool tunnel_actor::on_rst(const frame& f) {
  auto i = streams_.find(f.stream_id);
  if (i != streams_.end()) {
    uint32_t code = f.payload.size() == 4 ? net::read_u32(f.payload.data()) : 0;
    deliver(i->second, stream_rst{f.stream_id, code});
    streams_.erase(i);
    streams_changed();
  }
  return true;
}

bool tunnel_actor::on_open_frame(const frame& f) {
  net::open_msg open;
  if (!net::decode(f.payload, open))
    return protocol_error("malformed open");
  // The peer must use its own half of the id space and a fresh id.
  bool peer_parity_ok = f.stream_id % 2 != parity(self_);
  if (!peer_parity_ok || f.stream_id == 0 || streams_.count(f.stream_id))
    return protocol_error("bad stream id " + std::to_string(f.stream_id));
  return on_open(f.stream_id, open);
}

bool tunnel_actor::on_heartbeat_frame(const frame& f) {
  if (f.type == frame_type::pong)
    return on_pong(f);
  // An honest peer pings once per interval. Each ping costs a pong in the
  // write queue, so a flood is refused rather than answered without bound.
  auto now = e_.clock->now(clock());
  if (now - ping_window_start_ >= ms(heartbeat_interval_ms_)) {
    ping_window_start_ = now;
    pings_in_window_ = 0;
  }
  if (++pings_in_window_ > e_.limits.pings_per_interval_max)
    return protocol_error("ping flood: more than "
                          + std::to_string(e_.limits.pings_per_interval_max)
                          + " pings in one heartbeat interval");
  write(writer_.pong(f.payload));
  return true;
}

bool tunnel_actor::on_pong(const frame& f) {
  if (f.payload.size() != 8)
    return true;
  auto sent_us = net::read_u64(f.payload.data());
  auto now = now_us();
  if (now >= sent_us)
    on_rtt(now - sent_us);
  return true;
}

bool tunnel_actor::on_goaway_frame(const frame& f) {
  net::goaway_msg g;
  if (!net::decode(f.payload, g))
    return protocol_error("malformed goaway");
  trace(peer_name() + " is going away: " + g.message);
  on_goaway(g);
  return true;
}

void tunnel_actor::on_stream_window(const stream_window& ev) {
  auto i = streams_.find(ev.sid);
  if (i == streams_.end())
    return;
  auto& s = i->second;
  s.recv_outstanding_bytes -= std::min<uint64_t>(ev.bytes, s.recv_outstanding_bytes);
  write(writer_.window(ev.sid, ev.bytes));
}

// -- the stream table ----------------------------------------------------------------

uint32_t tunnel_actor::next_stream_id() {
  auto sid = next_sid_;
  next_sid_ += 2;
  DRTP_ASSERT(sid % 2 == parity(self_), "a stream id has the parity of its opener");
  return sid;
}

bool tunnel_actor::streams_full() const {
  return streams_.size() >= e_.limits.streams_per_tunnel_max;
}

void tunnel_actor::add_stream(uint32_t sid, caf::actor owner, opener by) {
  DRTP_ASSERT(sid != 0 && sid % 2 == parity(by),
              "a stream id is not 0 and has the parity of its opener");
  DRTP_ASSERT(streams_.count(sid) == 0, "a stream id is in the stream table at most once");
  DRTP_ASSERT(streams_.size() < e_.limits.streams_per_tunnel_max,
              "a tunnel carries at most streams_per_tunnel_max streams");
  streams_.emplace(sid, stream_state{std::move(owner), 0, {}});
  streams_changed();
}

void tunnel_actor::refuse_stream(uint32_t sid, net::rst_code code) {
  if (streams_.erase(sid))
    streams_changed();
  write(writer_.rst(sid, code));
}

void tunnel_actor::adopt_stream(uint32_t sid, caf::actor owner) {
  auto i = streams_.find(sid);
  if (i == streams_.end()) {
    // Reset meanwhile: tell the owner so it does not wait for nothing.
    send(owner, stream_rst{sid, static_cast<uint32_t>(net::rst_code::tunnel_lost)});
    return;
  }
  i->second.session = owner;
  for (auto& m : i->second.pending)
    send(owner, std::move(m));
  i->second.pending.clear();
}

// -- liveness ----------------------------------------------------------------------

void tunnel_actor::start_heartbeats(uint32_t interval_ms) {
  DRTP_ASSERT(heartbeat_interval_ms_ == 0 && interval_ms > 0,
              "heartbeats start once, when the tunnel goes up");
  heartbeat_interval_ms_ = interval_ms;
  last_check_ = e_.clock->now(clock());
  delayed_send(this, e_.clock->real_delay(check_period()), heartbeat_atom::value);
}

uint64_t tunnel_actor::now_us() {
  return static_cast<uint64_t>(
    std::chrono::duration_cast<std::chrono::microseconds>(
      e_.clock->now(clock()).time_since_epoch())
      .count());
}

/// Liveness is checked four times per heartbeat interval, so a dead peer
/// is declared within interval * (misses_max + 1/4).
std::chrono::milliseconds tunnel_actor::check_period() const {
  return ms(std::max<uint32_t>(heartbeat_interval_ms_ / 4, 1));
}

void tunnel_actor::on_heartbeat() {
  if (heartbeat_interval_ms_ == 0)
    return; // not up yet: the tick is armed only by start_heartbeats
  auto now = e_.clock->now(clock());
  // A tick that comes late means this loop was busy (a burst of work), and
  // then it did not read the link either: the stall is not the peer's
  // silence. Without this, a saturated loop declares a live peer dead.
  auto late = now - last_check_ - check_period();
  last_check_ = now;
  if (late > check_period())
    last_rx_ = std::min(now, last_rx_ + late);
  auto silent = now - last_rx_;
  auto limit = ms(heartbeat_interval_ms_ * e_.limits.heartbeat_misses_max);
  if (silent > limit) {
    fail(peer_name() + " silent for "
         + std::to_string(
           std::chrono::duration_cast<std::chrono::milliseconds>(silent).count())
         + " ms: declared dead");
    return;
  }
  if (now - last_ping_ >= ms(heartbeat_interval_ms_)) {
    last_ping_ = now;
    write(writer_.ping(now_us()));
  }
  delayed_send(this, e_.clock->real_delay(check_period()), heartbeat_atom::value);
}

// -- the end ---------------------------------------------------------------------------

void tunnel_actor::end_streams_and_link(link_end how) {
  for (auto& [sid, s] : streams_)
    if (s.session)
      send(s.session, stream_rst{sid, static_cast<uint32_t>(net::rst_code::tunnel_lost)});
  streams_.clear();
  if (conn_ != 0 && how == link_end::close)
    send(e_.io, net::close_req{conn_});
  else if (conn_ != 0)
    send(e_.io, net::abort_req{conn_});
}

void tunnel_actor::on_exit() {
  e_ = {};
  parent_ = nullptr;
  streams_.clear();
}

} // namespace drtp
