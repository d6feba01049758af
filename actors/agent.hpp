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
// with one line, only once every POP's latest answer is such a reject
// (unless stop_when_every_pop_rejects is cleared: a control plane's agent).
//
// The same controller serves `drtp connect` (client = true): there it also
// owns the local listener and hands sessions the tunnels ordered by RTT.
//
// The POP list may be replaced live (agent_set_pops, sent by the control
// plane's follower, control/agent_follower): a new POP is dialed at the
// next replacement (the list's order is the preference among equals); a
// POP that left the list is dialed no more, and its tunnel, if up, is
// treated like a draining one: kept until K tunnels to listed POPs are up
// (K clamped to the listed POPs), then let go gracefully. K+1, backoff and
// set-aside hold as before; a POP that stays listed keeps its state, and
// one listed again before its tunnel was let go keeps that tunnel up. When
// several leaving tunnels fill the K+1 while fewer than K are up, just
// enough of them are let go that a replacement can be dialed.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "actors/env.hpp"
#include "caf/allowed_unsafe_message_type.hpp"
#include "caf/atom.hpp"
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
  /// Enrollment: a certificate from the control plane's CA for
  /// "service/NAME" (a client: "principal/NAME") and its private key, PEM.
  /// When set, tunnels present it in the TLS handshake and log in by it,
  /// with no secret (signing_key may be empty); empty: login by secret.
  std::string client_cert_pem;
  std::string client_key_pem;
  std::string local_host;
  uint16_t local_port = 0;
  /// Receives agent_event; may be null.
  caf::actor observer;
  uint32_t backoff_initial_ms = 200;
  uint32_t backoff_max_ms = 10000;
  /// /readyz (actors/metrics_endpoint) says ready with this many tunnels
  /// up; 0: with K.
  uint32_t ready_tunnels_min = 0;
  /// A tunnel up this long resets its POP's backoff.
  uint32_t stable_ms = 10000;
  uint32_t failures_before_set_aside = 3;
  uint32_t set_aside_ms = 30000;
  /// A POP that rejected us for good is dialed again after this long: its
  /// operator may fix its config meanwhile (drtp-pop reloads on SIGHUP).
  uint32_t reject_set_aside_ms = 60000;
  /// Stop, with one line, once every POP's latest answer is a reject.
  /// control/agent_follower clears it: under a control plane the registry
  /// says the service exists, and a POP's "unknown service" most often
  /// means it has not applied the registry's change yet (it follows within
  /// its bound), so the agent keeps dialing, set-aside and backoff bounded.
  bool stop_when_every_pop_rejects = true;
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
/// POPs an agent knows at once; a longer list is cut to its first ones.
constexpr size_t agent_pops_max = 64;

/// Replace the agent's POP list (a POP is the same POP while its name, host
/// and port are; its region and tls are then updated for the next dial).
/// An empty list is ignored: the agent keeps what it knows.
struct agent_set_pops {
  std::vector<pop_endpoint> pops;
};

/// A renewed certificate (agent_params::client_cert_pem, client_key_pem):
/// tunnels dialed from now on present it; open tunnels that logged in by a
/// certificate announce it to their POP in band, signed by `seed` (the new
/// key's Ed25519 seed), so that no tunnel drops at the old notAfter.
struct agent_set_identity {
  std::string cert_pem;
  std::string key_pem;
  std::string seed;
};

/// Ask the agent for its tunnels: answered with agent_tunnels.
using agent_tunnels_atom = caf::atom_constant<caf::atom("agtunnels")>;

struct agent_tunnel_info {
  std::string pop;     // pop_endpoint::name
  std::string region;
  bool up = false;     // false: connecting, or draining / let go
  uint32_t rtt_us = UINT32_MAX; // the link's latest round trip; MAX: unknown
};
struct agent_tunnels {
  uint32_t target = 0; // K as the agent applies it now
  std::vector<agent_tunnel_info> tunnels;
  /// Round trips the agent measured to POPs it knows (name -> us), also of
  /// POPs whose tunnel is gone: how a follower orders POPs by distance.
  std::vector<std::pair<std::string, uint32_t>> rtt_us;
};

caf::actor spawn_agent(caf::actor_system& sys, agent_params p);

} // namespace drtp

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(drtp::agent_set_pops)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(drtp::agent_set_identity)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(drtp::agent_tunnels)
