#pragma once
// The process's own figures for /metrics, under Prometheus' standard names
// (process_cpu_seconds_total, process_resident_memory_bytes,
// process_virtual_memory_bytes, process_open_fds, process_max_fds,
// process_start_time_seconds), read from /proc/self at each scrape. Only the
// real binaries install it (a simulated host has no process of its own).

#include <memory>

#include "net/seam/metrics.hpp"
#include "net/seam/trace.hpp"

namespace drtp::net {

/// Also copies what the real io and `trace` count into the registry at each
/// scrape: drtp_write_queue_bytes, drtp_log_lines_dropped_total.
void install_process_metrics(metrics& m, std::shared_ptr<const tracer> trace);

/// The text install_process_metrics appends, for one scrape (tests).
void append_process_metrics(std::string& out);

} // namespace drtp::net
