// The simulated network through the seam: small actors that listen, connect,
// echo and break things, driven by sim::driver in virtual time.

#include <gtest/gtest.h>

#include <memory>
#include <cstdio>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "caf/actor_cast.hpp"
#include "caf/actor_system.hpp"
#include "caf/atom.hpp"
#include "caf/event_based_actor.hpp"
#include "caf/send.hpp"
#include "net/seam/io.hpp"
#include "sim/driver.hpp"
#include "sim/world.hpp"

using namespace drtp;

namespace {

using write_atom = caf::atom_constant<caf::atom("t_write")>;
using abort_atom = caf::atom_constant<caf::atom("t_abort")>;
using resume_atom = caf::atom_constant<caf::atom("t_resume")>;

constexpr uint64_t ms = 1000; // virtual microseconds per millisecond
constexpr uint64_t sec = 1000 * ms;

std::string random_bytes(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s)
    c = static_cast<char>(rng() & 0xff);
  return s;
}

// -- a server: echo, sink (paused until told) or close at once --------------

enum class server_mode { echo, paused_sink, close_on_accept };

struct server_log {
  bool listening = false;
  uint16_t port = 0;
  std::string listen_error;
  int accepted = 0;
  std::vector<std::string> peers;
  std::string received;
  int read_closed = 0;
  std::vector<net::close_reason> closed;
};

caf::behavior test_server(caf::event_based_actor* self, caf::actor io,
                          uint16_t port, server_mode mode,
                          std::shared_ptr<server_log> log) {
  self->send(io, net::listen_req{1, "srv", port, false});
  auto conns = std::make_shared<std::vector<net::conn_id>>();
  return {
    [=](const net::listening& x) {
      log->listening = true;
      log->port = x.port;
    },
    [=](const net::listen_failed& x) { log->listen_error = x.what; },
    [=](const net::accepted& x) {
      ++log->accepted;
      log->peers.push_back(x.peer_host);
      conns->push_back(x.id);
      self->send(io, net::adopt_req{x.id, caf::actor_cast<caf::actor>(self)});
      if (mode == server_mode::paused_sink)
        self->send(io, net::pause_read_req{x.id});
      else if (mode == server_mode::close_on_accept)
        self->send(io, net::close_req{x.id});
    },
    [=](net::received& x) {
      log->received += x.data.to_string();
      if (mode == server_mode::echo)
        self->send(io, net::write_req{x.id, {std::move(x.data)}});
    },
    [=](const net::read_closed& x) {
      ++log->read_closed;
      self->send(io, net::shutdown_write_req{x.id});
    },
    [=](const net::sent&) {},
    [=](const net::closed& x) { log->closed.push_back(x.reason); },
    [=](resume_atom) {
      for (auto id : *conns)
        self->send(io, net::resume_read_req{id});
    },
  };
}

// -- a client: connect, send a payload in pieces, maybe half-close ----------

struct client_opts {
  std::string host = "srv";
  uint16_t port = 7000;
  std::string payload;
  size_t piece = 1000;
  bool half_close = true;
  uint32_t timeout_ms = 5000;
};

struct client_log {
  bool connected = false;
  net::conn_id id = 0;
  uint64_t connected_us = 0;
  std::optional<net::connect_error> failed;
  uint64_t failed_us = 0;
  std::string echoed;
  uint64_t first_byte_us = 0;
  uint64_t sent_bytes = 0;
  bool read_closed = false;
  std::optional<net::close_reason> closed;
  uint64_t closed_us = 0;
  int events_after_closed = 0;
};

caf::behavior test_client(caf::event_based_actor* self, caf::actor io,
                          client_opts o, std::shared_ptr<client_log> log,
                          sim::driver* d) {
  self->send(io, net::connect_req{7, o.host, o.port, o.timeout_ms, nullptr});
  auto after_close = [=] {
    if (log->closed)
      ++log->events_after_closed;
  };
  return {
    [=](const net::connected& x) {
      log->connected = true;
      log->id = x.id;
      log->connected_us = d->now_us();
      // One buffer, sent as slices of it: no copies on the way.
      auto all = net::chunk::copy_of(o.payload);
      for (size_t off = 0; off < all.size(); off += o.piece) {
        auto n = std::min(o.piece, all.size() - off);
        self->send(io, net::write_req{x.id, {all.slice(off, n)}});
      }
      if (o.half_close)
        self->send(io, net::shutdown_write_req{x.id});
    },
    [=](const net::connect_failed& x) {
      log->failed = x.reason;
      log->failed_us = d->now_us();
    },
    [=](const net::received& x) {
      after_close();
      if (log->echoed.empty())
        log->first_byte_us = d->now_us();
      log->echoed += x.data.to_string();
    },
    [=](const net::sent& x) {
      after_close();
      log->sent_bytes += x.bytes;
    },
    [=](const net::read_closed&) {
      after_close();
      log->read_closed = true;
    },
    [=](const net::closed& x) {
      after_close();
      log->closed = x.reason;
      log->closed_us = d->now_us();
    },
    [=](write_atom, const std::string& s) {
      self->send(io, net::write_req{log->id, {net::chunk::copy_of(s)}});
    },
    [=](abort_atom) { self->send(io, net::abort_req{log->id}); },
  };
}

/// A world with a server host "srv" (server on port 7000) and "cli".
struct fixture {
  sim::driver d;
  caf::actor srv_io;
  caf::actor cli_io;
  std::shared_ptr<server_log> srv = std::make_shared<server_log>();
  caf::actor server;

  explicit fixture(uint64_t seed, sim::link_params p = {},
                   server_mode mode = server_mode::echo)
    : d(seed) {
    d.net().set_default_link(p);
    srv_io = d.net().add_host("srv");
    cli_io = d.net().add_host("cli");
    server = d.sys().spawn(test_server, srv_io, uint16_t{7000}, mode, srv);
    EXPECT_TRUE(d.run_until([&] { return srv->listening; }, 1 * sec));
  }

  std::pair<caf::actor, std::shared_ptr<client_log>> client(client_opts o) {
    auto log = std::make_shared<client_log>();
    auto a = d.sys().spawn(test_client, cli_io, std::move(o), log, &d);
    return {a, log};
  }
};

} // namespace

TEST(sim_world, echo_byte_for_byte_with_half_close) {
  fixture f(1, {1000, 200, 0, 0.0});
  auto payload = random_bytes(100'000, 42);
  auto [cli, log] = f.client({"srv", 7000, payload, 1000});
  ASSERT_TRUE(f.d.run_until([&] { return log->closed.has_value(); }, 10 * sec));
  EXPECT_TRUE(log->connected);
  EXPECT_TRUE(log->read_closed);
  EXPECT_EQ(log->echoed.size(), payload.size());
  EXPECT_TRUE(log->echoed == payload);
  EXPECT_EQ(log->sent_bytes, payload.size());
  EXPECT_EQ(*log->closed, net::close_reason::peer);
  ASSERT_TRUE(f.d.run_until([&] { return !f.srv->closed.empty(); }, 1 * sec));
  EXPECT_EQ(f.srv->closed[0], net::close_reason::peer);
  EXPECT_EQ(f.srv->peers, std::vector<std::string>{"cli"});
  f.d.run_for(1 * sec);
  EXPECT_EQ(log->events_after_closed, 0);
  EXPECT_EQ(f.srv->closed.size(), 1u);
  EXPECT_EQ(f.d.net().open_connections(), 0u);
  EXPECT_EQ(f.d.net().open_listeners(), 1u);
  if (::testing::Test::HasFailure())
    for (auto& line : f.d.trace_lines())
      std::printf("%s\n", line.c_str());
}

TEST(sim_world, listen_port_conflict_and_port_zero) {
  fixture f(2);
  auto again = std::make_shared<server_log>();
  auto any = std::make_shared<server_log>();
  auto s1 = f.d.sys().spawn(test_server, f.srv_io, uint16_t{7000},
                            server_mode::echo, again);
  auto s2 = f.d.sys().spawn(test_server, f.srv_io, uint16_t{0},
                            server_mode::echo, any);
  ASSERT_TRUE(f.d.run_until(
    [&] { return !again->listen_error.empty() && any->listening; }, sec));
  EXPECT_EQ(again->listen_error, "address already in use");
  EXPECT_GE(any->port, 10000);
  EXPECT_EQ(f.d.net().open_listeners(), 2u);
}

TEST(sim_world, refused_and_unreachable) {
  fixture f(3, {5000, 0, 0, 0.0});
  auto [c1, refused] = f.client({"srv", 7001, ""});
  auto [c2, unknown] = f.client({"nowhere", 7000, ""});
  ASSERT_TRUE(f.d.run_until(
    [&] { return refused->failed && unknown->failed; }, 10 * sec));
  EXPECT_EQ(*refused->failed, net::connect_error::refused);
  EXPECT_GE(refused->failed_us, 10 * ms); // one round trip
  EXPECT_EQ(*unknown->failed, net::connect_error::unreachable);
  EXPECT_EQ(f.d.net().open_connections(), 0u);
}

TEST(sim_world, connect_to_silent_host_times_out) {
  fixture f(4);
  f.d.net().crash("srv", sim::crash_mode::silent);
  EXPECT_FALSE(f.d.net().is_up("srv"));
  EXPECT_EQ(f.d.net().open_listeners(), 0u);
  client_opts o;
  o.timeout_ms = 500;
  auto start_us = f.d.now_us();
  auto [c, log] = f.client(o);
  ASSERT_TRUE(f.d.run_until([&] { return log->failed.has_value(); }, 5 * sec));
  EXPECT_EQ(*log->failed, net::connect_error::timed_out);
  EXPECT_EQ(log->failed_us - start_us, 500 * ms);
}

TEST(sim_world, crash_with_reset_resets_peers) {
  fixture f(5, {2000, 0, 0, 0.0});
  client_opts o;
  o.payload = "hello";
  o.half_close = false;
  auto [c, log] = f.client(o);
  ASSERT_TRUE(f.d.run_until([&] { return log->echoed == "hello"; }, sec));
  f.d.net().crash("srv", sim::crash_mode::reset);
  auto crash_us = f.d.now_us();
  ASSERT_TRUE(f.d.run_until([&] { return log->closed.has_value(); }, sec));
  EXPECT_EQ(*log->closed, net::close_reason::reset);
  EXPECT_EQ(log->closed_us - crash_us, 2 * ms); // one latency
  EXPECT_TRUE(f.srv->closed.empty()); // the server vanished, it heard nothing
  EXPECT_EQ(f.d.net().open_connections(), 0u);
  EXPECT_EQ(f.d.net().open_listeners(), 0u);
  // Restarted, empty: a new connect is refused until someone listens.
  f.d.net().restart("srv");
  EXPECT_TRUE(f.d.net().is_up("srv"));
  auto [c2, log2] = f.client({});
  ASSERT_TRUE(f.d.run_until([&] { return log2->failed.has_value(); }, sec));
  EXPECT_EQ(*log2->failed, net::connect_error::refused);
}

TEST(sim_world, silent_crash_leaves_half_open_then_restart_resets) {
  fixture f(6, {2000, 0, 0, 0.0});
  client_opts o;
  o.payload = "ping";
  o.half_close = false;
  auto [c, log] = f.client(o);
  ASSERT_TRUE(f.d.run_until([&] { return log->echoed == "ping"; }, sec));
  f.d.net().crash("srv", sim::crash_mode::silent);
  caf::anon_send(c, write_atom::value, std::string("anyone?"));
  f.d.run_for(5 * sec);
  EXPECT_FALSE(log->closed.has_value()); // half-open: nothing ever arrives
  EXPECT_EQ(log->echoed, "ping");
  EXPECT_EQ(f.d.net().open_connections(), 1u);
  // After a restart the host's kernel answers stray data with a reset.
  f.d.net().restart("srv");
  caf::anon_send(c, write_atom::value, std::string("still there?"));
  ASSERT_TRUE(f.d.run_until([&] { return log->closed.has_value(); }, sec));
  EXPECT_EQ(*log->closed, net::close_reason::reset);
  EXPECT_EQ(f.d.net().open_connections(), 0u);
}

TEST(sim_world, partition_holds_traffic_and_heal_releases_in_order) {
  fixture f(7, {1000, 300, 0, 0.0});
  auto payload = random_bytes(50'000, 7);
  auto [c, log] = f.client({"srv", 7000, payload, 500});
  ASSERT_TRUE(f.d.run_until([&] { return log->connected; }, sec));
  // The client wrote everything while handling `connected`; none arrived.
  f.d.net().partition("cli", "srv", true);
  f.d.run_for(3 * sec);
  EXPECT_TRUE(f.srv->received.empty());
  EXPECT_TRUE(log->echoed.empty());
  EXPECT_FALSE(log->closed.has_value());
  auto heal_us = f.d.now_us();
  f.d.net().heal("cli", "srv");
  ASSERT_TRUE(f.d.run_until([&] { return log->closed.has_value(); }, 10 * sec));
  EXPECT_TRUE(f.srv->received == payload);
  EXPECT_TRUE(log->echoed == payload);
  EXPECT_GE(log->first_byte_us, heal_us + 2 * ms);
  EXPECT_EQ(*log->closed, net::close_reason::peer);
}

TEST(sim_world, connect_across_partition_times_out) {
  fixture f(8);
  f.d.net().partition("srv", "cli", false); // one way is enough to break it
  client_opts o;
  o.timeout_ms = 300;
  auto [c, log] = f.client(o);
  ASSERT_TRUE(f.d.run_until([&] { return log->failed.has_value(); }, sec));
  EXPECT_EQ(*log->failed, net::connect_error::timed_out);
  f.d.net().heal_all();
  auto [c2, log2] = f.client({});
  ASSERT_TRUE(f.d.run_until([&] { return log2->connected; }, sec));
}

TEST(sim_world, latency_is_respected) {
  fixture f(9, {10'000, 0, 0, 0.0});
  client_opts o;
  o.payload = "x";
  auto start_us = f.d.now_us();
  auto [c, log] = f.client(o);
  ASSERT_TRUE(f.d.run_until([&] { return log->closed.has_value(); }, sec));
  EXPECT_EQ(log->connected_us - start_us, 20 * ms); // one round trip
  EXPECT_GE(log->first_byte_us - log->connected_us, 20 * ms);
  EXPECT_EQ(log->echoed, "x");
}

TEST(sim_world, bandwidth_limits_throughput) {
  // 1 MB/s: 200 kB need 200 ms on the wire; the echo pipelines, so the
  // whole exchange takes a little more than that, not less.
  fixture f(10, {1000, 0, 1'000'000, 0.0});
  auto payload = random_bytes(200'000, 10);
  auto [c, log] = f.client({"srv", 7000, payload, 10'000});
  ASSERT_TRUE(f.d.run_until([&] { return log->closed.has_value(); }, 10 * sec));
  EXPECT_TRUE(log->echoed == payload);
  EXPECT_GE(log->closed_us - log->connected_us, 200 * ms);
  EXPECT_LT(log->closed_us - log->connected_us, 300 * ms);
}

TEST(sim_world, loss_delays_but_keeps_order) {
  fixture f(11, {1000, 500, 0, 0.2});
  auto payload = random_bytes(30'000, 11);
  auto [c, log] = f.client({"srv", 7000, payload, 300});
  ASSERT_TRUE(f.d.run_until([&] { return log->closed.has_value(); }, 60 * sec));
  EXPECT_TRUE(log->echoed == payload);
  EXPECT_GE(log->closed_us - log->connected_us, 200 * ms); // a retransmit
}

TEST(sim_world, abort_resets_the_peer) {
  fixture f(12, {1000, 0, 0, 0.0});
  client_opts o;
  o.payload = "abc";
  o.half_close = false;
  auto [c, log] = f.client(o);
  ASSERT_TRUE(f.d.run_until([&] { return log->echoed == "abc"; }, sec));
  caf::anon_send(c, abort_atom::value);
  ASSERT_TRUE(f.d.run_until([&] { return !f.srv->closed.empty(); }, sec));
  EXPECT_EQ(*log->closed, net::close_reason::local);
  EXPECT_EQ(f.srv->closed[0], net::close_reason::reset);
  EXPECT_EQ(f.d.net().open_connections(), 0u);
}

TEST(sim_world, writing_to_a_closed_peer_gets_reset) {
  fixture f(13, {1000, 0, 0, 0.0}, server_mode::close_on_accept);
  client_opts o;
  o.payload = "too late";
  o.half_close = false;
  auto [c, log] = f.client(o);
  ASSERT_TRUE(f.d.run_until([&] { return log->closed.has_value(); }, sec));
  EXPECT_TRUE(log->read_closed);
  EXPECT_EQ(*log->closed, net::close_reason::reset);
  ASSERT_EQ(f.srv->closed.size(), 1u);
  EXPECT_EQ(f.srv->closed[0], net::close_reason::local);
  EXPECT_TRUE(f.srv->received.empty());
  EXPECT_EQ(f.d.net().open_connections(), 0u);
}

TEST(sim_world, paused_reading_queues_until_resumed) {
  fixture f(14, {1000, 0, 0, 0.0}, server_mode::paused_sink);
  auto payload = random_bytes(20'000, 14);
  auto [c, log] = f.client({"srv", 7000, payload, 700});
  f.d.run_for(2 * sec);
  EXPECT_EQ(f.srv->accepted, 1);
  EXPECT_TRUE(f.srv->received.empty());
  EXPECT_EQ(f.srv->read_closed, 0);
  caf::anon_send(f.server, resume_atom::value);
  ASSERT_TRUE(f.d.run_until([&] { return log->closed.has_value(); }, sec));
  EXPECT_TRUE(f.srv->received == payload);
  EXPECT_EQ(f.srv->read_closed, 1);
  EXPECT_EQ(*log->closed, net::close_reason::peer);
}

TEST(sim_world, dead_owner_aborts_its_connections) {
  fixture f(15, {1000, 0, 0, 0.0});
  client_opts o;
  o.payload = "hi";
  o.half_close = false;
  auto [c, log] = f.client(o);
  ASSERT_TRUE(f.d.run_until([&] { return log->echoed == "hi"; }, sec));
  caf::anon_send_exit(c, caf::exit_reason::kill);
  ASSERT_TRUE(f.d.run_until([&] { return !f.srv->closed.empty(); }, sec));
  EXPECT_EQ(f.srv->closed[0], net::close_reason::reset);
  EXPECT_EQ(f.d.net().open_connections(), 0u);
}

namespace {

struct run_result {
  uint64_t hash = 0;
  uint64_t steps = 0;
  std::vector<std::string> lines;
  bool all_echoed = true;
  size_t open_after = 0;
};

/// Five clients at once over a jittery, lossy link.
run_result parallel_run(uint64_t seed) {
  run_result r;
  fixture f(seed, {2000, 1500, 0, 0.05});
  std::vector<std::pair<caf::actor, std::shared_ptr<client_log>>> clients;
  std::vector<std::string> payloads;
  for (int i = 0; i < 5; ++i) {
    payloads.push_back(random_bytes(20'000 + i * 1000, 100 + i));
    clients.push_back(f.client({"srv", 7000, payloads.back(), 800}));
  }
  EXPECT_TRUE(f.d.run_until(
    [&] {
      for (auto& c : clients)
        if (!c.second->closed)
          return false;
      return true;
    },
    60 * sec));
  for (size_t i = 0; i < clients.size(); ++i)
    r.all_echoed = r.all_echoed && clients[i].second->echoed == payloads[i];
  f.d.run_for(1 * sec);
  r.open_after = f.d.net().open_connections();
  r.hash = f.d.trace_hash();
  r.steps = f.d.steps();
  r.lines = f.d.trace_lines();
  return r;
}

} // namespace

TEST(sim_world, same_seed_same_trace) {
  auto a = parallel_run(77);
  auto b = parallel_run(77);
  EXPECT_TRUE(a.all_echoed);
  EXPECT_EQ(a.open_after, 0u);
  EXPECT_EQ(a.hash, b.hash);
  EXPECT_EQ(a.steps, b.steps);
  EXPECT_EQ(a.lines, b.lines);
  EXPECT_GT(a.lines.size(), 10u);
}

TEST(sim_world, different_seeds_differ) {
  auto a = parallel_run(1);
  auto b = parallel_run(2);
  EXPECT_TRUE(a.all_echoed);
  EXPECT_TRUE(b.all_echoed);
  EXPECT_TRUE(a.hash != b.hash || a.steps != b.steps);
}

namespace {

caf::behavior ticker(caf::event_based_actor* self, caf::actor partner) {
  self->delayed_send(self, std::chrono::milliseconds(10), caf::tick_atom::value);
  return {
    [=](caf::tick_atom) {
      if (partner)
        self->send(partner, caf::ok_atom::value);
      self->delayed_send(self, std::chrono::milliseconds(10),
                         caf::tick_atom::value);
    },
    [=](caf::ok_atom) {},
  };
}

caf::behavior ticker_pair(caf::event_based_actor* self) {
  // The partner holds us and we hold the partner: a cycle that never ends
  // by itself.
  auto partner = self->spawn(ticker, caf::actor_cast<caf::actor>(self));
  return ticker(self, partner);
}

} // namespace

TEST(sim_world, driver_shutdown_does_not_hang) {
  {
    sim::driver d(99);
    d.sys().spawn(ticker_pair);
    d.run_for(1 * sec);
    EXPECT_EQ(d.now_us(), 1 * sec);
  } // the destructor returns despite timers and a reference cycle
  SUCCEED();
}

TEST(sim_world, a_peer_that_never_reads_costs_at_most_the_write_queue_cap) {
  // The seam's rule (net/seam/io.hpp): past the cap the writer's end is
  // reset and its owner told why; the peer sees a reset.
  fixture f(40, {1000, 0, 0, 0.0}, server_mode::paused_sink);
  client_opts o;
  o.payload = std::string(net::write_queue_bytes_default + (1 << 20), 'x');
  o.piece = 1 << 20;
  o.half_close = false;
  auto [c, log] = f.client(o);
  ASSERT_TRUE(f.d.run_until([&] { return log->closed.has_value(); }, 10 * sec));
  EXPECT_EQ(*log->closed, net::close_reason::error);
  ASSERT_TRUE(f.d.run_until([&] { return !f.srv->closed.empty(); }, 10 * sec));
  EXPECT_EQ(f.srv->closed[0], net::close_reason::reset);
  // Below the cap nothing happens: the same sink takes a smaller push.
  client_opts small = o;
  small.payload = std::string(net::write_queue_bytes_default / 2, 'y');
  auto [c2, log2] = f.client(small);
  f.d.run_for(2 * sec);
  EXPECT_FALSE(log2->closed.has_value());
}
