// Admission before login, in the simulator: hostile hosts that hold many
// links and never say hello, or guess secrets over many parallel links,
// against the production POP server. Hosts are named by addresses where the
// prefix matters (the simulator's host name is its address).

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>

#include "actors/admission.hpp"
#include "actors/agent.hpp"
#include "actors/messages.hpp"
#include "actors/pop_server.hpp"
#include "caf/all.hpp"
#include "net/openssl_crypto.hpp"
#include "net/wire/control.hpp"
#include "net/wire/frame.hpp"
#include "net/wire/handshake.hpp"
#include "sim/driver.hpp"
#include "sim/rig.hpp"
#include "sim/scenario.hpp"

using namespace drtp;

namespace {

constexpr uint16_t tunnel_port = 7000;

std::string frame_bytes(net::frame_type type, const std::string& payload) {
  std::string h(net::frame_header_bytes, '\0');
  h[0] = static_cast<char>(type);
  for (int i = 0; i < 4; ++i)
    h[8 + i] = static_cast<char>(payload.size() >> (24 - 8 * i));
  return h + payload;
}

/// What a hostile host saw.
struct flood_counts {
  uint64_t dials = 0;
  uint64_t challenges = 0; // each one a guess
  uint64_t closed = 0;
  uint64_t open = 0;       // links connected and not closed
  uint64_t closed_silent_us_max = 0; // longest a silent link was held
};

struct flood_params {
  caf::actor io;
  size_t links = 0;            // kept open in parallel
  bool guess = false;          // hello, then a wrong proof to each challenge
  uint64_t until_us = 0;       // no new dial after this
  uint64_t redial_us = 20000;  // pause before replacing a closed link
  uint64_t dials_max = 100000; // bounds the run
  std::function<uint64_t()> now_us;
  std::shared_ptr<flood_counts> counts;
};

/// Keeps `links` links to the POP's tunnel port; silent, or guessing.
caf::behavior flooder(caf::event_based_actor* self, flood_params p) {
  auto started = std::make_shared<std::map<net::conn_id, uint64_t>>();
  auto decoders = std::make_shared<std::map<net::conn_id, net::frame_decoder>>();
  auto dial = [self, p] {
    if (p.now_us() > p.until_us || p.counts->dials >= p.dials_max)
      return;
    ++p.counts->dials;
    net::connect_req req;
    req.host = "pop";
    req.port = tunnel_port;
    self->send(p.io, req);
  };
  for (size_t i = 0; i < p.links; ++i)
    dial();
  auto redial = [self, p] {
    self->delayed_send(self, std::chrono::microseconds(p.redial_us), caf::ok_atom::value);
  };
  return {
    [=](caf::ok_atom) { dial(); },
    [=](const net::connected& ev) {
      ++p.counts->open;
      (*started)[ev.id] = p.now_us();
      if (p.guess) {
        net::hello_msg h;
        h.service = "echo";
        h.agent_id = "guesser";
        self->send(p.io, net::write_req{ev.id, {net::chunk::copy_of(frame_bytes(
                                                 net::frame_type::hello,
                                                 net::encode(h).to_string()))}});
      }
    },
    [=](const net::connect_failed&) { redial(); },
    [=](const net::received& ev) {
      std::vector<net::frame> frames;
      (*decoders)[ev.id].feed(ev.data, frames);
      for (auto& f : frames)
        if (f.type == net::frame_type::challenge) {
          ++p.counts->challenges;
          net::proof_msg proof;
          proof.signature = std::string(64, 'g');
          self->send(p.io, net::write_req{ev.id, {net::chunk::copy_of(frame_bytes(
                                                   net::frame_type::proof,
                                                   net::encode(proof).to_string()))}});
        }
    },
    [](const net::read_closed&) {},
    [](const net::sent&) {},
    [=](const net::closed& ev) {
      --p.counts->open;
      ++p.counts->closed;
      if (!p.guess)
        p.counts->closed_silent_us_max = std::max(p.counts->closed_silent_us_max,
                                                  p.now_us() - (*started)[ev.id]);
      started->erase(ev.id);
      decoders->erase(ev.id);
      redial();
    },
  };
}

/// Tells when the POP reports a tunnel for "echo".
caf::behavior status_watch(caf::event_based_actor*, std::shared_ptr<bool> up) {
  return {
    [](const pop_ready&) {},
    [up](const pop_status& st) {
      auto i = st.agents.find("echo");
      *up = i != st.agents.end() && !i->second.empty();
    },
  };
}

struct field : sim::rig {
  explicit field(uint64_t seed) : rig(seed) {
    sim::link_params link;
    link.latency_us = 2000;
    d.net().set_default_link(link);
    d.net().add_host("pop");
    d.net().add_host("agent");
  }

  void start_pop() {
    pop_params pp;
    pp.e = make_env("pop", 1);
    pp.tunnel_port = tunnel_port;
    auto sc = service("echo", "the secret", 0);
    sc.is_public = false;
    pp.services.push_back(sc);
    pp.observer = d.sys().spawn(status_watch, agent_up);
    auto pop = spawn_pop_server(d.sys(), std::move(pp));
    d.net().register_actor("pop", pop);
  }

  void start_agent() {
    auto ap = agent("agent", "echo", "the secret",
                    {pop_endpoint{"pop", "pop", tunnel_port, "eu"}}, 5432, 2);
    d.net().register_actor("agent", spawn_agent(d.sys(), std::move(ap)));
  }

  std::shared_ptr<flood_counts> flood(const std::string& host, size_t links, bool guess,
                                      uint64_t until_us, uint64_t redial_us = 20'000) {
    d.net().add_host(host);
    flood_params fp;
    fp.io = d.net().io(host);
    fp.links = links;
    fp.guess = guess;
    fp.until_us = until_us;
    fp.redial_us = redial_us;
    fp.now_us = [this] { return d.now_us(); };
    fp.counts = std::make_shared<flood_counts>();
    d.net().register_actor(host, d.sys().spawn(flooder, fp));
    return fp.counts;
  }

  std::shared_ptr<bool> agent_up = std::make_shared<bool>(false);
};

} // namespace

TEST(sim_admission, silent_flood_from_other_hosts_cannot_keep_an_agent_out) {
  field w{11};
  w.start_pop();
  w.d.run_for(10'000);
  // 40 hosts, 30 silent links each: more than the POP's 1 024 slots.
  std::vector<std::shared_ptr<flood_counts>> floods;
  for (int i = 0; i < 40; ++i)
    floods.push_back(w.flood("mallory" + std::to_string(i), 30, false, 4'000'000));
  w.d.run_for(300'000);
  uint64_t held = 0;
  for (auto& f : floods)
    held += f->open;
  std::printf("figure: sim silent flood: %llu links held by 40 hosts\n",
              static_cast<unsigned long long>(held));
  auto start = w.d.now_us();
  w.start_agent();
  ASSERT_TRUE(w.d.run_until([&] { return *w.agent_up; }, 3'000'000))
    << "the agent got no tunnel during the flood";
  std::printf("figure: sim time to tunnel during a silent flood: %.3f s\n",
              (w.d.now_us() - start) / 1e6);
  // Well before any silent link's deadline: the table made room for it.
  EXPECT_LT(w.d.now_us() - start, 1'000'000u);
}

TEST(sim_admission, link_without_hello_is_closed_at_the_hello_deadline) {
  field w{12};
  w.start_pop();
  w.d.run_for(10'000);
  auto f = w.flood("mallory", 5, false, 100'000);
  w.d.run_until([&] { return f->closed >= 5; }, 12'000'000);
  ASSERT_EQ(f->closed, 5u);
  std::printf("figure: sim silent link held for %.3f s\n", f->closed_silent_us_max / 1e6);
  // The hello deadline (2 s) is well short of the proof deadline (10 s).
  EXPECT_LT(f->closed_silent_us_max, 3'000'000u);
}

TEST(sim_admission, one_host_holds_at_most_its_share_of_handshakes) {
  field w{13};
  w.start_pop();
  w.d.run_for(10'000);
  auto f = w.flood("mallory", 200, false, 1'000'000);
  w.d.run_for(500'000);
  // The rest were refused at once (and keep being redialled).
  EXPECT_LE(f->open, admission_limits{}.handshakes_per_source_max);
  EXPECT_GT(f->closed, 0u);
}

namespace {

/// Guesses (challenges answered with a wrong proof) in `seconds` from
/// `hosts` hosts with `links` parallel links each.
uint64_t guesses(uint64_t seed, const std::vector<std::string>& hosts, size_t links,
                 uint64_t seconds) {
  field w{seed};
  w.start_pop();
  w.d.run_for(10'000);
  std::vector<std::shared_ptr<flood_counts>> floods;
  for (auto& h : hosts)
    // Refused links come back after 250 ms: enough pressure to keep every
    // link busy, few enough dials to keep the run short.
    floods.push_back(w.flood(h, links, true, seconds * 1'000'000, 250'000));
  w.d.run_for(seconds * 1'000'000);
  uint64_t n = 0;
  for (auto& f : floods)
    n += f->challenges;
  return n;
}

uint64_t guess_bound(uint64_t seconds) {
  auto lim = admission_limits{};
  // The burst, one per interval, and the debt the longest delay allows.
  return lim.auth_attempts_burst + seconds * 1000 / lim.auth_attempt_interval_ms
         + lim.auth_delay_max_ms / lim.auth_attempt_interval_ms + 1;
}

} // namespace

TEST(sim_admission, guesses_from_one_address_are_paced_across_parallel_links) {
  constexpr uint64_t seconds = 6;
  auto n = guesses(14, {"192.0.2.10"}, 1000, seconds);
  std::printf("figure: sim guesses/s from one address, 1000 parallel links: %.1f\n",
              static_cast<double>(n) / seconds);
  EXPECT_LE(n, guess_bound(seconds));
  EXPECT_GT(n, 0u);
}

TEST(sim_admission, guesses_from_one_slash24_share_one_bucket) {
  constexpr uint64_t seconds = 6;
  std::vector<std::string> hosts;
  for (int i = 1; i <= 50; ++i)
    hosts.push_back("198.51.100." + std::to_string(i));
  auto n = guesses(15, hosts, 20, seconds);
  std::printf("figure: sim guesses/s from 50 addresses of one /24, 20 links each: %.1f\n",
              static_cast<double>(n) / seconds);
  EXPECT_LE(n, guess_bound(seconds));
  EXPECT_GT(n, 0u);
}
