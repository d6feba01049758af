#pragma once
// A POP follows the registry (docs/control-plane.md, "The binaries"): it
// registers its DRTPServer, renews its lease every lease/3 (jittered),
// lists then watches drtpconnections and principals, translates them into
// service_config / principal_config and hands the result to its pop_server
// as pop_reconfigure: the same one path that a SIGHUP reload takes, so a
// change is applied by the code that already keeps unchanged services'
// tunnels and sessions untouched.
//
// The POP is statically stable: what it last knew is a snapshot (JSON
// text) handed out through `persist` after every applied change, and handed
// back in `snapshot` at the next start; with the control plane down it
// serves from it, and when the control plane comes back it lists again and
// converges. drtp-pop writes the snapshot to D/registry.json (tmp file and
// rename) and reads it at start; the simulator keeps it in memory. The
// actor does no I/O but through its http_client (it is over the seam).
//
// When its pop_server starts a drain it asks the follower first (the
// follower sends it pop_drain_watch at start): the follower writes
// status.draining (the registry then counts the POP not ready and
// bootstraps leave it out) and answers within drain_status_timeout_ms,
// whatever the control plane does.
//
//   registering -> syncing (lists) -> following (watches)
//   any -> backing off -> registering | syncing (the control plane failed:
//   bounded backoff with jitter; the POP serves on meanwhile)
//
// Changes in a burst are applied together after `debounce_ms`; nothing is
// sent to the pop_server unless the translated configuration changed. The
// YAML's static services and principals are always part of it, and win
// over a registry object of the same name.

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "actors/env.hpp"
#include "actors/http_client.hpp"
#include "actors/pop_server.hpp"
#include "caf/allowed_unsafe_message_type.hpp"
#include "caf/fwd.hpp"
#include "control/resource.hpp"

namespace drtp::control {

struct pop_follower_limits {
  /// Objects one list (and the snapshot) may hold per kind; past it the
  /// rest is ignored and said once.
  uint32_t objects_per_kind_max = 10000;
  /// The largest list answer the follower's client takes (its
  /// http_client limits are raised to it): a DRTPConnection renders to
  /// about 400 bytes, so 10 000 of them are about 4 MB, over the HTTP
  /// default of 1 MiB.
  uint64_t list_bytes_max = 64ull * 1024 * 1024;
  /// A burst of watch events is applied this long after its first event.
  uint32_t debounce_ms = 50;
  /// After a failure: the first wait, doubled up to the max, each drawn
  /// with +-25 % jitter; reset once a watch is established.
  uint32_t backoff_initial_ms = 250;
  uint32_t backoff_max_ms = 10000;
  /// The lease the POP asks for (0: the registry's default); it renews
  /// every third of what the registry granted, +-10 % jitter.
  uint32_t lease_duration_s = 0;
  /// How long one fetch may take before the follower counts it failed.
  uint32_t fetch_timeout_ms = 10000;
  /// A drain's status PUT (it tells the registry the POP is not ready):
  /// under the pop_server's drain_notify_timeout_ms, which bounds the
  /// drain's wait anyway.
  uint32_t drain_status_timeout_ms = 800;
};

struct pop_follower_params {
  env e;
  /// The control plane: host, port, tls, limits. The follower spawns its
  /// own http_client from it and sets `authorization` (DRTP-Ed25519
  /// pop/NAME over each link's binding, with `fleet_seed`) and `name`.
  http_client_params http;
  /// The POP fleet's login key's seed: derived from pops.secret with
  /// control::pop_fleet_salt(). Never logged.
  std::string fleet_seed;
  /// The pop_server: gets pop_reconfigure (answered with one line) and
  /// status_atom (answered with pop_status: the tunnels it holds).
  caf::actor pop;
  /// This POP's DRTPServer name and spec (region, tunnel address, public
  /// address, verify pin or CA, capacity). `draining` is the operator's:
  /// the follower keeps what the registry holds.
  std::string name;
  server_spec spec;
  /// Where public listeners of registry services bind (the port is the
  /// DRTPConnection's spec.publicPort).
  std::string public_host = "0.0.0.0";
  /// The YAML's services and principals (none without a YAML).
  std::vector<service_config> static_services;
  std::vector<principal_config> static_principals;
  /// What `persist` wrote last time (empty: nothing known).
  std::string snapshot;
  /// Called with the new snapshot after each applied change; may be empty.
  std::function<void(const std::string& snapshot_json)> persist;
  /// Gets pop_follower_event; may be null.
  caf::actor observer;
  pop_follower_limits limits;
};

/// What the follower tells its observer (tests, drtp-pop's log).
struct pop_follower_event {
  enum kind_t : uint8_t {
    registered, // the DRTPServer is written and its lease renewed
    synced,     // listed: the POP's config is the registry's
    applied,    // a change went to the pop_server (what: its answer)
    offline,    // the control plane failed; serving what it last knew
  } kind = registered;
  std::string what;
};

/// The YAML's part anew (drtp-pop's SIGHUP reload): the follower keeps it
/// as its static services and principals, merges it with the registry's
/// and applies the result through the one path (pop_reconfigure), so a
/// reload never drops what the registry holds. Answered with one line: the
/// pop_server's answer (sent even when unchanged: the POP then tries again
/// the public ports it could not bind). A new `pin` (the reload swapped
/// the certificate) is written to the DRTPServer's spec, so agents verify
/// new links by it.
struct pop_follower_static {
  std::vector<service_config> services;
  std::vector<principal_config> principals;
  std::string pin; // "sha256:HEX"; empty: unchanged
};

/// The configuration the pop_server must be spawned with: the static
/// services and principals with what `p.snapshot` holds (static only when
/// the snapshot is empty or does not parse: then `error` says why). The
/// follower starts from the same configuration, so it sends nothing until
/// the registry says otherwise.
pop_reconfigure pop_follower_initial_config(const pop_follower_params& p, std::string& error);

caf::actor spawn_pop_follower(caf::actor_system& sys, pop_follower_params p);

} // namespace drtp::control

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(drtp::control::pop_follower_event)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(drtp::control::pop_follower_static)
