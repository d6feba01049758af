#pragma once
// The deterministic world: simulated hosts, links and faults behind the same
// seam (net/io.hpp) as the real network. Single-threaded: every call happens
// on the thread that drives CAF's test coordinator (see sim/driver.hpp).

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "caf/fwd.hpp"
#include "net/seam/trace.hpp"

namespace drtp::sim {

struct link_params {
  uint32_t latency_us = 200;            // one-way
  uint32_t jitter_us = 0;               // uniform extra in [0, jitter_us]
  uint64_t bandwidth_bytes_per_s = 0;   // 0 = unlimited
  double loss = 0.0;                    // chance a segment needs a retransmit
};

enum class crash_mode {
  reset,  // peers of the host see their connections reset
  silent, // peers see nothing at all: half-open connections
};

class world {
public:
  /// `now` reads virtual time (the driver's test clock), in microseconds.
  world(caf::actor_system& sys, uint64_t seed,
        std::shared_ptr<net::tracer> trace);
  ~world();

  /// Adds a host; its name is also its address. Returns its io actor.
  caf::actor add_host(const std::string& name);
  /// The io actor of an existing host.
  caf::actor io(const std::string& name) const;

  void set_default_link(link_params p);
  /// Both directions between a and b.
  void set_link(const std::string& a, const std::string& b, link_params p);

  /// The host goes down: its listeners and connections vanish, every actor
  /// that owned one of them (and every registered actor) is killed.
  void crash(const std::string& host, crash_mode mode);
  /// The host is up again, empty; the caller spawns its actors anew.
  void restart(const std::string& host);
  bool is_up(const std::string& host) const;
  /// Kill `a` when `host` crashes (actors that own no socket, e.g. a POP's
  /// server actor between listeners).
  void register_actor(const std::string& host, caf::actor a);

  /// Traffic from a to b (and b to a if both_ways) is held until healed.
  void partition(const std::string& a, const std::string& b, bool both_ways);
  void heal(const std::string& a, const std::string& b);
  void heal_all();

  /// Tests: called with every data chunk a host's connection reads (what a
  /// host, say a POP, sees of the traffic it carries), in the order read.
  using tap_fn = std::function<void(const std::string& host, uint64_t conn,
                                    const std::string& bytes)>;
  void set_tap(tap_fn fn);

  // -- used by the driver ------------------------------------------------------

  /// Virtual time of the next pending network event, if any (us since start).
  bool next_event_us(uint64_t& t) const;
  /// Delivers every event due at or before `now_us`.
  void deliver_due(uint64_t now_us);

  /// Counters for tests: open connections and listeners across all hosts.
  size_t open_connections() const;
  size_t open_listeners() const;
  /// Open connection ends with neither end on `port` ("host:port -> peer:port").
  std::vector<std::string> open_connections_off_port(uint16_t port) const;

  struct impl;

private:
  std::shared_ptr<impl> impl_;
};

} // namespace drtp::sim
