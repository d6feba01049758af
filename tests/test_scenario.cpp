// Hand-written scenarios through the scenario engine: multi-POP failover,
// drains, partitions, and a wrong secret.

#include <gtest/gtest.h>

#include <cstdlib>

#include "sim/scenario.hpp"

using namespace drtp::sim;

namespace {

scenario_spec three_pops() {
  scenario_spec s;
  s.name = "three-pops";
  s.pops = {{"pop1", "eu"}, {"pop2", "us"}, {"pop3", "ap"}};
  s.services = {{"pg", "joes secret", 8000}};
  s.agents = {{"joe", "pg", 2, {}, ""}};
  s.default_link.latency_us = 2000;
  s.default_link.jitter_us = 300;
  s.duration_us = 60'000'000;
  s.quiet_us = 15'000'000;
  workload_spec w;
  w.service = "pg";
  w.count = 100;
  w.start_us = 2'000'000;
  w.spacing_us = 300'000;
  w.bytes = 20000;
  s.workload = {w};
  return s;
}

void expect_ok(const scenario_report& r) {
  EXPECT_TRUE(r.ok()) << summarize(r);
  if (std::getenv("DRTP_SIM_SUMMARY"))
    std::printf("%s", summarize(r).c_str());
}

} // namespace

TEST(scenario, quiet_three_pops_all_sessions_succeed) {
  auto s = three_pops();
  auto r = run_scenario(s, 1);
  expect_ok(r);
  EXPECT_EQ(r.sessions_ok, 100u);
}

TEST(scenario, pop_crash_is_survived_and_k_restored) {
  auto s = three_pops();
  for (auto kind : {fault_kind::crash, fault_kind::crash_silent}) {
    s.faults = {{10'000'000, kind, "pop1"}, {25'000'000, fault_kind::restart, "pop1"}};
    s.expectations = {{expectation_kind::tunnels_restored_within, 10'000'000, 0}};
    auto r = run_scenario(s, 2);
    expect_ok(r);
    ASSERT_EQ(r.faults.size(), 2u);
  }
}

TEST(scenario, drain_moves_agents_without_failed_sessions) {
  auto s = three_pops();
  s.drain_grace_ms = 10000;
  s.faults = {{10'000'000, fault_kind::drain, "pop1"},
              {20'000'000, fault_kind::restart, "pop1"},
              {30'000'000, fault_kind::drain, "pop2"},
              {40'000'000, fault_kind::restart, "pop2"}};
  s.expectations = {{expectation_kind::sessions_failed_max, 0, 0}};
  auto r = run_scenario(s, 3);
  expect_ok(r);
}

TEST(scenario, partition_between_agent_and_pop_heals) {
  auto s = three_pops();
  s.faults = {{8'000'000, fault_kind::partition, "joe", "pop1", true, 10'000'000},
              {30'000'000, fault_kind::partition, "joe", "pop2", false, 5'000'000}};
  auto r = run_scenario(s, 4);
  expect_ok(r);
}

TEST(scenario, wrong_secret_never_gets_a_tunnel) {
  auto s = three_pops();
  s.agents.push_back({"mallory", "pg", 2, {}, "guessed"});
  auto r = run_scenario(s, 5);
  expect_ok(r);
}

TEST(scenario, same_seed_same_report) {
  auto s = three_pops();
  s.faults = {{10'000'000, fault_kind::crash, "pop2"}};
  auto a = run_scenario(s, 9);
  auto b = run_scenario(s, 9);
  EXPECT_EQ(a.trace_hash, b.trace_hash);
  EXPECT_EQ(summarize(a), summarize(b));
}
