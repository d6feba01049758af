#pragma once
// The agent's end of a tunnel: dials the POP, says hello, answers the
// challenge with a proof of the service secret (or, for `drtp connect`, of
// the principal's secret) and waits for the verdict. Once accepted it
// carries the streams the POP opens (sessions to the local service and
// resumable patch-panel sessions); in client mode it opens streams instead.
// drain_atom lets the tunnel go once its last stream has ended.
//
//   connecting -> awaiting_challenge -> awaiting_verdict -> up
//   connecting -> awaiting_verdict (a certificate login: no challenge)
//   up -> letting_go -> let_go;  every state -> dead

#include <cstdint>
#include <memory>
#include <string>

#include "actors/env.hpp"
#include "caf/fwd.hpp"
#include "net/seam/io.hpp"

namespace drtp {

struct agent_tunnel_params {
  env e;
  /// Told of tunnel_up / tunnel_rtt / tunnel_draining / tunnel_rejected /
  /// tunnel_failed.
  caf::actor parent;
  std::string pop_name; // the agent's name for the POP (pop_endpoint::name)
  std::string pop_host;
  uint16_t pop_port = 0;
  std::shared_ptr<const net::tls_client_config> tls;
  std::string service;
  std::string agent_id;   // a client's principal name
  std::string signing_key; // login_key::seed of the secret: signs proofs
  /// Log in by the client certificate in tls (cert_pem, key_pem) instead:
  /// the hello says so, and the POP answers at once (no challenge).
  bool certificate = false;
  bool client = false;    // drtp connect: opens streams, carries none
  std::string local_host; // where streams opened by the POP lead
  uint16_t local_port = 0;
  uint32_t resume_timeout_ms = 30000; // patch-panel sessions served here
};

/// The POP's heartbeat interval is adopted within these bounds: below 50 ms
/// the liveness tick (a quarter interval) would busy the actor and declare a
/// POP dead on a scheduling hiccup; above a minute a dead POP would hold its
/// sessions for minutes before failover.
constexpr uint32_t adopted_heartbeat_interval_ms_min = 50;
constexpr uint32_t adopted_heartbeat_interval_ms_max = 60000;

caf::actor spawn_agent_tunnel(caf::actor_system& sys, agent_tunnel_params p);

} // namespace drtp
