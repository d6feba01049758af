#pragma once
// The paths the bench measures side by side (direct loopback, DRTP public,
// the patch panel, haproxy, ssh -R), each set up with the processes that
// carry it, and the figures gathered for each.

#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <sys/types.h>
#include <vector>

#include "tests/support/proc.hpp"

namespace drtp::bench {

struct proc_ref {
  std::string label; // "pop", "agent", "haproxy", "sshd", "ssh"
  pid_t pid;
};

struct idle_figure {
  int wanted = 0;
  int established = 0;
  uint64_t failed = 0;
  double open_s = 0;
  std::vector<uint64_t> rss_before_kib, rss_after_kib; // per proc
};

struct path {
  std::string key, name;
  uint16_t port = 0;
  std::string na; // why this path is not measured ("" = measured)
  // Another path's processes with one setting changed: same memory, so no
  // idle-session figures.
  bool variant = false;
  std::vector<proc_ref> procs;
  std::vector<double> gbps1, gbps4, p50, p99, p999, cps;
  uint64_t conn_failed = 0;
  std::vector<uint64_t> rss_idle_kib;
  std::vector<idle_figure> idle;
  std::vector<double> cpu1, cpu4; // per proc, seconds
  double gib1 = 0, gib4 = 0;      // moved during those runs
  // CPU cost per operation is steadier than wall-clock figures on a shared
  // machine: it does not count the time a process waited for a core.
  std::vector<double> cpu_rtt, cpu_conn; // per proc, seconds
  double rtts = 0, conns = 0;            // done during those runs
};

struct setup_ctx {
  std::string dir, bin;
  uint16_t service_port;
  std::vector<std::unique_ptr<test::process>>* children; // stopped in reverse order
  int sessions_max = 0;         // the largest batch of idle sessions asked for
  bool told_fd_limit = false;   // the haproxy notice, once a run
};

/// Every wanted path, set up in the order of the tables; a path that could
/// not be set up is there with `na` saying why.
std::vector<path> setup_paths(setup_ctx& ctx, const std::set<std::string>& want);

} // namespace drtp::bench
