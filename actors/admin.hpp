#pragma once
// The operator's handle on a running POP: a plain-text line protocol on a
// TCP port that should stay on loopback (it has no authentication).
//   drain    start a graceful drain (as SIGTERM does); answers "draining"
//   status   one line per service (tunnels, streams) and the POP's state
// Each connection takes one command, gets its answer, and is closed.

#include <cstdint>
#include <string>

#include "actors/env.hpp"
#include "caf/fwd.hpp"

namespace drtp {

caf::actor spawn_admin(caf::actor_system& sys, env e, std::string host,
                       uint16_t port, caf::actor pop, caf::actor observer);

} // namespace drtp
