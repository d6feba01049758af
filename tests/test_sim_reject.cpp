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
#include "sim/rig.hpp"
#include "sim/scenario.hpp"

using namespace drtp;

namespace {

constexpr uint16_t tunnel_port = 7000;
constexpr uint16_t public_port = 8000;
constexpr uint16_t service_port = 5432;

struct two_pops : sim::rig {
  explicit two_pops(uint64_t seed) : rig(seed) {
    auto& w = d.net();
    sim::link_params link;
    link.latency_us = 2000;
    link.jitter_us = 500;
    w.set_default_link(link);
    for (auto h : {"pop-a", "pop-b", "agent", "visitors"})
      w.add_host(h);
    sim::spawn_app_service(d.sys(), w.io("agent"), service_port, 0x5a);
  }

  /// A POP that knows `name` (with the agent's secret).
  void start_pop(const std::string& host, const std::string& name) {
    pop_params pp;
    pp.e = make_env(host, ++salt);
    pp.tunnel_port = tunnel_port;
    pp.services.push_back(service(name, "the secret", public_port));
    d.net().register_actor(host, spawn_pop_server(d.sys(), std::move(pp)));
  }

  void start_agent() {
    auto ap = agent("agent", "echo", "the secret",
                    {pop_endpoint{"pop-a", "pop-a", tunnel_port, "eu"},
                     pop_endpoint{"pop-b", "pop-b", tunnel_port, "us"}},
                    service_port, 100 + ++salt);
    ap.tunnels_target = 2;
    d.net().register_actor("agent", spawn_agent(d.sys(), std::move(ap)));
  }

  bool echo_through(const std::string& pop, uint64_t seed) {
    auto r = visit("visitors", pop, public_port, 20000, seed, 0x5a);
    d.run_until([&] { return r->done; }, 10'000'000);
    return r->done && r->ok;
  }

  size_t lines_with(const std::string& needle) const {
    return trace_count(needle);
  }

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
