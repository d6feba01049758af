#pragma once
// Workload actors for simulated runs: a service standing in for Joe's and
// visitors that check every byte. They speak only the seam.
//
// A visitor opens with a 9-byte header: a mode byte and a big-endian u64.
//   'E' echo: every byte comes back XOR the service's key byte
//   'U' upload: the service counts bytes; at EOF it answers the 8-byte count
//   'D' download: the service sends u64 pattern bytes, then EOF
// The key byte differs per service, so a visitor routed to the wrong service
// notices (the isolation invariant).

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "caf/actor.hpp"

namespace drtp::sim {

caf::actor spawn_app_service(caf::actor_system& sys, caf::actor io,
                             uint16_t port, uint8_t key);

enum class workload_kind : uint8_t { echo, upload, download, request_response };

const char* to_string(workload_kind k) noexcept;

struct visitor_result {
  bool done = false;
  bool ok = false;        // every byte as expected, then a clean EOF
  bool corrupt = false;   // a wrong byte arrived: never allowed
  uint64_t bytes_sent = 0;
  uint64_t bytes_back = 0;
  uint64_t started_us = 0;
  uint64_t finished_us = 0;
  std::string target;     // host:port
  std::string error;      // why it failed
};

struct visitor_params {
  caf::actor io;
  std::string host;
  uint16_t port = 0;
  workload_kind kind = workload_kind::echo;
  uint64_t bytes = 0;
  uint32_t rounds = 1;          // request_response only
  uint64_t seed = 0;            // of the payload
  uint8_t key = 0;              // of the service it means to reach
  uint32_t write_bytes = 16 * 1024; // one write_req each
  uint32_t connect_timeout_ms = 5000;
  /// Hosts to try next when a connect is refused or fails (nothing was sent
  /// yet, so a retry is safe): what a client behind DNS or a gateway does.
  std::vector<std::string> fallback_hosts;
  std::shared_ptr<visitor_result> result;
  /// Virtual time for the result's timestamps (us).
  std::function<uint64_t()> now_us;
};

caf::actor spawn_visitor(caf::actor_system& sys, visitor_params p);

/// Byte i of a visitor's stream: a function of (seed, i), so the checker
/// keeps no copy of what was sent.
char pattern_byte(uint64_t seed, uint64_t i) noexcept;

} // namespace drtp::sim
