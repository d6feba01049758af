#pragma once
// The load the bench puts on a path: bulk throughput, 64-byte round trips,
// new connections per second, batches of idle sessions.

#include <cstdint>
#include <sys/types.h>

namespace drtp::bench {

/// `streams` parallel uploads of `bytes` in total to the sink; Gbit/s of
/// the sum over the wall time; 0 on any error.
double throughput_gbps(uint16_t port, uint64_t bytes, int streams);

struct latency {
  double p50_us = 0, p99_us = 0, p999_us = 0;
};

constexpr int ping_pong_warmup = 200;

/// Round trips of 64 bytes, after ping_pong_warmup of them; percentiles.
latency ping_pong(uint16_t port, int rounds);

/// New connections a second from `threads` threads for `seconds`: connect,
/// 64 B there and back, close; `failed` counts those that did not.
double conn_rate(uint16_t port, int threads, double seconds, uint64_t& failed);

/// The visitors of the idle sessions live in a forked process: its own
/// descriptor table (10 000 sessions need 10 000 descriptors on the visitor
/// side and as many at the service, more than one process may have when
/// the hard limit is 20 000) and its memory apart from the service's.
/// open() returns once the sessions are open; close() ends them.
class idle_visitors {
public:
  idle_visitors() = default;
  idle_visitors(const idle_visitors&) = delete;
  idle_visitors& operator=(const idle_visitors&) = delete;
  ~idle_visitors() { close(); }

  /// How many of `n` sessions opened within `budget_s`; `failed` the rest.
  int open(uint16_t port, int n, double budget_s, uint64_t& failed);
  void close();

private:
  pid_t pid_ = -1;
  int ctl_ = -1;
};

} // namespace drtp::bench
