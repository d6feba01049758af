#pragma once
// The host clock of the seam: how an actor reads time and sets timers.

#include <chrono>
#include <cstdint>

#include "caf/actor_clock.hpp"

namespace drtp::net {

/// A host's own clock. Actors measure time and set timers through it, so the
/// simulator can make one host's clock run fast or slow (clock skew). The
/// protocol never compares clocks across hosts, only durations on one, so
/// skew shows up as timers that fire early or late. Real runs keep rate 1.
class host_clock {
public:
  using time_point = caf::actor_clock::time_point;
  using duration = caf::actor_clock::duration_type;

  /// This host's reading of the time when the system clock says `real`.
  time_point local(time_point real) const {
    return local0_ + std::chrono::duration_cast<duration>((real - real0_) * rate_);
  }

  /// This host's reading of the time now, from the actor system's clock
  /// (an actor passes its `clock()`).
  time_point now(const caf::actor_clock& system) const {
    return local(system.now());
  }

  /// How long the system waits for `local` to pass on this host.
  duration real_delay(duration local) const {
    return std::chrono::duration_cast<duration>(local / rate_);
  }

  /// From `real_now` on, this host's clock runs at `rate` (1 = true time).
  void set_rate(time_point real_now, double rate) {
    local0_ = local(real_now);
    real0_ = real_now;
    rate_ = rate;
  }

  double rate() const { return rate_; }

  /// Wall time: Unix milliseconds of this host's reading now. Only for what
  /// people read and what outlives the process (timestamps, leases a control
  /// plane stamps); durations and timers use now(). The simulator keeps
  /// sim_epoch_unix_ms; the real runtime sets the true epoch at start
  /// (net::runtime::clock()).
  int64_t unix_ms(const caf::actor_clock& system) const {
    auto since = now(system).time_since_epoch();
    return epoch_unix_ms_ + std::chrono::duration_cast<std::chrono::milliseconds>(since).count();
  }

  /// The Unix time (ms) at which this host's clock reads time_point{}.
  void set_epoch_unix_ms(int64_t epoch) { epoch_unix_ms_ = epoch; }

  /// 2026-01-01T00:00:00Z: a fixed wall time for deterministic runs.
  static constexpr int64_t sim_epoch_unix_ms = 1767225600000;

private:
  time_point real0_{};
  time_point local0_{};
  double rate_ = 1.0;
  int64_t epoch_unix_ms_ = sim_epoch_unix_ms;
};

} // namespace drtp::net
