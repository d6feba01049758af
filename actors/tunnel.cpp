#include "actors/tunnel.hpp"

#include <cassert>
#include <unordered_map>
#include <vector>

#include "actors/messages.hpp"
#include "actors/rsession.hpp"
#include "actors/session.hpp"
#include "actors/splice.hpp"
#include "caf/all.hpp"
#include "net/wire/control.hpp"
#include "net/wire/frame.hpp"
#include "net/wire/handshake.hpp"

namespace drtp {

namespace {

using net::frame;
using net::frame_type;

class tunnel_actor final : public caf::event_based_actor {
public:
  tunnel_actor(caf::actor_config& cfg, tunnel_params p)
    : caf::event_based_actor(cfg), p_(std::move(p)) {
    // Streams opened by the dialing side are odd, by the accepting side even,
    // so both ends can open streams without coordination.
    next_sid_ = p_.role == tunnel_params::agent_side ? 1 : 2;
  }

  const char* name() const override {
    return "drtp.tunnel";
  }

  caf::behavior make_behavior() override {
    who_ = "tunnel#" + std::to_string(id());
    last_rx_ = p_.e.clock->now(clock());
    if (p_.role == tunnel_params::agent_side) {
      net::connect_req req;
      req.tag = 1;
      req.host = p_.pop_host;
      req.port = p_.pop_port;
      req.timeout_ms = p_.e.limits.connect_timeout_ms;
      req.tls = p_.tls;
      req.report_sent = false; // credit is per stream, in the sessions
      send(p_.e.io, std::move(req));
    } else {
      conn_ = p_.conn;
      send(p_.e.io, net::adopt_req{conn_, this, false});
    }
    delayed_send(this, p_.e.clock->real_delay(ms(p_.e.limits.handshake_timeout_ms)),
                 hs_timeout_atom::value);
    return {
      // -- the link --------------------------------------------------------------
      [this](net::connected& ev) {
        conn_ = ev.id;
        last_rx_ = p_.e.clock->now(clock());
        net::hello_msg hello;
        hello.service = p_.service;
        hello.agent_id = p_.agent_id;
        if (p_.client)
          hello.role = static_cast<uint8_t>(net::peer_role::client);
        hello_payload_ = net::encode(hello);
        write_control(frame_type::hello, 0, hello_payload_);
      },
      [this](net::connect_failed& ev) {
        fail("cannot reach POP " + p_.pop_host + ":" + std::to_string(p_.pop_port)
             + ": " + ev.what);
      },
      [this](net::received& ev) {
        if (ev.id != conn_)
          return;
        last_rx_ = p_.e.clock->now(clock());
        frames_.clear();
        auto st = decoder_.feed(ev.data, frames_);
        for (auto& f : frames_) {
          if (!on_frame(f))
            return;
        }
        if (st != net::frame_decoder::status::ok)
          protocol_error(to_string(st));
      },
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
      [this](const net::sent&) {
        // Flow control is per stream (sessions); nothing to do per tunnel.
      },
      // -- timers ------------------------------------------------------------------
      [this](hs_timeout_atom) {
        if (!up_) {
          if (p_.role == tunnel_params::pop_side)
            reject(net::reject_code::handshake_timeout);
          fail("handshake with " + peer_name() + " timed out");
        }
      },
      [this](delayed_atom) { send_challenge(); },
      [this](heartbeat_atom) { on_heartbeat(); },
      // -- streams -----------------------------------------------------------------
      [this](attach_visitor& ev) { open_stream(ev.conn, ev.peer); },
      [this](attach_splice& ev) { splice(ev); },
      [this](open_stream_req& ev) { open_client_stream(ev); },
      [this](set_owner& ev) {
        if (ev.owner)
          adopt_stream(ev.sid, ev.owner);
        else
          refuse_stream(ev.sid, static_cast<net::rst_code>(ev.code));
      },
      [this](stream_window& ev) {
        auto i = streams_.find(ev.sid);
        if (i == streams_.end())
          return;
        auto& s = i->second;
        s.recv_outstanding_bytes -= std::min<uint64_t>(ev.bytes,
                                                       s.recv_outstanding_bytes);
        write(net::encode_u32_frame(frame_type::window, ev.sid, ev.bytes));
      },
      [this](stream_rst& ev) {
        if (streams_.erase(ev.sid)) {
          write(net::encode_u32_frame(frame_type::rst, ev.sid, ev.code));
          streams_changed();
        }
      },
      [this](stream_done& ev) {
        if (streams_.erase(ev.sid))
          streams_changed();
      },
      [this](drain_atom) {
        if (p_.role == tunnel_params::pop_side) {
          // Tell the agent to move on; carry the open streams to their end.
          draining_ = true;
          net::goaway_msg g;
          g.code = static_cast<uint16_t>(net::reject_code::draining);
          g.message = "POP is draining";
          write_control(frame_type::goaway, 0, net::encode(g));
        } else {
          letting_go_ = true;
          streams_changed();
        }
      },
    };
  }

private:
  struct stream_state {
    caf::actor session; // null until its owner exists (patch panel)
    uint64_t recv_outstanding_bytes = 0; // received, credit not yet returned
    /// What arrived before the owner: bounded by the window (flow control).
    std::vector<caf::message> pending;
  };

  template <class T>
  void deliver(stream_state& s, T msg) {
    if (s.session)
      send(s.session, std::move(msg));
    else
      s.pending.push_back(caf::make_message(std::move(msg)));
  }

  static std::chrono::milliseconds ms(uint32_t x) {
    return std::chrono::milliseconds(x);
  }

  std::string peer_name() const {
    return p_.role == tunnel_params::agent_side
             ? "POP " + p_.pop_host + ":" + std::to_string(p_.pop_port)
             : (peer_is_client_ ? "client " : "agent ")
                 + (agent_id_.empty() ? p_.peer_host : agent_id_);
  }

  void trace(const std::string& what) {
    p_.e.trace->emit(p_.e.host, who_, what);
  }

  /// Authorization decisions, always logged (never with secrets).
  void audit(const std::string& what) {
    p_.e.trace->emit(p_.e.host, "audit", what);
  }

  void write(net::chunk c) {
    if (conn_ != 0)
      send(p_.e.io, net::write_req{conn_, {std::move(c)}});
  }

  void write_control(frame_type t, uint32_t sid, const net::chunk& payload) {
    write(net::encode_frame(t, sid, payload.data(), payload.size()));
  }

  // -- handshake -----------------------------------------------------------------

  void send_challenge() {
    net::challenge_msg ch;
    ch.nonce = p_.e.rng->bytes(net::nonce_bytes);
    challenge_payload_ = net::encode(ch);
    write_control(frame_type::challenge, 0, challenge_payload_);
  }

  void reject(net::reject_code code) {
    net::reject_msg rj;
    rj.code = static_cast<uint16_t>(code);
    rj.message = to_string(code);
    write_control(frame_type::reject, 0, net::encode(rj));
  }

  void refuse(net::reject_code code, const std::string& service) {
    trace(std::string("refused ") + (peer_is_client_ ? "client" : "agent") + " from "
          + p_.peer_host + " for service '" + service
          + "': " + to_string(code));
    if (code == net::reject_code::bad_proof
        || code == net::reject_code::unknown_service
        || code == net::reject_code::unknown_principal)
      send(p_.parent, auth_failed{p_.peer_host, service});
    reject(code);
    // Let the reject reach the agent, then go.
    send(p_.e.io, net::close_req{conn_});
    rejected_ = true;
  }

  bool on_handshake_frame(const frame& f) {
    if (p_.role == tunnel_params::pop_side) {
      if (f.type == frame_type::hello && hello_payload_.empty()) {
        net::hello_msg hello;
        if (!net::decode(f.payload, hello))
          return protocol_error("malformed hello");
        hello_payload_ = f.payload;
        agent_id_ = hello.agent_id;
        service_ = hello.service;
        if (hello.version != net::protocol_version) {
          refuse(net::reject_code::bad_version, hello.service);
          return false;
        }
        auto i = p_.auth->service_keys.find(hello.service);
        if (i == p_.auth->service_keys.end()) {
          refuse(net::reject_code::unknown_service, hello.service);
          return false;
        }
        if (hello.role == static_cast<uint8_t>(net::peer_role::client)) {
          peer_is_client_ = true;
          auto pr = p_.auth->principals.find(hello.agent_id);
          if (pr == p_.auth->principals.end() || pr->second.revoked) {
            audit("denied principal '" + hello.agent_id + "' from " + p_.peer_host
                  + " for service '" + hello.service + "': "
                  + (pr == p_.auth->principals.end() ? "unknown principal"
                                                     : "revoked"));
            refuse(net::reject_code::unknown_principal, hello.service);
            return false;
          }
          key_ = pr->second.key;
        } else if (hello.role == static_cast<uint8_t>(net::peer_role::agent)) {
          key_ = i->second;
        } else {
          return protocol_error("unknown role");
        }
        if (p_.auth_delay_ms > 0)
          delayed_send(this, p_.e.clock->real_delay(ms(p_.auth_delay_ms)), delayed_atom::value);
        else
          send_challenge();
        return true;
      }
      if (f.type == frame_type::proof && !challenge_payload_.empty()) {
        net::proof_msg proof;
        if (!net::decode(f.payload, proof))
          return protocol_error("malformed proof");
        auto expected = net::make_proof(*p_.e.crypto, key_, hello_payload_, challenge_payload_);
        if (!net::equal_ct(expected, proof.mac)) {
          if (peer_is_client_) {
            audit("denied principal '" + agent_id_ + "' from " + p_.peer_host
                  + " for service '" + service_ + "': wrong secret");
            refuse(net::reject_code::unknown_principal, service_);
          } else {
            refuse(net::reject_code::bad_proof, service_);
          }
          return false;
        }
        if (peer_is_client_ && !p_.auth->allowed(agent_id_, service_)) {
          audit("denied principal '" + agent_id_ + "' from " + p_.peer_host
                + " for service '" + service_ + "': not on its allow list");
          refuse(net::reject_code::not_authorized, service_);
          return false;
        }
        if (peer_is_client_)
          audit("allowed principal '" + agent_id_ + "' from " + p_.peer_host
                + " for service '" + service_ + "'");
        net::accept_msg acc;
        acc.tunnel_id = who_;
        acc.heartbeat_interval_ms = p_.e.limits.heartbeat_interval_ms;
        acc.window_bytes = p_.e.limits.window_bytes;
        write_control(frame_type::accept, 0, net::encode(acc));
        go_up();
        return true;
      }
      return protocol_error(std::string("unexpected ") + to_string(f.type)
                            + " during handshake");
    }
    // agent side
    if (f.type == frame_type::challenge && challenge_payload_.empty()) {
      net::challenge_msg ch;
      if (!net::decode(f.payload, ch) || ch.nonce.size() != net::nonce_bytes)
        return protocol_error("malformed challenge");
      challenge_payload_ = f.payload;
      net::proof_msg proof;
      proof.mac = net::make_proof(*p_.e.crypto, p_.key, hello_payload_, challenge_payload_);
      write_control(frame_type::proof, 0, net::encode(proof));
      return true;
    }
    if (f.type == frame_type::accept && !challenge_payload_.empty()) {
      net::accept_msg acc;
      if (!net::decode(f.payload, acc))
        return protocol_error("malformed accept");
      go_up();
      return true;
    }
    if (f.type == frame_type::reject) {
      net::reject_msg rj;
      if (!net::decode(f.payload, rj))
        return protocol_error("malformed reject");
      rejected_ = true;
      send(p_.parent, tunnel_rejected{rj.code, rj.message});
      fail("POP " + p_.pop_host + ":" + std::to_string(p_.pop_port)
           + " rejected service '" + p_.service + "': " + rj.message);
      return false;
    }
    return protocol_error(std::string("unexpected ") + to_string(f.type)
                          + " during handshake");
  }

  void go_up() {
    up_ = true;
    trace("tunnel up with " + peer_name()
          + (p_.role == tunnel_params::pop_side ? " for service '" + service_ + "'"
                                                : std::string{}));
    send(p_.parent, tunnel_up{this, service_.empty() ? p_.service : service_,
                              agent_id_.empty() ? p_.agent_id : agent_id_,
                              p_.role == tunnel_params::pop_side ? p_.peer_host
                                                                 : p_.pop_host,
                              peer_is_client_});
    delayed_send(this, p_.e.clock->real_delay(check_period()), heartbeat_atom::value);
  }

  // -- frames once up ----------------------------------------------------------------

  /// Returns false when the tunnel is gone and the remaining frames are moot.
  bool on_frame(const frame& f) {
    if (rejected_ || dead_)
      return false;
    if (!up_)
      return on_handshake_frame(f);
    switch (f.type) {
      case frame_type::data: {
        auto i = streams_.find(f.stream_id);
        if (i == streams_.end())
          return true; // late data for a stream we already reset
        auto& s = i->second;
        s.recv_outstanding_bytes += f.payload.size();
        if (s.recv_outstanding_bytes > p_.e.limits.window_bytes) {
          auto code = static_cast<uint32_t>(net::rst_code::flow_violation);
          deliver(s, stream_rst{f.stream_id, code});
          write(net::encode_u32_frame(frame_type::rst, f.stream_id, code));
          streams_.erase(i);
          streams_changed();
          return true;
        }
        deliver(s, stream_data{f.stream_id, f.payload});
        return true;
      }
      case frame_type::window: {
        auto i = streams_.find(f.stream_id);
        if (i != streams_.end())
          deliver(i->second,
                  stream_window{f.stream_id, net::read_u32(f.payload.data())});
        return true;
      }
      case frame_type::fin: {
        auto i = streams_.find(f.stream_id);
        if (i != streams_.end())
          deliver(i->second, stream_fin{f.stream_id});
        return true;
      }
      case frame_type::rst: {
        auto i = streams_.find(f.stream_id);
        if (i != streams_.end()) {
          uint32_t code = f.payload.size() == 4 ? net::read_u32(f.payload.data())
                                                : 0;
          deliver(i->second, stream_rst{f.stream_id, code});
          streams_.erase(i);
          streams_changed();
        }
        return true;
      }
      case frame_type::open:
        return on_open(f);
      case frame_type::ping:
        write(net::encode_frame(frame_type::pong, 0, f.payload.data(),
                                f.payload.size()));
        return true;
      case frame_type::pong:
        if (f.payload.size() == 8) {
          auto sent_us = net::read_u64(f.payload.data());
          auto now = now_us();
          if (now >= sent_us) {
            rtt_us_ = now - sent_us;
            if (p_.role == tunnel_params::agent_side)
              send(p_.parent, tunnel_rtt{static_cast<uint32_t>(
                                std::min<uint64_t>(rtt_us_, UINT32_MAX))});
          }
        }
        return true;
      case frame_type::goaway: {
        net::goaway_msg g;
        if (!net::decode(f.payload, g))
          return protocol_error("malformed goaway");
        trace(peer_name() + " is going away: " + g.message);
        if (p_.role == tunnel_params::agent_side)
          send(p_.parent, tunnel_draining{g.message});
        return true;
      }
      default:
        return protocol_error(std::string("unexpected ") + to_string(f.type));
    }
  }

  bool on_open(const frame& f) {
    net::open_msg open;
    if (!net::decode(f.payload, open))
      return protocol_error("malformed open");
    // The peer must use its own half of the id space and a fresh id.
    bool peer_parity_ok = (f.stream_id % 2 == 1)
                          == (p_.role == tunnel_params::pop_side);
    if (!peer_parity_ok || f.stream_id == 0 || streams_.count(f.stream_id))
      return protocol_error("bad stream id " + std::to_string(f.stream_id));
    bool acceptable = p_.role == tunnel_params::pop_side ? peer_is_client_
                                                         : !p_.client;
    if (streams_.size() >= p_.e.limits.streams_per_tunnel_max || !acceptable
        || draining_) {
      refuse_stream(f.stream_id, net::rst_code::refused);
      return true;
    }
    if (p_.role == tunnel_params::pop_side) {
      // A patch-panel client: the POP server finds an agent to splice to.
      streams_.emplace(f.stream_id, stream_state{});
      streams_changed();
      open.principal = agent_id_;
      send(p_.parent, client_stream{this, conn_, f.stream_id, open, service_});
      return true;
    }
    if (open.resumable) {
      if (open.session_id.size() != net::session_id_bytes)
        return protocol_error("bad session id");
      streams_.emplace(f.stream_id, stream_state{});
      streams_changed();
      // The session may exist already: a resume, or a client that lost its
      // first path before the welcome and opens again. Either way it
      // continues there; only a fresh id makes a new session.
      auto sid = f.stream_id;
      request(p_.parent, caf::infinite, lookup_atom::value, open.session_id)
        .then([this, sid, open](caf::actor s) {
          if (s) {
            send(s, attach_stream{this, conn_, sid});
            adopt_stream(sid, s);
          } else if (open.resume) {
            refuse_stream(sid, net::rst_code::refused);
          } else {
            start_rsession(sid, open);
          }
        });
      return true;
    }
    session_params sp;
    sp.e = p_.e;
    sp.tunnel = this;
    sp.tunnel_conn = conn_;
    sp.sid = f.stream_id;
    sp.local_host = p_.local_host;
    sp.local_port = p_.local_port;
    auto s = spawn_session(system(), std::move(sp));
    streams_.emplace(f.stream_id, stream_state{s, 0, {}});
    streams_changed();
    if (p_.e.trace->verbose())
      trace("stream " + std::to_string(f.stream_id) + " opened for " + open.peer);
    return true;
  }

  void start_rsession(uint32_t sid, const net::open_msg& open) {
    if (!streams_.count(sid))
      return; // reset while we looked
    rsession_params rp;
    rp.e = p_.e;
    rp.session_id = open.session_id;
    rp.principal = open.principal;
    rp.tunnel = this;
    rp.tunnel_conn = conn_;
    rp.sid = sid;
    rp.local_host = p_.local_host;
    rp.local_port = p_.local_port;
    rp.agent_id = p_.agent_id;
    rp.resume_timeout_ms = p_.resume_timeout_ms;
    auto s = spawn_rsession(system(), std::move(rp));
    send(p_.parent, register_session{open.session_id, s});
    adopt_stream(sid, s);
  }

  void refuse_stream(uint32_t sid, net::rst_code code) {
    if (streams_.erase(sid))
      streams_changed();
    write(net::encode_u32_frame(frame_type::rst, sid, static_cast<uint32_t>(code)));
  }

  /// `owner` takes over a stream opened before it existed.
  void adopt_stream(uint32_t sid, caf::actor owner) {
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

  /// POP side, agent tunnel: splice a client's stream to a new one here.
  void splice(attach_splice& ev) {
    if (!up_ || dead_ || draining_
        || streams_.size() >= p_.e.limits.streams_per_tunnel_max) {
      send(ev.client_tunnel,
           set_owner{ev.client_sid, nullptr, static_cast<uint32_t>(net::rst_code::refused)});
      return;
    }
    auto sid = next_sid_;
    next_sid_ += 2;
    write_control(frame_type::open, sid, net::encode(ev.open));
    auto sp = spawn_splice(system(), p_.e,
                           splice_leg{ev.client_tunnel, ev.client_conn, ev.client_sid},
                           splice_leg{this, conn_, sid});
    streams_.emplace(sid, stream_state{sp, 0, {}});
    streams_changed();
    send(ev.client_tunnel, set_owner{ev.client_sid, sp, 0});
  }

  /// Client side: a session asks for a new stream to its service.
  void open_client_stream(open_stream_req& req) {
    auto who = caf::actor_cast<caf::actor>(current_sender());
    if (!up_ || dead_ || !who
        || streams_.size() >= p_.e.limits.streams_per_tunnel_max) {
      if (who)
        send(who, stream_rst{0, static_cast<uint32_t>(net::rst_code::refused)});
      return;
    }
    auto sid = next_sid_;
    next_sid_ += 2;
    write_control(frame_type::open, sid, net::encode(req.open));
    streams_.emplace(sid, stream_state{who, 0, {}});
    streams_changed();
    send(who, stream_opened{this, conn_, sid});
  }

  void open_stream(net::conn_id visitor, const std::string& peer) {
    if (!up_ || dead_ || draining_
        || streams_.size() >= p_.e.limits.streams_per_tunnel_max) {
      send(p_.e.io, net::abort_req{visitor});
      return;
    }
    auto sid = next_sid_;
    next_sid_ += 2;
    // OPEN goes to the io before the session exists, so it precedes every
    // DATA frame the session writes on the link.
    net::open_msg open;
    open.peer = peer;
    write_control(frame_type::open, sid, net::encode(open));
    session_params sp;
    sp.e = p_.e;
    sp.tunnel = this;
    sp.tunnel_conn = conn_;
    sp.sid = sid;
    sp.conn = visitor;
    auto s = spawn_session(system(), std::move(sp));
    streams_.emplace(sid, stream_state{s, 0, {}});
    streams_changed();
  }

  void streams_changed() {
    if (p_.role == tunnel_params::pop_side && up_)
      send(p_.parent, tunnel_load{static_cast<uint32_t>(streams_.size())});
    if (letting_go_ && streams_.empty() && !dead_ && conn_ != 0) {
      trace("let go of draining " + peer_name());
      let_go_done_ = true;
      send(p_.e.io, net::close_req{conn_});
    }
  }

  // -- liveness ----------------------------------------------------------------------

  uint64_t now_us() {
    return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(
        p_.e.clock->now(clock()).time_since_epoch())
        .count());
  }

  /// Liveness is checked four times per heartbeat interval, so a dead peer
  /// is declared within interval * (misses_max + 1/4).
  std::chrono::milliseconds check_period() const {
    return ms(std::max<uint32_t>(p_.e.limits.heartbeat_interval_ms / 4, 1));
  }

  void on_heartbeat() {
    if (dead_)
      return;
    auto now = p_.e.clock->now(clock());
    auto silent = now - last_rx_;
    auto limit = ms(p_.e.limits.heartbeat_interval_ms
                    * p_.e.limits.heartbeat_misses_max);
    if (silent > limit) {
      fail(peer_name() + " silent for "
           + std::to_string(
             std::chrono::duration_cast<std::chrono::milliseconds>(silent).count())
           + " ms: declared dead");
      return;
    }
    if (now - last_ping_ >= ms(p_.e.limits.heartbeat_interval_ms)) {
      last_ping_ = now;
      write(net::encode_u64_frame(frame_type::ping, 0, now_us()));
    }
    delayed_send(this, p_.e.clock->real_delay(check_period()), heartbeat_atom::value);
  }


  bool protocol_error(const std::string& what) {
    if (!dead_ && p_.role == tunnel_params::pop_side && !up_ && conn_ != 0) {
      reject(net::reject_code::protocol_error);
    }
    fail("protocol error from " + peer_name() + ": " + what);
    return false;
  }

  /// The tunnel is gone: reset every stream, tell the parent, quit.
  void fail(const std::string& what) {
    if (dead_)
      return;
    dead_ = true;
    if (!let_go_done_)
      trace(what);
    for (auto& [sid, s] : streams_)
      if (s.session)
        send(s.session, stream_rst{sid, static_cast<uint32_t>(net::rst_code::tunnel_lost)});
    streams_.clear();
    if (conn_ != 0 && rejected_)
      send(p_.e.io, net::close_req{conn_});
    else if (conn_ != 0)
      send(p_.e.io, net::abort_req{conn_});
    if (p_.role == tunnel_params::agent_side && !rejected_)
      send(p_.parent, tunnel_failed{what});
    quit();
  }

  // Actors hold each other's handles (owner <-> tunnel <-> session); a dead
  // actor lets go of them so that no cycle outlives it.
  void on_exit() override {
    p_ = {};
    streams_.clear();
  }

  tunnel_params p_;
  std::string who_;
  net::conn_id conn_ = 0;
  net::frame_decoder decoder_;
  std::vector<frame> frames_;
  net::chunk hello_payload_;
  net::chunk challenge_payload_;
  std::string service_;
  std::string agent_id_;
  std::string key_;
  std::unordered_map<uint32_t, stream_state> streams_;
  uint32_t next_sid_;
  caf::actor_clock::time_point last_rx_;
  caf::actor_clock::time_point last_ping_{};
  uint64_t rtt_us_ = 0;
  bool up_ = false;
  bool dead_ = false;
  bool rejected_ = false;
  bool draining_ = false;    // POP side: goaway sent, no new streams
  bool peer_is_client_ = false; // POP side: a patch-panel client
  bool letting_go_ = false;  // agent side: close once the last stream ends
  bool let_go_done_ = false;
};

} // namespace

caf::actor spawn_tunnel(caf::actor_system& sys, tunnel_params p) {
  return sys.spawn<tunnel_actor>(std::move(p));
}

} // namespace drtp
