#pragma once
// The POP server: accepts and authenticates tunnels, listens on one public
// port per service, and hands each visitor to a tunnel of its service. A
// visitor that arrives while no tunnel is up is refused at once. Visitors go
// to the tunnel of their service with the fewest active streams.
//
// drain_atom starts a graceful drain: the public and tunnel listeners close,
// every agent gets goaway (and opens its replacement elsewhere), open
// sessions run to their end for up to drain_grace_ms, then the observer gets
// pop_drained and the server stops.
//
// pop_reconfigure (drtp-pop's SIGHUP) swaps services, principals and allow
// lists while serving: tunnels and sessions of unchanged services are not
// touched; a removed service's listener closes and its agents get goaway
// (then their tunnels close); a service whose
// key changed loses its tunnels (their agents proved the old key); a client
// tunnel whose principal is gone, revoked, rekeyed or no longer allowed is
// closed. The answer is one line saying what changed.
//
// pop_drain_watch names an actor (drtp-pop's control-plane follower) that a
// drain asks first, with drain_atom, so that it can tell the registry the
// POP is no longer ready: the listeners close when it answers, or after
// drain_notify_timeout_ms at most (a drain never waits on the control
// plane for longer).
//
// A public port that cannot be bound (taken by another process) does not
// stop the POP: one line names the service and the port, the service is
// served without its public listener (the patch panel still reaches it),
// and the next pop_reconfigure tries the port again. Only the tunnel
// listener's failure is fatal (pop_failed), and a public one's before
// ready with public_listen_failure_fatal.
//
// status_atom is answered with pop_status (the agents holding tunnels, per
// service): what the control plane's follower reports as the POP's status.

#include <cstdint>
#include <string>
#include <vector>

#include "actors/admission.hpp"
#include "actors/auth.hpp"
#include "actors/env.hpp"
#include "caf/allowed_unsafe_message_type.hpp"
#include "caf/fwd.hpp"

namespace drtp {

struct service_config {
  std::string name;
  std::string public_key;            // Ed25519, of the login key of its secret
  bool is_public = true;             // listens on public_host:public_port
  std::string public_host = "0.0.0.0";
  uint16_t public_port = 0;          // 0 = pick a free port (tests)
  /// Patch-panel access: principal names, "group:NAME" or "org:NAME"
  /// (every principal of that org); empty = nobody.
  std::vector<std::string> allow;
  /// Gateways: the sources that may reach the service, CIDRs IPv4 or IPv6
  /// ("10.0.0.0/8", "2001:db8::/32"; a bare address is /32 or /128):
  /// public visitors by their address at accept, patch-panel clients by
  /// their tunnel's. Empty = any source.
  std::vector<std::string> allow_cidr;
  /// The gateway these rules come from, for audit lines; empty: the
  /// service's name.
  std::string gateway;
  /// When a change takes a visitor's or a principal's access away: false
  /// refuses only its new sessions, true also ends its open ones.
  bool end_open_sessions = false;
  /// Enrollment: this service's client certificates the POP refuses, by
  /// serial (lowercase hex), and every one issued (notBefore) before this
  /// Unix time in seconds (0: none).
  std::vector<std::string> revoked_serials;
  int64_t revoked_before_unix_s = 0;
};

struct pop_params {
  env e;
  std::string tunnel_host = "0.0.0.0";
  uint16_t tunnel_port = 0;
  std::vector<service_config> services;
  std::vector<principal_config> principals;
  /// Enrollment: the control plane's CA (PEM). A tunnel whose TLS client
  /// certificate it signed (valid now, not revoked) logs in as the
  /// certificate's subject ("service/NAME" or "principal/NAME") with no
  /// secret; empty: certificate login is off.
  std::string client_ca_pem;
  /// Receives pop_ready or pop_failed; may be null.
  caf::actor observer;
  /// Before login: handshake slots per source, the hello deadline, the
  /// token bucket of attempts per source prefix, the failure slow-down.
  admission_limits admission;
  /// After drain_atom: how long open sessions may run before the POP exits.
  uint32_t drain_grace_ms = 30000;
  /// After drain_atom: how long the pop_drain_watch actor may take to
  /// answer before the listeners close anyway.
  uint32_t drain_notify_timeout_ms = 1000;
  /// Whether a public port of the starting config that cannot be bound
  /// stops the POP (pop_failed) before it is ready: drtp-pop without a
  /// control plane fails fast on its own config; with one (the registry's
  /// services come and go) it serves on without that listener.
  bool public_listen_failure_fatal = false;
  /// Public visitors from one source address: open at once, opened per
  /// second, and opened at once before the rate applies. The excess is
  /// reset at once (see actors/stream_limits.hpp).
  uint32_t visitors_per_source_max = 512;
  uint32_t visitor_opens_per_source_per_s = 200;
  uint32_t visitor_opens_per_source_burst = 400;
  /// Visitors of one service at once, from all sources: a bound on what one
  /// service may cost the POP (about 14 KiB each), well above the 10 000
  /// idle sessions a POP is sized for.
  uint32_t visitors_per_service_max = 65536;
  /// Patch-panel streams of one principal, over all its tunnels: open at
  /// once, opened per second, burst. The excess is reset (rst refused).
  uint32_t streams_per_principal_max = 1024;
  uint32_t stream_opens_per_principal_per_s = 200;
  uint32_t stream_opens_per_principal_burst = 400;
  /// Sources (and principals) the limiters remember at once.
  uint32_t limited_keys_max = 65536;
};

/// The new configuration; answered with a std::string (what changed).
struct pop_reconfigure {
  std::vector<service_config> services;
  std::vector<principal_config> principals;
  std::string client_ca_pem; // as in pop_params
};

/// Asks `who` (drain_atom, answered with a std::string: what it did)
/// before a drain closes the listeners; the last one sent wins.
struct pop_drain_watch {
  caf::actor who;
};

caf::actor spawn_pop_server(caf::actor_system& sys, pop_params p);

} // namespace drtp

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(drtp::pop_reconfigure)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(drtp::pop_drain_watch)
