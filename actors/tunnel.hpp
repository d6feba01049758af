#pragma once
// A tunnel is one TLS link between an agent and a POP carrying many streams.
// Each end is its own actor: agent_tunnel dials and proves it knows the
// service secret, pop_tunnel adopts the accepted link, challenges and
// verifies. This base is what both ends share once the handshake is done:
// frame decoding, the stream table, flow-control credit, delivery of
// data/window/fin/rst to the stream owners, ping/pong and liveness (a peer
// silent for heartbeat_misses_max intervals is declared dead), protocol
// errors, and how a tunnel lets go of its streams and its link.

#include <chrono>
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "actors/env.hpp"
#include "caf/event_based_actor.hpp"
#include "net/seam/io.hpp"
#include "net/wire/control.hpp"
#include "net/wire/frame.hpp"
#include "net/wire/frame_writer.hpp"

namespace drtp {

struct stream_window;

class tunnel_actor : public caf::event_based_actor {
public:
  const char* name() const override {
    return "drtp.tunnel";
  }

protected:
  /// Streams opened by the dialing side are odd, by the accepting side even,
  /// so both ends can open streams without coordination.
  enum class opener : uint8_t { dialer, acceptor };

  /// How the link ends: close lets what was written (a reject) reach the
  /// peer; abort drops it.
  enum class link_end : uint8_t { close, abort };

  struct stream_state {
    caf::actor session; // null until its owner exists (patch panel)
    uint64_t recv_outstanding_bytes = 0; // received, credit not yet returned
    /// What arrived before the owner: bounded by the window (flow control).
    std::vector<caf::message> pending;
  };

  tunnel_actor(caf::actor_config& cfg, env e, caf::actor parent, opener self);

  // -- what each end provides ----------------------------------------------------

  virtual std::string peer_name() const = 0;
  /// One frame, as the current state reads it. Returns false when the tunnel
  /// is gone (or refused) and the rest of the batch is moot.
  virtual bool on_frame(const net::frame& f) = 0;
  /// The peer opened stream `sid` (its id is checked already) once up.
  virtual bool on_open(uint32_t sid, net::open_msg& open) = 0;
  /// The stream table grew or shrank.
  virtual void streams_changed() = 0;
  /// The tunnel is gone: trace `what`, end streams and link, tell, quit.
  virtual void fail(const std::string& what) = 0;
  /// Before a protocol error ends the tunnel (the POP tells a handshaking
  /// peer why).
  virtual void on_protocol_error() {
  }
  virtual void on_goaway(const net::goaway_msg&) {
  }
  virtual void on_rtt(uint64_t) {
  }
  /// A renew frame on an up tunnel: only an agent's end that logged in by
  /// certificate sends one, and only a POP reads one.
  virtual bool on_renew(const net::frame& f) {
    return protocol_error(std::string("unexpected ") + to_string(f.type));
  }

  // -- behaviours every state of both ends combines ---------------------------------

  /// The link's events (received, read_closed, closed, sent), the stream
  /// messages of sessions (window, rst, done, set_owner) and the heartbeat
  /// tick. Before up the stream table is empty, so the stream messages find
  /// nothing to act on, and the heartbeat is not armed yet.
  caf::message_handler common_handlers();

  // -- shared machinery ----------------------------------------------------------

  /// Call first in make_behavior.
  void start();
  void trace(const std::string& what);
  void write(net::chunk c);
  void write_control(net::frame_type t, uint32_t sid, const net::chunk& payload);
  bool protocol_error(const std::string& what);
  /// A frame of a tunnel that is up (both ends read the same ones).
  bool on_up_frame(const net::frame& f);

  uint32_t next_stream_id();
  bool streams_full() const;
  void add_stream(uint32_t sid, caf::actor owner, opener by);
  void refuse_stream(uint32_t sid, net::rst_code code);
  /// `owner` takes over a stream opened before it existed.
  void adopt_stream(uint32_t sid, caf::actor owner);

  /// Pings every `interval_ms` and checks liveness four times as often.
  void start_heartbeats(uint32_t interval_ms);
  /// Resets every stream and ends the link; the caller tells and quits.
  void end_streams_and_link(link_end how);

  static std::chrono::milliseconds ms(uint32_t x) {
    return std::chrono::milliseconds(x);
  }

  // Actors hold each other's handles (owner <-> tunnel <-> session); a dead
  // actor lets go of them so that no cycle outlives it.
  void on_exit() override;

  env e_;
  caf::actor parent_;
  std::string who_;
  net::conn_id conn_ = 0;
  std::unordered_map<uint32_t, stream_state> streams_;

private:
  template <class T>
  void deliver(stream_state& s, T msg);

  void on_received(net::received& ev);
  bool on_data(const net::frame& f);
  bool on_rst(const net::frame& f);
  bool on_open_frame(const net::frame& f);
  /// Ping (answered, at most pings_per_interval_max per interval) or pong.
  bool on_heartbeat_frame(const net::frame& f);
  bool on_pong(const net::frame& f);
  bool on_goaway_frame(const net::frame& f);
  void on_stream_window(const stream_window& ev);
  void on_heartbeat();
  std::chrono::milliseconds check_period() const;
  uint64_t now_us();
  static uint32_t parity(opener by) {
    return by == opener::dialer ? 1 : 0;
  }

  opener self_;
  net::frame_writer writer_;
  net::frame_decoder decoder_;
  std::vector<net::frame> frames_;
  uint32_t next_sid_;
  uint32_t heartbeat_interval_ms_ = 0; // 0 until up
  caf::actor_clock::time_point last_rx_;
  caf::actor_clock::time_point last_ping_{};
  caf::actor_clock::time_point last_check_{}; // the last liveness tick
  caf::actor_clock::time_point ping_window_start_{};
  uint32_t pings_in_window_ = 0; // pings received since ping_window_start_
  bool heartbeats_ahead_ = false; // this batch's pings and pongs are handled
};

} // namespace drtp
