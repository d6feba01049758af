// Visitors that stay connected and send nothing are reaped by the session
// idle timeout (no bytes either way for session_idle_timeout_ms), at the POP
// and at the agent; a visitor that keeps talking is not. In the simulator.

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
constexpr uint32_t idle_timeout_ms = 5000;

using talk_atom = caf::atom_constant<caf::atom("talk")>;

struct idle_result {
  bool connected = false;
  bool closed = false;
  uint64_t closed_at_us = 0;
  uint64_t echoed_bytes = 0;
};

/// Connects to the POP's public port, asks for echo, sends 10 bytes, then every
/// `every_ms` 10 more (0: never again), and notes when the POP closes it.
caf::behavior chatty_visitor(caf::event_based_actor* self, caf::actor io,
                             std::shared_ptr<idle_result> r,
                             std::function<uint64_t()> now_us, uint32_t every_ms) {
  self->send(io, net::connect_req{1, "pop", public_port, 5000, nullptr, false});
  auto conn = std::make_shared<net::conn_id>(0);
  auto say = [=] {
    self->send(io, net::write_req{*conn, {net::chunk::copy_of(std::string(10, 'x'))}});
    if (every_ms > 0)
      self->delayed_send(self, std::chrono::milliseconds(every_ms), talk_atom::value);
  };
  return {
    [=](const net::connected& ev) {
      r->connected = true;
      *conn = ev.id;
      // The app service's echo mode: 'E' and a u64 (see sim/apps.hpp).
      self->send(io, net::write_req{ev.id, {net::chunk::copy_of(std::string("E") + std::string(8, '\0'))}});
      say();
    },
    [](const net::connect_failed&) {},
    [=](const net::received& ev) { r->echoed_bytes += ev.data.size(); },
    [](const net::read_closed&) {},
    [](const net::sent&) {},
    [=](talk_atom) {
      if (!r->closed)
        say();
    },
    [=](const net::closed&) {
      r->closed = true;
      r->closed_at_us = now_us();
      self->quit();
    },
  };
}

struct one_pop : sim::rig {
  explicit one_pop(uint64_t seed) : rig(seed) {
    auto& w = d.net();
    sim::link_params link;
    link.latency_us = 2000;
    w.set_default_link(link);
    for (auto h : {"pop", "agent", "visitors"})
      w.add_host(h);
    sim::spawn_app_service(d.sys(), w.io("agent"), service_port, 0x5a);
    pop_params pp;
    pp.e = idle_env("pop", 1);
    pp.tunnel_port = tunnel_port;
    pp.services.push_back(service("echo", "the secret", public_port));
    d.net().register_actor("pop", spawn_pop_server(d.sys(), std::move(pp)));
    auto ap = agent("agent", "echo", "the secret",
                    {pop_endpoint{"pop", "pop", tunnel_port, "eu"}}, service_port, 2);
    ap.e = idle_env("agent", 2);
    d.net().register_actor("agent", spawn_agent(d.sys(), std::move(ap)));
  }

  env idle_env(const std::string& host, uint64_t salt) {
    auto e = make_env(host, salt);
    e.limits.session_idle_timeout_ms = idle_timeout_ms;
    return e;
  }

  std::shared_ptr<idle_result> visit(uint32_t every_ms) {
    auto r = std::make_shared<idle_result>();
    d.sys().spawn(chatty_visitor, d.net().io("visitors"), r,
                  std::function<uint64_t()>{[this] { return d.now_us(); }}, every_ms);
    return r;
  }
};

} // namespace

TEST(sim_idle, a_silent_visitor_is_reaped_a_talking_one_is_not) {
  one_pop s{21};
  s.d.run_for(1'000'000); // the tunnel comes up
  auto silent = s.visit(0);
  auto talker = s.visit(idle_timeout_ms / 3);
  auto t0 = s.d.now_us();
  ASSERT_TRUE(s.d.run_until([&] { return silent->closed; }, 20'000'000));
  auto after_us = silent->closed_at_us - t0;
  EXPECT_TRUE(silent->connected);
  EXPECT_GT(silent->echoed_bytes, 0u); // it was a working session
  EXPECT_GE(after_us, idle_timeout_ms * 1000ull);
  EXPECT_LE(after_us, idle_timeout_ms * 1250ull + 500'000);
  std::printf("figure: silent visitor reaped after %llu ms (idle timeout %u ms)\n",
              static_cast<unsigned long long>(after_us / 1000), idle_timeout_ms);
  // Three timeouts later the talker is still there and still echoed.
  auto echoed = talker->echoed_bytes;
  s.d.run_for(3 * idle_timeout_ms * 1000ull);
  EXPECT_FALSE(talker->closed);
  EXPECT_GT(talker->echoed_bytes, echoed);
  // Both ends of the silent session let go: the visitor's socket at the POP
  // and the agent's socket to the service; only the talker's session (its
  // two sockets), the tunnel's two ends remain.
  EXPECT_EQ(s.d.net().open_connections(), 6u);
}
