// A POP that rejects the agent (it does not know the service) is set aside;
// the tunnels to the other POPs carry on. The agent stops, with one line,
// only when every POP rejects it. In the simulator, two POPs.

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>

#include "actors/agent.hpp"
#include "actors/messages.hpp"
#include "actors/pop_server.hpp"
#include "caf/all.hpp"
#include "net/openssl_crypto.hpp"
#include "net/wire/handshake.hpp"
#include "sim/apps.hpp"
#include "sim/driver.hpp"
#include "sim/scenario.hpp"

using namespace drtp;

namespace {

constexpr uint16_t tunnel_port = 7000;
constexpr uint16_t public_port = 8000;
constexpr uint16_t service_port = 5432;

struct two_pops {
  explicit two_pops(uint64_t seed) : d(seed) {
    auto& w = d.net();
    sim::link_params link;
    link.latency_us = 2000;
    link.jitter_us = 500;
    w.set_default_link(link);
    for (auto h : {"pop-a", "pop-b", "agent", "visitors"})
      w.add_host(h);
    sim::spawn_app_service(d.sys(), w.io("agent"), service_port, 0x5a);
  }

  ~two_pops() {
    if (std::getenv("DRTP_SIM_TRACE"))
      for (auto& l : d.trace_lines())
        std::printf("%s\n", l.c_str());
  }

  env make_env(const std::string& host, uint64_t salt) {
    env e;
    e.io = d.net().io(host);
    e.trace = d.trace();
    e.rng = net::make_seeded_entropy(d.seed() * 1000 + salt);
    e.crypto = net::make_openssl_crypto();
    e.host = host;
    return e;
  }

  /// A POP that knows `service` (with the agent's secret).
  void start_pop(const std::string& host, const std::string& service) {
    pop_params pp;
    pp.e = make_env(host, ++salt);
    pp.tunnel_port = tunnel_port;
    service_config sc;
    sc.name = service;
    sc.public_key = sim::cached_login_key("the secret", net::service_salt(sc.name)).public_key;
    sc.public_port = public_port;
    pp.services.push_back(sc);
    d.net().register_actor(host, spawn_pop_server(d.sys(), std::move(pp)));
  }

  void start_agent() {
    agent_params ap;
    ap.e = make_env("agent", 100 + ++salt);
    ap.pops.push_back(pop_endpoint{"pop-a", "pop-a", tunnel_port, "eu"});
    ap.pops.push_back(pop_endpoint{"pop-b", "pop-b", tunnel_port, "us"});
    ap.tunnels_target = 2;
    ap.tls = std::make_shared<net::tls_client_config>();
    ap.service = "echo";
    ap.agent_id = "joe";
    ap.signing_key = sim::cached_login_key("the secret", net::service_salt(ap.service)).seed;
    ap.local_host = "agent";
    ap.local_port = service_port;
    d.net().register_actor("agent", spawn_agent(d.sys(), std::move(ap)));
  }

  bool echo_through(const std::string& pop, uint64_t seed) {
    sim::visitor_params vp;
    vp.io = d.net().io("visitors");
    vp.host = pop;
    vp.port = public_port;
    vp.bytes = 20000;
    vp.seed = seed;
    vp.key = 0x5a;
    vp.result = std::make_shared<sim::visitor_result>();
    vp.now_us = [this] { return d.now_us(); };
    auto r = vp.result;
    sim::spawn_visitor(d.sys(), std::move(vp));
    d.run_until([&] { return r->done; }, 10'000'000);
    return r->done && r->ok;
  }

  size_t lines_with(const std::string& needle) const {
    size_t n = 0;
    for (auto& l : d.trace_lines())
      n += l.find(needle) != std::string::npos ? 1 : 0;
    return n;
  }

  sim::driver d;
  uint64_t salt = 0;
};

} // namespace

TEST(sim_reject, one_rejecting_pop_is_set_aside_and_the_good_tunnel_stays) {
  two_pops s{11};
  s.start_pop("pop-a", "echo");
  s.start_pop("pop-b", "other"); // does not know 'echo'
  s.start_agent();
  s.d.run_for(2'000'000);
  EXPECT_EQ(s.lines_with("POP pop-b rejected service 'echo': unknown service; set aside"),
            1u);
  EXPECT_EQ(s.lines_with("tunnel up to POP pop-a"), 1u);
  EXPECT_TRUE(s.echo_through("pop-a", 1));
  // Past two retries of pop-b: each is set aside again, in one line each;
  // the tunnel to pop-a never went down and the agent did not stop.
  s.d.run_for(130'000'000);
  EXPECT_EQ(s.lines_with("POP pop-b rejected service 'echo': unknown service; set aside"),
            3u);
  EXPECT_EQ(s.lines_with("tunnel up to POP pop-a"), 1u);
  EXPECT_EQ(s.lines_with("every POP"), 0u);
  EXPECT_TRUE(s.echo_through("pop-a", 2));
}

TEST(sim_reject, the_agent_stops_with_one_line_when_every_pop_rejects) {
  two_pops s{12};
  s.start_pop("pop-a", "other");
  s.start_pop("pop-b", "another");
  s.start_agent();
  s.d.run_for(2'000'000);
  EXPECT_EQ(s.lines_with("every POP rejected service 'echo': unknown service (POP "
                         "pop-a), unknown service (POP pop-b)"),
            1u);
  EXPECT_EQ(s.lines_with("set aside"), 1u); // the first of the two
  // Stopped: nothing is dialed any more.
  auto lines = s.d.trace_lines().size();
  s.d.run_for(120'000'000);
  EXPECT_EQ(s.lines_with("set aside"), 1u);
  EXPECT_LE(s.d.trace_lines().size(), lines + 2);
}
