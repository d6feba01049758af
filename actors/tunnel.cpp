#include "actors/tunnel.hpp"

#include <cassert>
#include <unordered_map>
#include <vector>

#include "actors/messages.hpp"
#include "actors/session.hpp"
#include "caf/all.hpp"
#include "net/control.hpp"
#include "net/frame.hpp"
#include "net/handshake.hpp"

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
    last_rx_ = clock().now();
    if (p_.role == tunnel_params::agent_side) {
      net::connect_req req;
      req.tag = 1;
      req.host = p_.pop_host;
      req.port = p_.pop_port;
      req.timeout_ms = p_.e.limits.connect_timeout_ms;
      req.tls = p_.tls;
      send(p_.e.io, std::move(req));
    } else {
      conn_ = p_.conn;
      send(p_.e.io, net::adopt_req{conn_, this});
    }
    delayed_send(this, ms(p_.e.limits.handshake_timeout_ms),
                 hs_timeout_atom::value);
    return {
      // -- the link --------------------------------------------------------------
      [this](net::connected& ev) {
        conn_ = ev.id;
        last_rx_ = clock().now();
        net::hello_msg hello;
        hello.service = p_.service;
        hello.agent_id = p_.agent_id;
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
        last_rx_ = clock().now();
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
      [this](status_atom) { return static_cast<uint32_t>(streams_.size()); },
    };
  }

private:
  struct stream_state {
    caf::actor session;
    uint64_t recv_outstanding_bytes = 0; // received, credit not yet returned
  };

  static std::chrono::milliseconds ms(uint32_t x) {
    return std::chrono::milliseconds(x);
  }

  std::string peer_name() const {
    return p_.role == tunnel_params::agent_side
             ? "POP " + p_.pop_host + ":" + std::to_string(p_.pop_port)
             : "agent " + (agent_id_.empty() ? p_.peer_host : agent_id_);
  }

  void trace(const std::string& what) {
    p_.e.trace->emit(p_.e.host, who_, what);
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
    trace("refused agent from " + p_.peer_host + " for service '" + service
          + "': " + to_string(code));
    if (code == net::reject_code::bad_proof
        || code == net::reject_code::unknown_service)
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
        auto i = p_.keys->find(hello.service);
        if (i == p_.keys->end()) {
          refuse(net::reject_code::unknown_service, hello.service);
          return false;
        }
        key_ = i->second;
        if (p_.auth_delay_ms > 0)
          delayed_send(this, ms(p_.auth_delay_ms), delayed_atom::value);
        else
          send_challenge();
        return true;
      }
      if (f.type == frame_type::proof && !challenge_payload_.empty()) {
        net::proof_msg proof;
        if (!net::decode(f.payload, proof))
          return protocol_error("malformed proof");
        auto expected = net::make_proof(key_, hello_payload_, challenge_payload_);
        if (!net::equal_ct(expected, proof.mac)) {
          refuse(net::reject_code::bad_proof, service_);
          return false;
        }
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
      proof.mac = net::make_proof(p_.key, hello_payload_, challenge_payload_);
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
                                                                 : p_.pop_host});
    delayed_send(this, check_period(), heartbeat_atom::value);
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
          auto code = static_cast<uint32_t>(rst_code::flow_violation);
          send(s.session, stream_rst{f.stream_id, code});
          write(net::encode_u32_frame(frame_type::rst, f.stream_id, code));
          streams_.erase(i);
          streams_changed();
          return true;
        }
        send(s.session, stream_data{f.stream_id, f.payload});
        return true;
      }
      case frame_type::window: {
        auto i = streams_.find(f.stream_id);
        if (i != streams_.end())
          send(i->second.session,
               stream_window{f.stream_id, net::read_u32(f.payload.data())});
        return true;
      }
      case frame_type::fin: {
        auto i = streams_.find(f.stream_id);
        if (i != streams_.end())
          send(i->second.session, stream_fin{f.stream_id});
        return true;
      }
      case frame_type::rst: {
        auto i = streams_.find(f.stream_id);
        if (i != streams_.end()) {
          uint32_t code = f.payload.size() == 4 ? net::read_u32(f.payload.data())
                                                : 0;
          send(i->second.session, stream_rst{f.stream_id, code});
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
          if (now >= sent_us)
            rtt_us_ = now - sent_us;
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
    if (streams_.size() >= p_.e.limits.streams_per_tunnel_max
        || p_.role == tunnel_params::pop_side) {
      // POPs accept no streams from agents (yet): refuse, keep the tunnel.
      write(net::encode_u32_frame(frame_type::rst, f.stream_id,
                                  static_cast<uint32_t>(rst_code::refused)));
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
    streams_.emplace(f.stream_id, stream_state{s, 0});
    streams_changed();
    if (p_.e.trace->verbose())
      trace("stream " + std::to_string(f.stream_id) + " opened for " + open.peer);
    return true;
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
    streams_.emplace(sid, stream_state{s, 0});
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
        clock().now().time_since_epoch())
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
    auto now = clock().now();
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
    delayed_send(this, check_period(), heartbeat_atom::value);
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
      send(s.session, stream_rst{sid, static_cast<uint32_t>(rst_code::tunnel_lost)});
    streams_.clear();
    if (conn_ != 0 && rejected_)
      send(p_.e.io, net::close_req{conn_});
    else if (conn_ != 0)
      send(p_.e.io, net::abort_req{conn_});
    if (p_.role == tunnel_params::agent_side && !rejected_)
      send(p_.parent, tunnel_failed{what});
    quit();
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
  bool letting_go_ = false;  // agent side: close once the last stream ends
  bool let_go_done_ = false;
};

} // namespace

caf::actor spawn_tunnel(caf::actor_system& sys, tunnel_params p) {
  return sys.spawn<tunnel_actor>(std::move(p));
}

} // namespace drtp
