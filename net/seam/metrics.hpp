#pragma once
// What a process counts, for its /metrics endpoint (actors/metrics_endpoint)
// in the Prometheus text exposition format. Handed to actors in their env
// like the tracer: one registry per process (per simulated host in the
// simulator, so that scraping a simulated POP shows that POP's figures).
//
// Every family is declared once, in the catalogue (net/seam/metric_catalog):
// its name, kind, help text and label names. Code asks for a family by id
// and the values of its labels, and gets a reference that stays valid for
// the registry's life; keep it and the hot path is one relaxed atomic add.
// The README's metric list and the Grafana dashboard are checked against the
// catalogue (tests/test_metrics).
//
// Bounds: label values come from configuration (services, POPs) or from a
// fixed set (reasons), never from a visitor, but a registry the control
// plane fills keeps growing with it; so each family holds at most
// label_sets_per_family_max label sets, and past that the values are folded
// into one set whose every value is "_overflow" (and counted).

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace drtp::net {

enum class metric_kind : uint8_t { counter, gauge, histogram };

/// The families (net/seam/metric_catalog.cpp describes each).
enum class metric : uint16_t {
  // POP
  pop_tunnels_up,
  pop_tunnel_logins_total,
  auth_failures_total,
  handshakes_failed_total,
  audit_decisions_total,
  visitors_refused_total,
  // both ends of a session
  sessions_active,
  sessions_opened_total,
  sessions_closed_total,
  service_bytes_total,
  // agent (drtp serve) and client (drtp connect)
  tunnels_up,
  tunnels_wanted,
  tunnel_failovers_total,
  tunnel_restore_seconds,
  tunnel_rtt_seconds,
  // patch-panel client
  resumes_total,
  resent_bytes_total,
  resume_stall_seconds,
  // HTTP servers (the control plane's API, the metrics endpoint)
  http_responses_total,
  // the process
  write_queue_bytes,
  log_lines_dropped_total,
  metric_label_sets_overflow_total,
  count_
};

struct metric_spec {
  metric id;
  const char* name;
  metric_kind kind;
  const char* help;
  std::vector<const char*> labels;
};

/// Every family, in id order.
const std::vector<metric_spec>& metric_catalog();

class metric_counter {
public:
  void add(uint64_t n = 1) { value_.fetch_add(n, std::memory_order_relaxed); }
  uint64_t value() const { return value_.load(std::memory_order_relaxed); }
  /// A counter kept elsewhere: its total of now (never lower than before).
  void mirror(uint64_t total) {
    auto v = value_.load(std::memory_order_relaxed);
    while (total > v && !value_.compare_exchange_weak(v, total, std::memory_order_relaxed)) {
    }
  }

private:
  std::atomic<uint64_t> value_{0};
};

class metric_gauge {
public:
  void add(int64_t n) { value_.fetch_add(n, std::memory_order_relaxed); }
  void set(int64_t n) { value_.store(n, std::memory_order_relaxed); }
  int64_t value() const { return value_.load(std::memory_order_relaxed); }

private:
  std::atomic<int64_t> value_{0};
};

/// Durations, observed in microseconds and shown in seconds (every histogram
/// family's name ends in _seconds). Buckets from 100 µs (a loopback round
/// trip) to 60 s (a long outage).
class metric_histogram {
public:
  static constexpr std::array<uint64_t, 18> bounds_us = {
    100,     250,     500,     1000,    2500,     5000,
    10000,   25000,   50000,   100000,  250000,   500000,
    1000000, 2500000, 5000000, 10000000, 30000000, 60000000};
  void observe_us(uint64_t us);
  uint64_t count() const { return count_.load(std::memory_order_relaxed); }
  uint64_t sum_us() const { return sum_us_.load(std::memory_order_relaxed); }
  /// Observations in bucket i (not cumulative); i == bounds_us.size(): +Inf.
  uint64_t bucket(size_t i) const {
    return buckets_[i].load(std::memory_order_relaxed);
  }

private:
  std::array<std::atomic<uint64_t>, bounds_us.size() + 1> buckets_{};
  std::atomic<uint64_t> sum_us_{0};
  std::atomic<uint64_t> count_{0};
};

class metrics {
public:
  static constexpr size_t label_sets_per_family_max = 512;
  /// A label value longer than this is cut (and still told apart by the
  /// registry only by its first bytes).
  static constexpr size_t label_value_bytes_max = 128;

  metrics();
  metrics(const metrics&) = delete;
  metrics& operator=(const metrics&) = delete;

  /// `values` in the order of the family's label names (asserted).
  metric_counter& counter(metric id, const std::vector<std::string>& values = {});
  metric_gauge& gauge(metric id, const std::vector<std::string>& values = {});
  metric_histogram& histogram(metric id,
                              const std::vector<std::string>& values = {});

  /// Appends more exposition text at every render: the process's CPU,
  /// memory and descriptors, which only the real binaries can read
  /// (net/process_metrics). Called from whichever thread renders.
  void set_collector(std::function<void(std::string&)> collect);

  /// Runs at the start of every render, before the families are written:
  /// figures kept elsewhere (the io's write queues, the tracer's dropped
  /// lines) are copied into their families here.
  void set_refresh(std::function<void(metrics&)> refresh);

  /// The whole registry in the text exposition format (version 0.0.4).
  std::string render();

  /// The value of a counter or gauge child, or -1 if it does not exist yet
  /// (tests).
  int64_t peek(metric id, const std::vector<std::string>& values) const;

private:
  struct child {
    std::vector<std::string> values;
    metric_counter c;
    metric_gauge g;
    metric_histogram h;
  };
  struct family {
    std::map<std::vector<std::string>, std::unique_ptr<child>> children;
  };
  child& find(metric id, metric_kind kind, const std::vector<std::string>& values);

  mutable std::mutex mutex_;
  std::vector<family> families_;
  std::function<void(std::string&)> collect_;
  std::function<void(metrics&)> refresh_;
};

std::shared_ptr<metrics> make_metrics();

/// A label value escaped for the exposition format (backslash, quote,
/// newline).
std::string escape_label_value(const std::string& value);

} // namespace drtp::net
