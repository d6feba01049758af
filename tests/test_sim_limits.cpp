// Bursts against the POP's limits, in the simulator: a burst of visitors
// from one source, a principal that opens thousands of streams at once. The
// sessions opened before the burst must finish byte for byte, the agent's
// tunnel must stay up, and the excess must be refused at once.

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>

#include "actors/agent.hpp"
#include "actors/messages.hpp"
#include "actors/pop_server.hpp"
#include "caf/all.hpp"
#include "net/openssl_crypto.hpp"
#include "net/wire/control.hpp"
#include "net/wire/frame.hpp"
#include "net/wire/frame_writer.hpp"
#include "net/wire/handshake.hpp"
#include "sim/apps.hpp"
#include "sim/driver.hpp"
#include "sim/rig.hpp"
#include "sim/scenario.hpp"

using namespace drtp;

namespace {

/// DRTP_SIM_FIGURE=1: the report's sizes (20 000 visitors, 17 000 streams).
bool figure_sizes() {
  auto v = std::getenv("DRTP_SIM_FIGURE");
  return v != nullptr && std::string(v) == "1";
}

constexpr uint16_t tunnel_port = 7000;
constexpr uint16_t public_port = 8000;
constexpr uint16_t service_port = 5432;

struct scenario : sim::rig {
  explicit scenario(uint64_t seed, uint32_t visitors_per_service_max = 4096,
                    uint32_t visitors_per_source_max = 512)
    : rig(seed) {
    auto& w = d.net();
    sim::link_params link;
    link.latency_us = 2000;
    link.bandwidth_bytes_per_s = 200'000'000;
    w.set_default_link(link);
    for (auto h : {"pop", "agent", "visitors", "burst", "mallory"})
      w.add_host(h);
    sim::spawn_app_service(d.sys(), w.io("agent"), service_port, 0x5a);
    pop_params pp;
    pp.e = make_env("pop", 1);
    pp.tunnel_port = tunnel_port;
    pp.visitors_per_service_max = visitors_per_service_max;
    pp.visitors_per_source_max = visitors_per_source_max;
    auto sc = service("echo", "the secret", public_port);
    sc.allow = {"mallory"};
    pp.services.push_back(sc);
    pp.principals.push_back(principal("mallory", "mallory's secret"));
    d.net().register_actor("pop", spawn_pop_server(d.sys(), std::move(pp)));
    auto ap = agent("agent", "echo", "the secret",
                    {pop_endpoint{"pop", "pop", tunnel_port, "eu"}}, service_port, 2);
    d.net().register_actor("agent", spawn_agent(d.sys(), std::move(ap)));
  }

  std::shared_ptr<sim::visitor_result> visit(const std::string& from, uint64_t bytes,
                                             uint64_t seed) {
    return rig::visit(from, "pop", public_port, bytes, seed, 0x5a);
  }
};

bool all_done(const std::vector<std::shared_ptr<sim::visitor_result>>& rs) {
  for (auto& r : rs)
    if (!r->done)
      return false;
  return true;
}

size_t ok_count(const std::vector<std::shared_ptr<sim::visitor_result>>& rs) {
  size_t n = 0;
  for (auto& r : rs)
    n += r->ok ? 1 : 0;
  return n;
}

TEST(sim_limits, a_burst_of_visitors_from_one_source_spares_earlier_sessions) {
  scenario s{11};
  s.d.run_for(1'000'000);
  ASSERT_EQ(s.trace_count("now has 1 tunnel"), 1u);
  // Sessions opened before the burst: long enough to span it.
  std::vector<std::shared_ptr<sim::visitor_result>> early, burst;
  for (int i = 0; i < 20; ++i)
    early.push_back(s.visit("visitors", 4 << 20, 100 + i));
  s.d.run_for(20'000);
  const int burst_size = figure_sizes() ? 20000 : 3000;
  for (int i = 0; i < burst_size; ++i)
    burst.push_back(s.visit("burst", 1000, 10'000 + i));
  ASSERT_TRUE(s.d.run_until([&] { return all_done(early) && all_done(burst); },
                            120'000'000));
  EXPECT_EQ(ok_count(early), early.size());
  auto served = ok_count(burst);
  std::printf("figure: sim burst of %d visitors from one source: %zu served, %zu refused; "
              "20 earlier sessions: %zu ok\n",
              burst_size, served, burst.size() - served, ok_count(early));
  // The source's burst allowance (400), not the whole burst.
  EXPECT_LE(served, 600u);
  EXPECT_GE(served, 400u);
  EXPECT_GE(s.trace_count("refused visitor burst"), 1u);
  // The tunnel never went down.
  EXPECT_EQ(s.trace_count("lost a tunnel"), 0u);
  EXPECT_EQ(s.trace_count("declared dead"), 0u);
}

TEST(sim_limits, a_service_carries_at_most_its_visitor_limit_from_all_sources) {
  scenario s{13, 5};
  s.d.run_for(1'000'000);
  std::vector<std::shared_ptr<sim::visitor_result>> rs;
  // Twelve long visitors from three sources at once: five fit.
  for (int i = 0; i < 12; ++i)
    rs.push_back(s.visit(i % 3 == 0 ? "visitors" : i % 3 == 1 ? "burst" : "mallory",
                         4 << 20, 300 + i));
  ASSERT_TRUE(s.d.run_until([&] { return all_done(rs); }, 60'000'000));
  EXPECT_EQ(ok_count(rs), 5u);
  EXPECT_GE(s.trace_count("too many open streams"), 1u);
  // Once they are done, the service takes visitors again.
  auto later = s.visit("burst", 1000, 400);
  ASSERT_TRUE(s.d.run_until([&] { return later->done; }, 10'000'000));
  EXPECT_TRUE(later->ok) << later->error;
}

/// A patch-panel client that proves mallory's secret, then opens `opens`
/// streams at once and counts the resets it gets back.
struct opener_result {
  bool up = false;
  uint32_t refused = 0;
};

caf::behavior stream_opener(caf::event_based_actor* self, caf::actor io, uint32_t opens,
                            std::shared_ptr<opener_result> out) {
  net::connect_req req;
  req.tag = 1;
  req.host = "pop";
  req.port = tunnel_port;
  self->send(io, req);
  auto dec = std::make_shared<net::frame_decoder>();
  auto writer = std::make_shared<net::frame_writer>();
  net::hello_msg h;
  h.service = "echo";
  h.agent_id = "mallory";
  h.role = static_cast<uint8_t>(net::peer_role::client);
  auto hello = net::encode(h);
  auto binding = std::make_shared<std::string>();
  return {
    [=](const net::connected& ev) {
      *binding = ev.channel_binding;
      self->send(io, net::write_req{ev.id, {writer->control(net::frame_type::hello, 0, hello)}});
    },
    [](const net::connect_failed&) {},
    [=](const net::received& ev) {
      std::vector<net::frame> frames;
      dec->feed(ev.data, frames);
      for (auto& f : frames) {
        if (f.type == net::frame_type::challenge) {
          net::proof_msg proof;
          proof.signature = net::make_proof(
            *net::make_openssl_crypto(),
            sim::cached_login_key("mallory's secret", net::principal_salt("mallory")).seed,
            *binding, hello, f.payload);
          self->send(io, net::write_req{ev.id, {writer->control(net::frame_type::proof, 0,
                                                                net::encode(proof))}});
        } else if (f.type == net::frame_type::accept) {
          out->up = true;
          net::open_msg open;
          open.peer = "mallory";
          auto payload = net::encode(open);
          net::chunk_list burst;
          for (uint32_t i = 0; i < opens; ++i)
            burst.push_back(writer->control(net::frame_type::open, 1 + 2 * i, payload));
          self->send(io, net::write_req{ev.id, std::move(burst)});
        } else if (f.type == net::frame_type::rst && f.payload.size() == 4
                   && net::read_u32(f.payload.data())
                        == static_cast<uint32_t>(net::rst_code::refused)) {
          ++out->refused;
        } else if (f.type == net::frame_type::ping) {
          self->send(io, net::write_req{ev.id, {writer->pong(f.payload)}});
        }
      }
    },
    [](const net::read_closed&) {},
    [](const net::sent&) {},
    [self](const net::closed&) { self->quit(); },
  };
}

TEST(sim_limits, a_principal_opening_thousands_of_streams_is_cut_to_its_limits) {
  scenario s{12};
  s.d.run_for(1'000'000);
  std::vector<std::shared_ptr<sim::visitor_result>> early;
  for (int i = 0; i < 10; ++i)
    early.push_back(s.visit("visitors", 4 << 20, 200 + i));
  s.d.run_for(20'000);
  const uint32_t opens = figure_sizes() ? 17000 : 5000;
  auto res = std::make_shared<opener_result>();
  s.d.sys().spawn(stream_opener, s.d.net().io("mallory"), opens, res);
  ASSERT_TRUE(s.d.run_until([&] { return all_done(early) && res->refused > 0; },
                            120'000'000));
  s.d.run_for(2'000'000);
  std::printf("figure: sim principal opening %u streams at once: %u refused at once; "
              "10 earlier sessions: %zu ok\n",
              opens, res->refused, ok_count(early));
  EXPECT_TRUE(res->up);
  EXPECT_EQ(ok_count(early), early.size());
  // Everything past the principal's burst allowance (400) is reset.
  EXPECT_GE(res->refused, opens - 600);
  EXPECT_EQ(s.trace_count("lost a tunnel"), 0u);
  EXPECT_EQ(s.trace_count("declared dead"), 0u);
}

} // namespace

TEST(sim_limits, the_addresses_of_one_ipv6_slash_64_are_one_source) {
  // Hosts are named by their addresses here: two of one /64 share its
  // visitor limit (2), a third from another /64 has its own.
  scenario s{17, 4096, 2};
  for (auto h : {"2001:db8:0:1::a", "2001:db8:0:1::b", "2001:db8:0:2::a"})
    s.d.net().add_host(h);
  s.d.run_for(1'000'000);
  std::vector<std::shared_ptr<sim::visitor_result>> same;
  same.push_back(s.visit("2001:db8:0:1::a", 4 << 20, 1));
  same.push_back(s.visit("2001:db8:0:1::b", 4 << 20, 2));
  same.push_back(s.visit("2001:db8:0:1::b", 4 << 20, 3));
  auto other = s.visit("2001:db8:0:2::a", 4 << 20, 4);
  same.push_back(other);
  ASSERT_TRUE(s.d.run_until([&] { return all_done(same); }, 60'000'000));
  EXPECT_EQ(ok_count(same), 3u) << "two of the /64, and the other /64's one";
  EXPECT_TRUE(other->ok) << other->error;
  EXPECT_GE(s.trace_count("refused visitor 2001:db8:0:1::b"), 1u);
}
