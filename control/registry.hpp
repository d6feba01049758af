#pragma once
// The control plane API's logic (docs/control-plane.md): an actor that is
// the handler of an actors/http_server and keeps the registry in a store
// actor (control/store.hpp). It signs callers in (control/auth), applies
// who may do what (control/api_rules), stamps what only it may say (when
// an object was created, when a POP renewed its lease, where an agent
// was seen from, by its own wall clock: env.clock->unix_ms), computes
// `ready` on every read, and serves watches from one store watch per kind.
//
// Sign-in is checked once per link: a verified identity is kept per
// http_call::conn_serial (bounded) with the Authorization value it came
// with; a later request on the link with the same value is that caller.
// Every refusal writes an audit line and costs its source a token
// (control/refusal_buckets); a source without tokens is refused before
// any credential is looked at.

#include <cstdint>
#include <string>

#include "actors/env.hpp"
#include "caf/fwd.hpp"
#include "control/refusal_buckets.hpp"

namespace drtp::control {

struct registry_limits {
  /// HTTP watches at once, in all and per signed-in caller.
  uint32_t watchers_max = 4096;
  uint32_t watchers_per_caller_max = 8;
  /// What the registry may owe one watcher at once (a replay from its
  /// resourceVersion, a burst of changes): past it the watcher gets the 410
  /// line and its client lists again.
  uint64_t watcher_queue_bytes_max = 4ull * 1024 * 1024;
  /// Changes kept per kind to serve watches from an older resourceVersion.
  uint32_t history_changes_max = 4096;
  /// A BOOKMARK line to every watcher this often (the contract: at least
  /// every 10 s).
  uint32_t bookmark_interval_ms = 5000;
  /// Links whose verified identity is remembered.
  uint32_t links_cached_max = 4096;
  /// Agents one DRTPConnection's status lists (a new one pushes out the
  /// one seen longest ago).
  uint32_t agents_per_service_max = 16;
  /// An agent id: printable, at most this long.
  uint32_t agent_id_bytes_max = 63;
  /// A POP's lease may ask for at most this many seconds.
  uint32_t lease_duration_s_max = 600;
  /// Store requests not answered within this are answered 503.
  uint32_t store_timeout_ms = 5000;
  /// Retries of a status merge that lost a race with another writer.
  uint32_t merge_retries_max = 4;
  /// A certificate request's body (issue 15): the CSR PEM and its JSON.
  uint32_t csr_body_bytes_max = 20 * 1024;
  /// An issued certificate's notBefore is this long before now, for
  /// POPs whose clock is behind the control plane's.
  uint32_t cert_backdate_s = 300;
  refusal_limits refusals;
};

struct registry_params {
  env e;
  caf::actor store;
  /// control/auth.hpp admin_token_digest of the operator's token, as the
  /// config keeps it ("sha256:" and hex); empty: no bearer token is accepted.
  std::string admin_token_digest;
  /// The POP fleet's Ed25519 public key, raw; empty: POPs cannot sign in.
  std::string pop_public_key;
  /// The CA that signs enrolled agents' and principals' certificates
  /// (issue 15): its Ed25519 seed (net::seed_bytes) and self-signed
  /// certificate (PEM). Empty: no enrollment (GET /ca and POST
  /// .../certificate answer 503, DRTP-Cert sign-in is refused).
  std::string ca_seed;
  std::string ca_cert_pem;
  /// How long an issued certificate is valid.
  uint32_t cert_lifetime_s = 86400;
  /// A POP's lease when its status does not say.
  uint32_t lease_duration_s = 30;
  registry_limits limits;
};

caf::actor spawn_registry(caf::actor_system& sys, registry_params p);

} // namespace drtp::control
