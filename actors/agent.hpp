#pragma once
// The agent runs next to the private service (`drtp serve`). Its failover
// controller holds tunnels to K POPs (default 2, at most 3), in distinct
// regions where it can: a dead tunnel is replaced by one to another POP,
// preferring a region not yet held; a draining POP (goaway) is replaced
// before its tunnel is let go. Never more than K+1 tunnels at once.
//
// Reconnect delays use exponential backoff with full jitter from the seeded
// generator, capped, and reset once a tunnel stayed up for stable_ms; a POP
// that failed failures_before_set_aside times in a row is set aside for
// set_aside_ms. A POP that rejects us for good (unknown service, wrong
// secret, principal not allowed) is set aside for reject_set_aside_ms and
// said so in one line; the other POPs' tunnels carry on. The agent stops,
// with one line, only once every POP's latest answer is such a reject.
//
// The same controller serves `drtp connect` (client = true): there it also
// owns the local listener and hands sessions the tunnels ordered by RTT.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "actors/env.hpp"
#include "caf/fwd.hpp"
#include "net/seam/io.hpp"

namespace drtp {

struct pop_endpoint {
  std::string name; // for logs; defaults to host:port
  std::string host;
  uint16_t port = 0;
  std::string region;
  /// This POP's own certificate check (its pin); null: agent_params::tls.
  std::shared_ptr<const net::tls_client_config> tls;
};

struct agent_params {
  env e;
  std::vector<pop_endpoint> pops;
  uint32_t tunnels_target = 2; // K, clamped to [1, 3] and to pops.size()
  std::shared_ptr<const net::tls_client_config> tls;
  std::string service;
  std::string agent_id;
  std::string signing_key; // login_key::seed, derived once per process
  std::string local_host;
  uint16_t local_port = 0;
  /// Receives agent_event; may be null.
  caf::actor observer;
  uint32_t backoff_initial_ms = 200;
  uint32_t backoff_max_ms = 10000;
  /// A tunnel up this long resets its POP's backoff.
  uint32_t stable_ms = 10000;
  uint32_t failures_before_set_aside = 3;
  uint32_t set_aside_ms = 30000;
  /// A POP that rejected us for good is dialed again after this long: its
  /// operator may fix its config meanwhile (drtp-pop reloads on SIGHUP).
  uint32_t reject_set_aside_ms = 60000;
  /// How long a draining POP waits before we dial it again.
  uint32_t drain_retry_ms = 2000;

  /// `drtp connect`: dial as a client (agent_id is then the principal),
  /// listen on listen_host:listen_port, and carry each local connection as
  /// a resumable session on the up tunnel with the lowest RTT.
  bool client = false;
  std::string listen_host = "127.0.0.1";
  uint16_t listen_port = 0;
  /// How long a patch-panel session waits for a new path (both ends).
  uint32_t resume_timeout_ms = 30000;
};

constexpr uint32_t tunnels_target_max = 3;

caf::actor spawn_agent(caf::actor_system& sys, agent_params p);

} // namespace drtp
