#pragma once
// An agent's side of the control plane (docs/control-plane.md): what lets
// `drtp serve --control URL --service NAME --secret-file F` and `drtp
// connect --control ...` need nothing else. An actor over the seam (its
// HTTP goes through an actors/http_client the caller spawned, signed in as
// service/NAME or principal/P); it spawns and feeds the agent
// (actors/agent).
//
// 1. Start. serve: GET .../drtpconnections/NAME/bootstrap?region=R gives
//    the service (its local address, K) and the ready POPs in order.
//    connect: GET .../drtpservers, the ready ones ordered the same way
//    (control/api_rules bootstrap_order). The agent starts on them. When
//    the control plane cannot be reached (or answers 5xx) and a snapshot
//    was given, the agent starts from the snapshot at once; without one
//    the follower retries with bounded backoff and jitter, saying so in one
//    line each time. A refusal that only an operator can change (401, 403,
//    404) ends it with one fatal line, unless a snapshot lets it run.
// 2. Follow. It lists drtpservers and watches from the list's
//    resourceVersion; when the watch ends (410, stream end, link lost) it
//    lists again after a bounded backoff with jitter; it lists again every
//    resync_interval_ms anyway (a lease that expires makes no event). Each
//    time the ready set (or a ready POP's address or pin) changes, the
//    agent gets agent_set_pops; an empty ready set is not sent (the agent
//    keeps what it knows: static stability).
// 3. Order. With a region: that region's POPs first, then one per other
//    region, then the rest (bootstrap_order). Without: by the round trip
//    the agent measured on its tunnels (heartbeat pongs, agent_tunnels),
//    POPs never measured after them in the registry's order.
// 4. Report (serve only): PUT .../drtpconnections/NAME/status with its own
//    entry {id, pops: the POPs it holds an up tunnel to}; the registry
//    stamps the address it saw and lastSeen. Sent when the set changes, at
//    most once per status_min_interval_ms, and every status_interval_ms.
// 5. Persist. Whenever what it knows changes (service, POP list), the
//    snapshot text (JSON: the bootstrap answer's shape) goes to
//    save_snapshot; the binary writes it atomically (agent/main.cpp).
//
// Everything is bounded: POPs kept (agent_pops_max), lines, retries
// (backoff capped), one list and one watch at a time, status PUTs one at a
// time.

#include <cstdint>
#include <functional>
#include <string>

#include "actors/agent.hpp"
#include "actors/env.hpp"
#include "caf/atom.hpp"
#include "caf/fwd.hpp"

namespace drtp::control {

struct agent_follower_params {
  env e;
  /// An actors/http_client to the control plane, signing in as
  /// service/NAME (serve) or principal/P (connect).
  caf::actor http;
  /// The agent to spawn: service, signing_key, agent_id, tls, client,
  /// listen, observer... as without a control plane. Its `pops` are
  /// filled by the follower. serve: local_host/local_port empty (0) take
  /// the service's spec.local; tunnels_target 0 takes its spec.tunnels.
  agent_params agent;
  /// --region: ordered nearest by this; empty: by measured round trip.
  std::string region;
  /// The snapshot the binary read at start (empty: none).
  std::string snapshot;
  /// Receives each new snapshot; may be empty (no persistence).
  std::function<void(const std::string&)> save_snapshot;
  /// Receives agent_event{retrying|fatal, one line} for what the follower
  /// itself has to say (the agent's own events go to agent.observer); may
  /// be null: then agent.observer gets them.
  caf::actor observer;

  uint32_t retry_initial_ms = 500;
  uint32_t retry_max_ms = 30000;
  /// A full list this often even while the watch runs.
  uint32_t resync_interval_ms = 30000;
  /// The agent is asked for its tunnels this often (status, RTT order).
  uint32_t poll_interval_ms = 1000;
  /// A POP that rejected the agent is dialed again after at most this
  /// long (agent_params::reject_set_aside_ms): the POP may only lag the
  /// registry. The agent never stops because every POP rejected it.
  uint32_t reject_retry_ms = 5000;
  uint32_t status_min_interval_ms = 2000;
  uint32_t status_interval_ms = 30000;
  /// Bytes of a snapshot read or of a bootstrap/list answer parsed.
  uint64_t document_bytes_max = 1024 * 1024;
};

/// agent_set_identity sent to the follower reaches its agent (or, before
/// the agent runs, the params it will start with): control/enroller's
/// renewals.
///
/// Ask the follower for its agent: answered with the caf::actor (null
/// until the agent started). The agent is linked to the follower: one's
/// exit ends the other.
using follower_agent_atom = caf::atom_constant<caf::atom("fagent")>;

caf::actor spawn_agent_follower(caf::actor_system& sys, agent_follower_params p);

} // namespace drtp::control
