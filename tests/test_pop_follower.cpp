// A POP follows the registry (control/pop_follower) in the simulator: the
// registry over a memory store behind an http_server on host "control",
// the operator's http_client on "ops", a POP (pop_server + follower) on
// "pop1", an agent and its service on "joe", visitors on "visitors". The
// POP registers and is ready; a created public service's listener opens
// within 1 s of sim time (printed); a deleted one's closes and its agent
// gets goaway; a rotated key refuses the old one; with the control plane
// cut off the POP serves on, also after a restart from its snapshot; healed,
// it converges. The same seed gives the same trace. A drain marks the POP
// draining in the registry (not ready, out of bootstraps) before its
// listeners close, and waits at most ~1 s on a control plane that is cut
// off; a public port held by another program is one line, and the POP
// serves the rest (and tries the port again on the next change).

#include <gtest/gtest.h>

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "actors/agent.hpp"
#include "actors/http_client.hpp"
#include "actors/http_server.hpp"
#include "actors/messages.hpp"
#include "actors/pop_server.hpp"
#include "caf/all.hpp"
#include "control/auth.hpp"
#include "control/memory_store.hpp"
#include "control/pop_follower.hpp"
#include "control/registry.hpp"
#include "control/resource.hpp"
#include "net/wire/handshake.hpp"
#include "sim/apps.hpp"
#include "sim/rig.hpp"
#include "sim/scenario.hpp"

using namespace drtp;
using namespace drtp::control;
using json = nlohmann::json;

namespace {

constexpr uint16_t tunnel_port = 7000;
constexpr uint16_t control_port = 8443;
constexpr uint16_t service_port = 5432;
constexpr uint64_t step_us = 10'000'000;

struct follower_world : sim::rig {
  explicit follower_world(uint64_t seed) : rig(seed) {
    auto& w = d.net();
    sim::link_params link;
    link.latency_us = 2000;
    link.jitter_us = 500;
    w.set_default_link(link);
    for (auto h : {"control", "ops", "pop1", "joe", "visitors"})
      w.add_host(h);
    sim::spawn_app_service(d.sys(), w.io("joe"), service_port, 0x5a);
    start_control();
    http_client_params cp;
    cp.e = make_env("ops", 2);
    cp.host = "control";
    cp.port = control_port;
    cp.tls = std::make_shared<net::tls_client_config>();
    auto token = admin_token;
    cp.authorization = [token](const std::string&) { return "Bearer " + token; };
    ops = spawn_http_client(d.sys(), cp);
  }

  ~follower_world() {
    for (auto& a : {ops, follower, pop, agent_a, registry, store, server})
      if (a)
        caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
    d.run_for(100'000);
  }

  void start_control() {
    store = spawn_memory_store(d.sys(), memory_store_params{});
    registry_params p;
    p.e = make_env("control", 10 + ++incarnation);
    p.store = store;
    p.admin_token_digest = admin_token_digest(*crypto, admin_token);
    p.pop_public_key = fleet.public_key;
    p.lease_duration_s = 30;
    p.ca_seed = ca_seed;
    p.ca_cert_pem = ca_pem;
    registry = spawn_registry(d.sys(), std::move(p));
    http_server_params sp;
    sp.e = make_env("control", 20 + incarnation);
    sp.host = "control";
    sp.port = control_port;
    sp.tls = true;
    sp.handler = registry;
    server = spawn_http_server(d.sys(), sp);
    for (auto& a : {store, registry, server})
      d.net().register_actor("control", a);
    d.run_for(100'000);
  }

  /// The POP: its server from the config the follower starts from, then
  /// the follower.
  void start_pop() {
    pop_follower_params fp;
    fp.e = make_env("pop1", 30 + ++incarnation);
    fp.http.host = "control";
    fp.http.port = control_port;
    fp.http.tls = std::make_shared<net::tls_client_config>();
    fp.fleet_seed = fleet.seed;
    fp.name = "pop1";
    fp.spec.region = "eu";
    fp.spec.tunnel_host = "pop1";
    fp.spec.tunnel_port = tunnel_port;
    fp.spec.public_address = "pop1";
    fp.spec.pin = "sha256:" + std::string(64, 'a');
    fp.spec.capacity_tunnels = 100;
    fp.public_host = "pop1";
    fp.snapshot = *snapshot;
    auto snap = snapshot;
    auto writes = snapshot_writes;
    fp.persist = [snap, writes](const std::string& s) {
      *snap = s;
      ++*writes;
    };
    std::string err;
    auto initial = pop_follower_initial_config(fp, err);
    EXPECT_EQ(err, "");
    pop_params pp;
    pp.e = make_env("pop1", 40 + incarnation);
    pp.tunnel_host = "pop1";
    pp.tunnel_port = tunnel_port;
    pp.services = initial.services;
    pp.principals = initial.principals;
    pop = spawn_pop_server(d.sys(), std::move(pp));
    d.net().register_actor("pop1", pop);
    fp.pop = pop;
    follower = spawn_pop_follower(d.sys(), std::move(fp));
    d.net().register_actor("pop1", follower);
  }

  void start_agent(const std::string& secret) {
    auto ap = agent("joe", "a", secret, {pop_endpoint{"pop1", "pop1", tunnel_port, "eu"}},
                    service_port, 100 + ++incarnation);
    agent_a = spawn_agent(d.sys(), std::move(ap));
    d.net().register_actor("joe", agent_a);
  }

  std::shared_ptr<sim::fetch_result> op(const std::string& method, const std::string& rest,
                                        const std::string& body = "") {
    http::header_list h;
    if (!body.empty())
      h.emplace_back("Content-Type", "application/json");
    return fetch(ops, http_fetch{method, std::string(api_base) + "/" + rest, h, body}, step_us);
  }

  static std::string key_text(const std::string& service, const std::string& secret) {
    return public_key_text(sim::cached_login_key(secret, net::service_salt(service)).public_key);
  }

  static std::string connection_json(const std::string& name, const std::string& secret,
                                     uint16_t public_port, uint64_t rv = 0) {
    json j = {{"apiVersion", "drtp.dev/v1"},
              {"kind", "DRTPConnection"},
              {"metadata", {{"name", name}}},
              {"spec",
               {{"protocol", "tcp"},
                {"local", "joe:5432"},
                {"publicPort", public_port},
                {"publicKey", key_text(name, secret)}}}};
    if (rv)
      j["metadata"]["resourceVersion"] = std::to_string(rv);
    return j.dump();
  }

  /// Creates (or replaces) a service and waits for its listener; the
  /// change-to-listener time in us.
  uint64_t put_service(const std::string& name, const std::string& secret, uint16_t port) {
    auto before = trace_count("service '" + name + "' public on");
    auto t0 = d.now_us();
    auto r = op("PUT", "drtpconnections/" + name, connection_json(name, secret, port));
    EXPECT_TRUE(r->resp.status == 200 || r->resp.status == 201)
      << r->resp.status << " " << r->resp.body << r->error;
    EXPECT_TRUE(d.run_until(
      [&] { return trace_count("service '" + name + "' public on") > before; }, step_us));
    return d.now_us() - t0;
  }

  std::shared_ptr<sim::visitor_result> visit_port(uint16_t port, uint64_t seed) {
    auto r = visit("visitors", "pop1", port, 20000, seed, 0x5a);
    d.run_until([&] { return r->done; }, step_us);
    return r;
  }

  std::string admin_token = "admin-token-0123456789abcdef";
  // The enrollment CA (issue 15): its certificate reaches the POP.
  std::string ca_seed = std::string(net::seed_bytes, '\x0c');
  std::string ca_pem = crypto->make_ca_certificate(ca_seed, "drtp-control CA", 1767225600 - 86400,
                                                   int64_t{10} * 365 * 86400);
  net::login_key fleet = sim::cached_login_key("fleet-secret", pop_fleet_salt());
  caf::actor store, registry, server, ops, pop, follower, agent_a;
  std::shared_ptr<std::string> snapshot = std::make_shared<std::string>();
  std::shared_ptr<int> snapshot_writes = std::make_shared<int>(0);
  uint64_t incarnation = 0;
};

/// The whole story; the trace's hash.
uint64_t follow_the_registry(uint64_t seed, bool print) {
  follower_world s{seed};
  s.start_pop();

  // Registered and ready, by the registry's word.
  EXPECT_TRUE(s.d.run_until([&] { return s.trace_has("pop-follower: DRTPServer pop1 registered"); },
                            step_us));
  EXPECT_TRUE(s.d.run_until([&] { return s.trace_has("pop-follower: 0 service(s)"); }, step_us));
  auto me = json::parse(s.op("GET", "drtpservers/pop1")->resp.body);
  EXPECT_EQ(me["status"]["ready"], true) << me.dump();
  EXPECT_EQ(me["spec"]["tunnelAddress"], "pop1:7000");

  // A public service: its listener within 1 s, then an agent and a visitor.
  auto latency_us = s.put_service("a", "secret-a", 8001);
  if (print)
    std::printf("figure: service created -> public listener open in %.1f ms of sim time\n",
                latency_us / 1000.0);
  EXPECT_LT(latency_us, 1'000'000u);
  EXPECT_TRUE(s.trace_has("pop-follower: applied: +svc a"));
  s.start_agent("secret-a");
  EXPECT_TRUE(s.d.run_until([&] { return s.trace_has("tunnel up to POP pop1"); }, step_us));
  auto v1 = s.visit_port(8001, 1);
  EXPECT_TRUE(v1->ok) << v1->error;

  // The lease is renewed (30 s lease: every ~10 s) and the status says
  // what the POP holds.
  s.d.run_for(25'000'000);
  me = json::parse(s.op("GET", "drtpservers/pop1")->resp.body);
  EXPECT_EQ(me["status"]["ready"], true);
  EXPECT_GE(me["status"]["tunnels"], 1) << me.dump();
  EXPECT_EQ(me["status"]["services"], json({"a"}));

  // Another service comes and goes; a's sessions are untouched meanwhile.
  auto tunnels_up_before = s.trace_count("tunnel up to POP pop1");
  auto lb = s.put_service("b", "secret-b", 8002);
  if (print)
    std::printf("figure: second service's listener in %.1f ms\n", lb / 1000.0);
  EXPECT_EQ(s.op("DELETE", "drtpconnections/b")->resp.status, 200);
  EXPECT_TRUE(s.d.run_until([&] { return s.trace_has("applied: -svc b"); }, step_us));
  s.d.run_for(200'000);
  auto vb = s.visit_port(8002, 2);
  EXPECT_FALSE(vb->ok); // b's listener is closed
  EXPECT_EQ(s.trace_count("tunnel up to POP pop1"), tunnels_up_before);
  EXPECT_TRUE(s.visit_port(8001, 3)->ok);

  // Deleting a: its listener closes and its agent hears goaway.
  EXPECT_EQ(s.op("DELETE", "drtpconnections/a")->resp.status, 200);
  EXPECT_TRUE(s.d.run_until(
    [&] { return s.trace_has("service 'a' removed: goaway"); }, step_us));
  s.d.run_for(200'000);
  EXPECT_FALSE(s.visit_port(8001, 4)->ok);

  // a again, then a rotated key: the agent with the old secret is refused.
  s.put_service("a", "secret-a", 8001);
  caf::anon_send_exit(s.agent_a, caf::exit_reason::user_shutdown);
  s.start_agent("secret-a");
  EXPECT_TRUE(s.d.run_until(
    [&] { return s.visit_port(8001, 5)->ok; }, 30'000'000));
  auto refused_before = s.trace_count("for service 'a': wrong secret");
  auto got = json::parse(s.op("GET", "drtpconnections/a")->resp.body);
  got["spec"]["publicKey"] = follower_world::key_text("a", "secret-a2");
  EXPECT_EQ(s.op("PUT", "drtpconnections/a", got.dump())->resp.status, 200);
  EXPECT_TRUE(s.d.run_until([&] { return s.trace_has("applied: ~svc a"); }, step_us));
  EXPECT_TRUE(s.d.run_until(
    [&] { return s.trace_count("for service 'a': wrong secret") > refused_before; }, step_us));
  caf::anon_send_exit(s.agent_a, caf::exit_reason::user_shutdown);
  s.start_agent("secret-a2");
  EXPECT_TRUE(s.d.run_until([&] { return s.visit_port(8001, 6)->ok; }, 30'000'000));

  // The control plane cut off: the POP serves on.
  s.d.net().partition("pop1", "control", true);
  s.d.run_for(40'000'000); // past the lease, past watch silence
  EXPECT_TRUE(s.trace_has("pop-follower: renewing the lease"));
  EXPECT_TRUE(s.visit_port(8001, 7)->ok);
  // Meanwhile the operator adds c.
  EXPECT_EQ(s.op("PUT", "drtpconnections/c", follower_world::connection_json("c", "secret-c", 8003))
              ->resp.status,
            201);

  // The POP restarted while cut off: it serves a from its snapshot.
  EXPECT_NE(s.snapshot->find("\"a\""), std::string::npos);
  s.d.net().crash("pop1", sim::crash_mode::reset);
  s.d.run_for(1'000'000);
  s.d.net().restart("pop1");
  s.start_pop();
  EXPECT_TRUE(s.d.run_until([&] { return s.visit_port(8001, 8)->ok; }, 30'000'000));
  EXPECT_FALSE(s.visit_port(8003, 9)->ok);

  // Healed: it lists again and converges (c's listener opens).
  s.d.net().heal_all();
  EXPECT_TRUE(
    s.d.run_until([&] { return s.trace_has("service 'c' public on"); }, 30'000'000));
  EXPECT_TRUE(s.visit_port(8001, 10)->ok);

  // The control plane host crashes: the POP serves on.
  s.d.net().crash("control", sim::crash_mode::reset);
  s.d.run_for(20'000'000);
  EXPECT_TRUE(s.visit_port(8001, 11)->ok);
  if (print)
    std::printf("figure: %d snapshot writes, %zu follower trace lines\n", *s.snapshot_writes,
                s.trace_count("pop-follower"));
  return s.d.trace_hash();
}

} // namespace

TEST(pop_follower, follows_the_registry_and_serves_without_it) {
  follow_the_registry(7, true);
}

TEST(pop_follower, same_seed_same_trace) {
  EXPECT_EQ(follow_the_registry(11, false), follow_the_registry(11, false));
}

/// The registry's view of pop1 and what a bootstrap of `svc` lists.
struct registry_view_of_pop1 {
  bool ready = false;
  bool draining = false;
  bool bootstrap_lists_it = false;
};

registry_view_of_pop1 look(follower_world& s, const std::string& svc) {
  registry_view_of_pop1 v;
  auto me = json::parse(s.op("GET", "drtpservers/pop1")->resp.body, nullptr, false);
  v.ready = me.is_object() && me["status"]["ready"] == true;
  v.draining = me.is_object() && me["status"].value("draining", false);
  auto b = s.op("GET", "drtpconnections/" + svc + "/bootstrap?region=eu");
  EXPECT_EQ(b->resp.status, 200) << b->resp.body;
  auto bj = json::parse(b->resp.body, nullptr, false);
  if (bj.is_object() && bj["pops"].is_array())
    for (auto& p : bj["pops"])
      v.bootstrap_lists_it = v.bootstrap_lists_it || p.value("name", "") == "pop1";
  return v;
}

TEST(pop_follower, a_drain_tells_the_registry_before_the_listeners_close) {
  follower_world s{21};
  s.start_pop();
  ASSERT_TRUE(s.d.run_until([&] { return s.trace_has("pop-follower: 0 service(s)"); }, step_us));
  s.put_service("a", "secret-a", 8001);
  auto before = look(s, "a");
  EXPECT_TRUE(before.ready);
  EXPECT_TRUE(before.bootstrap_lists_it);

  auto t0 = s.d.now_us();
  caf::anon_send(s.pop, drain_atom::value);
  ASSERT_TRUE(s.d.run_until(
    [&] { return s.trace_has("draining: no new visitors or agents"); }, step_us));
  auto closed_us = s.d.now_us() - t0;
  EXPECT_TRUE(s.trace_has("DRTPServer pop1 marked draining in the registry"));
  auto after = look(s, "a");
  std::printf("figure: drain -> registry told and listeners closed in %.1f ms of sim time; "
              "ready %d -> %d, bootstrap lists it %d -> %d\n",
              closed_us / 1000.0, before.ready, after.ready, before.bootstrap_lists_it,
              after.bootstrap_lists_it);
  EXPECT_LE(closed_us, 1'100'000u); // the drain's bound on the control plane
  EXPECT_FALSE(after.ready);
  EXPECT_TRUE(after.draining);
  EXPECT_FALSE(after.bootstrap_lists_it);
}

TEST(pop_follower, a_drain_does_not_wait_on_a_control_plane_that_is_gone) {
  follower_world s{22};
  s.start_pop();
  ASSERT_TRUE(s.d.run_until([&] { return s.trace_has("pop-follower: 0 service(s)"); }, step_us));
  s.d.net().partition("pop1", "control", true);
  auto t0 = s.d.now_us();
  caf::anon_send(s.pop, drain_atom::value);
  ASSERT_TRUE(s.d.run_until(
    [&] { return s.trace_has("draining: no new visitors or agents"); }, step_us));
  auto closed_us = s.d.now_us() - t0;
  std::printf("figure: drain with the control plane cut off: listeners closed after %.1f ms "
              "of sim time\n",
              closed_us / 1000.0);
  EXPECT_LE(closed_us, 1'100'000u);
  EXPECT_TRUE(s.trace_has("not marked draining") || s.trace_has("did not answer in"));
}

TEST(pop_follower, a_taken_public_port_leaves_the_rest_serving) {
  follower_world s{23};
  // Another program holds pop1:8009.
  sim::spawn_app_service(s.d.sys(), s.d.net().io("pop1"), 8009, 0x11);
  for (auto& [name, port] : {std::pair<std::string, uint16_t>{"a", 8001}, {"t", 8009}})
    EXPECT_EQ(s.op("PUT", "drtpconnections/" + name,
                   follower_world::connection_json(name, "secret-" + name, port))
                ->resp.status,
              201);
  // The snapshot holds both: the POP starts with the taken port.
  json snap = {{"format", "drtp-pop-registry-v1"}, {"pop", "pop1"}, {"principals", json::array()}};
  snap["services"] = json::array();
  for (auto& [name, port] : {std::pair<std::string, uint16_t>{"a", 8001}, {"t", 8009}})
    snap["services"].push_back({{"name", name},
                                {"publicKey", follower_world::key_text(name, "secret-" + name)},
                                {"publicPort", port},
                                {"allow", json::array()}});
  *s.snapshot = snap.dump();
  s.start_pop();
  EXPECT_TRUE(s.d.run_until([&] { return s.trace_has("ready: tunnels on port"); }, step_us));
  EXPECT_TRUE(s.trace_has("service 't' has no public listener (port 8009)"));
  EXPECT_TRUE(s.d.run_until([&] { return s.trace_has("pop-follower: 2 service(s)"); }, step_us));
  s.start_agent("secret-a");
  EXPECT_TRUE(s.d.run_until([&] { return s.visit_port(8001, 1)->ok; }, 30'000'000));
  // t is served without its listener: its agent's tunnel is accepted.
  auto ups = s.trace_count("tunnel up to POP pop1");
  auto ap = s.agent("joe", "t", "secret-t", {pop_endpoint{"pop1", "pop1", tunnel_port, "eu"}},
                    service_port, 200);
  auto agent_t = spawn_agent(s.d.sys(), std::move(ap));
  s.d.net().register_actor("joe", agent_t);
  EXPECT_TRUE(s.d.run_until([&] { return s.trace_count("tunnel up to POP pop1") > ups; },
                            step_us));

  // A change later asks for the taken port too: one line, the rest serves
  // on, and t's port is tried again.
  auto t_tries = s.trace_count("service 't' has no public listener");
  EXPECT_EQ(s.op("PUT", "drtpconnections/c", follower_world::connection_json("c", "secret-c", 8009))
              ->resp.status,
            201);
  EXPECT_TRUE(s.d.run_until(
    [&] { return s.trace_has("service 'c' has no public listener (port 8009)"); }, step_us));
  EXPECT_TRUE(s.d.run_until(
    [&] { return s.trace_count("service 't' has no public listener") > t_tries; }, step_us));
  EXPECT_TRUE(s.visit_port(8001, 2)->ok);
  caf::anon_send_exit(agent_t, caf::exit_reason::user_shutdown);
  std::printf("figure: taken port 8009: %zu line(s) for t, %zu for c; a served throughout\n",
              s.trace_count("service 't' has no public listener"),
              s.trace_count("service 'c' has no public listener"));
}

TEST(pop_follower, a_bad_snapshot_starts_from_the_static_config) {
  pop_follower_params p;
  p.static_services.push_back(sim::rig::service("static", "s", 9000));
  p.snapshot = "{\"format\": \"something else\"}";
  std::string err;
  auto c = pop_follower_initial_config(p, err);
  EXPECT_NE(err, "");
  ASSERT_EQ(c.services.size(), 1u);
  EXPECT_EQ(c.services[0].name, "static");
  p.snapshot = "not json";
  err.clear();
  c = pop_follower_initial_config(p, err);
  EXPECT_NE(err, "");
}

namespace {

json find_named(const json& xs, const std::string& name) {
  for (auto& x : xs)
    if (x.value("name", "") == name)
      return x;
  return json();
}

} // namespace

/// Gateways and principals' orgs as the POP gets them: the public gateway's
/// port and allowCIDRs override the DRTPConnection's, allow gains every
/// gateway's principals and orgs; the snapshot keeps it, and loads again
/// (an older snapshot without the new keys too).
TEST(pop_follower, gateways_translate_into_the_service_config) {
  follower_world s{21};
  s.start_pop();
  ASSERT_TRUE(s.d.run_until([&] { return s.trace_has("pop-follower: 0 service(s)"); }, step_us));
  s.put_service("a", "secret-a", 8001);
  json sam = {{"apiVersion", "drtp.dev/v1"},
              {"kind", "Principal"},
              {"metadata", {{"name", "sam"}}},
              {"spec", {{"publicKey", follower_world::key_text("sam", "s")}, {"org", "acme"}}}};
  ASSERT_EQ(s.op("POST", "principals", sam.dump())->resp.status, 201);
  auto gw = [](const std::string& name, bool pub, uint16_t port, json extra) {
    json spec = {{"service", "a"}, {"type", pub ? "public" : "private"}};
    if (port)
      spec["port"] = port;
    spec.update(extra);
    return json{{"apiVersion", "drtp.dev/v1"},
                {"kind", "Gateway"},
                {"metadata", {{"name", name}}},
                {"spec", spec}}
      .dump();
  };
  auto before = s.trace_count("service 'a' public on");
  auto t0 = s.d.now_us();
  ASSERT_EQ(s.op("POST", "gateways",
                 gw("gw-a", true, 8101,
                    {{"allowCIDRs", {"10.0.0.0/8"}},
                     {"allowOrgs", {"acme"}},
                     {"allowPrincipals", {"bob"}},
                     {"endOpenSessions", true}}))
              ->resp.status,
            201);
  ASSERT_EQ(s.op("POST", "gateways", gw("gw-a-ops", false, 0, {{"allowPrincipals", {"group:ops"}}}))
              ->resp.status,
            201);
  ASSERT_TRUE(s.d.run_until(
    [&] { return s.trace_count("service 'a' public on") > before && s.snapshot->find("group:ops") != std::string::npos; },
    step_us));
  std::printf("figure: gateway created -> POP listens on its port in %.1f ms of sim time\n",
              (s.d.now_us() - t0) / 1000.0);
  auto snap = json::parse(*s.snapshot);
  auto a = find_named(snap["services"], "a");
  EXPECT_EQ(a["publicPort"], 8101) << a.dump();
  EXPECT_EQ(a["allowCidr"], json({"10.0.0.0/8"}));
  EXPECT_EQ(a["gateway"], "gw-a");
  EXPECT_EQ(a["endOpenSessions"], true);
  EXPECT_EQ(a["allow"], json({"bob", "org:acme", "group:ops"}));
  EXPECT_EQ(find_named(snap["principals"], "sam")["org"], "acme");

  // The snapshot loads again with the same fields.
  pop_follower_params fp;
  fp.snapshot = *s.snapshot;
  std::string err;
  auto cfg = pop_follower_initial_config(fp, err);
  EXPECT_EQ(err, "");
  ASSERT_EQ(cfg.services.size(), 1u);
  EXPECT_EQ(cfg.services[0].public_port, 8101);
  EXPECT_EQ(cfg.services[0].allow_cidr, std::vector<std::string>{"10.0.0.0/8"});
  EXPECT_EQ(cfg.services[0].gateway, "gw-a");
  EXPECT_TRUE(cfg.services[0].end_open_sessions);
  ASSERT_EQ(cfg.principals.size(), 1u);
  EXPECT_EQ(cfg.principals[0].org, "acme");
  // An older snapshot (no allowCidr, gateway, endOpenSessions, org) loads.
  auto old = snap;
  for (auto& x : old["services"])
    for (auto k : {"allowCidr", "gateway", "endOpenSessions"})
      x.erase(k);
  for (auto& x : old["principals"])
    x.erase("org");
  fp.snapshot = old.dump();
  cfg = pop_follower_initial_config(fp, err);
  EXPECT_EQ(err, "");
  ASSERT_EQ(cfg.services.size(), 1u);
  EXPECT_TRUE(cfg.services[0].allow_cidr.empty());

  // The public gateway deleted: the DRTPConnection's port again; the
  // private one without CIDRs admits any source.
  ASSERT_EQ(s.op("DELETE", "gateways/gw-a")->resp.status, 200);
  ASSERT_TRUE(s.d.run_until(
    [&] { return find_named(json::parse(*s.snapshot)["services"], "a")["publicPort"] == 8001; },
    step_us));
  a = find_named(json::parse(*s.snapshot)["services"], "a");
  EXPECT_EQ(a["gateway"], "gw-a-ops");
  EXPECT_FALSE(a.contains("allowCidr"));
  EXPECT_EQ(a["allow"], json({"group:ops"}));
  // A private gateway with CIDRs restricts sources (patch-panel clients).
  auto cur = json::parse(s.op("GET", "gateways/gw-a-ops")->resp.body);
  cur["spec"]["allowCIDRs"] = {"127.0.0.0/8", "::1/128"};
  ASSERT_EQ(s.op("PUT", "gateways/gw-a-ops", cur.dump())->resp.status, 200);
  ASSERT_TRUE(s.d.run_until(
    [&] { return find_named(json::parse(*s.snapshot)["services"], "a").contains("allowCidr"); },
    step_us));
  EXPECT_EQ(find_named(json::parse(*s.snapshot)["services"], "a")["allowCidr"],
            json({"127.0.0.0/8", "::1/128"}));
}

TEST(pop_follower, the_ca_and_revocations_reach_the_pop) {
  follower_world s{29};
  ASSERT_FALSE(s.ca_pem.empty());
  auto svc = json::parse(follower_world::connection_json("a", "secret-a", 8001));
  svc["spec"]["revokedSerials"] = json::array({"abc", "1f"});
  svc["spec"]["revokedBefore"] = "2026-01-01T00:00:10.000Z";
  EXPECT_EQ(s.op("PUT", "drtpconnections/a", svc.dump())->resp.status, 201);
  s.start_pop();
  ASSERT_TRUE(s.d.run_until([&] { return s.trace_has("pop-follower: 1 service(s)"); }, step_us));
  ASSERT_TRUE(s.d.run_until([&] { return !s.snapshot->empty(); }, step_us));
  // What the follower sent (pop_reconfigure) is what it persisted: read
  // it back as a restarted POP would.
  pop_follower_params p;
  p.public_host = "pop1";
  p.snapshot = *s.snapshot;
  std::string err;
  auto c = pop_follower_initial_config(p, err);
  EXPECT_EQ(err, "");
  EXPECT_EQ(c.client_ca_pem, s.ca_pem);
  ASSERT_EQ(c.services.size(), 1u);
  EXPECT_EQ(c.services[0].revoked_serials, (std::vector<std::string>{"abc", "1f"}));
  EXPECT_EQ(c.services[0].revoked_before_unix_s, 1767225610);
  // A revocation later reaches it through the watch.
  auto obj = json::parse(s.op("GET", "drtpconnections/a")->resp.body);
  obj["spec"]["revokedSerials"] = json::array({"abc", "1f", "2e"});
  EXPECT_EQ(s.op("PUT", "drtpconnections/a", obj.dump())->resp.status, 200);
  ASSERT_TRUE(s.d.run_until([&] { return s.snapshot->find("2e") != std::string::npos; },
                            step_us));
  p.snapshot = *s.snapshot;
  c = pop_follower_initial_config(p, err);
  ASSERT_EQ(c.services.size(), 1u);
  EXPECT_EQ(c.services[0].revoked_serials.size(), 3u);
  // A snapshot from before issue 15 (no ca, no revocations) still reads.
  json old = {{"format", "drtp-pop-registry-v1"},
              {"pop", "pop1"},
              {"principals", json::array()},
              {"services",
               {{{"name", "a"},
                 {"publicKey", follower_world::key_text("a", "secret-a")},
                 {"publicPort", 8001},
                 {"allow", json::array()}}}}};
  p.snapshot = old.dump();
  err.clear();
  c = pop_follower_initial_config(p, err);
  EXPECT_EQ(err, "");
  EXPECT_EQ(c.client_ca_pem, "");
  ASSERT_EQ(c.services.size(), 1u);
  EXPECT_TRUE(c.services[0].revoked_serials.empty());
}
