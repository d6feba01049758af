// Scenario files: units, the round trip to_yaml -> parse, one clear line for
// every malformed file, the library in scenarios/, and the sweep schedules.

#include <gtest/gtest.h>

#include <filesystem>
#include <regex>

#include "sim/scenario_file.hpp"

using namespace drtp::sim;

namespace {

/// Every field the engine reads, compared one by one.
void expect_same(const scenario_spec& a, const scenario_spec& b) {
  EXPECT_EQ(a.name, b.name);
  EXPECT_EQ(a.duration_us, b.duration_us);
  EXPECT_EQ(a.quiet_us, b.quiet_us);
  EXPECT_EQ(a.drain_grace_ms, b.drain_grace_ms);
  EXPECT_EQ(a.resume_timeout_ms, b.resume_timeout_ms);
  EXPECT_EQ(a.limits.heartbeat_interval_ms, b.limits.heartbeat_interval_ms);
  EXPECT_EQ(a.limits.heartbeat_misses_max, b.limits.heartbeat_misses_max);
  EXPECT_EQ(a.limits.handshake_timeout_ms, b.limits.handshake_timeout_ms);
  EXPECT_EQ(a.limits.connect_timeout_ms, b.limits.connect_timeout_ms);
  EXPECT_EQ(a.limits.window_bytes, b.limits.window_bytes);
  EXPECT_EQ(a.limits.streams_per_tunnel_max, b.limits.streams_per_tunnel_max);
  auto same_link = [](const link_params& x, const link_params& y) {
    EXPECT_EQ(x.latency_us, y.latency_us);
    EXPECT_EQ(x.jitter_us, y.jitter_us);
    EXPECT_EQ(x.bandwidth_bytes_per_s, y.bandwidth_bytes_per_s);
    EXPECT_EQ(x.loss, y.loss);
  };
  same_link(a.default_link, b.default_link);
  ASSERT_EQ(a.links.size(), b.links.size());
  for (size_t i = 0; i < a.links.size(); ++i) {
    EXPECT_EQ(a.links[i].a, b.links[i].a);
    EXPECT_EQ(a.links[i].b, b.links[i].b);
    same_link(a.links[i].p, b.links[i].p);
  }
  ASSERT_EQ(a.pops.size(), b.pops.size());
  for (size_t i = 0; i < a.pops.size(); ++i) {
    EXPECT_EQ(a.pops[i].name, b.pops[i].name);
    EXPECT_EQ(a.pops[i].region, b.pops[i].region);
    EXPECT_EQ(a.pops[i].control, b.pops[i].control);
  }
  EXPECT_EQ(a.control.name, b.control.name);
  ASSERT_EQ(a.services.size(), b.services.size());
  for (size_t i = 0; i < a.services.size(); ++i) {
    EXPECT_EQ(a.services[i].name, b.services[i].name);
    EXPECT_EQ(a.services[i].secret, b.services[i].secret);
    EXPECT_EQ(a.services[i].public_port, b.services[i].public_port);
    EXPECT_EQ(a.services[i].is_public, b.services[i].is_public);
    EXPECT_EQ(a.services[i].allow, b.services[i].allow);
    EXPECT_EQ(a.services[i].registered, b.services[i].registered);
  }
  ASSERT_EQ(a.principals.size(), b.principals.size());
  for (size_t i = 0; i < a.principals.size(); ++i) {
    EXPECT_EQ(a.principals[i].name, b.principals[i].name);
    EXPECT_EQ(a.principals[i].secret, b.principals[i].secret);
    EXPECT_EQ(a.principals[i].groups, b.principals[i].groups);
    EXPECT_EQ(a.principals[i].revoked, b.principals[i].revoked);
  }
  ASSERT_EQ(a.clients.size(), b.clients.size());
  for (size_t i = 0; i < a.clients.size(); ++i) {
    EXPECT_EQ(a.clients[i].name, b.clients[i].name);
    EXPECT_EQ(a.clients[i].service, b.clients[i].service);
    EXPECT_EQ(a.clients[i].principal, b.clients[i].principal);
    EXPECT_EQ(a.clients[i].secret, b.clients[i].secret);
    EXPECT_EQ(a.clients[i].tunnels, b.clients[i].tunnels);
    EXPECT_EQ(a.clients[i].pops, b.clients[i].pops);
    EXPECT_EQ(a.clients[i].listen_port, b.clients[i].listen_port);
  }
  ASSERT_EQ(a.agents.size(), b.agents.size());
  for (size_t i = 0; i < a.agents.size(); ++i) {
    EXPECT_EQ(a.agents[i].name, b.agents[i].name);
    EXPECT_EQ(a.agents[i].service, b.agents[i].service);
    EXPECT_EQ(a.agents[i].control, b.agents[i].control);
    EXPECT_EQ(a.agents[i].tunnels, b.agents[i].tunnels);
    EXPECT_EQ(a.agents[i].pops, b.agents[i].pops);
    EXPECT_EQ(a.agents[i].secret, b.agents[i].secret);
  }
  ASSERT_EQ(a.workload.size(), b.workload.size());
  for (size_t i = 0; i < a.workload.size(); ++i) {
    auto& x = a.workload[i];
    auto& y = b.workload[i];
    EXPECT_EQ(x.service, y.service);
    EXPECT_EQ(x.kind, y.kind);
    EXPECT_EQ(x.count, y.count);
    EXPECT_EQ(x.start_us, y.start_us);
    EXPECT_EQ(x.spacing_us, y.spacing_us);
    EXPECT_EQ(x.bytes, y.bytes);
    EXPECT_EQ(x.rounds, y.rounds);
    EXPECT_EQ(x.pop, y.pop);
    EXPECT_EQ(x.via, y.via);
  }
  ASSERT_EQ(a.faults.size(), b.faults.size());
  for (size_t i = 0; i < a.faults.size(); ++i) {
    auto& x = a.faults[i];
    auto& y = b.faults[i];
    EXPECT_EQ(x.at_us, y.at_us) << "fault " << i;
    EXPECT_EQ(x.kind, y.kind) << "fault " << i;
    EXPECT_EQ(x.a, y.a) << "fault " << i;
    EXPECT_EQ(x.b, y.b) << "fault " << i;
    if (!x.b.empty()) { // the direction only matters between two hosts
      EXPECT_EQ(x.both_ways, y.both_ways) << "fault " << i;
    }
    EXPECT_EQ(x.duration_us, y.duration_us) << "fault " << i;
    EXPECT_EQ(x.latency_us, y.latency_us) << "fault " << i;
    EXPECT_EQ(x.loss, y.loss) << "fault " << i;
    EXPECT_EQ(x.rate, y.rate) << "fault " << i;
  }
  ASSERT_EQ(a.expectations.size(), b.expectations.size());
  for (size_t i = 0; i < a.expectations.size(); ++i) {
    EXPECT_EQ(a.expectations[i].kind, b.expectations[i].kind);
    EXPECT_EQ(a.expectations[i].value, b.expectations[i].value);
    EXPECT_EQ(a.expectations[i].fault, b.expectations[i].fault);
  }
}

// Built field by field, not by aggregate braces: the spec structs grow.
pop_spec pop(const std::string& name, const std::string& region) {
  pop_spec p;
  p.name = name;
  p.region = region;
  return p;
}

service_spec service(const std::string& name, const std::string& secret, uint16_t port) {
  service_spec s;
  s.name = name;
  s.secret = secret;
  s.public_port = port;
  return s;
}

agent_spec agent(const std::string& name, const std::string& svc, uint32_t k,
                 std::vector<std::string> pops, const std::string& secret) {
  agent_spec a;
  a.name = name;
  a.service = svc;
  a.tunnels = k;
  a.pops = std::move(pops);
  a.secret = secret;
  return a;
}

principal_spec principal(const std::string& name, const std::string& secret,
                         std::vector<std::string> groups, bool revoked) {
  principal_spec p;
  p.name = name;
  p.secret = secret;
  p.groups = std::move(groups);
  p.revoked = revoked;
  return p;
}

client_spec client(const std::string& name, const std::string& svc,
                   const std::string& principal_name, const std::string& secret,
                   uint32_t k, std::vector<std::string> pops, uint16_t listen_port) {
  client_spec c;
  c.name = name;
  c.service = svc;
  c.principal = principal_name;
  c.secret = secret;
  c.tunnels = k;
  c.pops = std::move(pops);
  c.listen_port = listen_port;
  return c;
}

link_params link(uint32_t latency_us, uint32_t jitter_us, uint64_t bandwidth, double loss) {
  link_params p;
  p.latency_us = latency_us;
  p.jitter_us = jitter_us;
  p.bandwidth_bytes_per_s = bandwidth;
  p.loss = loss;
  return p;
}

link_spec link_between(const std::string& a, const std::string& b, link_params p) {
  link_spec l;
  l.a = a;
  l.b = b;
  l.p = p;
  return l;
}

workload_spec load(const std::string& svc, workload_kind kind, uint32_t count,
                   uint64_t start_us, uint64_t spacing_us, uint64_t bytes, uint32_t rounds,
                   const std::string& pop) {
  workload_spec w;
  w.service = svc;
  w.kind = kind;
  w.count = count;
  w.start_us = start_us;
  w.spacing_us = spacing_us;
  w.bytes = bytes;
  w.rounds = rounds;
  w.pop = pop;
  return w;
}

fault_spec fault(uint64_t at_us, fault_kind kind, const std::string& a,
                 const std::string& b = "", bool both_ways = true, uint64_t duration_us = 0,
                 uint32_t latency_us = 0, double loss = 0) {
  fault_spec f;
  f.at_us = at_us;
  f.kind = kind;
  f.a = a;
  f.b = b;
  f.both_ways = both_ways;
  f.duration_us = duration_us;
  f.latency_us = latency_us;
  f.loss = loss;
  return f;
}

expectation_spec expect(expectation_kind kind, uint64_t value, size_t fault_index) {
  expectation_spec e;
  e.kind = kind;
  e.value = value;
  e.fault = fault_index;
  return e;
}

/// A spec that uses every field, with values that are awkward to spell.
scenario_spec everything() {
  scenario_spec s;
  s.name = "every-field";
  s.duration_us = 61'500'001;
  s.quiet_us = 90'000'000;
  s.drain_grace_ms = 1234;
  s.resume_timeout_ms = 4321;
  s.limits.heartbeat_interval_ms = 750;
  s.limits.heartbeat_misses_max = 4;
  s.limits.handshake_timeout_ms = 9000;
  s.limits.connect_timeout_ms = 60000;
  s.limits.window_bytes = 65536 + 3;
  s.limits.streams_per_tunnel_max = 77;
  s.default_link = link(1500, 333, 100 * 1024 * 1024, 0.001);
  s.pops = {pop("pop1", "eu"), pop("pop2", "us"), pop("pop3", "")};
  s.services = {service("pg", "it's a \"secret\": yes", 5432), service("web", "", 8080),
                service("true", "null", 8081), service("vault", "v", 8082)};
  s.services[0].allow = {"sam", "group:partners"}; // public and patch panel
  s.services[3].is_public = false;                 // patch panel only
  s.services[3].allow = {"group:ops", "no"};
  s.principals = {principal("sam", "sam's \"key\"", {}, false),
                  principal("no", "", {"partners", "ops"}, false),
                  principal("old", "yes", {"ops"}, true)};
  s.clients = {client("sam-laptop", "pg", "sam", "", 3, {"pop1", "pop3"}, 6543),
               client("guess", "vault", "no", "wrong: #2", 1, {}, 1),
               client("old-box", "vault", "old", "", 2, {}, 6000)};
  s.agents = {agent("joe", "pg", 2, {"pop1", "pop2"}, ""), agent("ann", "web", 3, {}, ""),
              agent("mallory", "pg", 1, {}, "wrong #1")};
  s.links = {link_between("joe", "pop1", link(40000, 0, 0, 0.1)),
             link_between("visitors", "pop2", link(123, 7, 2'000'001, 1.0 / 3))};
  s.workload = {
    load("pg", workload_kind::request_response, 100, 2'000'000, 200'000, 4096, 5, ""),
    load("web", workload_kind::download, 3, 1'500'000, 0, 1'000'000, 1, "pop2"),
    load("pg", workload_kind::upload, 0, 0, 1, 1, 1, ""),
    load("true", workload_kind::echo, 1, 999, 0, 1 << 20, 1, "pop3"),
    load("pg", workload_kind::request_response, 4, 3'000'000, 100'000, 3 << 20, 2, ""),
    load("vault", workload_kind::echo, 2, 4'000'000, 0, 10, 1, "")};
  s.workload[4].via = "sam-laptop";
  s.workload[5].via = "guess";
  s.faults = {
    fault(20'000'000, fault_kind::crash, "pop1"),
    fault(20'000'000, fault_kind::crash_silent, "ann", "", true, 3'000'000),
    fault(21'000'001, fault_kind::restart, "pop1"),
    fault(22'000'000, fault_kind::drain, "pop2"),
    fault(30'000'000, fault_kind::partition, "joe", "pop2", false, 5'000'000),
    fault(31'000'000, fault_kind::partition, "visitors", "pop3"),
    fault(32'000'000, fault_kind::heal, "visitors", "pop3"),
    fault(33'000'000, fault_kind::latency_spike, "joe", "pop1", true, 2'500'000, 200'000),
    fault(34'000'000, fault_kind::loss_burst, "ann", "pop3", false, 1'000'000, 0, 0.2),
    fault(35'000'000, fault_kind::crash, "sam-laptop"),
    fault(36'000'000, fault_kind::partition, "guess", "pop2", true, 1'000'000),
    fault(37'000'000, fault_kind::restart, "sam-laptop"),
    fault(38'000'000, fault_kind::clock_skew, "joe", "", true, 4'000'000),
  };
  s.faults.back().rate = 1.25;
  s.expectations = {expect(expectation_kind::sessions_failed_max, 7, 0),
                    expect(expectation_kind::tunnels_restored_within, 5'000'000, 0),
                    expect(expectation_kind::reachable_within, 1500, 8)};
  return s;
}

/// The message for `text`; fails the test if it parses.
std::string error_of(const std::string& text) {
  try {
    parse_scenario(text, "bad.yaml");
  } catch (const scenario_error& e) {
    std::string msg = e.what();
    EXPECT_EQ(msg.find('\n'), std::string::npos) << "one line: " << msg;
    return msg;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "not a scenario_error: " << e.what();
    return "";
  }
  ADD_FAILURE() << "parsed, but should not:\n" << text;
  return "";
}

const char* const minimal = R"(name: small
pops:
  - {name: pop1, region: eu}
  - {name: pop2, region: us}
services:
  - {name: pg, secret: s, public_port: 5432}
agents:
  - {name: joe, service: pg, tunnels: 2}
workload:
  - {service: pg, kind: echo, count: 3, start: 1s, every: 100ms, bytes: 4KiB}
faults:
  - {at: 5s, crash: pop1}
  - {at: 9s, restart: pop1}
expect:
  - {sessions_failed_max: 0}
)";

/// `minimal` with line `line` (1-based) replaced.
std::string with_line(int line, const std::string& replacement) {
  std::istringstream in{minimal};
  std::string out, l;
  for (int i = 1; std::getline(in, l); ++i)
    out += (i == line ? replacement : l) + "\n";
  return out;
}

const char* const panel = R"(name: panel
pops:
  - {name: pop1}
principals:
  - {name: sam, secret: s1, groups: [partners]}
services:
  - {name: pg, public: false, allow: [sam, group:partners]}
agents:
  - {name: joe, service: pg}
clients:
  - {name: sam-laptop, service: pg, principal: sam, tunnels: 1}
workload:
  - {via: sam-laptop, count: 2}
resume_timeout: 10s
)";

/// `panel` with line `line` (1-based) replaced.
std::string panel_with_line(int line, const std::string& replacement) {
  std::istringstream in{panel};
  std::string out, l;
  for (int i = 1; std::getline(in, l); ++i)
    out += (i == line ? replacement : l) + "\n";
  return out;
}

} // namespace

TEST(scenario_file, durations_and_sizes) {
  uint64_t v = 0;
  std::string why;
  for (auto [text, us] : std::vector<std::pair<const char*, uint64_t>>{
         {"250ms", 250'000}, {"3s", 3'000'000}, {"1.5s", 1'500'000}, {"2m", 120'000'000},
         {"500us", 500}, {"0", 0}, {"1.1s", 1'100'000}, {"0.001ms", 1}, {" 7s ", 7'000'000},
         {"1h", 3'600'000'000ull}}) {
    EXPECT_TRUE(parse_duration_us(text, v, why)) << text << ": " << why;
    EXPECT_EQ(v, us) << text;
  }
  for (auto text : {"", "3", "-1s", "1.5", "2 parsecs", "1.0001ms", "s", "1e3ms", "1..5s",
                    "99999999999999999999s"})
    EXPECT_FALSE(parse_duration_us(text, v, why)) << text;
  for (auto [text, bytes] : std::vector<std::pair<const char*, uint64_t>>{
         {"1000", 1000}, {"64KiB", 65536}, {"1MiB", 1 << 20}, {"1.5MB", 1'500'000},
         {"2GiB", 2ull << 30}, {"10B", 10}, {"0.5KiB", 512}}) {
    EXPECT_TRUE(parse_size_bytes(text, v, why)) << text << ": " << why;
    EXPECT_EQ(v, bytes) << text;
  }
  for (auto text : {"", "-1", "1.5", "3 apples", "1KiBB", "0.1KiB"})
    EXPECT_FALSE(parse_size_bytes(text, v, why)) << text;
  for (uint64_t us : {0ull, 1ull, 999ull, 1000ull, 1'500'000ull, 60'000'000ull,
                      61'000'000ull, 123'456'789ull}) {
    ASSERT_TRUE(parse_duration_us(format_duration(us), v, why)) << format_duration(us);
    EXPECT_EQ(v, us);
  }
  for (uint64_t b : {0ull, 1ull, 1024ull, 1025ull, 1ull << 20, 3ull << 30})
    ASSERT_TRUE(parse_size_bytes(format_size(b), v, why) && v == b) << format_size(b);
}

TEST(scenario_file, round_trip) {
  auto s = everything();
  ASSERT_EQ(validate(s), "");
  auto text = to_yaml(s);
  scenario_spec back;
  try {
    back = parse_scenario(text, "round-trip.yaml");
  } catch (const scenario_error& e) {
    FAIL() << e.what() << "\n" << text;
  }
  expect_same(s, back);
  EXPECT_EQ(to_yaml(back), text);
  // And the defaults: a spec nobody touched.
  scenario_spec d;
  d.pops = {pop("p", "")};
  d.services = {service("svc", "secret", 8000)};
  expect_same(d, parse_scenario(to_yaml(d), "defaults.yaml"));
}

TEST(scenario_file, defaults_match_the_engine) {
  auto s = parse_scenario("pops: [{name: p}]\nservices: [{name: svc}]\n", "d.yaml");
  scenario_spec d;
  d.pops = {pop("p", "")};
  d.services = {service("svc", "secret", 8000)};
  expect_same(d, s);
}

TEST(scenario_file, malformed_files_get_one_line_with_file_line_and_key) {
  ASSERT_NO_THROW(parse_scenario(minimal, "ok.yaml"));
  struct bad_case {
    std::string text;
    std::string expect; // regex
  };
  std::vector<bad_case> cases = {
    // unknown key, at the top and inside an item
    {std::string(minimal) + "colour: blue\n", R"(^bad\.yaml:16: key 'colour': unknown key)"},
    {with_line(3, "  - {name: pop1, regoin: eu}"), R"(^bad\.yaml:3: key 'regoin': unknown key)"},
    // wrong types
    {with_line(8, "  - {name: joe, service: pg, tunnels: two}"),
     R"(^bad\.yaml:8: key 'tunnels': must be a whole number)"},
    {with_line(8, "  - {name: joe, service: pg, tunnels: [2]}"),
     R"(^bad\.yaml:8: key 'tunnels': must be a whole number)"},
    {"pops: pop1\nservices: [{name: pg}]\n", R"(^bad\.yaml:1: key 'pops': must be a list)"},
    {with_line(6, "  - just-a-name"), R"(^bad\.yaml:6: key 'services': a service must be a map)"},
    // negative numbers and out of range
    {with_line(10, "  - {service: pg, kind: echo, count: -3}"),
     R"(^bad\.yaml:10: key 'count': .*negative)"},
    {with_line(8, "  - {name: joe, service: pg, tunnels: 9}"),
     R"(^bad\.yaml:8: key 'tunnels': must be between 1 and 3)"},
    // bad durations and sizes
    {with_line(12, "  - {at: 5 parsecs, crash: pop1}"),
     R"(^bad\.yaml:12: key 'at': bad duration '5 parsecs')"},
    {with_line(12, "  - {at: 5, crash: pop1}"), R"(^bad\.yaml:12: key 'at': duration '5' needs a unit)"},
    {with_line(10, "  - {service: pg, bytes: lots}"), R"(^bad\.yaml:10: key 'bytes': bad size 'lots')"},
    // unknown references
    {with_line(12, "  - {at: 5s, crash: pop9}"), R"(^bad\.yaml:12: key 'crash': unknown host 'pop9')"},
    {with_line(12, "  - {at: 5s, partition: [joe, pop9]}"),
     R"(^bad\.yaml:12: key 'partition': unknown host 'pop9')"},
    {with_line(12, "  - {at: 5s, drain: joe}"), R"(^bad\.yaml:12: key 'drain': 'joe' is not a POP)"},
    {with_line(8, "  - {name: joe, service: mysql}"), R"(^bad\.yaml:8: key 'service': unknown service 'mysql')"},
    {with_line(8, "  - {name: joe, service: pg, pops: [pop1, pop7]}"),
     R"(^bad\.yaml:8: key 'pops': unknown POP 'pop7')"},
    {with_line(10, "  - {service: pg, pop: pop7}"), R"(^bad\.yaml:10: key 'pop': unknown POP 'pop7')"},
    // missing keys
    {with_line(12, "  - {crash: pop1}"), R"(^bad\.yaml:12: key 'at': missing)"},
    {with_line(12, "  - {at: 5s}"), R"(^bad\.yaml:12: a fault needs one of crash)"},
    {with_line(8, "  - {service: pg}"), R"(^bad\.yaml:8: key 'name': missing)"},
    {std::string(minimal) + "  - {tunnels_restored_within: 5s}\n",
     R"(^bad\.yaml:16: key 'after_fault': missing)"},
    // faults
    {with_line(12, "  - {at: 5s, crash: pop1, drain: pop2}"),
     R"(^bad\.yaml:12: key '(crash|drain)': a fault has one kind)"},
    {with_line(12, "  - {at: 5s, crash: pop1, one_way: true}"), R"(^bad\.yaml:12: key 'one_way': only for partition)"},
    {with_line(12, "  - {at: 5s, latency_spike: [joe, pop1]}"),
     R"(^bad\.yaml:12: key 'latency': missing)"},
    {with_line(12, "  - {at: 5s, loss_burst: [joe, pop1], loss: 1.5}"),
     R"(^bad\.yaml:12: key 'loss': must be between 0 and 1)"},
    {with_line(12, "  - {at: 10s, crash: pop1}"), R"(^bad\.yaml:13: key 'at': faults must be listed in time order)"},
    {with_line(12, "  - {at: 5s, clock_skew: pop1}"), R"(^bad\.yaml:12: key 'rate': missing)"},
    {with_line(12, "  - {at: 5s, clock_skew: pop1, rate: 7}"), R"(^bad\.yaml:12: key 'rate': must be between 0\.5 and 2)"},
    {with_line(12, "  - {at: 5s, clock_skew: pop1, rate: fast}"), R"(^bad\.yaml:12: key 'rate': must be a number)"},
    {with_line(12, "  - {at: 5s, crash: pop1, rate: 1.1}"), R"(^bad\.yaml:12: key 'rate': only for clock_skew)"},
    {std::string(minimal) + "clock_skew: {pop1: 2s}\n", R"(^bad\.yaml:16: key 'clock_skew': unknown key in the scenario)"},
    {std::string(minimal) + "  - {sessions_failed_max: 1, after_fault: 0}\n",
     R"(^bad\.yaml:16: key 'after_fault': only for)"},
    {std::string(minimal) + "  - {reachable_within: 2s, after_fault: 5}\n",
     R"(^bad\.yaml:16: key 'after_fault': must be between 0 and 1)"},
    // names
    {with_line(3, "  - {name: pop2, region: eu}"), R"(^bad\.yaml:4: key 'name': 'pop2' is used twice)"},
    {with_line(3, "  - {name: visitors}"), R"(^bad\.yaml:3: key 'name': 'visitors' is the host)"},
    {with_line(3, "  - {name: \"pop 1\"}"), R"(^bad\.yaml:3: key 'name': 'pop 1' is not a name)"},
    {with_line(1, "name: small\nname: again"), R"(^bad\.yaml:2: key 'name': given twice)"},
    {with_line(6, "  - {name: pg, public_port: 70000}"), R"(^bad\.yaml:6: key 'public_port': must be between)"},
    // not YAML at all, or not a scenario
    {"pops: [\n", R"(^bad\.yaml:\d+: )"},
    {"", R"(^bad\.yaml(:\d+)?: the scenario is empty)"},
    {"- 1\n- 2\n", R"(^bad\.yaml:1: the scenario must be a map)"},
    {"services: [{name: pg}]\n", R"(^bad\.yaml:1: key 'pops': missing)"},
    {"pops: []\nservices: [{name: pg}]\n", R"(^bad\.yaml:1: key 'pops': a scenario needs at least one POP)"},
  };
  for (auto& c : cases) {
    auto msg = error_of(c.text);
    EXPECT_TRUE(std::regex_search(msg, std::regex{c.expect}))
      << "message: " << msg << "\nwanted:  " << c.expect << "\nfor:\n" << c.text;
  }
}

TEST(scenario_file, patch_panel_keys) {
  auto s = parse_scenario(std::string(panel) + "faults:\n"
                                               "  - {at: 5s, crash: sam-laptop}\n"
                                               "  - {at: 6s, partition: [sam-laptop, pop1]}\n"
                                               "  - {at: 7s, restart: sam-laptop}\n",
                          "panel.yaml");
  EXPECT_EQ(s.resume_timeout_ms, 10000u);
  ASSERT_EQ(s.services.size(), 1u);
  EXPECT_FALSE(s.services[0].is_public);
  EXPECT_EQ(s.services[0].allow, (std::vector<std::string>{"sam", "group:partners"}));
  ASSERT_EQ(s.principals.size(), 1u);
  EXPECT_EQ(s.principals[0].secret, "s1");
  EXPECT_EQ(s.principals[0].groups, std::vector<std::string>{"partners"});
  EXPECT_FALSE(s.principals[0].revoked);
  ASSERT_EQ(s.clients.size(), 1u);
  EXPECT_EQ(s.clients[0].principal, "sam");
  EXPECT_EQ(s.clients[0].tunnels, 1u);
  EXPECT_EQ(s.clients[0].listen_port, 6000u); // the engine's default
  EXPECT_EQ(s.clients[0].secret, "");
  ASSERT_EQ(s.workload.size(), 1u);
  EXPECT_EQ(s.workload[0].via, "sam-laptop");
  EXPECT_EQ(s.workload[0].service, "pg") << "a via workload calls the client's service";
  ASSERT_EQ(s.faults.size(), 3u);
  EXPECT_EQ(s.faults[0].a, "sam-laptop");

  std::vector<std::pair<std::string, std::string>> cases = {
    {panel_with_line(7, "  - {name: pg, allow: [sam, mallory]}"),
     R"(^bad\.yaml:7: key 'allow': unknown principal 'mallory')"},
    {panel_with_line(7, "  - {name: pg, allow: [\"group:staff\"]}"),
     R"(^bad\.yaml:7: key 'allow': no principal is in group 'staff')"},
    {panel_with_line(7, "  - {name: pg, allow: [\"group:\"]}"),
     R"(^bad\.yaml:7: key 'allow': '' is not a group name)"},
    {panel_with_line(7, "  - {name: pg, allow: [sam, sam]}"),
     R"(^bad\.yaml:7: key 'allow': 'sam' is listed twice)"},
    {panel_with_line(7, "  - {name: pg, allow: sam}"), R"(^bad\.yaml:7: key 'allow': must be a list)"},
    {panel_with_line(7, "  - {name: pg, public: maybe}"),
     R"(^bad\.yaml:7: key 'public': must be true or false)"},
    {panel_with_line(7, "  - {name: pg, private: true}"),
     R"(^bad\.yaml:7: key 'private': unknown key in a service)"},
    {panel_with_line(5, "  - {name: sam, revoked: perhaps}"),
     R"(^bad\.yaml:5: key 'revoked': must be true or false)"},
    {panel_with_line(5, "  - {name: sam, groups: partners}"),
     R"(^bad\.yaml:5: key 'groups': must be a list)"},
    {panel_with_line(5, "  - {name: sam, groups: [partners, partners]}"),
     R"(^bad\.yaml:5: key 'groups': group 'partners' is listed twice)"},
    {panel_with_line(5, "  - {secret: s1}"), R"(^bad\.yaml:5: key 'name': missing)"},
    {panel_with_line(5, "  - {name: sam, groups: [partners]}\n  - {name: sam}"),
     R"(^bad\.yaml:6: key 'name': principal 'sam' is listed twice)"},
    {panel_with_line(11, "  - {name: sam-laptop, service: pg, principal: eve}"),
     R"(^bad\.yaml:11: key 'principal': unknown principal 'eve')"},
    {panel_with_line(11, "  - {name: sam-laptop, service: pg}"),
     R"(^bad\.yaml:11: key 'principal': missing)"},
    {panel_with_line(11, "  - {name: sam-laptop, service: mysql, principal: sam}"),
     R"(^bad\.yaml:11: key 'service': unknown service 'mysql')"},
    {panel_with_line(11, "  - {name: sam-laptop, service: pg, principal: sam, tunnels: 4}"),
     R"(^bad\.yaml:11: key 'tunnels': must be between 1 and 3)"},
    {panel_with_line(11, "  - {name: sam-laptop, service: pg, principal: sam, pops: [pop9]}"),
     R"(^bad\.yaml:11: key 'pops': unknown POP 'pop9')"},
    {panel_with_line(11, "  - {name: sam-laptop, service: pg, principal: sam, listen_port: 0}"),
     R"(^bad\.yaml:11: key 'listen_port': must be between 1 and 65535)"},
    {panel_with_line(11, "  - {name: sam-laptop, service: pg, principal: sam, secret: \"\"}"),
     R"(^bad\.yaml:11: key 'secret': must not be empty)"},
    {panel_with_line(11, "  - {name: joe, service: pg, principal: sam}"),
     R"(^bad\.yaml:11: key 'name': 'joe' is used twice)"},
    {panel_with_line(13, "  - {via: eve-laptop}"), R"(^bad\.yaml:13: key 'via': unknown client 'eve-laptop')"},
    {panel_with_line(13, "  - {via: sam-laptop, pop: pop1}"),
     R"(^bad\.yaml:13: key 'pop': .*not both)"},
    {panel_with_line(13, "  - {via: sam-laptop, service: web}"),
     R"(^bad\.yaml:13: key 'service': client 'sam-laptop' connects to service 'pg', not 'web')"},
    {panel_with_line(13, "  - {count: 2}"), R"(^bad\.yaml:13: key 'service': missing)"},
    {panel_with_line(14, "resume_timeout: 0"), R"(^bad\.yaml:14: key 'resume_timeout': must be at least 1ms)"},
    {panel_with_line(14, "resume_timeout: 1500us"),
     R"(^bad\.yaml:14: key 'resume_timeout': must be whole milliseconds)"},
    {std::string(panel) + "faults:\n  - {at: 5s, drain: sam-laptop}\n",
     R"(^bad\.yaml:16: key 'drain': 'sam-laptop' is not a POP)"},
    {std::string(panel) + "faults:\n  - {at: 5s, crash: eve-laptop}\n",
     R"(^bad\.yaml:16: key 'crash': unknown host 'eve-laptop' \(a POP, an agent or a client\))"},
  };
  for (auto& [text, expect] : cases) {
    auto msg = error_of(text);
    EXPECT_TRUE(std::regex_search(msg, std::regex{expect}))
      << "message: " << msg << "\nwanted:  " << expect << "\nfor:\n" << text;
  }
}

TEST(scenario_file, missing_file_is_one_line) {
  try {
    load_scenario("/nonexistent/dir/x.yaml");
    FAIL();
  } catch (const scenario_error& e) {
    EXPECT_STREQ(e.what(), "/nonexistent/dir/x.yaml: cannot read the scenario file");
  }
}

TEST(scenario_file, never_crashes_on_garbage) {
  // Every prefix of a valid file, and a few byte flips: an error or a spec,
  // never anything else.
  std::string text = to_yaml(everything());
  for (size_t n = 0; n < text.size(); n += 7) {
    try {
      parse_scenario(text.substr(0, n), "prefix.yaml");
    } catch (const scenario_error&) {
    }
  }
  uint64_t x = 42;
  for (int i = 0; i < 300; ++i) {
    auto t = text;
    for (int k = 0; k < 3; ++k) {
      x = x * 6364136223846793005ull + 1442695040888963407ull;
      t[(x >> 33) % t.size()] = "{}[]:,-#\"' \n0a"[(x >> 20) % 14];
    }
    try {
      parse_scenario(t, "flipped.yaml");
    } catch (const scenario_error& e) {
      EXPECT_EQ(std::string(e.what()).rfind("flipped.yaml", 0), 0u) << e.what();
    }
  }
}

TEST(scenario_file, every_library_scenario_loads_and_validates) {
  namespace fs = std::filesystem;
  size_t n = 0;
  for (auto& entry : fs::directory_iterator{fs::path{DRTP_SOURCE_DIR} / "scenarios"}) {
    if (entry.path().extension() != ".yaml")
      continue;
    ++n;
    SCOPED_TRACE(entry.path().string());
    scenario_spec s;
    try {
      s = load_scenario(entry.path().string());
    } catch (const scenario_error& e) {
      FAIL() << e.what();
    }
    EXPECT_EQ(validate(s), "");
    EXPECT_EQ(s.name, entry.path().stem().string()) << "name matches the file";
    expect_same(s, parse_scenario(to_yaml(s), "again.yaml"));
  }
  EXPECT_GE(n, 13u);
}

TEST(scenario_file, sweep_variants_keep_the_fault_budget) {
  auto s = load_scenario(std::string(DRTP_SOURCE_DIR) + "/scenarios/pop-crash.yaml");
  auto same = sweep_variant(s, 0);
  expect_same(s, same);
  bool moved = false, rerouted = false;
  for (uint64_t v = 1; v <= 200; ++v) {
    auto x = sweep_variant(s, v);
    expect_same(sweep_variant(s, v), x); // a function of the variant alone
    ASSERT_EQ(x.faults.size(), s.faults.size());
    ASSERT_EQ(validate(x), "");
    uint64_t prev = 0;
    for (size_t i = 0; i < x.faults.size(); ++i) {
      auto& f = x.faults[i];
      EXPECT_EQ(f.kind, s.faults[i].kind);
      EXPECT_GE(f.at_us, prev) << "order kept";
      prev = f.at_us;
      moved = moved || f.at_us != s.faults[i].at_us;
      rerouted = rerouted || f.a != s.faults[i].a || f.b != s.faults[i].b;
    }
    // 20 s between the crash (t=20 s) and t=0 / the restart (t=30 s).
    EXPECT_GE(x.faults[0].at_us, 10'000'000u);
    EXPECT_LE(x.faults[0].at_us, 25'000'000u);
    // The restart brings back the POP that crashed.
    EXPECT_EQ(x.faults[1].a, x.faults[0].a);
    // The partition still cuts joe from a POP.
    EXPECT_EQ(x.faults[2].a, "joe");
  }
  EXPECT_TRUE(moved);
  EXPECT_TRUE(rerouted);
  // A heal follows its partition.
  auto p = load_scenario(std::string(DRTP_SOURCE_DIR) + "/scenarios/partition-both-ways.yaml");
  for (uint64_t v = 1; v <= 100; ++v) {
    auto x = sweep_variant(p, v);
    EXPECT_EQ(x.faults[1].a, x.faults[0].a);
    EXPECT_EQ(x.faults[1].b, x.faults[0].b);
  }
}

TEST(scenario_file, control_plane_keys) {
  auto text = "control: {name: cp}\n"
              "pops: [{name: p1, control: true}, {name: p2}]\n"
              "services: [{name: a, public_port: 8001}, {name: b, public_port: 8002, "
              "registered: false}]\n"
              "agents: [{name: joe, service: a, control: true}]\n"
              "faults:\n"
              "  - {at: 1s, crash: cp}\n"
              "  - {at: 2s, restart: cp}\n"
              "  - {at: 3s, partition: [cp, p1], one_way: true, for: 1s}\n"
              "  - {at: 4s, create_service: b}\n"
              "  - {at: 5s, delete_service: a}\n";
  auto s = parse_scenario(text, "cp.yaml");
  EXPECT_EQ(s.control.name, "cp");
  EXPECT_TRUE(s.pops[0].control);
  EXPECT_FALSE(s.pops[1].control);
  EXPECT_FALSE(s.services[1].registered);
  EXPECT_TRUE(s.agents[0].control);
  ASSERT_EQ(s.faults.size(), 5u);
  EXPECT_EQ(s.faults[3].kind, fault_kind::create_service);
  EXPECT_EQ(s.faults[4].kind, fault_kind::delete_service);
  EXPECT_EQ(s.faults[4].a, "a");
  expect_same(s, parse_scenario(to_yaml(s), "again.yaml"));
  auto error_of = [](const std::string& yaml) {
    try {
      parse_scenario(yaml, "bad.yaml");
    } catch (const scenario_error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  auto no_control = error_of("pops: [{name: p1, control: true}]\nservices: [{name: a}]\n");
  EXPECT_NE(no_control.find("key 'control'"), std::string::npos) << no_control;
  auto unknown = error_of("control: {name: cp}\npops: [{name: p1}]\nservices: [{name: a}]\n"
                          "faults: [{at: 1s, delete_service: zz}]\n");
  EXPECT_NE(unknown.find("unknown service 'zz'"), std::string::npos) << unknown;
  auto twice = error_of("control: {name: p1}\npops: [{name: p1}]\nservices: [{name: a}]\n");
  EXPECT_NE(twice.find("used twice"), std::string::npos) << twice;
}

TEST(scenario_file, control_plane_crash_runs_and_passes_in_process) {
  auto s = load_scenario(std::string(DRTP_SOURCE_DIR) + "/scenarios/control-plane-crash.yaml");
  auto r = run_scenario(s, 1);
  EXPECT_TRUE(r.ok()) << summarize(r);
  EXPECT_EQ(r.sessions_failed, 0u) << summarize(r);
}

TEST(scenario_file, pop_crash_runs_and_passes_in_process) {
  auto s = load_scenario(std::string(DRTP_SOURCE_DIR) + "/scenarios/pop-crash.yaml");
  auto r = run_scenario(s, 1);
  EXPECT_TRUE(r.ok()) << summarize(r);
  EXPECT_EQ(r.sessions, 100u);
  EXPECT_EQ(r.faults.size(), 3u);
}
