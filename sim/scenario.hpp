#pragma once
// A scenario: topology, links, workload, fault timeline and expectations,
// run in the deterministic simulator with the production actors. The same
// engine serves `drtp-sim` (scenario files) and the property tests (random
// scenarios), so a failing property case is a scenario one can replay.

#include <cstdint>
#include <string>
#include <vector>

#include "actors/env.hpp"
#include "net/seam/crypto.hpp"
#include "sim/apps.hpp"
#include "sim/world.hpp"

namespace drtp::sim {

struct pop_spec {
  std::string name; // also its host name
  std::string region;
  /// Follows the control plane (control/pop_follower): its services come
  /// from the registry, not from the scenario's list.
  bool control = false;
};

/// The control plane: a registry (control/registry) over a memory store,
/// behind an http_server, on its own host. The store is its disk: a crash
/// of the host kills the registry and the server, and a restart spawns
/// them again on the same store.
struct control_spec {
  std::string name; // its host name; empty: no control plane
};

struct service_spec {
  std::string name;
  std::string secret = "secret";
  uint16_t public_port = 8000;
  bool is_public = true;          // false: patch panel only
  std::vector<std::string> allow; // principals or "group:NAME"
  /// With a control plane: created in the registry at the start (false:
  /// only by a create_service fault).
  bool registered = true;
};

struct principal_spec {
  std::string name;
  std::string secret = "principal secret";
  std::vector<std::string> groups;
  bool revoked = false;
};

/// `drtp connect`: a patch-panel client on its own host.
struct client_spec {
  std::string name;      // also its host name
  std::string service;
  std::string principal;
  std::string secret;    // empty: the principal's (set to test a wrong one)
  uint32_t tunnels = 2;
  std::vector<std::string> pops; // empty: every POP
  uint16_t listen_port = 6000;
};

struct agent_spec {
  std::string name;       // also its host name; the service runs beside it
  std::string service;
  uint32_t tunnels = 2;   // K
  std::vector<std::string> pops; // empty: every POP
  std::string secret;     // empty: the service's (set to test a wrong one)
  /// `drtp serve --control`: bootstraps from the registry and follows its
  /// POP list (control/agent_follower); `pops` is then ignored.
  bool control = false;
};

struct link_spec {
  std::string a;
  std::string b;
  link_params p;
};

struct workload_spec {
  std::string service;
  workload_kind kind = workload_kind::echo;
  uint32_t count = 1;
  uint64_t start_us = 1'000'000;
  uint64_t spacing_us = 0;
  uint64_t bytes = 1024;
  uint32_t rounds = 1;
  std::string pop; // empty: any POP that serves the service at the time
  std::string via; // a client's name: through the patch panel instead
};

enum class fault_kind : uint8_t {
  crash,         // a: host; peers see resets
  crash_silent,  // a: host; peers see nothing (half-open)
  restart,       // a: host; a crashed or drained POP comes back
  drain,         // a: POP
  partition,     // a, b, both_ways; healed by `heal` or after duration_us
  heal,          // a, b
  latency_spike, // a, b: latency_us for duration_us
  loss_burst,    // a, b: loss for duration_us
  clock_skew,    // a: host whose clock runs at `rate` (for duration_us, or on)
  create_service, // a: service; the operator creates it through the API
  delete_service, // a: service; the operator deletes it through the API
};

const char* to_string(fault_kind k) noexcept;

struct fault_spec {
  uint64_t at_us = 0;
  fault_kind kind = fault_kind::crash;
  std::string a;
  std::string b;
  bool both_ways = true;
  uint64_t duration_us = 0; // 0: until healed (partition) / no effect
  uint32_t latency_us = 0;
  double loss = 0;
  double rate = 1.0; // clock_skew: 1.05 runs 5% fast
};

enum class expectation_kind : uint8_t {
  sessions_failed_max,       // value: sessions
  tunnels_restored_within,   // value: us after fault `fault`
  reachable_within,          // value: us after fault `fault`
};

struct expectation_spec {
  expectation_kind kind = expectation_kind::sessions_failed_max;
  uint64_t value = 0;
  size_t fault = 0;
};

struct scenario_spec {
  std::string name = "scenario";
  control_spec control;
  std::vector<pop_spec> pops;
  std::vector<service_spec> services;
  std::vector<agent_spec> agents;
  std::vector<principal_spec> principals;
  std::vector<client_spec> clients;
  link_params default_link;
  std::vector<link_spec> links;
  std::vector<workload_spec> workload;
  std::vector<fault_spec> faults;
  std::vector<expectation_spec> expectations;
  /// Virtual run time; the run ends early once everything is done.
  uint64_t duration_us = 60'000'000;
  /// After the last fault, how long the system gets to heal before the
  /// liveness check.
  uint64_t quiet_us = 20'000'000;
  uint32_t drain_grace_ms = 30000;
  uint32_t resume_timeout_ms = 30000;
  tunnel_limits limits;
};

struct check_result {
  std::string what;
  bool ok = false;
  std::string detail;
};

struct fault_outcome {
  std::string what;              // "crash pop1 at 20.000 s"
  int64_t detected_us = -1;      // until an agent saw its tunnel go
  int64_t restored_us = -1;      // until every agent held its target again
};

struct scenario_report {
  std::string name;
  uint64_t seed = 0;
  uint64_t trace_hash = 0;
  uint64_t steps = 0;
  uint64_t virtual_us = 0;
  size_t sessions = 0;
  size_t sessions_ok = 0;
  size_t sessions_failed = 0;
  size_t sessions_excused = 0; // failed while a fault was in the way
  size_t sessions_unfinished = 0; // still open at the end (a hang, excused or not)
  size_t patch_sessions = 0;   // of which through the patch panel
  size_t patch_sessions_ok = 0;
  uint64_t bytes_sent = 0;
  uint64_t bytes_back = 0;
  std::vector<std::string> violations; // broken invariants
  std::vector<std::string> failed_examples; // the first failed sessions, why
  std::vector<check_result> expectations;
  std::vector<fault_outcome> faults;
  std::vector<std::string> trace; // only with keep_trace
  bool ok() const;
};

struct run_options {
  bool keep_trace = false;
  /// Called with every trace line as it happens (may be empty).
  std::function<void(const std::string&)> on_trace;
};

/// Checks names and references; returns "" or one line saying what is wrong.
std::string validate(const scenario_spec& s);

/// net::derive_login_key, remembered per (secret, salt): the simulator's
/// and tests' shortcut past scrypt's cost; production code derives once per
/// process instead.
net::login_key cached_login_key(const std::string& secret, const std::string& salt);

scenario_report run_scenario(const scenario_spec& s, uint64_t seed,
                             const run_options& opts = {});

/// A readable multi-line summary.
std::string summarize(const scenario_report& r);

} // namespace drtp::sim
