// Property: over random topologies (1-5 POPs in 1-3 regions, 1-3 agents,
// 1-3 services) and random fault schedules (crashes, restarts, drains,
// partitions both and one way, latency spikes, loss bursts, clock skew),
// safety holds
// all the way (integrity, isolation, no hang) and liveness holds once the
// faults heal (every agent back to min(K, reachable POPs) tunnels, every
// service reachable through every POP that holds a tunnel for it).
//
// The fault schedule is a shrinkable sequence: a failure shrinks to a short
// schedule and prints its seed and the RC_PARAMS line that replays it.
// CI runs 200 cases; for thousands:
//   RC_PARAMS="max_success=5000" build/debug/tests/test_property_failover

#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include "sim/scenario.hpp"

using namespace drtp::sim;

namespace {

struct raw_fault {
  uint32_t at_ms;
  int kind;
  int a;
  int b;
  bool both_ways;
  uint32_t duration_ms;
};

scenario_spec build(uint32_t pop_count, uint32_t region_count,
                    uint32_t service_count, const std::vector<int>& agent_services,
                    const std::vector<int>& agent_k,
                    const std::vector<raw_fault>& faults,
                    const std::vector<std::pair<int, uint32_t>>& load) {
  scenario_spec s;
  s.name = "random";
  for (uint32_t i = 0; i < pop_count; ++i)
    s.pops.push_back({"pop" + std::to_string(i + 1),
                      "r" + std::to_string(i % region_count)});
  for (uint32_t i = 0; i < service_count; ++i)
    s.services.push_back({"svc" + std::to_string(i + 1), "secret-" + std::to_string(i),
                          static_cast<uint16_t>(8000 + i)});
  for (size_t i = 0; i < agent_services.size(); ++i)
    s.agents.push_back({"agent" + std::to_string(i + 1),
                        s.services[agent_services[i] % service_count].name,
                        static_cast<uint32_t>(agent_k[i]), {}, ""});
  s.default_link.latency_us = 1000;
  s.default_link.jitter_us = 500;
  for (size_t i = 0; i < load.size(); ++i) {
    workload_spec w;
    w.service = s.services[load[i].first % service_count].name;
    w.kind = static_cast<workload_kind>(i % 4);
    w.count = 4;
    w.start_us = 2'000'000 + uint64_t{load[i].second % 38'000} * 1000;
    w.spacing_us = 700'000;
    w.bytes = 3000 + (load[i].second % 40000);
    w.rounds = 3;
    s.workload.push_back(w);
  }
  // Hosts a fault may name: POPs first, then agents.
  std::vector<std::string> hosts;
  for (auto& p : s.pops)
    hosts.push_back(p.name);
  for (auto& a : s.agents)
    hosts.push_back(a.name);
  auto pop_of = [&](int i) { return s.pops[i % s.pops.size()].name; };
  auto agent_of = [&](int i) { return s.agents[i % s.agents.size()].name; };
  for (auto& f : faults) {
    fault_spec fs;
    fs.at_us = 3'000'000 + uint64_t{f.at_ms % 37'000} * 1000;
    fs.duration_us = 500'000 + uint64_t{f.duration_ms % 8000} * 1000;
    fs.both_ways = f.both_ways;
    switch (f.kind % 9) {
      case 0: fs.kind = fault_kind::crash; fs.a = pop_of(f.a); break;
      case 1: fs.kind = fault_kind::crash_silent; fs.a = pop_of(f.a); break;
      case 2: fs.kind = fault_kind::restart; fs.a = pop_of(f.a); break;
      case 3: fs.kind = fault_kind::drain; fs.a = pop_of(f.a); break;
      case 4: fs.kind = fault_kind::partition; fs.a = agent_of(f.a); fs.b = pop_of(f.b); break;
      case 5: fs.kind = fault_kind::latency_spike; fs.a = agent_of(f.a); fs.b = pop_of(f.b);
              fs.latency_us = 50'000 + (f.duration_ms % 400) * 1000; break;
      case 6: fs.kind = fault_kind::loss_burst; fs.a = agent_of(f.a); fs.b = pop_of(f.b);
              fs.loss = 0.05 + (f.duration_ms % 30) / 100.0; break;
      case 7: fs.kind = fault_kind::crash; fs.a = agent_of(f.a); break; // an agent
      default: // a clock 30% slow to 40% fast, on an agent or a POP
        fs.kind = fault_kind::clock_skew;
        fs.a = f.b % 2 ? agent_of(f.a) : pop_of(f.a);
        fs.rate = 0.7 + (f.duration_ms % 71) / 100.0;
        break;
    }
    (void) hosts;
    s.faults.push_back(fs);
  }
  // Everything heals at 45 s; liveness is checked after the quiet period.
  std::stable_sort(s.faults.begin(), s.faults.end(),
                   [](auto& x, auto& y) { return x.at_us < y.at_us; });
  for (auto& f : std::vector<fault_spec>(s.faults))
    if (f.kind == fault_kind::partition)
      s.faults.push_back({45'000'000, fault_kind::heal, f.a, f.b});
  for (auto& h : hosts)
    s.faults.push_back({45'000'000, fault_kind::restart, h});
  s.duration_us = 80'000'000;
  s.quiet_us = 20'000'000;
  s.drain_grace_ms = 10000;
  return s;
}

} // namespace

RC_GTEST_PROP(failover, random_faults_keep_safety_and_liveness, ()) {
  auto pops = *rc::gen::inRange<uint32_t>(1, 6);
  auto regions = *rc::gen::inRange<uint32_t>(1, 4);
  auto services = *rc::gen::inRange<uint32_t>(1, 4);
  auto agents = *rc::gen::inRange<size_t>(1, 4);
  auto agent_services = *rc::gen::container<std::vector<int>>(
    agents, rc::gen::inRange(0, 3));
  auto agent_k = *rc::gen::container<std::vector<int>>(agents, rc::gen::inRange(1, 4));
  auto faults = *rc::gen::resize(
    8, rc::gen::container<std::vector<raw_fault>>(rc::gen::build<raw_fault>(
         rc::gen::set(&raw_fault::at_ms, rc::gen::inRange<uint32_t>(0, 37000)),
         rc::gen::set(&raw_fault::kind, rc::gen::inRange(0, 9)),
         rc::gen::set(&raw_fault::a, rc::gen::inRange(0, 5)),
         rc::gen::set(&raw_fault::b, rc::gen::inRange(0, 5)),
         rc::gen::set(&raw_fault::both_ways, rc::gen::arbitrary<bool>()),
         rc::gen::set(&raw_fault::duration_ms, rc::gen::inRange<uint32_t>(0, 8000)))));
  auto load = *rc::gen::resize(
    4, rc::gen::container<std::vector<std::pair<int, uint32_t>>>(
         rc::gen::pair(rc::gen::inRange(0, 3), rc::gen::inRange<uint32_t>(0, 1 << 20))));
  auto seed = *rc::gen::inRange<uint64_t>(0, 1'000'000);
  auto spec = build(pops, regions, services, agent_services, agent_k, faults, load);
  RC_ASSERT(validate(spec).empty());
  auto report = run_scenario(spec, seed);
  RC_TAG(spec.pops.size() > 1 ? "multi-POP" : "one POP");
  RC_CLASSIFY(report.sessions_failed > 0, "some sessions failed during faults");
  RC_CLASSIFY(spec.faults.size() > spec.pops.size() + spec.agents.size(), "with faults");
  if (!report.ok())
    RC_LOG() << summarize(report);
  RC_ASSERT(report.ok());
}

TEST(failover, reconnect_storm_is_spread_by_jitter) {
  // 200 agents, one POP that restarts: full jitter spreads the reconnects.
  scenario_spec s;
  s.name = "storm";
  s.pops = {{"pop1", "eu"}};
  s.services = {{"svc", "s", 8000}};
  for (int i = 0; i < 200; ++i)
    s.agents.push_back({"a" + std::to_string(i), "svc", 1, {}, ""});
  s.faults = {{5'000'000, fault_kind::crash, "pop1"},
              {8'000'000, fault_kind::restart, "pop1"}};
  s.duration_us = 40'000'000;
  s.quiet_us = 20'000'000;
  run_options opts;
  opts.keep_trace = true;
  auto r = run_scenario(s, 11, opts);
  EXPECT_TRUE(r.ok()) << summarize(r);
  // Count tunnel handshakes completed at the POP per 100 ms after the restart.
  std::map<uint64_t, int> per_bucket;
  for (auto& line : r.trace) {
    if (line.find("pop1 tunnel#") == std::string::npos
        || line.find("tunnel up with agent") == std::string::npos)
      continue;
    auto t_us = static_cast<uint64_t>(std::stod(line) * 1e6);
    if (t_us >= 8'000'000)
      ++per_bucket[(t_us - 8'000'000) / 100'000];
  }
  int total = 0, peak = 0;
  for (auto& [b, n] : per_bucket) {
    total += n;
    peak = std::max(peak, n);
  }
  EXPECT_EQ(total, 200);
  // All at once would be 200 in one bucket; jitter keeps any 100 ms well below.
  EXPECT_LT(peak, 60) << "peak " << peak << " reconnects in 100 ms";
  std::printf("reconnect storm: 200 agents back in %zu buckets of 100 ms, peak %d\n",
              per_bucket.size(), peak);
}
