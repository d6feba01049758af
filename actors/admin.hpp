#pragma once
// The operator's handle on a running POP: a plain-text line protocol on a
// TCP port (keep it on loopback). Every command line starts with the admin
// token, which drtp-pop keeps in an owner-only file:
//   TOKEN drain    start a graceful drain (as SIGTERM does); answers "draining"
//   TOKEN status   one line per service (tunnels, streams) and the POP's state
// Each connection takes one command, gets its answer, and is closed. A
// connection that sends no command line within admin_idle_timeout_ms is
// closed; when admin_connections_max are open, a newcomer evicts the oldest
// connection of the source holding the most, so idle connections from one
// place cannot lock the operator out.

#include <cstdint>
#include <string>

#include "actors/env.hpp"
#include "caf/fwd.hpp"

namespace drtp {

struct admin_params {
  env e;
  std::string host;
  uint16_t port = 0;
  /// Compared in constant time with the first word of each command line;
  /// never logged. At least admin_token_bytes_min bytes.
  std::string token;
  caf::actor pop;
  caf::actor observer; // told pop_failed if the port cannot be had
  uint32_t idle_timeout_ms = 3000;
  uint32_t connections_max = 64;
};

constexpr size_t admin_token_bytes_min = 16;

caf::actor spawn_admin(caf::actor_system& sys, admin_params p);

} // namespace drtp
