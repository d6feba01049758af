// The agent's control-plane follower (control/agent_follower) in the
// simulator, end to end over the seam: a registry (memory store, HTTP over
// simulated TLS), POPs registered through the API as POPs would (signed as
// pop/NAME), real pop_server actors, and `drtp serve`'s follower + agent.
// It bootstraps to K tunnels in distinct regions, follows a draining POP
// (replaced, then let go) and a new POP (used at the next replacement),
// keeps and replaces tunnels among the POPs it knows while the control
// plane is down, starts again from its snapshot with the control plane
// down, and reports its tunnels in DRTPConnection.status.

#include <gtest/gtest.h>

#include <cstdio>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "actors/agent.hpp"
#include "actors/http_client.hpp"
#include "actors/http_server.hpp"
#include "actors/messages.hpp"
#include "actors/pop_server.hpp"
#include "caf/all.hpp"
#include "control/agent_follower.hpp"
#include "control/auth.hpp"
#include "control/memory_store.hpp"
#include "control/registry.hpp"
#include "net/wire/handshake.hpp"
#include "sim/apps.hpp"
#include "sim/rig.hpp"
#include "sim/scenario.hpp"

using namespace drtp;
using namespace drtp::control;
using json = nlohmann::json;

namespace {

constexpr const char* base = "/apis/drtp.dev/v1";
constexpr uint16_t control_port = 8443;
constexpr uint16_t tunnel_port = 7000;
constexpr uint16_t public_port = 8000;
constexpr uint16_t service_port = 5432;
constexpr const char* secret = "joes secret";
constexpr uint64_t sec = 1'000'000;


struct scenario : sim::rig {
  explicit scenario(uint64_t seed) : rig(seed) {
    auto& w = d.net();
    sim::link_params link;
    link.latency_us = 5000;
    link.jitter_us = 1000;
    w.set_default_link(link);
    for (auto h : {"control", "agent", "visitors", "admin"})
      w.add_host(h);
    sim::spawn_app_service(d.sys(), w.io("agent"), service_port, 0x5a);
    store = spawn_memory_store(d.sys(), memory_store_params{}); // the disk: survives
    start_control();
    admin = client("admin", "Bearer " + admin_token, 900);
  }

  ~scenario() {
    for (auto& a : {follower, follower_http, admin, registry, server, store})
      if (a)
        caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
    for (auto& [n, c] : pop_clients)
      caf::anon_send_exit(c, caf::exit_reason::user_shutdown);
    for (auto& [n, p] : pops)
      caf::anon_send_exit(p, caf::exit_reason::user_shutdown);
    d.run_for(100'000);
  }

  void start_control() {
    registry_params p;
    p.e = make_env("control", ++incarnation);
    p.store = store;
    p.admin_token_digest = admin_token_digest(*crypto, admin_token);
    p.pop_public_key = pop_key.public_key;
    registry = spawn_registry(d.sys(), std::move(p));
    http_server_params sp;
    sp.e = make_env("control", ++incarnation);
    sp.host = "control";
    sp.port = control_port;
    sp.tls = true;
    sp.handler = registry;
    server = spawn_http_server(d.sys(), sp);
    d.net().register_actor("control", registry);
    d.net().register_actor("control", server);
    d.run_for(100'000);
  }

  /// An HTTP client on `host` to the control plane with a fixed
  /// Authorization, or signing each link as kind/name with seed.
  caf::actor client(const std::string& host, const std::string& bearer, uint64_t salt,
                    const char* kind = nullptr, const std::string& name = "",
                    const std::string& seed = "") {
    http_client_params cp;
    cp.e = make_env(host, salt);
    cp.host = "control";
    cp.port = control_port;
    cp.tls = std::make_shared<net::tls_client_config>();
    auto c = crypto;
    if (kind) {
      std::string k = kind;
      cp.authorization = [c, k, name, seed](const std::string& binding) {
        return auth_header(*c, k, name, seed, binding);
      };
    } else {
      cp.authorization = [bearer](const std::string&) { return bearer; };
    }
    return spawn_http_client(d.sys(), cp);
  }

  http::response fetch(caf::actor c, const std::string& method, const std::string& rest,
                       const std::string& body = "") {
    http_fetch f{method, std::string(base) + "/" + rest, {}, body};
    if (!body.empty())
      f.headers.emplace_back("Content-Type", "application/json");
    auto out = rig::fetch(c, std::move(f), 30 * sec);
    EXPECT_TRUE(out->error.empty()) << method << " " << rest << ": " << out->error;
    return out->resp;
  }

  static std::string server_json(const std::string& name, const std::string& region,
                                 bool draining) {
    json j = {{"apiVersion", "drtp.dev/v1"},
              {"kind", "DRTPServer"},
              {"metadata", {{"name", name}}},
              {"spec",
               {{"region", region},
                {"tunnelAddress", name + ":" + std::to_string(tunnel_port)},
                {"publicAddress", name},
                {"verify", {{"pin", "sha256:" + std::string(64, 'a')}}},
                {"draining", draining}}}};
    return j.dump();
  }

  /// A POP on its own host: the pop_server, and its registration through
  /// the API as the POP itself (PUT object, PUT status with a lease).
  void add_pop(const std::string& name, const std::string& region) {
    regions[name] = region;
    d.net().add_host(name);
    start_pop(name);
    pop_clients[name] =
      client(name, "", 500 + pop_clients.size(), kind_pop, name, pop_key.seed);
    register_pop(name, false);
  }

  void register_pop(const std::string& name, bool draining) {
    auto c = pop_clients[name];
    auto r = fetch(c, "PUT", "drtpservers/" + name, server_json(name, regions[name], draining));
    EXPECT_TRUE(r.status == 200 || r.status == 201) << r.status << " " << r.body;
    json st = {{"status",
                {{"lease", {{"renewTime", "1999-01-01T00:00:00.000Z"}, {"durationSeconds", 600}}},
                 {"tunnels", 0}}}};
    r = fetch(c, "PUT", "drtpservers/" + name + "/status", st.dump());
    EXPECT_EQ(r.status, 200) << r.body;
  }

  void start_pop(const std::string& name) {
    pop_params pp;
    pp.e = make_env(name, ++incarnation);
    pp.tunnel_port = tunnel_port;
    pp.services.push_back(service("echo", secret, public_port));
    auto p = spawn_pop_server(d.sys(), std::move(pp));
    d.net().register_actor(name, p);
    pops[name] = p;
  }

  void create_service() {
    json j = {{"apiVersion", "drtp.dev/v1"},
              {"kind", "DRTPConnection"},
              {"metadata", {{"name", "echo"}}},
              {"spec",
               {{"protocol", "tcp"},
                {"local", "agent:" + std::to_string(service_port)},
                {"publicPort", public_port},
                {"publicKey", public_key_text(svc_key.public_key)},
                {"tunnels", 2}}}};
    auto r = fetch(admin, "POST", "drtpconnections", j.dump());
    ASSERT_EQ(r.status, 201) << r.body;
  }

  /// `drtp serve --control ... --service echo --region eu`, as agent/main
  /// wires it, with `snapshot` as read from its state dir.
  void start_follower(const std::string& snap) {
    follower_http = client("agent", "", 700 + ++incarnation, kind_service, "echo", svc_key.seed);
    agent_follower_params fp;
    fp.e = make_env("agent", 800 + ++incarnation);
    fp.http = follower_http;
    fp.agent = agent("agent", "echo", secret, {}, 0, 900 + ++incarnation);
    fp.agent.local_host.clear();
    fp.agent.tunnels_target = 0; // the service's
    fp.agent.agent_id = "joes-box";
    fp.region = "eu";
    fp.snapshot = snap;
    auto saved = snapshot;
    fp.save_snapshot = [saved](const std::string& s) { *saved = s; };
    fp.status_interval_ms = 5000;
    follower = spawn_agent_follower(d.sys(), std::move(fp));
  }

  void stop_follower() {
    caf::anon_send_exit(follower, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(follower_http, caf::exit_reason::user_shutdown);
    follower = follower_http = nullptr;
    d.run_for(sec);
  }

  sim::tunnels_seen tunnels() {
    return follower_tunnels(follower, 5 * sec);
  }

  /// Runs until exactly `want` are the up tunnels and no other tunnel is
  /// left; false after max_us.
  bool wait_tunnels(const std::set<std::string>& want, uint64_t max_us) {
    auto until = d.now_us() + max_us;
    while (d.now_us() < until) {
      auto t = tunnels();
      if (t.up == want && t.all == want.size())
        return true;
      d.run_for(200'000);
    }
    auto t = tunnels();
    std::string got;
    for (auto& p : t.up)
      got += p + " ";
    ADD_FAILURE() << "up: " << got << "(" << t.all << " tunnels in all)";
    return false;
  }

  /// Which trace line first contains `needle` (SIZE_MAX: none).
  size_t first_line(const std::string& needle) const {
    auto& lines = d.trace_lines();
    for (size_t i = 0; i < lines.size(); ++i)
      if (lines[i].find(needle) != std::string::npos)
        return i;
    return SIZE_MAX;
  }

  json service_status() {
    auto r = fetch(admin, "GET", "drtpconnections/echo");
    auto j = json::parse(r.body, nullptr, false);
    return j.is_object() && j.contains("status") ? j["status"] : json{};
  }

  std::string admin_token = "admin-token-0123456789abcdef";
  net::login_key pop_key = sim::cached_login_key("fleet-secret", pop_fleet_salt());
  net::login_key svc_key = sim::cached_login_key(secret, net::service_salt("echo"));
  caf::actor store, registry, server, admin, follower, follower_http;
  std::map<std::string, caf::actor> pops, pop_clients;
  std::map<std::string, std::string> regions;
  std::shared_ptr<std::string> snapshot = std::make_shared<std::string>();
  uint64_t incarnation = 0;
};

uint64_t whole_story(uint64_t seed) {
  scenario s{seed};
  s.add_pop("pop-a", "eu");
  s.add_pop("pop-b", "eu");
  s.add_pop("pop-c", "us");
  s.create_service();

  // Bootstrap: K = 2 (the service's), nearest region first, then another.
  auto t0 = s.d.now_us();
  s.start_follower("");
  EXPECT_TRUE(s.wait_tunnels({"pop-a", "pop-c"}, 20 * sec));
  std::printf("bootstrap -> K=2 tunnels (pop-a eu, pop-c us): %.3f s of sim time\n",
              double(s.d.now_us() - t0) / 1e6);
  auto v = s.visit("visitors", "pop-a", public_port, 10000, seed, 0x5a);
  EXPECT_TRUE(s.d.run_until([&] { return v->done; }, 20 * sec));
  EXPECT_TRUE(v->ok) << v->error;
  EXPECT_FALSE(s.snapshot->empty());

  // Reported in DRTPConnection.status, with the address the registry saw.
  s.d.run_for(3 * sec);
  auto st = s.service_status();
  EXPECT_EQ(st["agents"].size(), 1u) << st.dump();
  if (st["agents"].size() == 1) {
    EXPECT_EQ(st["agents"][0]["id"], "joes-box");
    EXPECT_EQ(st["agents"][0]["address"], "agent");
    EXPECT_EQ(st["agents"][0]["pops"], json({"pop-a", "pop-c"}));
  }

  // pop-c drains (its operator sets draining): replaced by pop-b first,
  // then let go.
  s.register_pop("pop-c", true);
  EXPECT_TRUE(s.wait_tunnels({"pop-a", "pop-b"}, 20 * sec));
  auto up_b = s.first_line("tunnel up to POP pop-b");
  auto gone_c = s.first_line("let go of POP pop-c");
  EXPECT_NE(gone_c, SIZE_MAX);
  EXPECT_LT(up_b, gone_c) << "the replacement is up before the draining POP is let go";

  // A new POP is used at the next replacement: pop-b dies, pop-d (ap) is
  // the one the agent dials.
  s.add_pop("pop-d", "ap");
  s.d.run_for(2 * sec);
  EXPECT_EQ(s.tunnels().up, (std::set<std::string>{"pop-a", "pop-b"})) << "no churn";
  s.d.net().crash("pop-b", sim::crash_mode::silent);
  EXPECT_TRUE(s.wait_tunnels({"pop-a", "pop-d"}, 30 * sec));
  s.d.net().restart("pop-b");
  s.start_pop("pop-b");

  // The control plane goes down: tunnels stay; pop-a dies; the agent
  // replaces it among the POPs it knows (pop-b is back).
  s.d.net().crash("control", sim::crash_mode::silent);
  s.d.run_for(3 * sec);
  EXPECT_EQ(s.tunnels().up, (std::set<std::string>{"pop-a", "pop-d"}));
  s.d.net().crash("pop-a", sim::crash_mode::silent);
  EXPECT_TRUE(s.wait_tunnels({"pop-b", "pop-d"}, 40 * sec));

  // Restarted from its snapshot with the control plane still down.
  auto snap = *s.snapshot;
  EXPECT_NE(snap.find("pop-d"), std::string::npos) << snap;
  s.stop_follower();
  t0 = s.d.now_us();
  s.start_follower(snap);
  EXPECT_TRUE(s.wait_tunnels({"pop-b", "pop-d"}, 40 * sec));
  std::printf("restart from snapshot, control plane down -> K=2 tunnels: %.3f s of sim time\n",
              double(s.d.now_us() - t0) / 1e6);
  EXPECT_TRUE(s.trace_has("starting from the saved state"));

  // The control plane is back (same store): the follower converges; a
  // change is followed again and the status is reported anew.
  s.d.net().restart("control");
  s.start_control();
  s.d.net().restart("pop-a");
  s.start_pop("pop-a");
  s.d.run_for(35 * sec); // the follower's backoff is at most 30 s
  s.register_pop("pop-d", true);
  EXPECT_TRUE(s.wait_tunnels({"pop-a", "pop-b"}, 40 * sec));
  s.d.run_for(6 * sec);
  st = s.service_status();
  if (st["agents"].size() == 1)
    EXPECT_EQ(st["agents"][0]["pops"], json({"pop-a", "pop-b"})) << st.dump();
  else
    ADD_FAILURE() << st.dump();
  std::printf("sim time in all: %.1f s, %llu steps\n", double(s.d.now_us()) / 1e6,
              static_cast<unsigned long long>(s.d.steps()));
  return s.d.trace_hash();
}

} // namespace

TEST(agent_follower, bootstrap_follow_static_stability_snapshot_status) {
  auto a = whole_story(11);
  auto b = whole_story(11);
  EXPECT_EQ(a, b) << "the same seed gives the same trace";
}
