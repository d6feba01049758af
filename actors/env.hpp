#pragma once
// What every actor is handed at spawn instead of reaching for globals: the io
// actor of its host (the seam), a tracer, randomness, and the limits it keeps.

#include <cstdint>
#include <memory>
#include <string>

#include "caf/actor.hpp"
#include "caf/actor_clock.hpp"
#include "net/handshake.hpp"
#include "net/trace.hpp"

namespace drtp {

struct tunnel_limits {
  /// Ping period; liveness is checked four times per interval.
  uint32_t heartbeat_interval_ms = 800;
  /// A peer silent for this many heartbeat intervals is declared dead:
  /// by default within 800 ms * 3.25 = 2.6 s.
  uint32_t heartbeat_misses_max = 3;
  uint32_t handshake_timeout_ms = 10000;
  uint32_t connect_timeout_ms = 5000;
  /// Credit per stream and direction: bounds buffering per session.
  uint32_t window_bytes = 1024 * 1024;
  /// Also bounds a tunnel's buffering: streams x window in the worst case.
  uint32_t streams_per_tunnel_max = 16384;
};

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

private:
  time_point real0_{};
  time_point local0_{};
  double rate_ = 1.0;
};

struct env {
  caf::actor io;                      // the seam for this host
  std::shared_ptr<net::tracer> trace; // never null
  std::shared_ptr<net::entropy> rng;  // never null
  std::string host;                   // this host's name, for traces
  tunnel_limits limits;
  std::shared_ptr<host_clock> clock = std::make_shared<host_clock>();
};

} // namespace drtp
