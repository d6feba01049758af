// Property: patch-panel sessions over random topologies (2-3 POPs) with
// random transfers in both directions (echo, upload, download, request-
// response) and random POP crashes, drains and partitions: every session
// that completes delivered exactly the bytes sent, in both directions; a
// session ends only if one of its ends crashed or no POP was left; nothing
// hangs; unauthorized principals (not listed, revoked, wrong secret) never
// reach the service. A failure shrinks to a short fault schedule and prints
// the RC_PARAMS line that replays it. CI runs 200 cases:
//   RC_PARAMS="max_success=2000" build/debug/tests/test_property_patch_panel

#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include <cstdio>
#include <cstdlib>

#include "sim/scenario.hpp"

using namespace drtp::sim;

namespace {

struct raw_fault {
  uint32_t at_ms;
  int kind;
  int pop;
  int end;
  bool both_ways;
  uint32_t duration_ms;
};

struct raw_load {
  int kind;
  uint32_t bytes;
  uint32_t start_ms;
};

void showValue(const raw_fault& f, std::ostream& os) {
  os << "{at_ms " << f.at_ms << ", kind " << f.kind << ", pop " << f.pop << ", end "
     << f.end << ", both_ways " << f.both_ways << ", duration_ms " << f.duration_ms
     << "}";
}

void showValue(const raw_load& l, std::ostream& os) {
  os << "{kind " << l.kind << ", bytes " << l.bytes << ", start_ms " << l.start_ms
     << "}";
}

} // namespace

RC_GTEST_PROP(patch_panel, sessions_survive_pop_faults_and_stay_isolated, ()) {
  auto pops = *rc::gen::inRange<uint32_t>(2, 4);
  auto faults = *rc::gen::resize(
    6, rc::gen::container<std::vector<raw_fault>>(rc::gen::build<raw_fault>(
         rc::gen::set(&raw_fault::at_ms, rc::gen::inRange<uint32_t>(0, 20000)),
         rc::gen::set(&raw_fault::kind, rc::gen::inRange(0, 4)),
         rc::gen::set(&raw_fault::pop, rc::gen::inRange(0, 3)),
         rc::gen::set(&raw_fault::end, rc::gen::inRange(0, 2)),
         rc::gen::set(&raw_fault::both_ways, rc::gen::arbitrary<bool>()),
         rc::gen::set(&raw_fault::duration_ms, rc::gen::inRange<uint32_t>(0, 8000)))));
  auto loads = *rc::gen::resize(
    5, rc::gen::nonEmpty(rc::gen::container<std::vector<raw_load>>(
         rc::gen::build<raw_load>(
           rc::gen::set(&raw_load::kind, rc::gen::inRange(0, 4)),
           rc::gen::set(&raw_load::bytes, rc::gen::inRange<uint32_t>(1, 3'000'000)),
           rc::gen::set(&raw_load::start_ms, rc::gen::inRange<uint32_t>(0, 20000))))));
  auto seed = *rc::gen::inRange<uint64_t>(0, 1'000'000);

  scenario_spec s;
  s.name = "random-patch-panel";
  for (uint32_t i = 0; i < pops; ++i)
    s.pops.push_back({"pop" + std::to_string(i + 1), "r" + std::to_string(i % 2)});
  s.services = {{"db", "service secret", 8000, false, {"sam"}}};
  s.agents = {{"joe", "db", pops, {}, ""}};
  s.principals = {{"sam", "sams secret", {}, false}, {"eve", "eves secret", {}, false}};
  s.clients = {{"sam-laptop", "db", "sam", "", 2, {}, 6000},
               {"eve-laptop", "db", "eve", "", 2, {}, 6000}};
  s.default_link.latency_us = 1000;
  s.default_link.jitter_us = 400;
  s.default_link.bandwidth_bytes_per_s = 50'000'000;
  for (auto& l : loads) {
    workload_spec w;
    w.service = "db";
    w.via = "sam-laptop";
    w.kind = static_cast<workload_kind>(l.kind);
    w.count = 2;
    w.start_us = 2'000'000 + uint64_t{l.start_ms} * 1000;
    w.spacing_us = 300'000;
    w.bytes = l.bytes;
    w.rounds = 4;
    s.workload.push_back(w);
  }
  workload_spec intruder;
  intruder.service = "db";
  intruder.via = "eve-laptop";
  intruder.count = 2;
  intruder.start_us = 3'000'000;
  s.workload.push_back(intruder);
  const char* ends[] = {"joe", "sam-laptop"};
  for (auto& f : faults) {
    fault_spec fs;
    fs.at_us = 2'500'000 + uint64_t{f.at_ms} * 1000;
    fs.a = s.pops[f.pop % pops].name;
    switch (f.kind) {
      case 0: fs.kind = fault_kind::crash; break;
      case 1: fs.kind = fault_kind::crash_silent; break;
      case 2: fs.kind = fault_kind::drain; break;
      default:
        // Shorter than the resume timeout: the session must ride it out.
        fs.kind = fault_kind::partition;
        fs.b = fs.a;
        fs.a = ends[f.end];
        fs.both_ways = f.both_ways;
        fs.duration_us = 500'000 + uint64_t{f.duration_ms} * 1000;
        break;
    }
    s.faults.push_back(fs);
  }
  std::stable_sort(s.faults.begin(), s.faults.end(),
                   [](auto& x, auto& y) { return x.at_us < y.at_us; });
  // Every fault heals at 35 s; liveness is checked after the quiet period.
  for (auto& p : s.pops)
    s.faults.push_back({35'000'000, fault_kind::restart, p.name});
  s.duration_us = 90'000'000;
  s.quiet_us = 20'000'000;
  s.drain_grace_ms = 5000;
  s.resume_timeout_ms = 30000;
  RC_ASSERT(validate(s).empty());
  run_options opts;
  opts.keep_trace = std::getenv("DRTP_SIM_TRACE") != nullptr;
  auto r = run_scenario(s, seed, opts);
  for (auto& line : r.trace)
    std::printf("%s\n", line.c_str());
  RC_CLASSIFY(r.sessions_failed > 2, "sessions ended by faults");
  if (!r.ok())
    RC_LOG() << summarize(r);
  RC_ASSERT(r.ok());
}
