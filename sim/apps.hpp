#pragma once
// Workload actors for simulated runs: an echo service standing in for Joe's
// service and visitors that check every byte. They speak only the seam.

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "caf/actor.hpp"

namespace drtp::sim {

/// Listens on `port` of the host behind `io` and echoes every connection,
/// half-closing when its client does.
caf::actor spawn_echo_service(caf::actor_system& sys, caf::actor io,
                              uint16_t port);

struct visitor_result {
  bool done = false;
  bool ok = false;        // every byte came back, in order, then EOF
  uint64_t bytes_sent = 0;
  uint64_t bytes_back = 0;
  uint64_t started_us = 0;
  uint64_t finished_us = 0;
  std::string error;      // why it failed
};

struct visitor_params {
  caf::actor io;
  std::string host;
  uint16_t port = 0;
  uint64_t bytes = 0;
  uint64_t seed = 0;      // of the payload
  uint32_t write_bytes = 16 * 1024; // one write_req each
  uint32_t connect_timeout_ms = 5000;
  std::shared_ptr<visitor_result> result;
  /// Virtual time source for the result's timestamps (us).
  std::function<uint64_t()> now_us;
};

/// Connects, sends `bytes` pseudo-random bytes, half-closes, and checks that
/// the same bytes come back followed by EOF.
caf::actor spawn_visitor(caf::actor_system& sys, visitor_params p);

} // namespace drtp::sim
