#pragma once
// The operator's HTTP window on a long-running process (`--metrics
// HOST:PORT`, off by default), served through the seam by actors/
// http_server, so a simulated POP serves it and the simulator scrapes it:
//   GET /metrics         the registry (net/seam/metrics) in Prometheus' text
//                        exposition format
//   GET /healthz         200 while the process runs
//   GET /readyz          200 when the probe says ready (a POP with its
//                        listeners open; an agent with its tunnels up), else
//                        503, with the probe's one line either way
//   GET /debug/sessions  the probe's JSON of what it holds now
// Anything else is 404; a method other than GET (or HEAD) is 405.
//
// Bounds, tighter than the control plane's: 32 connections (the oldest
// idle one makes room), 8 KiB of request headers and no body, 5 s to send a
// request, 30 s idle, 2 s for the probe to answer (then 503). The endpoint
// has no authentication: keep it on loopback or a private network, as one
// does with node_exporter. It shows no secret and no visitor address.

#include <cstdint>
#include <string>

#include "actors/env.hpp"
#include "caf/allowed_unsafe_message_type.hpp"
#include "caf/atom.hpp"
#include "caf/fwd.hpp"
#include "net/wire/http.hpp"

namespace drtp {

/// endpoint -> probe: answered with health_report.
using health_atom = caf::atom_constant<caf::atom("health")>;
/// endpoint -> probe: answered with a std::string holding one JSON value.
using sessions_atom = caf::atom_constant<caf::atom("sessions")>;

struct health_report {
  bool ready = false;
  std::string detail; // one line, for /readyz
};

struct metrics_endpoint_params {
  env e;
  std::string host = "127.0.0.1";
  uint16_t port = 0; // 0: pick a free one (tests)
  /// Answers health_atom and sessions_atom; null: always ready, no sessions.
  caf::actor probe;
  /// Receives http_listening or http_listen_failed; may be null.
  caf::actor observer;
  uint32_t connections_max = 32;
  uint32_t probe_timeout_ms = 2000;
};

/// The endpoint's handler and its HTTP server; the handler is returned
/// (the server goes with it).
caf::actor spawn_metrics_endpoint(caf::actor_system& sys, metrics_endpoint_params p);

/// For probes' JSON (net/wire/http).
using http::json_quote;

} // namespace drtp

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(drtp::health_report)
