// The metrics registry (net/seam/metrics) and what is checked against its
// catalogue: the exposition format it writes, the label-set cap, the
// naming conventions, the README's metric list, and the Grafana dashboard
// (docs/grafana/drtp-dashboard.json: it parses, and every metric it queries
// exists). And the metrics endpoint in the simulator: a simulated POP's
// /metrics scraped through the seam.

#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <sstream>

#include "actors/http_client.hpp"
#include "actors/http_server.hpp"
#include "caf/all.hpp"
#include "actors/metrics_endpoint.hpp"
#include "net/seam/metrics.hpp"

using drtp::net::metric;
using drtp::net::metric_catalog;
using drtp::net::metric_kind;
using drtp::net::metrics;

namespace {

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

/// The value of `series` (name and labels, as written) in an exposition;
/// -1 if it is not there.
double value_of(const std::string& text, const std::string& series) {
  auto at = text.find("\n" + series + " ");
  if (at == std::string::npos)
    return -1;
  return std::strtod(text.c_str() + at + series.size() + 2, nullptr);
}

bool has_line(const std::string& text, const std::string& line) {
  return text.find("\n" + line + "\n") != std::string::npos
         || text.rfind(line + "\n", 0) == 0;
}

} // namespace

TEST(metrics, renders_counters_gauges_and_histograms_in_the_exposition_format) {
  metrics m;
  m.counter(metric::sessions_opened_total, {"pg", "public"}).add(3);
  m.gauge(metric::sessions_active, {"pg", "public"}).add(2);
  m.gauge(metric::sessions_active, {"pg", "public"}).add(-1);
  auto& h = m.histogram(metric::tunnel_rtt_seconds, {"pg", "pop-a"});
  h.observe_us(80);      // <= 100 us
  h.observe_us(300);     // <= 500 us
  h.observe_us(90000000); // past the last bound: +Inf only
  m.counter(metric::service_bytes_total, {"we\"ird\\name\n", "public", "to_service"}).add(1);
  auto text = m.render();
  EXPECT_TRUE(has_line(text, "# TYPE drtp_sessions_opened_total counter")) << text;
  EXPECT_TRUE(has_line(text, "drtp_sessions_opened_total{service=\"pg\",path=\"public\"} 3"));
  EXPECT_TRUE(has_line(text, "drtp_sessions_active{service=\"pg\",path=\"public\"} 1"));
  EXPECT_TRUE(has_line(
    text, "drtp_tunnel_rtt_seconds_bucket{service=\"pg\",pop=\"pop-a\",le=\"0.000100\"} 1"));
  EXPECT_TRUE(has_line(
    text, "drtp_tunnel_rtt_seconds_bucket{service=\"pg\",pop=\"pop-a\",le=\"0.000250\"} 1"));
  EXPECT_TRUE(has_line(
    text, "drtp_tunnel_rtt_seconds_bucket{service=\"pg\",pop=\"pop-a\",le=\"0.000500\"} 2"));
  EXPECT_TRUE(has_line(
    text, "drtp_tunnel_rtt_seconds_bucket{service=\"pg\",pop=\"pop-a\",le=\"60.000000\"} 2"));
  EXPECT_TRUE(
    has_line(text, "drtp_tunnel_rtt_seconds_bucket{service=\"pg\",pop=\"pop-a\",le=\"+Inf\"} 3"));
  EXPECT_TRUE(has_line(text, "drtp_tunnel_rtt_seconds_sum{service=\"pg\",pop=\"pop-a\"} 90.000380"));
  EXPECT_TRUE(has_line(text, "drtp_tunnel_rtt_seconds_count{service=\"pg\",pop=\"pop-a\"} 3"));
  // Escaped: a label value cannot end the line or the quotes.
  EXPECT_TRUE(has_line(text, "drtp_service_bytes_total{service=\"we\\\"ird\\\\name\\n\",path="
                             "\"public\",direction=\"to_service\"} 1"))
    << text;
  // A family without labels shows 0 before anything happened.
  EXPECT_TRUE(has_line(text, "drtp_log_lines_dropped_total 0"));
  EXPECT_EQ(m.peek(metric::sessions_opened_total, {"pg", "public"}), 3);
  EXPECT_EQ(m.peek(metric::sessions_opened_total, {"pg", "nope"}), -1);
}

TEST(metrics, label_sets_are_capped_per_family) {
  metrics m;
  for (size_t i = 0; i < metrics::label_sets_per_family_max + 100; ++i)
    m.counter(metric::resumes_total, {"svc" + std::to_string(i)}).add();
  auto text = m.render();
  size_t series = 0;
  for (size_t at = 0; (at = text.find("\ndrtp_patch_panel_resumes_total{", at)) != std::string::npos;
       ++at)
    ++series;
  EXPECT_EQ(series, metrics::label_sets_per_family_max + 1); // the cap, plus _overflow
  EXPECT_TRUE(has_line(text, "drtp_patch_panel_resumes_total{service=\"_overflow\"} 100"));
  EXPECT_TRUE(has_line(text, "drtp_metric_label_sets_overflow_total 100"));
  // A long value is cut, not stored whole.
  m.counter(metric::tunnel_failovers_total, {std::string(10000, 'x')}).add();
  EXPECT_EQ(m.peek(metric::tunnel_failovers_total,
                   {std::string(metrics::label_value_bytes_max, 'x')}),
            1);
}

TEST(metrics, the_catalogue_follows_prometheus_conventions) {
  std::set<std::string> names;
  const std::regex name_re("[a-z_][a-z0-9_]*");
  for (size_t i = 0; i < metric_catalog().size(); ++i) {
    auto& spec = metric_catalog()[i];
    std::string name = spec.name;
    EXPECT_EQ(static_cast<size_t>(spec.id), i);
    EXPECT_TRUE(names.insert(name).second) << name << " twice";
    EXPECT_TRUE(std::regex_match(name, name_re)) << name;
    EXPECT_EQ(name.rfind("drtp_", 0), 0u) << name;
    bool total = name.size() > 6 && name.compare(name.size() - 6, 6, "_total") == 0;
    EXPECT_EQ(total, spec.kind == metric_kind::counter) << name;
    if (spec.kind == metric_kind::histogram) {
      EXPECT_EQ(name.compare(name.size() - 8, 8, "_seconds"), 0) << name;
    }
    EXPECT_GT(std::string(spec.help).size(), 10u) << name;
    for (auto* l : spec.labels) {
      EXPECT_TRUE(std::regex_match(std::string(l), name_re)) << name << " " << l;
      // Never a visitor's address: labels come from bounded sets.
      EXPECT_NE(std::string(l).find("addr"), 0u) << name;
      EXPECT_NE(std::string(l), "peer") << name;
      EXPECT_NE(std::string(l), "le") << name;
    }
  }
}

TEST(metrics, the_readme_lists_every_metric) {
  auto readme = read_file(std::string(DRTP_SOURCE_DIR) + "/README.md");
  ASSERT_FALSE(readme.empty());
  for (auto& spec : metric_catalog())
    EXPECT_NE(readme.find(std::string("`") + spec.name + "`"), std::string::npos)
      << spec.name << " is not in the README's metric list";
}

TEST(metrics, the_grafana_dashboard_parses_and_queries_only_metrics_that_exist) {
  auto text = read_file(std::string(DRTP_SOURCE_DIR) + "/docs/grafana/drtp-dashboard.json");
  auto j = nlohmann::json::parse(text, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << "docs/grafana/drtp-dashboard.json is not JSON";
  std::set<std::string> known = {"process_cpu_seconds_total", "process_resident_memory_bytes",
                                 "process_virtual_memory_bytes", "process_open_fds",
                                 "process_max_fds", "process_start_time_seconds"};
  for (auto& spec : metric_catalog()) {
    known.insert(spec.name);
    if (spec.kind == metric_kind::histogram)
      for (auto* suffix : {"_bucket", "_sum", "_count"})
        known.insert(std::string(spec.name) + suffix);
  }
  const std::regex metric_re("\\b(drtp_[a-z0-9_]+|process_[a-z0-9_]+)\\b");
  size_t exprs = 0;
  std::set<std::string> used;
  for (auto& panel : j["panels"]) {
    ASSERT_TRUE(panel.contains("targets")) << panel.dump();
    for (auto& t : panel["targets"]) {
      auto expr = t["expr"].get<std::string>();
      ++exprs;
      for (std::sregex_iterator it(expr.begin(), expr.end(), metric_re), end; it != end; ++it) {
        auto name = (*it)[1].str();
        EXPECT_TRUE(known.count(name)) << "the dashboard queries " << name
                                       << ", which no DRTP process exports";
        used.insert(name);
      }
    }
  }
  EXPECT_GE(exprs, 10u);
  EXPECT_GE(used.size(), 15u);
}

// -- in the simulator --------------------------------------------------------------

#include "net/wire/handshake.hpp"
#include "sim/rig.hpp"
#include "sim/scenario.hpp"

namespace {

constexpr uint16_t tunnel_port = 7000;
constexpr uint16_t public_port = 8000;
constexpr uint16_t service_port = 5432;
constexpr uint16_t metrics_port = 9464;

struct sim_metrics : drtp::sim::rig {
  sim_metrics() : rig(17) {
    auto& w = d.net();
    drtp::sim::link_params link;
    link.latency_us = 1000;
    w.set_default_link(link);
    for (auto h : {"pop", "agent", "visitors", "ops"})
      w.add_host(h);
    drtp::sim::spawn_app_service(d.sys(), w.io("agent"), service_port, 0x5a);
    drtp::pop_params pp;
    pp.e = make_env("pop", 1);
    pp.tunnel_port = tunnel_port;
    pp.services.push_back(service("echo", "the secret", public_port));
    auto pop = spawn_pop_server(d.sys(), std::move(pp));
    w.register_actor("pop", pop);
    endpoint("pop", pop, 2);
    auto ap = agent("agent", "echo", "the secret",
                    {drtp::pop_endpoint{"pop", "pop", tunnel_port, "eu"}}, service_port, 3);
    ap.tunnels_target = 1;
    auto a = spawn_agent(d.sys(), std::move(ap));
    w.register_actor("agent", a);
    endpoint("agent", a, 4);
    d.run_for(2'000'000);
  }

  void endpoint(const std::string& host, caf::actor probe, uint64_t salt) {
    drtp::metrics_endpoint_params mp;
    mp.e = make_env(host, salt);
    mp.host = host;
    mp.port = metrics_port;
    mp.probe = std::move(probe);
    d.net().register_actor(host, spawn_metrics_endpoint(d.sys(), std::move(mp)));
  }

  drtp::sim::fetch_result get(const std::string& host, const std::string& target) {
    drtp::http_client_params cp;
    cp.e = make_env("ops", ++salt_);
    cp.host = host;
    cp.port = metrics_port;
    auto client = spawn_http_client(d.sys(), cp);
    auto r = fetch(client, drtp::http_fetch{"GET", target, {}, ""}, 5'000'000);
    caf::anon_send_exit(client, caf::exit_reason::user_shutdown);
    return *r;
  }

  uint64_t salt_ = 100;
};

} // namespace

TEST(sim_metrics, a_simulated_pop_and_agent_are_scraped_through_the_seam) {
  sim_metrics s;
  uint64_t back = 0;
  for (uint64_t i = 0; i < 3; ++i) {
    auto v = s.visit("visitors", "pop", public_port, 20000, 40 + i, 0x5a);
    s.d.run_until([&] { return v->done; }, 10'000'000);
    ASSERT_TRUE(v->done && v->ok);
    back += v->bytes_back;
  }
  EXPECT_EQ(back, 60000u);
  s.d.run_for(1'000'000);
  auto pop = s.get("pop", "/metrics");
  ASSERT_TRUE(pop.done) << pop.error;
  EXPECT_EQ(pop.resp.status, 200);
  auto& text = pop.resp.body;
  EXPECT_TRUE(has_line(text, "drtp_pop_tunnels_up{service=\"echo\",kind=\"agent\"} 1")) << text;
  EXPECT_TRUE(has_line(text, "drtp_sessions_opened_total{service=\"echo\",path=\"public\"} 3"));
  EXPECT_TRUE(has_line(
    text, "drtp_sessions_closed_total{service=\"echo\",path=\"public\",reason=\"done\"} 3"));
  // Toward the service: the payload plus the simulated visitor's small
  // header (which names the seed and the service it means to reach).
  auto to_service = value_of(
    text, "drtp_service_bytes_total{service=\"echo\",path=\"public\",direction=\"to_service\"}");
  EXPECT_GE(to_service, 60000);
  EXPECT_LE(to_service, 60000 + 3 * 64);
  EXPECT_TRUE(has_line(
    text,
    "drtp_service_bytes_total{service=\"echo\",path=\"public\",direction=\"from_service\"} "
    "60000"));
  EXPECT_TRUE(has_line(text, "drtp_pop_logins_total{kind=\"agent\",result=\"ok\"} 1"));
  // The agent's own view: its tunnel, the same bytes, heartbeat RTTs.
  auto agent = s.get("agent", "/metrics");
  ASSERT_TRUE(agent.done) << agent.error;
  EXPECT_TRUE(has_line(agent.resp.body, "drtp_tunnels_up{service=\"echo\",pop=\"pop\"} 1"))
    << agent.resp.body;
  EXPECT_TRUE(has_line(
    agent.resp.body,
    "drtp_service_bytes_total{service=\"echo\",path=\"public\",direction=\"from_service\"} "
    "60000"));
  EXPECT_NE(agent.resp.body.find("drtp_tunnel_rtt_seconds_count{service=\"echo\",pop=\"pop\"}"),
            std::string::npos);
  // Health and the sessions' JSON, from the simulated processes.
  auto ready = s.get("agent", "/readyz");
  EXPECT_EQ(ready.resp.status, 200) << ready.resp.body;
  auto js = s.get("pop", "/debug/sessions");
  EXPECT_NE(js.resp.body.find("\"agent\":"), std::string::npos) << js.resp.body;
  // The agent loses its POP: not ready any more, a failover counted.
  s.d.net().crash("pop", drtp::sim::crash_mode::silent);
  s.d.run_for(5'000'000);
  auto down = s.get("agent", "/readyz");
  EXPECT_EQ(down.resp.status, 503) << down.resp.body;
  EXPECT_NE(down.resp.body.find("0 of 1 tunnel(s) up"), std::string::npos) << down.resp.body;
  auto agent_stats = s.make_env("agent", 0).stats;
  EXPECT_EQ(agent_stats->peek(metric::tunnel_failovers_total, {"echo"}), 1);
  EXPECT_EQ(agent_stats->peek(metric::tunnels_up, {"echo", "pop"}), 0);
}

// -- a patch-panel session's path, seen from its three hosts ----------------------

namespace {

struct sim_path : drtp::sim::rig {
  sim_path() : rig(23) {
    auto& w = d.net();
    drtp::sim::link_params link;
    link.latency_us = 1000;
    w.set_default_link(link);
    for (auto h : {"pop-a", "pop-b", "agent", "sam"})
      w.add_host(h);
    drtp::sim::spawn_app_service(d.sys(), w.io("agent"), service_port, 0x5a);
    std::vector<drtp::pop_endpoint> pops;
    for (auto name : {"pop-a", "pop-b"}) {
      drtp::pop_params pp;
      pp.e = make_env(name, 1);
      pp.tunnel_port = tunnel_port;
      auto sc = service("echo", "the secret", public_port);
      sc.allow = {"sam"};
      pp.services.push_back(sc);
      pp.principals.push_back(principal("sam", "sam's secret"));
      auto pop = spawn_pop_server(d.sys(), std::move(pp));
      w.register_actor(name, pop);
      pops.push_back(drtp::pop_endpoint{name, name, tunnel_port, "eu"});
    }
    auto ap = agent("agent", "echo", "the secret", pops, service_port, 3);
    ap.tunnels_target = 2;
    w.register_actor("agent", spawn_agent(d.sys(), std::move(ap)));
    auto cp = agent("sam", "echo", "the secret", pops, 0, 5);
    cp.agent_id = "sam";
    cp.signing_key = drtp::sim::cached_login_key("sam's secret", drtp::net::principal_salt("sam")).seed;
    cp.client = true;
    cp.tunnels_target = 2;
    cp.listen_host = "sam";
    cp.listen_port = 6000;
    w.register_actor("sam", spawn_agent(d.sys(), std::move(cp)));
    d.run_for(3'000'000);
  }

  /// The one session `host` lists.
  nlohmann::json session_at(const std::string& host) {
    auto table = make_env(host, 0).sessions;
    auto list = nlohmann::json::parse(table->json(drtp::net::host_clock{}.unix_ms(d.sys().clock()), 10));
    return list.size() == 1 ? list[0] : nlohmann::json{};
  }
};

} // namespace

TEST(sim_session_path, both_ends_and_the_pops_show_one_session_and_its_move) {
  sim_path s;
  auto v = s.visit("sam", "sam", 6000, 1000, 9, 0x5a, drtp::sim::workload_kind::request_response,
                   4000);
  ASSERT_TRUE(s.d.run_until([&] { return !s.session_at("sam").is_null()
                                         && !s.session_at("agent").is_null(); }, 3'000'000));
  s.d.run_for(5'000'000); // a few telemetry ticks
  auto c = s.session_at("sam");
  auto e = s.session_at("agent");
  ASSERT_FALSE(c["pop"].is_null()) << c.dump();
  auto first = c["pop"].get<std::string>();
  auto other = first == "pop-a" ? std::string("pop-b") : std::string("pop-a");
  // One id at the client end, the serve end and the POP that splices it.
  EXPECT_EQ(c["role"], "connect");
  EXPECT_EQ(e["role"], "serve");
  EXPECT_EQ(c["id"], e["id"]);
  EXPECT_EQ(c["id"].get<std::string>().size(), 32u);
  auto at_pop = s.session_at(first);
  EXPECT_EQ(at_pop["id"], c["id"]) << at_pop.dump();
  EXPECT_EQ(at_pop["principal"], "sam");
  EXPECT_EQ(at_pop["agent"], "joe");
  EXPECT_TRUE(s.session_at(other).is_null());
  EXPECT_EQ(e["pop"], first);
  // Each end knows its own hop's round trip, and the other's from telemetry.
  ASSERT_FALSE(c["rtt"].is_null()) << c.dump();
  EXPECT_GE(c["rtt"]["p50_us"].get<uint64_t>(), 2000u); // 1 ms each way
  ASSERT_TRUE(c.contains("peer")) << c.dump();
  EXPECT_EQ(c["peer"]["pop"], first);
  EXPECT_GE(c["peer"]["rtt"]["p50_us"].get<uint64_t>(), 2000u);
  EXPECT_GT(c["peer"]["sent_bytes"].get<uint64_t>(), 0u);
  ASSERT_TRUE(e.contains("peer")) << e.dump();
  // The carrying POP dies: the session moves, and all three say where.
  s.d.net().crash(first, drtp::sim::crash_mode::silent);
  ASSERT_TRUE(s.d.run_until([&] { return s.session_at("sam")["resumes"] == 1; }, 15'000'000))
    << s.session_at("sam").dump();
  s.d.run_for(5'000'000);
  c = s.session_at("sam");
  e = s.session_at("agent");
  EXPECT_FALSE(v->done) << "the session is still running";
  ASSERT_EQ(c["hops"].size(), 2u) << c.dump();
  EXPECT_EQ(c["hops"][0]["pop"], first);
  EXPECT_EQ(c["hops"][1]["pop"], other);
  EXPECT_GT(c["hops"][1]["stall_ms"].get<uint64_t>(), 0u);
  EXPECT_EQ(c["pop"], other);
  ASSERT_EQ(e["hops"].size(), 2u) << e.dump();
  EXPECT_EQ(e["hops"][1]["pop"], other);
  EXPECT_EQ(e["resumes"], 1);
  EXPECT_EQ(c["peer"]["resumes"], 1) << c.dump();
  EXPECT_EQ(c["peer"]["pop"], other);
  EXPECT_EQ(s.session_at(other)["id"], c["id"]);
  ASSERT_TRUE(s.d.run_until([&] { return v->done; }, 120'000'000));
  EXPECT_TRUE(v->ok) << v->error;
  s.d.run_for(1'000'000);
  EXPECT_TRUE(s.session_at("sam").is_null()) << "a finished session leaves the table";
  EXPECT_TRUE(s.session_at("agent").is_null());
}
