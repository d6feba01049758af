#pragma once
// A resumable session: the patch panel's end-to-end session between
// `drtp connect` (client end) and `drtp serve` (serve end). It survives the
// POP that carries it: both ends number the bytes they send, acknowledge
// what they delivered to their local socket, and keep what is not yet
// acknowledged in a bounded retransmit buffer. When the carrying stream is
// lost, the client end opens a new stream through another POP and resumes:
// a challenge-response under a key the two ends agreed on with X25519 when
// the session opened (the POPs relayed only the public halves), from the
// principal that opened the session; nothing the new stream says is acted
// on before its proof checks. Both ends then resend from the offset the
// other confirms. No byte is lost, duplicated or reordered, and the
// applications' TCP connections stay open. Without a path for
// resume_timeout_ms, both ends close cleanly.
//
// Memory: credit for the stream goes back only as the local socket takes
// the bytes, and a peer may have at most retransmit_bytes_max bytes that
// the local side has not taken yet (what it may keep unacknowledged), so a
// peer cannot make either end hold more than that, however the local
// application reads (or does not), and before the local connect completes.
//
// What the two ends say inside the stream is the record layer of
// net/wire/record.hpp; the local socket is an actors/local_link.

#include <cstdint>
#include <string>

#include "actors/env.hpp"
#include "caf/fwd.hpp"
#include "net/seam/io.hpp"

namespace drtp {

struct rsession_params {
  env e;
  bool client_end = false;
  std::string session_id; // net::session_id_bytes, chosen by the client end
  std::string principal;  // who opened it: a resume must come from the same

  // serve end: the stream it was opened on and the service behind it
  caf::actor tunnel;
  net::conn_id tunnel_conn = 0;
  uint32_t sid = 0;
  std::string local_host;
  uint16_t local_port = 0;
  std::string agent_id; // told to the client end, to route its resumes

  // client end: the accepted local connection, and who hands out tunnels
  // (both ends: the session goes when its controller, the agent, goes)
  net::conn_id local_conn = 0;
  caf::actor controller;
  /// Both ends: for the metrics' labels.
  std::string service;

  uint32_t resume_timeout_ms = 30000;
  /// Sent but unacknowledged bytes kept for a resend; reading the local
  /// socket pauses at this bound.
  uint32_t retransmit_bytes_max = 1024 * 1024;
  /// How often the session may tell the other end its telemetry (a record
  /// goes out only when something changed, or after telemetry_quiet_ticks
  /// ticks); 0: never (then the other end shows only its own hop).
  uint32_t telemetry_interval_ms = 2000;
};

/// A telemetry record goes out at least once in this many ticks.
constexpr uint32_t telemetry_quiet_ticks = 10;

caf::actor spawn_rsession(caf::actor_system& sys, rsession_params p);

} // namespace drtp
