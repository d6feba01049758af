#include "sim/driver.hpp"

// One deterministic run. CAF's test coordinator runs every actor on this
// thread and only when told to; we pick which ready job runs next with a
// seeded generator, and when nothing is ready we jump virtual time to the
// next CAF timer or network event. Nothing depends on the wall clock.

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <map>
#include <optional>
#include <random>

#include "caf/actor_cast.hpp"
#include "caf/actor_system.hpp"
#include "caf/actor_system_config.hpp"
#include "caf/atom.hpp"
#include "caf/exit_reason.hpp"
#include "caf/scheduler/test_coordinator.hpp"
#include "caf/send.hpp"

namespace drtp::sim {

namespace {

using caf_clock = caf::detail::test_actor_clock;
using time_point = caf::actor_clock::time_point;

/// A bound that only a livelocked run reaches: never hang a test.
constexpr uint64_t max_steps_per_run = 50'000'000;
/// Bounds for draining at shutdown.
constexpr int max_drain_rounds = 100;
constexpr uint64_t max_drain_jobs = 1'000'000;

/// Stamps each event with virtual time and hashes the whole trace.
class sim_tracer final : public net::tracer {
public:
  explicit sim_tracer(const caf_clock* clock)
    : clock_(clock), start_(clock->current_time) {
  }

  void emit(const std::string& host, const std::string& who,
            const std::string& what) override {
    auto t = now_us();
    char stamp[32];
    std::snprintf(stamp, sizeof(stamp), "%" PRIu64 ".%06" PRIu64,
                  t / 1'000'000, t % 1'000'000);
    std::string line;
    line.reserve(32 + host.size() + who.size() + what.size());
    line += stamp;
    line += ' ';
    line += host;
    line += ' ';
    line += who;
    line += ": ";
    line += what;
    for (unsigned char c : line) {
      hash_ ^= c;
      hash_ *= 0x100000001b3ull; // FNV-1a 64 prime
    }
    hash_ ^= '\n';
    hash_ *= 0x100000001b3ull;
    lines_.push_back(std::move(line));
  }

  bool verbose() const override {
    return true;
  }

  uint64_t now_us() const {
    if (clock_ != nullptr)
      last_us_ = static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::microseconds>(
          clock_->current_time - start_)
          .count());
    return last_us_;
  }

  void census(const std::string& host, const char* kind, int delta) override {
    auto& n = census_[host][kind];
    n += delta;
    if (n == 0)
      census_[host].erase(kind);
    if (census_[host].empty())
      census_.erase(host);
  }

  const std::map<std::string, std::map<std::string, int64_t>>& census() const {
    return census_;
  }

  /// The clock dies with the actor system; actors may keep the tracer.
  void detach() {
    now_us();
    clock_ = nullptr;
  }

  const std::vector<std::string>& lines() const {
    return lines_;
  }

  uint64_t hash() const {
    return hash_;
  }

private:
  const caf_clock* clock_;
  time_point start_;
  mutable uint64_t last_us_ = 0;
  std::vector<std::string> lines_;
  uint64_t hash_ = 0xcbf29ce484222325ull; // FNV-1a 64 offset basis
  std::map<std::string, std::map<std::string, int64_t>> census_;
};

} // namespace

struct driver::impl {
  explicit impl(uint64_t seed) : seed(seed), rng(seed) {
    cfg.set("scheduler.policy", caf::atom("testing"));
    cfg.set("logger.file-verbosity", caf::atom("quiet"));
    cfg.set("logger.console-verbosity", caf::atom("quiet"));
    sys = std::make_unique<caf::actor_system>(cfg);
    sched = &dynamic_cast<caf::scheduler::test_coordinator&>(sys->scheduler());
    start = sched->clock().current_time;
    tracer = std::make_shared<sim_tracer>(&sched->clock());
    // A different stream than the scheduling choices, so that adding a
    // network event does not shift which actor runs next.
    net = std::make_unique<world>(*sys, seed ^ 0x9e3779b97f4a7c15ull, tracer);
  }

  uint64_t seed;
  caf::actor_system_config cfg; // the system keeps a reference: lives longer
  std::unique_ptr<caf::actor_system> sys;
  caf::scheduler::test_coordinator* sched = nullptr;
  time_point start;
  std::shared_ptr<sim_tracer> tracer;
  std::unique_ptr<world> net;
  std::mt19937_64 rng;
  uint64_t steps = 0;

  caf_clock& clock() {
    return sched->clock();
  }

  uint64_t now_us() {
    return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(
        clock().current_time - start)
        .count());
  }

  /// Moves virtual time to `t` (never backwards), firing due CAF timers and
  /// delivering due network events.
  void advance_to(time_point t) {
    auto& c = clock();
    auto delta = t > c.current_time ? t - c.current_time
                                    : caf_clock::duration_type{0};
    c.advance_time(delta);
    if (net)
      net->deliver_due(now_us());
  }

  /// The earliest pending timer or network event, if any.
  std::optional<time_point> next_event() {
    std::optional<time_point> next;
    uint64_t t = 0;
    if (net && net->next_event_us(t))
      next = start + std::chrono::microseconds(t);
    auto& timers = clock().schedule();
    if (!timers.empty()) {
      auto due = timers.begin()->first;
      next = next ? std::min(*next, due) : due;
    }
    return next;
  }

  /// At shutdown, every actor that is ready to run or waits for a timer is
  /// told to die: periodic timers and reference cycles would otherwise keep
  /// actors (and their memory) alive past the system. Idle actors in a cycle
  /// cannot be found this way.
  void kill_busy_actors() {
    std::vector<caf::strong_actor_ptr> xs;
    for (auto& entry : clock().schedule()) {
      auto& ev = *entry.second;
      switch (ev.subtype) {
        case caf_clock::ordinary_timeout_type:
          xs.push_back(static_cast<caf_clock::ordinary_timeout&>(ev).self);
          break;
        case caf_clock::multi_timeout_type:
          xs.push_back(static_cast<caf_clock::multi_timeout&>(ev).self);
          break;
        case caf_clock::request_timeout_type:
          xs.push_back(static_cast<caf_clock::request_timeout&>(ev).self);
          break;
        case caf_clock::actor_msg_type:
          xs.push_back(static_cast<caf_clock::actor_msg&>(ev).receiver);
          break;
        default:
          break;
      }
    }
    for (auto* job : sched->jobs)
      if (auto a = dynamic_cast<caf::abstract_actor*>(job))
        xs.push_back(caf::actor_cast<caf::strong_actor_ptr>(a));
    for (auto& x : xs)
      if (x)
        caf::anon_send_exit(x, caf::exit_reason::kill);
  }

  /// Runs one ready job, chosen by the seeded generator; the others keep
  /// their order.
  void run_one_job() {
    auto& jobs = sched->jobs;
    auto i = static_cast<std::ptrdiff_t>(rng() % jobs.size());
    if (i != 0)
      std::rotate(jobs.begin(), jobs.begin() + i, jobs.begin() + i + 1);
    sched->run_once();
    ++steps;
  }
};

driver::driver(uint64_t seed) : impl_(std::make_unique<impl>(seed)) {
}

driver::~driver() {
  auto& d = *impl_;
  // 1. The world kills the actors it knows and lets go of every handle.
  d.net.reset();
  // 2. Kill whatever still runs or waits for a timer, drop the timers, and
  //    let the dying actors run to their end. Dying can wake others (down
  //    and exit messages), so repeat until nothing is left.
  for (int round = 0; round < max_drain_rounds; ++round) {
    d.kill_busy_actors();
    d.clock().cancel_all();
    uint64_t n = 0;
    while (!d.sched->jobs.empty() && n++ < max_drain_jobs)
      d.sched->run_once();
    if (d.sched->jobs.empty() && !d.clock().has_pending_timeout())
      break;
  }
  d.clock().cancel_all();
  d.tracer->detach();
  // 3. Actors still alive now hold each other (a cycle) and can never run
  //    again: waiting for them would hang the destructor.
  if (auto n = d.sys->registry().running(); n > 0)
    std::fprintf(stderr,
                 "sim::driver: %zu actor(s) still alive at shutdown "
                 "(a reference cycle?); not waiting for them\n",
                 n);
  d.sys->await_actors_before_shutdown(false);
  d.sys.reset();
}

caf::actor_system& driver::sys() {
  return *impl_->sys;
}

world& driver::net() {
  return *impl_->net;
}

std::shared_ptr<net::tracer> driver::trace() {
  return impl_->tracer;
}

uint64_t driver::seed() const {
  return impl_->seed;
}

uint64_t driver::now_us() const {
  return impl_->now_us();
}

bool driver::run_until(const std::function<bool()>& done,
                       uint64_t max_virtual_us) {
  auto& d = *impl_;
  auto deadline = d.clock().current_time
                  + std::chrono::microseconds(max_virtual_us);
  for (uint64_t budget = max_steps_per_run; budget > 0; --budget) {
    if (done())
      return true;
    if (!d.sched->jobs.empty()) {
      d.run_one_job();
      continue;
    }
    auto next = d.next_event();
    if (!next || *next > deadline) {
      d.advance_to(deadline);
      return done();
    }
    d.advance_to(*next);
  }
  std::fprintf(stderr,
               "sim::driver: step limit of %" PRIu64
               " reached at t=%" PRIu64 " us (livelock?)\n",
               max_steps_per_run, d.now_us());
  return done();
}

void driver::run_for(uint64_t virtual_us) {
  run_until([] { return false; }, virtual_us);
}

const std::vector<std::string>& driver::trace_lines() const {
  return impl_->tracer->lines();
}

const std::map<std::string, std::map<std::string, int64_t>>& driver::census() const {
  return impl_->tracer->census();
}

uint64_t driver::trace_hash() const {
  return impl_->tracer->hash();
}

uint64_t driver::steps() const {
  return impl_->steps;
}

} // namespace drtp::sim
