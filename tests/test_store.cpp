// The store protocol (control/store.hpp), one suite for every store: each
// test runs against each factory in store_factories() with a real actor
// system, requests and answers through a scoped actor, so a store doing
// real I/O (the SQLite file, etcd) fits the same tests. To add a store, add
// its factory there.

#include <gtest/gtest.h>
#include <rapidcheck.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <thread>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

#include "caf/all.hpp"
#include "control/etcd_store.hpp"
#include "control/memory_store.hpp"
#include "control/sqlite_store.hpp"
#include "control/store.hpp"
#include "net/asio_io.hpp"
#include "net/stderr_tracer.hpp"
#include "tests/support/etcd_cluster.hpp"

using namespace drtp::control;
using namespace std::chrono_literals;

namespace {

struct store_factory {
  std::string name;
  /// A store in `dir` (a fresh directory it may use); null on failure.
  /// What it needs alive as long as the store goes to `keep`.
  std::function<caf::actor(caf::actor_system&, const store_limits&, const std::string& dir,
                           std::vector<std::shared_ptr<void>>& keep)>
    make;
  /// Whether a store made again in the same dir keeps what was written.
  bool persistent = false;
  /// Property runs against it (a store on a real cluster is slower).
  int model_runs_max = 1000;
};

/// The binary's etcd cluster, started on first use; null (and a failure
/// said once) if it cannot start.
drtp::test::etcd_cluster* shared_etcd() {
  static std::unique_ptr<drtp::test::etcd_cluster> cluster;
  static bool tried = false;
  if (!tried) {
    tried = true;
    auto t0 = std::chrono::steady_clock::now();
    try {
      cluster = std::make_unique<drtp::test::etcd_cluster>(3);
      std::printf("etcd: 3 members healthy in %lld ms\n",
                  static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                           std::chrono::steady_clock::now() - t0)
                                           .count()));
    } catch (const std::exception& e) {
      ADD_FAILURE() << e.what();
    }
  }
  return cluster.get();
}

std::vector<store_factory> store_factories() {
  std::vector<store_factory> out;
  out.push_back({"memory",
                 [](caf::actor_system& sys, const store_limits& lim, const std::string&,
                    std::vector<std::shared_ptr<void>>&) {
                   return spawn_memory_store(sys, memory_store_params{lim});
                 },
                 false});
  out.push_back({"sqlite",
                 [](caf::actor_system& sys, const store_limits& lim, const std::string& dir,
                    std::vector<std::shared_ptr<void>>&) {
                   std::string error;
                   auto s = spawn_sqlite_store(sys, {dir + "/registry.db", lim}, error);
                   EXPECT_TRUE(s) << error;
                   return s;
                 },
                 true});
  // etcd: one real 3-member cluster for the binary, started on first use;
  // each store has a key_prefix of its own (its dir), so tests share
  // nothing but the cluster's revision counter.
  store_factory etcd{"etcd",
                     [](caf::actor_system& sys, const store_limits& lim, const std::string& dir,
                        std::vector<std::shared_ptr<void>>& keep) -> caf::actor {
                       auto* c = shared_etcd();
                       if (c == nullptr)
                         return nullptr;
                       auto trace = drtp::net::make_stderr_tracer(0);
                       auto io = std::make_shared<drtp::net::asio_io>(sys, trace, std::nullopt);
                       keep.push_back(io);
                       etcd_store_params p;
                       p.e.io = io->handle();
                       p.e.trace = trace;
                       p.e.host = "test";
                       std::string error;
                       EXPECT_TRUE(parse_etcd_url(c->store_url(), p.members, error)) << error;
                       p.key_prefix = dir;
                       p.limits = lim;
                       return spawn_etcd_store(sys, std::move(p));
                     },
                     true};
  etcd.model_runs_max = 15;
  out.push_back(etcd);
  return out;
}

constexpr auto answer_timeout = 20s;

/// A fresh directory under the system's temp dir, removed by the fixture.
std::string make_temp_dir() {
  auto base = std::filesystem::temp_directory_path() / "drtp-test-store-XXXXXX";
  std::string path = base.string();
  if (!mkdtemp(path.data()))
    return {};
  return path;
}

/// The answer to a watch: started, compacted, or an error.
struct store_test_answer {
  bool started = false;
  uint64_t revision = 0; // the store's
  caf::error error;
};

void PrintTo(const store_factory& f, std::ostream* os) {
  *os << f.name;
}

class store_test : public ::testing::TestWithParam<store_factory> {
protected:
  store_test() {
    cfg.set("scheduler.max-threads", 2);
    sys = std::make_unique<caf::actor_system>(cfg);
    self = std::make_unique<caf::scoped_actor>(*sys);
    dir = make_temp_dir();
  }

  ~store_test() override {
    for (auto& s : spawned)
      stop(s);
    spawned.clear();
    store = nullptr;
    keep.clear();
    self.reset();
    sys.reset();
    if (!dir.empty())
      std::filesystem::remove_all(dir);
  }

  void SetUp() override {
    ASSERT_FALSE(dir.empty()) << "no temp dir";
    start(lim);
  }

  /// (Re)starts the store in `sub` of the test's dir with these limits.
  void start(const store_limits& l, const std::string& sub = "store") {
    auto d = dir + "/" + sub;
    std::filesystem::create_directories(d);
    store = GetParam().make(*sys, l, d, keep);
    ASSERT_TRUE(store) << GetParam().name << ": no store";
    spawned.push_back(store);
  }

  /// Stops `s` and waits until it is gone (a persistent store's file is
  /// closed then).
  void stop(caf::actor s) {
    if (!s)
      return;
    (*self)->monitor(s);
    (*self)->send_exit(s, caf::exit_reason::user_shutdown);
    bool down = false;
    (*self)->receive_while([&] { return !down; })(
      [&](caf::down_msg& m) {
        if (m.source == s.address())
          down = true;
      },
      [&](caf::message&) {}, caf::after(answer_timeout) >> [&] { down = true; });
  }

  void restart() {
    for (auto& s : spawned)
      stop(s);
    spawned.clear();
    start(lim);
  }

  template <class R, class Q>
  caf::expected<R> ask(Q q, caf::actor to = nullptr) {
    caf::expected<R> out{caf::sec::request_timeout};
    (*self)->request(to ? to : store, answer_timeout, std::move(q))
      .receive([&](R& r) { out = std::move(r); }, [&](caf::error& e) { out = std::move(e); });
    return out;
  }

  store_put_result put(const std::string& key, const std::string& value,
                       int64_t expected = any_revision) {
    auto r = ask<store_put_result>(store_put{key, value, expected});
    EXPECT_TRUE(r) << store_error_text(r.error());
    return r ? *r : store_put_result{};
  }
  store_delete_result del(const std::string& key, int64_t expected = any_revision) {
    auto r = ask<store_delete_result>(store_delete{key, expected});
    EXPECT_TRUE(r) << store_error_text(r.error());
    return r ? *r : store_delete_result{};
  }
  store_get_result get(const std::string& key) {
    auto r = ask<store_get_result>(store_get{key});
    EXPECT_TRUE(r) << store_error_text(r.error());
    return r ? *r : store_get_result{};
  }
  store_list_result list(const std::string& prefix, uint32_t limit = 0) {
    auto r = ask<store_list_result>(store_list{prefix, limit});
    EXPECT_TRUE(r) << store_error_text(r.error());
    return r ? *r : store_list_result{};
  }

  using watch_answer = store_test_answer;
  watch_answer watch(const std::string& prefix, uint64_t after, uint64_t tag,
                     caf::actor subscriber = nullptr) {
    watch_answer out;
    out.error = caf::sec::request_timeout;
    auto sub = subscriber ? subscriber : caf::actor_cast<caf::actor>(*self);
    (*self)->request(store, answer_timeout, store_watch{prefix, after, sub, tag})
      .receive(
        [&](store_watch_started& s) {
          out = {true, s.revision, {}};
          EXPECT_EQ(s.tag, tag);
        },
        [&](caf::error& e) { out.error = std::move(e); });
    return out;
  }

  /// The compact revision of watch `tag`'s store_compacted, or 0 if none
  /// came (or a store_event came first).
  uint64_t compacted(uint64_t tag) {
    uint64_t out = 0;
    bool done = false;
    (*self)->receive_while([&] { return !done; })(
      [&](store_compacted& c) {
        if (c.tag == tag) {
          out = c.compact_revision;
          done = true;
        }
      },
      [&](store_event& ev) { done = ev.tag == tag; },
      caf::after(answer_timeout) >> [&] { done = true; });
    return out;
  }

  /// The changes of watch `tag` (to this test's actor) until an event with
  /// revision `until` or later; false if it did not come.
  bool collect(uint64_t tag, uint64_t until, std::vector<store_change>& out) {
    bool done = false;
    bool ok = true;
    (*self)->receive_while([&] { return !done; })(
      [&](store_event& ev) {
        if (ev.tag != tag)
          return;
        for (auto& c : ev.changes)
          out.push_back(std::move(c));
        done = ev.revision >= until;
      },
      [&](store_compacted& c) {
        if (c.tag != tag)
          return;
        ADD_FAILURE() << "watch " << tag << " compacted at " << c.compact_revision;
        ok = false;
        done = true;
      },
      caf::after(answer_timeout) >> [&] {
        ok = false;
        done = true;
      });
    return ok;
  }

  store_limits lim;
  caf::actor_system_config cfg;
  std::unique_ptr<caf::actor_system> sys;
  std::unique_ptr<caf::scoped_actor> self;
  std::string dir;
  caf::actor store;
  std::vector<caf::actor> spawned;
  std::vector<std::shared_ptr<void>> keep;
};

/// Whether a watch started; if not, says why.
::testing::AssertionResult started(const store_test_answer& w) {
  if (w.started)
    return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << store_error_text(w.error);
}

std::string errc_name(const caf::error& e) {
  auto c = store_error_code(e);
  return c ? to_string(*c) : "not a store error";
}

// -- conditions and revisions ----------------------------------------------------

TEST_P(store_test, create_only_put_conflicts) {
  auto first = put("/k", "one", 0);
  ASSERT_TRUE(first.ok);
  EXPECT_EQ(first.record.create_revision, first.record.mod_revision);
  auto again = put("/k", "two", 0);
  EXPECT_FALSE(again.ok);
  EXPECT_TRUE(again.exists);
  EXPECT_EQ(again.record.value, "one");
  EXPECT_EQ(again.record.mod_revision, first.record.mod_revision);
  EXPECT_EQ(again.revision, first.revision);
  EXPECT_EQ(get("/k").record.value, "one");
}

TEST_P(store_test, conditional_put_and_delete_by_mod_revision) {
  auto a = put("/k", "a");
  ASSERT_TRUE(a.ok);
  auto b = put("/k", "b", static_cast<int64_t>(a.record.mod_revision));
  ASSERT_TRUE(b.ok);
  EXPECT_EQ(b.record.create_revision, a.record.create_revision);
  EXPECT_GT(b.record.mod_revision, a.record.mod_revision);
  // A writer that read `a` lost the race.
  auto stale = put("/k", "c", static_cast<int64_t>(a.record.mod_revision));
  EXPECT_FALSE(stale.ok);
  EXPECT_TRUE(stale.exists);
  EXPECT_EQ(stale.record.value, "b");
  auto stale_del = del("/k", static_cast<int64_t>(a.record.mod_revision));
  EXPECT_FALSE(stale_del.ok);
  EXPECT_TRUE(stale_del.existed);
  EXPECT_TRUE(get("/k").found);
  auto d = del("/k", static_cast<int64_t>(b.record.mod_revision));
  ASSERT_TRUE(d.ok);
  EXPECT_EQ(d.previous.value, "b");
  EXPECT_FALSE(get("/k").found);
  auto gone = del("/k");
  EXPECT_FALSE(gone.ok);
  EXPECT_FALSE(gone.existed);
  // Conditional on a revision, for a record that does not exist.
  auto absent = put("/k", "d", static_cast<int64_t>(b.record.mod_revision));
  EXPECT_FALSE(absent.ok);
  EXPECT_FALSE(absent.exists);
  EXPECT_TRUE(put("/k", "e", 0).ok);
}

TEST_P(store_test, revision_strictly_increases_and_only_on_change) {
  uint64_t last = get("/x").revision;
  for (int i = 0; i < 20; ++i) {
    auto p = put("/r/" + std::to_string(i % 5), std::to_string(i));
    ASSERT_TRUE(p.ok);
    EXPECT_GT(p.revision, last);
    EXPECT_EQ(p.record.mod_revision, p.revision);
    last = p.revision;
    if (i % 3 == 0) {
      auto d = del("/r/" + std::to_string(i % 5));
      ASSERT_TRUE(d.ok);
      EXPECT_GT(d.revision, last);
      last = d.revision;
    }
  }
  // Failed conditions and reads leave it be.
  EXPECT_FALSE(put("/r/1", "x", 0).ok);
  EXPECT_FALSE(del("/nothing").ok);
  EXPECT_EQ(get("/r/1").revision, last);
  EXPECT_EQ(list("/r/").revision, last);
}

TEST_P(store_test, list_by_prefix_in_key_order_at_one_revision) {
  for (auto k : {"/a/2", "/b/1", "/a/1", "/a", "/ab", "/a/3"})
    ASSERT_TRUE(put(k, std::string("v") + k).ok);
  auto rev = put("/a/0", "v/a/0").revision;
  auto l = list("/a/");
  ASSERT_EQ(l.records.size(), 4u);
  EXPECT_EQ(l.records[0].key, "/a/0");
  EXPECT_EQ(l.records[1].key, "/a/1");
  EXPECT_EQ(l.records[3].key, "/a/3");
  EXPECT_EQ(l.records[1].value, "v/a/1");
  EXPECT_EQ(l.revision, rev);
  EXPECT_FALSE(l.more);
  auto some = list("/a/", 2);
  ASSERT_EQ(some.records.size(), 2u);
  EXPECT_TRUE(some.more);
  EXPECT_EQ(some.records[1].key, "/a/1");
  EXPECT_EQ(list("").records.size(), 7u);
  EXPECT_TRUE(list("/c").records.empty());
}

// -- limits ------------------------------------------------------------------------

TEST_P(store_test, values_over_the_cap_and_bad_keys_refused) {
  lim.value_bytes_max = 1000;
  lim.keys_max = 3;
  start(lim, "small");
  EXPECT_TRUE(put("/v", std::string(1000, 'x')).ok);
  auto big = ask<store_put_result>(store_put{"/v", std::string(1001, 'x')});
  ASSERT_FALSE(big);
  EXPECT_EQ(errc_name(big.error()), "too_large") << store_error_text(big.error());
  EXPECT_EQ(get("/v").record.value.size(), 1000u);
  for (auto key : {std::string(), std::string("a\0b", 3), std::string(lim.key_bytes_max + 1, 'k')}) {
    auto bad = ask<store_put_result>(store_put{key, "v"});
    ASSERT_FALSE(bad);
    EXPECT_EQ(errc_name(bad.error()), "invalid") << store_error_text(bad.error());
  }
  EXPECT_TRUE(put("/w", "w").ok);
  EXPECT_TRUE(put("/x", "x").ok);
  auto full = ask<store_put_result>(store_put{"/y", "y"});
  ASSERT_FALSE(full);
  EXPECT_EQ(errc_name(full.error()), "full") << store_error_text(full.error());
  EXPECT_TRUE(put("/x", "replaced").ok) << "replacing a key needs no room for a new one";
}

// -- watch ---------------------------------------------------------------------------

TEST_P(store_test, watch_after_a_revision_sees_exactly_the_later_changes_in_order) {
  put("/w/a", "1");
  auto from = put("/w/b", "1").revision;
  put("/w/a", "2");
  put("/other", "x");
  del("/w/b");
  auto now = put("/w/c", "1").revision;
  auto w = watch("/w/", from, 7);
  ASSERT_TRUE(w.started) << store_error_text(w.error);
  EXPECT_EQ(w.revision, now);
  std::vector<store_change> seen;
  ASSERT_TRUE(collect(7, now, seen));
  // And live changes after the start.
  put("/other", "y");
  auto last = put("/w/a", "3").revision;
  ASSERT_TRUE(collect(7, last, seen));
  ASSERT_EQ(seen.size(), 4u);
  EXPECT_EQ(seen[0].record.key, "/w/a");
  EXPECT_EQ(seen[0].record.value, "2");
  EXPECT_FALSE(seen[0].created);
  EXPECT_EQ(seen[1].type, store_event_type::del);
  EXPECT_EQ(seen[1].record.key, "/w/b");
  EXPECT_TRUE(seen[1].record.value.empty());
  EXPECT_EQ(seen[2].record.key, "/w/c");
  EXPECT_TRUE(seen[2].created);
  EXPECT_EQ(seen[3].record.value, "3");
  EXPECT_EQ(seen[3].record.mod_revision, last);
  for (size_t i = 1; i < seen.size(); ++i)
    EXPECT_GT(seen[i].record.mod_revision, seen[i - 1].record.mod_revision);
}

TEST_P(store_test, watch_replays_in_batches_that_can_be_resumed) {
  lim.event_changes_max = 3;
  start(lim, "batches");
  // From the store's revision before the puts (a store shared with others,
  // as etcd, is not at 0 when a test starts).
  auto base = get("/b").revision;
  for (int i = 0; i < 10; ++i)
    put("/b/" + std::to_string(i), "v");
  auto now = put("/z", "v").revision;
  ASSERT_TRUE(started(watch("/b/", base, 1)));
  std::vector<uint64_t> revisions;
  size_t changes = 0;
  bool done = false;
  (*self)->receive_while([&] { return !done; })(
    [&](store_event& ev) {
      EXPECT_LE(ev.changes.size(), 3u);
      changes += ev.changes.size();
      if (!ev.changes.empty()) {
        EXPECT_GE(ev.revision, ev.changes.back().record.mod_revision);
      }
      revisions.push_back(ev.revision);
      done = ev.revision >= now;
    },
    caf::after(answer_timeout) >> [&] { done = true; });
  EXPECT_EQ(changes, 10u);
  EXPECT_EQ(revisions.back(), now);
}

TEST_P(store_test, watch_from_a_compacted_revision_gets_store_compacted) {
  lim.history_max = 4;
  start(lim, "compacted");
  uint64_t rev = 0;
  for (int i = 0; i < 10; ++i)
    rev = put("/c/" + std::to_string(i % 3), std::to_string(i)).revision;
  ASSERT_TRUE(started(watch("/c/", rev - 6, 1)));
  auto compact = compacted(1);
  EXPECT_GE(compact, rev - 5);
  EXPECT_LT(compact, rev);
  // From the compact revision on, the watch works.
  ASSERT_TRUE(started(watch("/c/", compact, 2)));
  std::vector<store_change> seen;
  ASSERT_TRUE(collect(2, rev, seen));
  EXPECT_EQ(seen.size(), rev - compact);
}

TEST_P(store_test, a_watch_in_the_future_sees_changes_after_its_revision_only) {
  auto now = put("/f", "0").revision;
  ASSERT_TRUE(started(watch("/f", now + 2, 1)));
  put("/f", "1");
  put("/f", "2");
  auto last = put("/f", "3").revision;
  std::vector<store_change> seen;
  ASSERT_TRUE(collect(1, last, seen));
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].record.value, "3");
}

TEST_P(store_test, watches_are_bounded_and_a_dead_subscriber_is_dropped) {
  lim.watches_max = 2;
  start(lim, "watchers");
  auto base = get("/").revision;
  // A subscriber that only exists to be killed.
  auto doomed = sys->spawn([](caf::event_based_actor*) -> caf::behavior {
    return {[](store_event&) {}};
  });
  ASSERT_TRUE(started(watch("/", base, 1, doomed)));
  ASSERT_TRUE(started(watch("/", base, 2, doomed)));
  auto over = watch("/", base, 3);
  EXPECT_EQ(errc_name(over.error), "full") << store_error_text(over.error);
  auto dup = watch("/", base, 2, doomed);
  EXPECT_FALSE(dup.started);
  (*self)->send_exit(doomed, caf::exit_reason::kill);
  doomed = nullptr;
  // The store learns of the death asynchronously: bounded retries.
  bool started = false;
  for (int i = 0; i < 200 && !started; ++i) {
    started = watch("/", base, 4).started;
    if (!started)
      std::this_thread::sleep_for(10ms);
  }
  EXPECT_TRUE(started) << "the dead subscriber's watches still count";
  EXPECT_TRUE(watch("/", base, 5).started);
  // Unwatch frees a slot too (and, as every request, is answered).
  bool answered = false;
  (*self)
    ->request(store, answer_timeout, store_unwatch{4, caf::actor_cast<caf::actor>(*self)})
    .receive([&] { answered = true; },
             [&](caf::error& e) { ADD_FAILURE() << store_error_text(e); });
  EXPECT_TRUE(answered);
  bool again = false;
  for (int i = 0; i < 200 && !again; ++i)
    again = watch("/", base, 6).started;
  EXPECT_TRUE(again);
}

TEST_P(store_test, progress_events_come_without_changes) {
  lim.progress_interval_ms = 50;
  start(lim, "progress");
  auto now = put("/p", "1").revision;
  ASSERT_TRUE(started(watch("/q", now, 9)));
  int empty = 0;
  bool done = false;
  (*self)->receive_while([&] { return !done; })(
    [&](store_event& ev) {
      EXPECT_EQ(ev.tag, 9u);
      EXPECT_TRUE(ev.changes.empty());
      EXPECT_EQ(ev.revision, now);
      done = ++empty == 3;
    },
    caf::after(answer_timeout) >> [&] { done = true; });
  EXPECT_EQ(empty, 3);
}

TEST_P(store_test, restart_keeps_records_revisions_and_history) {
  if (!GetParam().persistent)
    GTEST_SKIP() << GetParam().name << " keeps nothing across a restart";
  put("/s/a", "1");
  auto before = put("/s/b", "1").revision;
  put("/s/a", "2");
  auto now = del("/s/b").revision;
  restart();
  auto g = get("/s/a");
  ASSERT_TRUE(g.found);
  EXPECT_EQ(g.record.value, "2");
  EXPECT_EQ(g.revision, now);
  EXPECT_FALSE(get("/s/b").found);
  auto w = watch("/s/", before, 1);
  ASSERT_TRUE(w.started) << store_error_text(w.error);
  auto next = put("/s/c", "1");
  EXPECT_EQ(next.revision, now + 1);
  std::vector<store_change> seen;
  ASSERT_TRUE(collect(1, next.revision, seen));
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_EQ(seen[0].record.value, "2");
  EXPECT_EQ(seen[1].type, store_event_type::del);
  EXPECT_EQ(seen[2].record.key, "/s/c");
}

// -- the model ------------------------------------------------------------------------

/// What a store must do, in a few lines: a map and a counter.
struct model {
  std::map<std::string, store_record> records;
  uint64_t revision = 0;
  std::vector<store_change> log;

  static bool holds(const store_record* now, int64_t expected) {
    if (expected == any_revision)
      return true;
    if (expected == 0)
      return now == nullptr;
    return now && now->mod_revision == static_cast<uint64_t>(expected);
  }
  const store_record* find(const std::string& k) const {
    auto i = records.find(k);
    return i == records.end() ? nullptr : &i->second;
  }
  bool put(const std::string& k, const std::string& v, int64_t expected) {
    auto now = find(k);
    if (!holds(now, expected))
      return false;
    ++revision;
    store_record r{k, v, now ? now->create_revision : revision, revision};
    log.push_back({store_event_type::put, r, now == nullptr});
    records[k] = r;
    return true;
  }
  bool del(const std::string& k, int64_t expected) {
    auto now = find(k);
    if (!now || expected == 0 || !holds(now, expected))
      return false;
    ++revision;
    log.push_back({store_event_type::del, {k, "", 0, revision}, false});
    records.erase(k);
    return true;
  }
};

bool same(const store_record& a, const store_record& b) {
  return a.key == b.key && a.value == b.value && a.create_revision == b.create_revision
         && a.mod_revision == b.mod_revision;
}

TEST_P(store_test, random_operations_agree_with_a_map_and_a_counter) {
  int run = 0;
  auto ok = rc::check("store == model", [&] {
    // A tag per run: a failed run's store may still send to this actor.
    auto tag = static_cast<uint64_t>(++run);
    if (run > GetParam().model_runs_max)
      return; // enough runs for a slow store
    start(lim, "model-" + std::to_string(tag));
    RC_ASSERT(store != nullptr);
    model m;
    // From the store's revision (a shared etcd is not at 0): every change
    // after it bumps it by one, as long as only this test writes.
    auto base = get("/").revision;
    m.revision = base;
    RC_ASSERT(watch("/", base, tag).started);
    const std::vector<std::string> keys{"/a", "/a/1", "/a/2", "/b", "/b/1"};
    const std::vector<std::string> prefixes{"", "/a", "/a/", "/b", "/c"};
    auto ops = *rc::gen::inRange(1, 30);
    for (int i = 0; i < ops; ++i) {
      auto op = *rc::gen::inRange(0, 4);
      const auto& key = keys[*rc::gen::inRange<size_t>(0, keys.size())];
      // Conditions: any, create-only, the current one, or a guess.
      auto now = m.find(key);
      auto pick = *rc::gen::inRange(0, 4);
      int64_t expected = pick == 0   ? any_revision
                         : pick == 1 ? 0
                         : pick == 2 && now ? static_cast<int64_t>(now->mod_revision)
                                            : *rc::gen::inRange<int64_t>(1, m.revision + 3);
      if (op == 0) {
        auto v = *rc::gen::container<std::string>(rc::gen::inRange('a', 'z'));
        auto r = put(key, v, expected);
        RC_ASSERT(r.ok == m.put(key, v, expected));
        RC_ASSERT(r.revision == m.revision);
        auto after = m.find(key);
        RC_ASSERT(r.exists == (after != nullptr));
        if (after) {
          RC_ASSERT(same(r.record, *after));
        }
      } else if (op == 1) {
        auto before = m.find(key) ? *m.find(key) : store_record{};
        auto existed = m.find(key) != nullptr;
        auto r = del(key, expected);
        RC_ASSERT(r.ok == m.del(key, expected));
        RC_ASSERT(r.existed == existed);
        RC_ASSERT(r.revision == m.revision);
        if (r.ok) {
          RC_ASSERT(same(r.previous, before));
        }
      } else if (op == 2) {
        auto r = get(key);
        RC_ASSERT(r.found == (m.find(key) != nullptr));
        RC_ASSERT(r.revision == m.revision);
        if (r.found) {
          RC_ASSERT(same(r.record, *m.find(key)));
        }
      } else {
        const auto& prefix = prefixes[*rc::gen::inRange<size_t>(0, prefixes.size())];
        auto limit = *rc::gen::inRange<uint32_t>(0, 4);
        auto r = list(prefix, limit);
        std::vector<store_record> want;
        for (auto& [k, rec] : m.records)
          if (k.compare(0, prefix.size(), prefix) == 0)
            want.push_back(rec);
        auto n = limit == 0 ? want.size() : std::min<size_t>(limit, want.size());
        RC_ASSERT(r.records.size() == n);
        RC_ASSERT(r.more == (n < want.size()));
        RC_ASSERT(r.revision == m.revision);
        for (size_t j = 0; j < n; ++j) {
          RC_ASSERT(same(r.records[j], want[j]));
        }
      }
    }
    // The watch from the start saw the model's log, in order.
    std::vector<store_change> seen;
    if (m.revision > base) {
      RC_ASSERT(collect(tag, m.revision, seen));
    }
    RC_ASSERT(seen.size() == m.log.size());
    for (size_t j = 0; j < seen.size(); ++j) {
      RC_ASSERT(seen[j].type == m.log[j].type);
      RC_ASSERT(seen[j].created == m.log[j].created);
      RC_ASSERT(seen[j].record.key == m.log[j].record.key);
      RC_ASSERT(seen[j].record.mod_revision == m.log[j].record.mod_revision);
      if (seen[j].type == store_event_type::put) {
        RC_ASSERT(same(seen[j].record, m.log[j].record));
      }
    }
    stop(store);
    spawned.clear();
  });
  EXPECT_TRUE(ok);
}

INSTANTIATE_TEST_SUITE_P(stores, store_test, ::testing::ValuesIn(store_factories()),
                         [](const ::testing::TestParamInfo<store_factory>& p) {
                           return p.param.name;
                         });

} // namespace

// -- the SQLite store's own ------------------------------------------------------------

class sqlite_store_test : public ::testing::Test {
protected:
  sqlite_store_test() {
    cfg.set("scheduler.max-threads", 2);
    sys = std::make_unique<caf::actor_system>(cfg);
    dir = make_temp_dir();
  }
  ~sqlite_store_test() override {
    for (auto& s : stores)
      caf::anon_send_exit(s, caf::exit_reason::user_shutdown);
    stores.clear();
    sys.reset();
    if (!dir.empty())
      std::filesystem::remove_all(dir);
  }
  caf::actor open(const std::string& path, std::string& error, uint32_t busy_ms = 5000) {
    sqlite_store_params p;
    p.path = path;
    p.busy_timeout_ms = busy_ms;
    auto s = spawn_sqlite_store(*sys, p, error);
    if (s)
      stores.push_back(s);
    return s;
  }
  caf::actor_system_config cfg;
  std::unique_ptr<caf::actor_system> sys;
  std::string dir;
  std::vector<caf::actor> stores;
};

TEST_F(sqlite_store_test, a_file_that_cannot_be_opened_is_one_line_with_its_path) {
  std::string error;
  auto path = dir + "/no/such/dir/registry.db";
  EXPECT_FALSE(open(path, error));
  EXPECT_EQ(error, "sqlite store " + path + ": unable to open database file");
}

TEST_F(sqlite_store_test, a_file_that_is_not_a_database_is_refused) {
  auto path = dir + "/not.db";
  {
    std::FILE* f = std::fopen(path.c_str(), "w");
    ASSERT_TRUE(f);
    std::fputs(std::string(8192, 'x').c_str(), f);
    std::fclose(f);
  }
  std::string error;
  EXPECT_FALSE(open(path, error));
  EXPECT_EQ(error, "sqlite store " + path + ": file is not a database");
}

TEST_F(sqlite_store_test, one_store_per_file) {
  auto path = dir + "/registry.db";
  std::string error;
  ASSERT_TRUE(open(path, error)) << error;
  EXPECT_FALSE(open(path, error, 100));
  EXPECT_EQ(error, "sqlite store " + path + ": database is locked");
}

/// The child of the crash test: puts /crash/0, /crash/1, ... and writes
/// each index to `fd` once the store acknowledged it, until killed.
[[noreturn]] void put_until_killed(const std::string& path, int fd) {
  caf::actor_system_config cfg;
  cfg.set("scheduler.max-threads", 2);
  caf::actor_system sys(cfg);
  std::string error;
  sqlite_store_params p;
  p.path = path;
  auto store = spawn_sqlite_store(sys, p, error);
  if (!store)
    _exit(2);
  caf::scoped_actor self(sys);
  for (uint32_t i = 0; i < 100000; ++i) {
    bool ok = false;
    self->request(store, answer_timeout, store_put{"/crash/" + std::to_string(i), "v" + std::to_string(i)})
      .receive([&](store_put_result& r) { ok = r.ok; }, [&](caf::error&) {});
    if (!ok || write(fd, &i, sizeof(i)) != sizeof(i))
      _exit(3);
  }
  _exit(0);
}

TEST(sqlite_store_crash, an_acknowledged_write_survives_a_kill) {
  auto dir = make_temp_dir();
  ASSERT_FALSE(dir.empty());
  auto path = dir + "/registry.db";
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  // Before any actor system exists in this process: the child is alone.
  auto child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    close(fds[0]);
    put_until_killed(path, fds[1]);
  }
  close(fds[1]);
  uint32_t acked = 0;
  bool any = false;
  for (uint32_t i = 0; i < 50; ++i) {
    if (read(fds[0], &acked, sizeof(acked)) != sizeof(acked))
      break;
    any = true;
  }
  kill(child, SIGKILL);
  int status = 0;
  waitpid(child, &status, 0);
  // Acknowledgements written before the kill still count.
  uint32_t later = 0;
  while (read(fds[0], &later, sizeof(later)) == sizeof(later))
    acked = later;
  close(fds[0]);
  ASSERT_TRUE(any) << "the child acknowledged nothing (status " << status << ")";
  {
    caf::actor_system_config cfg;
    cfg.set("scheduler.max-threads", 2);
    caf::actor_system sys(cfg);
    std::string error;
    sqlite_store_params p;
    p.path = path;
    auto store = spawn_sqlite_store(sys, p, error);
    ASSERT_TRUE(store) << error;
    caf::scoped_actor self(sys);
    store_list_result l;
    self->request(store, answer_timeout, store_list{"/crash/", 0})
      .receive([&](store_list_result& r) { l = std::move(r); }, [&](caf::error&) {});
    EXPECT_GE(l.records.size(), acked + 1u);
    EXPECT_GE(l.revision, acked + 1u);
    std::map<std::string, std::string> got;
    for (auto& r : l.records)
      got[r.key] = r.value;
    for (uint32_t i = 0; i <= acked; ++i)
      EXPECT_EQ(got["/crash/" + std::to_string(i)], "v" + std::to_string(i)) << i;
    self->send_exit(store, caf::exit_reason::user_shutdown);
  }
  std::filesystem::remove_all(dir);
}
