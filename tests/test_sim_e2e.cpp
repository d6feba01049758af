// The production actors (POP server, agent, tunnel, session) in the
// deterministic simulator: the same scenario as the real-socket end-to-end
// test, plus crashes, and replay by seed.

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <map>
#include <vector>

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

struct scenario : sim::rig {
  explicit scenario(uint64_t seed) : rig(seed) {
    auto& w = d.net();
    sim::link_params link;
    link.latency_us = 2000;
    link.jitter_us = 500;
    link.bandwidth_bytes_per_s = 200'000'000;
    w.set_default_link(link);
    w.add_host("pop");
    w.add_host("agent");
    w.add_host("visitors");
    sim::spawn_app_service(d.sys(), w.io("agent"), service_port, 0x5a);
    start_pop();
  }

  void start_pop() {
    pop_params pp;
    pp.e = make_env("pop", ++incarnation);
    pp.tunnel_port = tunnel_port;
    pp.services.push_back(service("echo", "the secret", public_port));
    pop = spawn_pop_server(d.sys(), std::move(pp));
    d.net().register_actor("pop", pop);
  }

  /// What the POP stores for its service "echo": the public key only.
  static std::string stored_public_key() {
    return service("echo", "the secret", 0).public_key;
  }

  void start_agent(const std::string& secret = "the secret") {
    start_agent_with_key(sim::cached_login_key(secret, net::service_salt("echo")).seed);
  }

  /// An agent that signs with `signing_key` and dials `pop_host`.
  void start_agent_with_key(const std::string& signing_key,
                            const std::string& pop_host = "pop") {
    auto ap = agent("agent", "echo", "the secret",
                    {pop_endpoint{pop_host, pop_host, tunnel_port, "eu"}}, service_port,
                    100 + ++incarnation);
    ap.signing_key = signing_key;
    d.net().register_actor("agent", spawn_agent(d.sys(), std::move(ap)));
  }

  std::shared_ptr<sim::visitor_result> visit(uint64_t bytes, uint64_t seed) {
    auto r = rig::visit("visitors", "pop", public_port, bytes, seed, 0x5a);
    results.push_back(r);
    return r;
  }

  bool all_done() const {
    for (auto& r : results)
      if (!r->done)
        return false;
    return true;
  }

  size_t ok_count() const {
    size_t n = 0;
    for (auto& r : results)
      n += r->ok ? 1 : 0;
    return n;
  }

  caf::actor pop;
  uint64_t incarnation = 0;
  std::vector<std::shared_ptr<sim::visitor_result>> results;
};

struct run_summary {
  uint64_t hash;
  uint64_t steps;
  size_t ok;
};

run_summary concurrent_visitors(uint64_t seed, int visitors, uint64_t bytes) {
  scenario s{seed};
  s.start_agent();
  s.d.run_for(1'000'000);
  for (int i = 0; i < visitors; ++i)
    s.visit(bytes, seed * 7919 + i);
  EXPECT_TRUE(s.d.run_until([&] { return s.all_done(); }, 60'000'000));
  for (auto& r : s.results)
    EXPECT_TRUE(r->ok) << r->error;
  // Every session ended: only the tunnel and listeners remain.
  s.d.run_for(1'000'000);
  EXPECT_EQ(s.d.net().open_connections(), 2u); // the tunnel's two ends
  return {s.d.trace_hash(), s.d.steps(), s.ok_count()};
}

} // namespace

TEST(sim_e2e, hundred_visitors_echo_byte_for_byte) {
  auto r = concurrent_visitors(1, 100, 64 * 1024);
  EXPECT_EQ(r.ok, 100u);
}

TEST(sim_e2e, large_transfers_respect_flow_control) {
  // 4 MiB each through a 256 KiB window: credit must keep flowing.
  auto r = concurrent_visitors(2, 4, 4 << 20);
  EXPECT_EQ(r.ok, 4u);
}

TEST(sim_e2e, same_seed_same_trace_other_seed_other_interleaving) {
  auto a = concurrent_visitors(42, 10, 20000);
  auto b = concurrent_visitors(42, 10, 20000);
  auto c = concurrent_visitors(43, 10, 20000);
  EXPECT_EQ(a.hash, b.hash);
  EXPECT_EQ(a.steps, b.steps);
  EXPECT_NE(a.hash, c.hash);
}

TEST(sim_e2e, visitor_without_tunnel_is_refused_at_once) {
  scenario s{3};
  s.d.run_for(100'000);
  auto r = s.visit(1000, 1);
  ASSERT_TRUE(s.d.run_until([&] { return r->done; }, 1'000'000));
  EXPECT_FALSE(r->ok);
  EXPECT_LT(r->finished_us - r->started_us, 100'000u); // a few RTTs
  EXPECT_TRUE(s.trace_has("no tunnel is up"));
}

TEST(sim_e2e, wrong_secret_never_gets_a_tunnel) {
  scenario s{4};
  s.start_agent("guessed");
  s.d.run_for(3'000'000);
  EXPECT_TRUE(s.trace_has("rejected service 'echo': wrong secret"));
  EXPECT_FALSE(s.trace_has("tunnel up"));
  EXPECT_FALSE(s.trace_has("guessed"));
  auto r = s.visit(1000, 1);
  s.d.run_until([&] { return r->done; }, 2'000'000);
  EXPECT_FALSE(r->ok);
}

TEST(sim_e2e, what_the_pop_stores_cannot_log_in) {
  // Someone read the POP's config (or a backup, or a core dump): all it
  // holds for the service is its public key. An agent that signs with that
  // (its only candidate for a key) is refused, and no tunnel comes up.
  scenario s{41};
  s.start_agent_with_key(scenario::stored_public_key());
  s.d.run_for(3'000'000);
  EXPECT_TRUE(s.trace_has("rejected service 'echo': wrong secret"));
  EXPECT_FALSE(s.trace_has("tunnel up"));
  auto r = s.visit(1000, 1);
  s.d.run_until([&] { return r->done; }, 2'000'000);
  EXPECT_FALSE(r->ok);
}

namespace {

/// A hostile POP at `self`'s host: every link an agent opens to it is
/// relayed byte for byte to the real POP, so the agent's hello, the real
/// POP's challenge and the agent's proof all pass through. Without a channel
/// binding, the real POP accepts the agent's login made at this one.
caf::behavior relaying_pop(caf::event_based_actor* self, caf::actor io, std::string real_pop) {
  self->send(io, net::listen_req{1, "0.0.0.0", tunnel_port, true});
  struct pair {
    net::conn_id agent = 0;
    net::conn_id pop = 0;
    std::vector<net::chunk> early; // from the agent before the POP answered
  };
  auto by_tag = std::make_shared<std::map<uint64_t, pair>>();
  auto peer = std::make_shared<std::map<net::conn_id, net::conn_id>>();
  return {
    [](const net::listening&) {},
    [=](const net::accepted& ev) {
      self->send(io, net::adopt_req{ev.id, caf::actor_cast<caf::actor>(self), false});
      (*by_tag)[ev.id].agent = ev.id;
      net::connect_req req;
      req.tag = ev.id;
      req.host = real_pop;
      req.port = tunnel_port;
      req.tls = std::make_shared<net::tls_client_config>();
      req.report_sent = false;
      self->send(io, req);
    },
    [=](const net::connected& ev) {
      auto& p = (*by_tag)[ev.tag];
      p.pop = ev.id;
      (*peer)[p.agent] = p.pop;
      (*peer)[p.pop] = p.agent;
      for (auto& c : p.early)
        self->send(io, net::write_req{p.pop, {c}});
      p.early.clear();
    },
    [=](const net::connect_failed& ev) { self->send(io, net::abort_req{ev.tag}); },
    [=](const net::received& ev) {
      auto i = peer->find(ev.id);
      if (i != peer->end())
        self->send(io, net::write_req{i->second, {ev.data}});
      else if (by_tag->count(ev.id))
        (*by_tag)[ev.id].early.push_back(ev.data);
    },
    [](const net::read_closed&) {},
    [](const net::sent&) {},
    [=](const net::closed& ev) {
      auto i = peer->find(ev.id);
      if (i != peer->end())
        self->send(io, net::close_req{i->second});
    },
  };
}

} // namespace

TEST(sim_e2e, a_login_relayed_from_another_pop_is_refused) {
  // The agent dials a hostile POP, which replays everything of the login at
  // the real POP over its own TLS link. The proof signs the agent's TLS
  // channel, not the relay's: the real POP refuses it.
  scenario s{42};
  s.d.net().add_host("evil");
  s.d.sys().spawn(relaying_pop, s.d.net().io("evil"), std::string("pop"));
  s.d.run_for(100'000);
  s.start_agent_with_key(sim::cached_login_key("the secret", net::service_salt("echo")).seed,
                         "evil");
  s.d.run_for(3'000'000);
  EXPECT_TRUE(s.trace_has("refused agent from evil for service 'echo': wrong secret"));
  EXPECT_FALSE(s.trace_has("tunnel up"));
  auto r = s.visit(1000, 1);
  s.d.run_until([&] { return r->done; }, 2'000'000);
  EXPECT_FALSE(r->ok);
}

TEST(sim_e2e, agent_reconnects_after_pop_crash_and_restart) {
  scenario s{5};
  s.start_agent();
  s.d.run_for(1'000'000);
  s.visit(10000, 1);
  ASSERT_TRUE(s.d.run_until([&] { return s.all_done(); }, 5'000'000));
  EXPECT_EQ(s.ok_count(), 1u);
  s.d.net().crash("pop", sim::crash_mode::reset);
  s.d.run_for(2'000'000);
  s.d.net().restart("pop");
  s.start_pop();
  // Backoff is capped at 10 s; within 15 s the tunnel is back.
  s.d.run_for(15'000'000);
  s.visit(10000, 2);
  ASSERT_TRUE(s.d.run_until([&] { return s.all_done(); }, 5'000'000));
  EXPECT_EQ(s.ok_count(), 2u);
}

TEST(sim_e2e, silent_pop_is_declared_dead_by_heartbeats) {
  scenario s{6};
  s.start_agent();
  s.d.run_for(1'000'000);
  s.d.net().crash("pop", sim::crash_mode::silent);
  auto crashed_at = s.d.now_us();
  ASSERT_TRUE(s.d.run_until([&] { return s.trace_has("declared dead"); },
                            10'000'000));
  // 3 missed 1 s heartbeats, detected on the next tick: under 5 s.
  EXPECT_LT(s.d.now_us() - crashed_at, 5'000'000u);
}

// -- hostile peers ---------------------------------------------------------------

#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include "net/wire/control.hpp"
#include "net/wire/frame.hpp"
#include "sim/hostile_peer.hpp"

RC_GTEST_PROP(sim_e2e, hostile_bytes_never_hurt_the_pop, ()) {
  // A peer that speaks garbage, or frames of every type in any order (after
  // a valid hello, or as a patch-panel client that never authenticates).
  auto raw = *rc::gen::container<std::vector<std::string>>(
    rc::gen::resize(200, rc::gen::arbitrary<std::string>()));
  auto frames = *rc::gen::container<std::vector<std::tuple<uint8_t, uint32_t, std::string>>>(
    rc::gen::tuple(rc::gen::element<uint8_t>(1, 2, 3, 4, 5, 16, 17, 18, 19, 20, 32, 33,
                                             34, 99),
                   rc::gen::inRange<uint32_t>(0, 8),
                   rc::gen::resize(64, rc::gen::arbitrary<std::string>())));
  bool with_hello = *rc::gen::arbitrary<bool>();
  scenario s{*rc::gen::inRange<uint64_t>(0, 1000)};
  s.start_agent();
  s.d.net().add_host("mallory");
  auto login = std::make_shared<sim::hostile_login>();
  if (with_hello) {
    net::hello_msg h;
    h.service = "echo";
    h.agent_id = "mallory";
    login->hello = net::encode(h).to_string();
    login->seed = sim::cached_login_key("the secret", net::service_salt("echo")).seed;
    login->crypto = net::make_openssl_crypto();
  }
  sim::hostile_peer_params tunnel_peer;
  tunnel_peer.io = s.d.net().io("mallory");
  tunnel_peer.pop_host = "pop";
  tunnel_peer.pop_port = tunnel_port;
  if (with_hello)
    tunnel_peer.login = login;
  tunnel_peer.result = std::make_shared<sim::hostile_result>();
  auto public_peer = tunnel_peer;
  public_peer.pop_port = public_port;
  public_peer.login = nullptr;
  public_peer.result = std::make_shared<sim::hostile_result>();
  for (auto& [t, sid, p] : frames) {
    sim::hostile_step f;
    f.what = sim::hostile_step::kind::frame;
    f.type = t;
    f.stream_id = sid;
    f.bytes = p;
    tunnel_peer.script.push_back(f);
  }
  for (auto& r : raw) {
    sim::hostile_step w;
    w.bytes = r;
    tunnel_peer.script.push_back(w);
    public_peer.script.push_back(w);
  }
  sim::spawn_hostile_peer(s.d.sys(), tunnel_peer);
  sim::spawn_hostile_peer(s.d.sys(), public_peer);
  RC_TAG(with_hello ? "authenticated hostile agent" : "unauthenticated");
  s.d.run_for(3'000'000);
  RC_CLASSIFY(s.trace_has("tunnel up with agent mallory"), "mallory got a tunnel");
  // Joe's visitors still get through, byte for byte.
  s.visit(20000, 1);
  RC_ASSERT(s.d.run_until([&] { return s.all_done(); }, 10'000'000));
  RC_ASSERT(s.ok_count() == 1u);
}

TEST(sim_e2e, a_login_that_began_before_a_rekey_is_closed_when_it_ends) {
  // The operator rotates a leaked secret (SIGHUP) while an agent holding
  // the old one is half-way through its handshake: the tunnel was given the
  // old key to check, but what it proved must not admit it any more.
  scenario s{5};
  bool rekeyed = false;
  s.d.net().set_tap([&](const std::string& host, uint64_t, const std::string& bytes) {
    if (host != "pop" || rekeyed || bytes.empty()
        || bytes[0] != static_cast<char>(net::frame_type::hello))
      return;
    rekeyed = true;
    pop_reconfigure rc;
    rc.services.push_back(sim::rig::service("echo", "the new secret", public_port));
    caf::anon_send(s.pop, std::move(rc));
  });
  s.start_agent(); // the old secret
  s.d.run_for(3'000'000);
  ASSERT_TRUE(rekeyed);
  EXPECT_TRUE(s.trace_has("its key or access changed while it logged in"));
  EXPECT_FALSE(s.trace_has("service 'echo' now has 1 tunnel(s)"));
  auto r = s.visit(1000, 1);
  ASSERT_TRUE(s.d.run_until([&] { return r->done; }, 5'000'000));
  EXPECT_FALSE(r->ok) << "the old secret must not carry visitors";
}

// end_open_sessions: a reload that takes access away also ends the open
// client tunnel (without it, the tunnel stays and only new logins are refused).
TEST(sim_e2e, a_reload_that_takes_a_principal_off_the_allow_list_cuts_its_tunnel) {
  scenario s{6};
  s.d.net().add_host("sam");
  auto with_sam = [](std::vector<std::string> allow) {
    pop_reconfigure rc;
    auto sc = sim::rig::service("echo", "the secret", public_port);
    sc.end_open_sessions = true;
    sc.allow = std::move(allow);
    rc.services.push_back(sc);
    rc.principals.push_back(sim::rig::principal("sam", "sam's secret"));
    return rc;
  };
  caf::anon_send(s.pop, with_sam({"sam"}));
  s.start_agent();
  auto ap = s.agent("sam", "echo", "the secret", {pop_endpoint{"pop", "pop", tunnel_port, "eu"}},
                    0, 500);
  ap.agent_id = "sam";
  ap.signing_key = sim::cached_login_key("sam's secret", net::principal_salt("sam")).seed;
  ap.client = true;
  ap.listen_host = "sam";
  ap.listen_port = 6000;
  s.d.net().register_actor("sam", spawn_agent(s.d.sys(), std::move(ap)));
  ASSERT_TRUE(s.d.run_until([&] { return s.trace_has("tunnel up with client sam"); },
                            3'000'000));
  // A patch-panel session open through the splice when the reload cuts
  // sam's tunnel: it ends, and the splice must not take Joe's agent tunnel
  // (its other leg) down with it.
  auto open = s.rig::visit("sam", "sam", 6000, 1000, 9, 0x5a, sim::workload_kind::request_response,
                           500);
  ASSERT_TRUE(s.d.run_until([&] { return s.trace_has("opened session for principal 'sam'"); },
                            3'000'000));
  auto agent_ups = s.trace_count("now has 1 tunnel(s)");
  // Joe's agent's own line (sam's client says "0 of 1 up" too, on host sam).
  auto joe_says = [&](const char* what) {
    size_t n = 0;
    for (auto& l : s.d.trace_lines())
      n += l.find(" agent agent#") != std::string::npos && l.find(what) != std::string::npos;
    return n;
  };
  auto joe_down = [&] { return joe_says("0 of 1 up"); };
  ASSERT_EQ(joe_says("1 of 1 up"), 1u) << "Joe's agent's lines are told apart";
  auto agent_downs = joe_down();
  // Joe's agent is unchanged by the reload; sam's client tunnel is cut, and
  // the next login is refused: sam is no longer on the allow list.
  caf::anon_send(s.pop, with_sam({}));
  s.d.run_for(2'000'000);
  EXPECT_EQ(s.trace_count("now has 1 tunnel(s)"), agent_ups) << "the agent's tunnel stayed";
  EXPECT_EQ(joe_down(), agent_downs) << "the agent lost no tunnel";
  EXPECT_FALSE(open->done && open->ok) << "the cut session did not complete";
  EXPECT_TRUE(s.trace_has("config reloaded: 1 service(s); 1 tunnel(s) closed"));
  EXPECT_TRUE(s.trace_has("denied principal 'sam' from sam for service 'echo': not on its allow list"));
  auto r = s.visit(1000, 1);
  ASSERT_TRUE(s.d.run_until([&] { return r->done; }, 5'000'000));
  EXPECT_TRUE(r->ok) << r->error;
}
