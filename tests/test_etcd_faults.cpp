// The etcd store under a member's death: a real 3-member cluster, writes
// flowing through one store while the member it talks to is killed -9 and
// later restarted. Every write the store acknowledged is there afterwards,
// and a watch that began before the kill delivers every change, in
// revision order, with no gap (resumed on another member). Figures are
// printed, not asserted.

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "caf/all.hpp"
#include "control/etcd_store.hpp"
#include "net/asio_io.hpp"
#include "net/stderr_tracer.hpp"
#include "tests/support/etcd_cluster.hpp"

using namespace drtp::control;
using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

namespace {

long long ms_since(steady::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(steady::now() - t).count();
}

/// A real 3-member cluster and one etcd store on it, in a real actor
/// system; torn down in the order the actors need.
struct etcd_rig {
  std::unique_ptr<drtp::test::etcd_cluster> cluster;
  caf::actor_system_config cfg; // the system keeps a reference to it
  std::unique_ptr<caf::actor_system> sys;
  std::unique_ptr<drtp::net::asio_io> io;
  caf::actor store;
  std::string error;

  bool start(const std::string& key_prefix, uint32_t request_timeout_ms,
             uint32_t member_timeout_ms) {
    try {
      cluster = std::make_unique<drtp::test::etcd_cluster>(3);
    } catch (const std::exception& e) {
      error = e.what();
      return false;
    }
    cfg.set("scheduler.max-threads", 2);
    sys = std::make_unique<caf::actor_system>(cfg);
    auto trace = drtp::net::make_stderr_tracer(0);
    io = std::make_unique<drtp::net::asio_io>(*sys, trace, std::nullopt);
    etcd_store_params p;
    p.e.io = io->handle();
    p.e.trace = trace;
    p.e.host = "test";
    p.key_prefix = key_prefix;
    p.request_timeout_ms = request_timeout_ms;
    p.member_timeout_ms = member_timeout_ms;
    if (!parse_etcd_url(cluster->store_url(), p.members, error))
      return false;
    store = spawn_etcd_store(*sys, p);
    return true;
  }

  ~etcd_rig() {
    store = nullptr;
    if (io)
      io->stop();
    if (sys)
      sys->clock().cancel_all();
    io.reset();
    sys.reset();
  }
};

TEST(etcd_url, members_from_the_configs_store_line) {
  std::vector<etcd_member> m;
  std::string error;
  ASSERT_TRUE(parse_etcd_url("etcd:http://127.0.0.1:2379,http://etcd-2.lan:23790/", m, error))
    << error;
  ASSERT_EQ(m.size(), 2u);
  EXPECT_EQ(m[0].host, "127.0.0.1");
  EXPECT_EQ(m[0].port, 2379);
  EXPECT_EQ(m[1].host, "etcd-2.lan");
  EXPECT_EQ(m[1].port, 23790);
  for (auto bad : {"sqlite:/x", "etcd:", "etcd:https://h:1", "etcd:http://h", "etcd:http://h:0",
                   "etcd:http://h:65536", "etcd:http://:1", "etcd:http://h:1,", "etcd:http://h:1/x"}) {
    error.clear();
    EXPECT_FALSE(parse_etcd_url(bad, m, error)) << bad;
    EXPECT_FALSE(error.empty()) << bad;
    EXPECT_EQ(error.find('\n'), std::string::npos) << bad;
  }
}

TEST(etcd_faults, a_member_killed_mid_writes_loses_no_acknowledged_write_and_no_watched_change) {
  etcd_rig rig;
  ASSERT_TRUE(rig.start("/faults", 8000, 1000)) << rig.error;
  auto& cluster = rig.cluster;
  auto& sys = rig.sys;
  auto store = rig.store;
  {
    caf::scoped_actor self(*sys);
    auto me = caf::actor_cast<caf::actor>(self);
    uint64_t base = 0;
    self->request(store, 20s, store_get{"/f"})
      .receive([&](store_get_result& r) { base = r.revision; },
               [&](caf::error& e) { FAIL() << store_error_text(e); });
    bool started = false;
    self->request(store, 20s, store_watch{"/f/", base, me, 1})
      .receive([&](store_watch_started&) { started = true; },
               [&](caf::error& e) { ADD_FAILURE() << store_error_text(e); });
    ASSERT_TRUE(started);

    // key -> (value, revision) of every acknowledged write.
    std::map<std::string, std::pair<std::string, uint64_t>> acked;
    size_t failed = 0;
    long long worst_ms = 0;
    long long failover_ms = -1;
    steady::time_point killed_at{};
    bool killed = false;
    bool restarted = false;
    long long restart_ms = 0;
    constexpr int writes = 600;
    auto t0 = steady::now();
    for (int i = 0; i < writes && ms_since(t0) < 20000; ++i) {
      if (i == 150) {
        cluster->kill(0); // the member the store and its watch started on
        killed_at = steady::now();
        killed = true;
      }
      if (i == 400) {
        auto t = steady::now();
        restarted = cluster->restart(0);
        restart_ms = ms_since(t);
      }
      auto key = "/f/" + std::to_string(i);
      auto value = "v" + std::to_string(i);
      auto t = steady::now();
      self->request(store, 20s, store_put{key, value, any_revision})
        .receive(
          [&](store_put_result& r) {
            if (r.ok)
              acked[key] = {value, r.revision};
            if (killed && failover_ms < 0)
              failover_ms = ms_since(killed_at);
          },
          [&](caf::error& e) {
            ++failed;
            std::printf("write %d: %s\n", i, store_error_text(e).c_str());
          });
      worst_ms = std::max(worst_ms, ms_since(t));
    }
    auto total_ms = ms_since(t0);
    EXPECT_TRUE(restarted) << cluster->log_tail(0);

    // Every acknowledged write is there.
    store_list_result l;
    self->request(store, 20s, store_list{"/f/", 0})
      .receive([&](store_list_result& r) { l = std::move(r); },
               [&](caf::error& e) { ADD_FAILURE() << store_error_text(e); });
    std::map<std::string, std::string> got;
    for (auto& r : l.records)
      got[r.key] = r.value;
    size_t missing = 0;
    uint64_t last = 0;
    for (auto& [k, v] : acked) {
      last = std::max(last, v.second);
      if (got[k] != v.first)
        ++missing;
    }
    EXPECT_EQ(missing, 0u);

    // The watch saw every change: revisions base+1.. without a gap (only
    // this test writes to its cluster), in order, each acknowledged write
    // among them.
    std::map<uint64_t, std::string> seen;
    uint64_t prev = base;
    size_t out_of_order = 0;
    size_t lost_msgs = 0;
    bool done = last == 0;
    self->receive_while([&] { return !done; })(
      [&](store_event& ev) {
        for (auto& c : ev.changes) {
          if (c.record.mod_revision != prev + 1)
            ++out_of_order;
          prev = c.record.mod_revision;
          seen[c.record.mod_revision] = c.record.key;
        }
        done = ev.revision >= last;
      },
      [&](store_watch_lost& w) {
        ++lost_msgs;
        ADD_FAILURE() << "watch lost: " << w.what;
        done = true;
      },
      [&](store_compacted&) {
        ADD_FAILURE() << "watch compacted";
        done = true;
      },
      caf::after(20s) >> [&] { done = true; });
    EXPECT_EQ(out_of_order, 0u) << "a gap or a change out of order";
    EXPECT_EQ(lost_msgs, 0u);
    size_t unseen = 0;
    for (auto& [k, v] : acked)
      if (seen[v.second] != k)
        ++unseen;
    EXPECT_EQ(unseen, 0u);
    std::printf("etcd faults: %zu writes acknowledged, %zu failed, %zu seen by the watch, in %lld ms;"
                " first write after the kill in %lld ms, slowest write %lld ms, restart %lld ms\n",
                acked.size(), failed, seen.size(), total_ms, failover_ms, worst_ms, restart_ms);
    self->send_exit(store, caf::exit_reason::user_shutdown);
  }
  store = nullptr;
}

TEST(etcd_faults, no_member_answering_is_unavailable_in_one_line_and_the_watch_is_lost) {
  etcd_rig rig;
  ASSERT_TRUE(rig.start("/gone", 1000, 300)) << rig.error;
  auto& cluster = rig.cluster;
  auto& sys = rig.sys;
  auto store = rig.store;
  {
    caf::scoped_actor self(*sys);
    auto me = caf::actor_cast<caf::actor>(self);
    bool started = false;
    self->request(store, 20s, store_watch{"/w/", 0, me, 1})
      .receive([&](store_watch_started&) { started = true; },
               [&](caf::error& e) { ADD_FAILURE() << store_error_text(e); });
    ASSERT_TRUE(started);
    for (size_t i = 0; i < cluster->size(); ++i)
      cluster->kill(i);
    auto t = steady::now();
    caf::error err;
    self->request(store, 20s, store_put{"/k", "v", any_revision})
      .receive([&](store_put_result&) { ADD_FAILURE() << "a put with no etcd"; },
               [&](caf::error& e) { err = e; });
    auto put_ms = ms_since(t);
    EXPECT_EQ(store_error_code(err), store_errc::unavailable) << store_error_text(err);
    auto text = store_error_text(err);
    EXPECT_EQ(text.find('\n'), std::string::npos) << text;
    std::string lost;
    self->receive_while([&] { return lost.empty(); })(
      [&](store_watch_lost& w) { lost = w.what.empty() ? "?" : w.what; },
      [&](store_event&) {},
      caf::after(20s) >> [&] { lost = "(nothing came)"; });
    EXPECT_NE(lost, "(nothing came)");
    std::printf("no etcd: put answered in %lld ms: %s\nwatch: %s\n", put_ms, text.c_str(),
                lost.c_str());
    self->send_exit(store, caf::exit_reason::user_shutdown);
  }
  store = nullptr;
}

} // namespace
