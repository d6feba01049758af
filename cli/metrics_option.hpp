#pragma once
// `--metrics HOST:PORT` for every long-running binary: starts the metrics
// endpoint (actors/metrics_endpoint) with the process's figures
// (net/process_metrics) and waits until it listens; a port that cannot be
// had is one clear line on stderr and exit code 2 (a HOST:PORT that does
// not parse: cli::error, as for every flag).

#include <cstdint>
#include <string>

#include "actors/env.hpp"
#include "caf/fwd.hpp"

namespace drtp::cli {

/// The help text's lines for the flag (the same in every binary), a
/// literal so that it joins each binary's raw usage string.
#define DRTP_METRICS_HELP                                                         \
  "  --metrics HOST:PORT     serve /metrics (Prometheus), /healthz, /readyz and\n" \
  "                          /debug/sessions over HTTP (off by default; no\n"     \
  "                          authentication: keep it on loopback or a private\n"  \
  "                          network)\n"

/// Listens on `host_port` ("HOST:PORT"); prints "PROGRAM: metrics on
/// http://HOST:PORT/metrics" (the port actually bound). Returns the
/// endpoint.
caf::actor start_metrics(caf::actor_system& sys, const env& e, const std::string& host_port,
                         const caf::actor& probe, const char* program);

} // namespace drtp::cli
