#pragma once
// The agent runs next to the private service (`drtp serve`). It keeps a
// tunnel to its POP up: when the tunnel fails it dials again after an
// exponential backoff with full jitter, reset once a tunnel stayed up for a
// while. A rejected secret or unknown service stops it: retrying cannot help.

#include <cstdint>
#include <memory>
#include <string>

#include "actors/env.hpp"
#include "caf/fwd.hpp"
#include "net/io.hpp"

namespace drtp {

struct agent_params {
  env e;
  std::string pop_host;
  uint16_t pop_port = 0;
  std::shared_ptr<const net::tls_client_config> tls;
  std::string service;
  std::string agent_id;
  std::string key; // net::derive_key(secret)
  std::string local_host;
  uint16_t local_port = 0;
  /// Receives agent_event; may be null.
  caf::actor observer;
  uint32_t backoff_initial_ms = 200;
  uint32_t backoff_max_ms = 10000;
  /// A tunnel up this long resets the backoff.
  uint32_t stable_ms = 10000;
};

caf::actor spawn_agent(caf::actor_system& sys, agent_params p);

} // namespace drtp
