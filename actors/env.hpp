#pragma once
// What every actor is handed at spawn instead of reaching for globals: the io
// actor of its host (the seam), a tracer, randomness, and the limits it keeps.

#include <cstdint>
#include <memory>
#include <string>

#include "net/seam/session_table.hpp"
#include "caf/actor.hpp"
#include "net/seam/crypto.hpp"
#include "net/seam/entropy.hpp"
#include "net/seam/host_clock.hpp"
#include "net/seam/metrics.hpp"
#include "net/seam/trace.hpp"

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
  /// The hard cap of a tunnel link's write queue (the seam resets the link
  /// past it): what a peer that stops reading can cost. An honest peer's
  /// queue holds at most the windows of the streams in flight (a burst of
  /// 100 visitors on loopback queues about 100 MiB), so this is 256 windows.
  uint64_t link_write_queue_bytes_max = 256ull * 1024 * 1024;
  /// Pings a peer may send per heartbeat interval (it needs one); more is a
  /// protocol error, so a ping flood cannot queue pongs without bound.
  uint32_t pings_per_interval_max = 16;
  /// A session with no bytes either way for this long is closed (0: never).
  /// Keepalive reaps peers that vanished; this reaps those that stay and do
  /// nothing, holding a visitor slot and a local socket. 2 h: longer than a
  /// connection pool or an interactive shell sits idle in practice (the
  /// usual TCP keepalive time, and well beyond load balancers' 350 s-1 h),
  /// short enough that ghosts do not pile up over a day.
  uint32_t session_idle_timeout_ms = 2 * 3600 * 1000;
};

struct env {
  caf::actor io;                      // the seam for this host
  std::shared_ptr<net::tracer> trace; // never null
  std::shared_ptr<net::entropy> rng;  // never null
  std::shared_ptr<net::crypto> crypto; // never null
  std::string host;                   // this host's name, for traces
  tunnel_limits limits;
  std::shared_ptr<net::host_clock> clock = std::make_shared<net::host_clock>();
  /// This process's (or simulated host's) metrics: never null; every
  /// actor a process spawns shares its one registry.
  std::shared_ptr<net::metrics> stats = net::make_metrics();
  /// This process's (or simulated host's) live sessions, for
  /// /debug/sessions: never null, shared like stats.
  std::shared_ptr<net::session_table> sessions = std::make_shared<net::session_table>();
};

} // namespace drtp
