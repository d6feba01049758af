#pragma once
// A tunnel is one TLS link between an agent and a POP carrying many streams.
// The same actor serves both ends: the agent side dials and proves it knows
// the service secret; the POP side challenges and verifies. Once up, both
// ends multiplex streams, relay flow-control credit, and ping each other; a
// peer silent for heartbeat_misses_max intervals is declared dead.

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "actors/auth.hpp"
#include "actors/env.hpp"
#include "caf/fwd.hpp"
#include "net/seam/io.hpp"

namespace drtp {


struct tunnel_params {
  env e;
  enum role_t : uint8_t { agent_side, pop_side } role = agent_side;
  /// Told of tunnel_up / tunnel_rejected / tunnel_failed / auth_failed.
  caf::actor parent;

  // agent side: where to dial and what to prove
  std::string pop_host;
  uint16_t pop_port = 0;
  std::shared_ptr<const net::tls_client_config> tls;
  std::string service;
  std::string agent_id;   // a client's principal name
  std::string key;
  bool client = false;    // drtp connect: opens streams, carries none
  std::string local_host; // where streams opened by the POP lead
  uint16_t local_port = 0;
  uint32_t resume_timeout_ms = 30000; // patch-panel sessions served here

  // POP side: the accepted link and who may authenticate
  net::conn_id conn = 0;
  std::string peer_host;
  std::shared_ptr<const auth_db> auth;
  /// Slows down sources that failed recently.
  uint32_t auth_delay_ms = 0;
};

caf::actor spawn_tunnel(caf::actor_system& sys, tunnel_params p);

} // namespace drtp
