#pragma once
// The real counterpart of sim/driver: an actor system whose actors run on
// the I/O loop (net/loop_coordinator.hpp), plus the Asio network behind the
// seam. What a binary builds before it spawns its actors.

#include <cstdint>
#include <memory>
#include <optional>

#include "caf/fwd.hpp"
#include "net/seam/host_clock.hpp"
#include "net/seam/trace.hpp"
#include "net/tls.hpp"

namespace drtp::net {

/// The actor system on one I/O loop (see net/loop_coordinator.hpp) plus the
/// real network.
class runtime {
public:
  runtime(std::shared_ptr<tracer> trace,
          std::optional<tls_identity> server_identity,
          uint32_t busy_poll_us);
  ~runtime();
  caf::actor_system& sys();
  const caf::actor& io() const;
  std::shared_ptr<tracer> trace() const;
  /// A host clock whose wall time (host_clock::unix_ms) is the system's:
  /// its epoch was read from the system clock when the runtime started.
  /// For env::clock (the default clock keeps the simulator's fixed epoch).
  std::shared_ptr<host_clock> clock() const;
  /// Stops the network; actors may keep running until the process exits.
  void stop();

private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

} // namespace drtp::net
