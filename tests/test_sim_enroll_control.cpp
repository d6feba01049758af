// Enrollment with the control plane, in the simulator (issue 15): the
// registry with its CA (memory store, HTTP over simulated TLS), POPs that
// know the CA, and `drtp serve --state-dir`'s enroller + follower + agent as
// agent/main wires them. Virtual time drives certificate validity (the
// lifetime here is 600 s, so renewal is due at 400 s).
//
//  - enrollment by the secret, tunnels by certificate, renewal in band at
//    two thirds of the lifetime without a tunnel dropping, and a restart
//    from the saved identity without any secret;
//  - a control-plane outage across the renewal time: retried with
//    backoff, the valid certificate serves meanwhile, renewed once back;
//  - expiry while the control plane is down: served until notAfter, then
//    one fatal line and the agent stops;
//  - revocation racing a POP failover: no POP that applied the revocation
//    holds or admits the revoked certificate's tunnel, whichever POP the
//    agent fails over to.

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
#include "control/enroller.hpp"
#include "control/memory_store.hpp"
#include "control/registry.hpp"
#include "net/seam/host_clock.hpp"
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
constexpr uint32_t lifetime_s = 600;
constexpr int64_t epoch_s = net::host_clock::sim_epoch_unix_ms / 1000;

struct world : sim::rig {
  explicit world(uint64_t seed) : rig(seed) {
    auto& w = d.net();
    sim::link_params link;
    link.latency_us = 3000;
    link.jitter_us = 500;
    w.set_default_link(link);
    for (auto h : {"control", "agent", "visitors", "admin"})
      w.add_host(h);
    sim::spawn_app_service(d.sys(), w.io("agent"), service_port, 0x5a);
    ca_seed = std::string(net::seed_bytes, '\x31');
    ca_pem = crypto->make_ca_certificate(ca_seed, "drtp test CA", epoch_s - 3600,
                                         10 * 365 * 86400);
    store = spawn_memory_store(d.sys(), memory_store_params{});
    start_control();
    admin = client("admin", 900);
  }

  ~world() {
    for (auto& a : {enroller, admin, registry, server, store})
      if (a)
        caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
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
    p.ca_seed = ca_seed;
    p.ca_cert_pem = ca_pem;
    p.cert_lifetime_s = lifetime_s;
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

  caf::actor client(const std::string& host, uint64_t salt) {
    http_client_params cp;
    cp.e = make_env(host, salt);
    cp.host = "control";
    cp.port = control_port;
    cp.tls = std::make_shared<net::tls_client_config>();
    auto bearer = "Bearer " + admin_token;
    cp.authorization = [bearer](const std::string&) { return bearer; };
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

  /// A POP the operator registered (as in test_agent_follower), knowing
  /// the CA; revocations reach it by pop_reconfigure, as its follower
  /// would send them.
  void add_pop(const std::string& name, const std::string& region) {
    d.net().add_host(name);
    pop_params pp;
    pp.e = make_env(name, ++incarnation);
    pp.tunnel_port = tunnel_port;
    pp.services.push_back(service("echo", secret, public_port));
    pp.client_ca_pem = ca_pem;
    auto p = spawn_pop_server(d.sys(), std::move(pp));
    d.net().register_actor(name, p);
    pops[name] = p;
    json j = {{"apiVersion", "drtp.dev/v1"},
              {"kind", "DRTPServer"},
              {"metadata", {{"name", name}}},
              {"spec",
               {{"region", region},
                {"tunnelAddress", name + ":" + std::to_string(tunnel_port)},
                {"publicAddress", name},
                {"verify", {{"pin", "sha256:" + std::string(64, 'a')}}}}}};
    auto r = fetch(admin, "POST", "drtpservers", j.dump());
    EXPECT_EQ(r.status, 201) << r.body;
    json st = {{"status",
                {{"lease", {{"renewTime", "1999-01-01T00:00:00.000Z"}, {"durationSeconds", 600}}},
                 {"tunnels", 0}}}};
    r = fetch(admin, "PUT", "drtpservers/" + name + "/status", st.dump());
    EXPECT_EQ(r.status, 200) << r.body;
  }

  /// The POPs' leases, renewed as their followers would (the registry
  /// caps a lease's duration below these tests' virtual hours).
  void renew_leases() {
    json st = {{"status",
                {{"lease", {{"renewTime", "1999-01-01T00:00:00.000Z"}, {"durationSeconds", 600}}},
                 {"tunnels", 0}}}};
    for (auto& [name, p] : pops)
      fetch(admin, "PUT", "drtpservers/" + name + "/status", st.dump());
  }

  void revoke_at_pop(const std::string& name, const std::vector<std::string>& serials) {
    pop_reconfigure rc;
    rc.services.push_back(service("echo", secret, public_port));
    rc.services[0].revoked_serials = serials;
    rc.client_ca_pem = ca_pem;
    caf::anon_send(pops[name], std::move(rc));
  }

  void create_service(uint32_t tunnels) {
    json j = {{"apiVersion", "drtp.dev/v1"},
              {"kind", "DRTPConnection"},
              {"metadata", {{"name", "echo"}}},
              {"spec",
               {{"protocol", "tcp"},
                {"local", "agent:" + std::to_string(service_port)},
                {"publicPort", public_port},
                {"publicKey", public_key_text(svc_key.public_key)},
                {"tunnels", tunnels}}}};
    auto r = fetch(admin, "POST", "drtpconnections", j.dump());
    ASSERT_EQ(r.status, 201) << r.body;
  }

  /// `drtp serve --control ... --service echo --state-dir DIR
  /// [--secret-file F]`, as agent/main wires it; `saved` is
  /// DIR/identity.json.
  void start_agent(bool with_secret) {
    http_client_params cp;
    cp.e = make_env("agent", 700 + ++incarnation);
    cp.host = "control";
    cp.port = control_port;
    cp.tls = std::make_shared<net::tls_client_config>();
    enroller_params ep;
    ep.e = make_env("agent", 800 + ++incarnation);
    ep.kind = kind_service;
    ep.name = "echo";
    ep.follower.e = ep.e;
    ep.follower.http = spawn_http_client(d.sys(), cp);
    ep.follower.agent = agent("agent", "echo", secret, {}, 0, 900 + ++incarnation);
    if (!with_secret)
      ep.follower.agent.signing_key.clear();
    ep.follower.agent.local_host.clear();
    ep.follower.agent.tunnels_target = 0;
    ep.follower.agent.agent_id = "joes-box";
    ep.follower.region = "eu";
    ep.follower.status_interval_ms = 5000;
    ep.saved = *saved;
    auto file = saved;
    ep.save = [file](const std::string& s) { *file = s; };
    enroller = spawn_enroller(d.sys(), std::move(ep));
  }

  void stop_agent() {
    caf::anon_send_exit(enroller, caf::exit_reason::user_shutdown);
    enroller = nullptr;
    d.run_for(sec);
  }

  bool echo_through(const std::string& pop, uint64_t seed) {
    auto r = visit("visitors", pop, public_port, 5000, seed, 0x5a);
    d.run_until([&] { return r->done; }, 10 * sec);
    return r->done && r->ok;
  }

  /// Runs to `at_us`, renewing the POPs' leases every 100 s while the
  /// control plane is up.
  void run_to(uint64_t at_us) {
    while (d.now_us() < at_us) {
      d.run_for(std::min<uint64_t>(at_us - d.now_us(), 100 * sec));
      if (control_up)
        renew_leases();
    }
  }

  std::string line_with(const std::string& needle) const {
    for (auto& l : d.trace_lines())
      if (l.find(needle) != std::string::npos)
        return l;
    return {};
  }

  std::string admin_token = "admin-token-0123456789abcdef";
  net::login_key pop_key = sim::cached_login_key("fleet-secret", pop_fleet_salt());
  net::login_key svc_key = sim::cached_login_key(secret, net::service_salt("echo"));
  std::string ca_seed, ca_pem;
  caf::actor store, registry, server, admin, enroller;
  std::map<std::string, caf::actor> pops;
  std::shared_ptr<std::string> saved = std::make_shared<std::string>();
  uint64_t incarnation = 0;
  bool control_up = true;
};

} // namespace

TEST(sim_enroll_control, enrolls_renews_in_band_and_restarts_without_the_secret) {
  world w{11};
  w.add_pop("pop-a", "eu");
  w.create_service(1);
  w.start_agent(true);
  ASSERT_TRUE(w.d.run_until([&] { return w.trace_has("certificate login of agent 'joes-box'"); },
                            20 * sec));
  std::printf("%s\n", w.line_with("certificate for service/echo").c_str());
  ASSERT_FALSE(w.saved->empty());
  EXPECT_EQ(w.saved->find(secret), std::string::npos) << "no secret in identity.json";
  EXPECT_TRUE(w.echo_through("pop-a", 1));
  // One session spans the renewal (due at 400 s) and the first
  // certificate's notAfter (600 s).
  w.run_to(350 * sec);
  auto spanning = w.visit("visitors", "pop-a", public_port, 3000, 2, 0x5a,
                          sim::workload_kind::request_response, 300);
  ASSERT_TRUE(w.d.run_until([&] { return w.trace_has("renewed certificate of agent joes-box"); },
                            100 * sec));
  auto renewed_at_s = static_cast<double>(w.d.now_us()) / 1e6;
  std::printf("renewed in band at %.1f s of virtual time (lifetime %u s): %s\n", renewed_at_s,
              lifetime_s, w.line_with("renewed certificate of agent").c_str());
  EXPECT_GE(renewed_at_s, 390.0);
  EXPECT_LE(renewed_at_s, 420.0);
  w.run_to(700 * sec);
  ASSERT_TRUE(w.d.run_until([&] { return spanning->done; }, 200 * sec));
  EXPECT_TRUE(spanning->ok) << spanning->error;
  EXPECT_FALSE(w.trace_has("expired: tunnel closed"));
  EXPECT_EQ(w.trace_count("service 'echo' now has 1 tunnel(s)"), 1u) << "no tunnel dropped";
  EXPECT_GE(w.trace_count("renewed certificate of agent"), 1u);

  // A restart with no secret at all: the saved identity signs in.
  w.stop_agent();
  w.start_agent(false);
  ASSERT_TRUE(w.d.run_until([&] { return w.trace_has("saved certificate for service/echo"); },
                            5 * sec));
  ASSERT_TRUE(w.d.run_until(
    [&] { return w.trace_count("tunnel up to POP pop-a") >= 2; }, 20 * sec))
    << [&] {
         std::string out;
         auto& l = w.d.trace_lines();
         for (size_t i = l.size() > 60 ? l.size() - 60 : 0; i < l.size(); ++i)
           out += l[i] + "\n";
         return out;
       }();
  EXPECT_TRUE(w.echo_through("pop-a", 3));
}

TEST(sim_enroll_control, an_outage_across_the_renewal_is_retried_and_nothing_drops) {
  world w{12};
  w.add_pop("pop-a", "eu");
  w.create_service(1);
  w.start_agent(true);
  ASSERT_TRUE(w.d.run_until([&] { return w.trace_has("certificate login of agent"); }, 20 * sec));
  w.run_to(300 * sec);
  w.d.net().crash("control", sim::crash_mode::silent);
  w.control_up = false;
  w.run_to(520 * sec);
  auto failed = w.trace_count("renewal of service/echo failed");
  std::printf("renewal attempts failed while the control plane was down: %zu; %s\n", failed,
              w.line_with("renewal of service/echo failed").c_str());
  EXPECT_GE(failed, 2u);
  EXPECT_LE(failed, 40u) << "bounded by the backoff";
  EXPECT_TRUE(w.echo_through("pop-a", 4)) << "the valid certificate serves meanwhile";
  w.d.net().restart("control");
  w.start_control();
  w.control_up = true;
  ASSERT_TRUE(w.d.run_until([&] { return w.trace_has("renewed certificate of agent"); },
                            80 * sec));
  std::printf("renewed at %.1f s, the first certificate ran to 600 s\n",
              static_cast<double>(w.d.now_us()) / 1e6);
  w.run_to(700 * sec);
  EXPECT_FALSE(w.trace_has("expired: tunnel closed"));
  EXPECT_TRUE(w.echo_through("pop-a", 5));
}

TEST(sim_enroll_control, expiry_with_the_control_plane_down_stops_the_agent_with_one_line) {
  world w{13};
  w.add_pop("pop-a", "eu");
  w.create_service(1);
  w.start_agent(true); // it enrolls first
  ASSERT_TRUE(w.d.run_until([&] { return w.trace_has("certificate login of agent"); }, 20 * sec));
  w.d.net().crash("control", sim::crash_mode::silent);
  w.control_up = false;
  w.run_to(550 * sec);
  EXPECT_TRUE(w.echo_through("pop-a", 6)) << "served until notAfter";
  w.run_to(720 * sec);
  auto fatal = w.trace_count("expired at");
  std::printf("%s\n", w.line_with("expired at").c_str());
  EXPECT_EQ(fatal, 1u);
  EXPECT_NE(w.line_with("expired at").find("did not renew it"), std::string::npos);
  EXPECT_FALSE(w.echo_through("pop-a", 7)) << "stopped";
}

TEST(sim_enroll_control, revocation_racing_a_pop_failover_leaves_no_tunnel_where_it_applied) {
  world w{14};
  w.add_pop("pop-a", "eu");
  w.add_pop("pop-b", "eu");
  w.add_pop("pop-c", "us");
  w.create_service(2);
  w.start_agent(true);
  ASSERT_TRUE(w.d.run_until(
    [&] { return w.trace_count("certificate login of agent") >= 2; }, 20 * sec));
  // The serial as the POPs log it.
  auto login = w.line_with("certificate login of agent");
  auto at = login.find("(serial ");
  ASSERT_NE(at, std::string::npos) << login;
  auto serial = login.substr(at + 8, login.find(',', at) - at - 8);
  // A restart without the secret: no fallback, the certificate is all.
  w.stop_agent();
  w.start_agent(false);
  ASSERT_TRUE(w.d.run_until(
    [&] { return w.trace_count("certificate login of agent") >= 4; }, 20 * sec));
  // The revocation reaches the POPs one after another while the one the
  // agent holds a tunnel to dies: whichever POP it fails over to refuses
  // it once the revocation got there.
  auto t0 = w.d.now_us();
  auto revoked_a = w.d.trace_lines().size();
  w.revoke_at_pop("pop-a", {serial});
  w.d.net().crash("pop-b", sim::crash_mode::silent);
  w.d.run_for(300'000);
  auto revoked_c = w.d.trace_lines().size();
  w.revoke_at_pop("pop-c", {serial});
  w.d.run_for(20 * sec);
  // Invariant: no POP admits the certificate after its revocation got there.
  auto& lines = w.d.trace_lines();
  size_t denied = 0;
  for (size_t i = 0; i < lines.size(); ++i) {
    if (i >= revoked_a)
      EXPECT_EQ(lines[i].find("pop-a audit: certificate login of agent"), std::string::npos)
        << lines[i];
    if (i >= revoked_c)
      EXPECT_EQ(lines[i].find("pop-c audit: certificate login of agent"), std::string::npos)
        << lines[i];
    if (i >= revoked_a && lines[i].find("denied certificate login") != std::string::npos)
      ++denied;
  }
  std::printf("revocation raced a failover (pop-b died as pop-a applied it, pop-c 300 ms "
              "later): %zu logins refused in %.1f s; %s\n",
              denied, static_cast<double>(w.d.now_us() - t0) / 1e6,
              w.line_with("no longer admitted").c_str());
  EXPECT_GE(denied, 1u);
  EXPECT_FALSE(w.echo_through("pop-a", 8));
  EXPECT_FALSE(w.echo_through("pop-c", 9));
}
