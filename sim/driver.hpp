#pragma once
// Drives one deterministic run: an actor system on CAF's test coordinator,
// virtual time, a seeded choice of which ready actor runs next, and the
// simulated world. Same seed, same trace, byte for byte.

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "caf/fwd.hpp"
#include "net/seam/trace.hpp"
#include "sim/world.hpp"

namespace drtp::sim {

class driver {
public:
  explicit driver(uint64_t seed);
  ~driver(); // cancels timers, drains, shuts the system down cleanly

  caf::actor_system& sys();
  world& net();
  /// The tracer to hand to actors: stamps virtual time, feeds the hash.
  std::shared_ptr<net::tracer> trace();
  uint64_t seed() const;

  /// Virtual microseconds since the start of the run.
  uint64_t now_us() const;

  /// Runs until `done()` holds or `max_virtual_us` of virtual time passed.
  /// Returns whether `done()` held.
  bool run_until(const std::function<bool()>& done, uint64_t max_virtual_us);
  /// Runs for exactly `virtual_us` of virtual time.
  void run_for(uint64_t virtual_us);

  /// Every trace line so far ("<time> <host> <who>: <what>").
  const std::vector<std::string>& trace_lines() const;
  /// What each host holds for visitors, by kind (net::tracer::census):
  /// only non-zero counts.
  const std::map<std::string, std::map<std::string, int64_t>>& census() const;
  /// A hash over all trace lines (FNV-1a 64).
  uint64_t trace_hash() const;
  /// How many actor jobs ran; differs between interleavings.
  uint64_t steps() const;

  struct impl;

private:
  std::unique_ptr<impl> impl_;
};

} // namespace drtp::sim
