#pragma once
// Enrollment, the agent's side (docs/control-plane.md, "Enrollment"): what
// `drtp serve --control URL --service NAME --secret-file F --state-dir DIR`
// (and `drtp connect ... --principal P`) does so that later starts need no
// secret and no long-lived secret logs in anywhere.
//
// 1. Start. A saved identity (DIR/identity.json: the key's seed, the
//    certificate, the CA that signed it) that is still valid, signed by its
//    CA, for this subject and this key, is used at once: the control plane
//    and the POPs are signed in to by the certificate, no secret needed.
//    Otherwise, with the secret: a fresh Ed25519 key (its seed never leaves
//    this process and the 0600 file), a CSR, POST .../certificate signed in
//    by the secret. The answer is checked (CA, subject, key) and saved.
// 2. Run. The follower (control/agent_follower) is spawned with the
//    identity in its agent_params: tunnels present the certificate.
// 3. Renew at two thirds of the lifetime (counted from when the certificate
//    arrived; the CA backdates notBefore), signed in by the certificate,
//    with a new key. The agent gets agent_set_identity: open tunnels move
//    to it in band (no tunnel drops), later dials present it; the HTTP
//    client signs in with it from then on.
// 4. Outage. A renewal that fails (unreachable, 5xx) is retried with
//    backoff (capped, and never later than half the time left). The valid
//    certificate keeps serving meanwhile. At notAfter without a renewal the
//    enroller says so in one fatal line and the agent stops (its POPs close
//    its tunnels at that instant anyway).
// 5. Refusals. A renewal the control plane refuses (401/403/404: revoked,
//    deleted) falls back once to the secret, if there is one; otherwise, or
//    when the secret is refused too, one fatal line. A control plane with
//    no CA (503 "no CA") leaves the agent on its secret, said once.
//
// Everything is bounded: one request at a time, retries capped, the saved
// file by the caller's reader (cli::state_file).

#include <cstdint>
#include <functional>
#include <string>

#include "actors/env.hpp"
#include "caf/fwd.hpp"
#include "control/agent_follower.hpp"

namespace drtp::control {

struct enroller_params {
  env e;
  /// The follower to spawn: its http (an actors/http_client, whose
  /// credentials the enroller sets) and its agent (service, principal,
  /// signing_key: the secret's login seed, empty when there is none).
  agent_follower_params follower;
  /// control::kind_service or control::kind_principal, and the name.
  std::string kind;
  std::string name;
  /// DIR/identity.json as read at start (empty: none).
  std::string saved;
  /// Writes a new identity (atomically, 0600: cli::state_file).
  std::function<void(const std::string&)> save;
  /// Receives agent_event{note|fatal}; the follower's own observer is
  /// follower.observer.
  caf::actor observer;
  uint32_t retry_initial_ms = 1000;
  uint32_t retry_max_ms = 60000;
};

/// The enroller answers follower_agent_atom as its follower does (the
/// follower's agent; null until it runs).
caf::actor spawn_enroller(caf::actor_system& sys, enroller_params p);

/// Bytes of DIR/identity.json read at start.
constexpr size_t identity_bytes_max = 64 * 1024;

} // namespace drtp::control
