#include "net/loop_coordinator.hpp"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#include <asio.hpp>
#include <asio/steady_timer.hpp>

#include "caf/actor_system.hpp"
#include "caf/actor_system_config.hpp"
#include "caf/detail/set_thread_name.hpp"
#include "caf/detail/simple_actor_clock.hpp"
#include "caf/execution_unit.hpp"
#include "caf/resumable.hpp"
#include "caf/scheduler/abstract_coordinator.hpp"
#include "net/seam/assert.hpp"

namespace drtp::net {

namespace {

class loop_coordinator;

/// CAF's timers (delayed_send, timeouts) on an asio timer of the loop.
/// CAF's own clock runs a thread that every timer change wakes with a
/// futex, and every actor that ends cancels its timers: two wake-ups per
/// visitor. Here a change from the loop thread is a map update; from other
/// threads it is posted to the loop.
class loop_clock final : public caf::detail::simple_actor_clock {
public:
  using super = caf::detail::simple_actor_clock;

  loop_clock(asio::io_context& io, const std::thread::id& loop_thread)
    : io_(io), timer_(io), loop_thread_(loop_thread) {
  }

  void set_ordinary_timeout(time_point t, caf::abstract_actor* self,
                            caf::atom_value type, uint64_t id) override {
    locked([&] { super::set_ordinary_timeout(t, self, type, id); });
  }
  void set_multi_timeout(time_point t, caf::abstract_actor* self,
                         caf::atom_value type, uint64_t id) override {
    locked([&] { super::set_multi_timeout(t, self, type, id); });
  }
  void set_request_timeout(time_point t, caf::abstract_actor* self,
                           caf::message_id id) override {
    locked([&] { super::set_request_timeout(t, self, id); });
  }
  void cancel_ordinary_timeout(caf::abstract_actor* self,
                               caf::atom_value type) override {
    locked([&] { super::cancel_ordinary_timeout(self, type); });
  }
  void cancel_request_timeout(caf::abstract_actor* self,
                              caf::message_id id) override {
    locked([&] { super::cancel_request_timeout(self, id); });
  }
  void cancel_timeouts(caf::abstract_actor* self) override {
    locked([&] { super::cancel_timeouts(self); });
  }
  void schedule_message(time_point t, caf::strong_actor_ptr receiver,
                        caf::mailbox_element_ptr content) override {
    locked([&] {
      super::schedule_message(t, std::move(receiver), std::move(content));
    });
  }
  void schedule_message(time_point t, caf::group target,
                        caf::strong_actor_ptr sender,
                        caf::message content) override {
    locked([&] {
      super::schedule_message(t, std::move(target), std::move(sender),
                              std::move(content));
    });
  }
  void cancel_all() override {
    locked([&] { super::cancel_all(); });
  }

  /// After the loop stopped: drops every timer (and the handles they hold).
  void stop() {
    std::lock_guard<std::recursive_mutex> guard{mtx_};
    stopped_ = true;
    super::cancel_all();
    timer_.cancel();
  }

private:
  template <class F>
  void locked(F f) {
    std::lock_guard<std::recursive_mutex> guard{mtx_};
    f();
    if (stopped_)
      return;
    if (std::this_thread::get_id() == loop_thread_) {
      arm();
    } else if (!arm_posted_) {
      arm_posted_ = true;
      asio::post(io_, [this] {
        std::lock_guard<std::recursive_mutex> guard{mtx_};
        arm_posted_ = false;
        arm();
      });
    }
  }

  /// Points the timer at the earliest due entry. Loop thread, lock held.
  void arm() {
    if (stopped_ || schedule().empty())
      return; // a timer still set fires and finds nothing due
    auto due = schedule().begin()->first;
    if (armed_ && armed_for_ <= due)
      return;
    armed_ = true;
    armed_for_ = due;
    timer_.expires_at(due);
    timer_.async_wait([this](const asio::error_code& ec) {
      if (ec)
        return; // re-armed earlier, or stopped
      std::lock_guard<std::recursive_mutex> guard{mtx_};
      armed_ = false;
      if (stopped_)
        return;
      trigger_expired_timeouts();
      arm();
    });
  }

  asio::io_context& io_;
  asio::steady_timer timer_;
  const std::thread::id& loop_thread_;
  // Recursive: delivering a timeout may make an actor set or cancel one.
  std::recursive_mutex mtx_;
  bool armed_ = false;
  time_point armed_for_;
  bool arm_posted_ = false;
  bool stopped_ = false;
};

/// The execution unit actors see while they run: a send from inside an
/// actor lands on the same queue as a send from anywhere else.
class loop_unit final : public caf::execution_unit {
public:
  loop_unit(caf::actor_system* sys, loop_coordinator& parent)
    : caf::execution_unit(sys), parent_(parent) {
  }

  void exec_later(caf::resumable* job) override;

private:
  loop_coordinator& parent_;
};

class loop_coordinator final : public caf::scheduler::abstract_coordinator {
public:
  loop_coordinator(caf::actor_system& sys, uint32_t busy_poll_us)
    : abstract_coordinator(sys),
      busy_poll_us_(busy_poll_us),
      clock_(io_, loop_thread_id_),
      unit_(&sys, *this) {
    DRTP_ASSERT(busy_poll_us <= busy_poll_us_max, "busy polling is bounded");
    if (busy_poll_us_ > 0)
      loadavg_fd_ = ::open("/proc/loadavg", O_RDONLY | O_CLOEXEC);
  }

  ~loop_coordinator() override {
    if (loadavg_fd_ >= 0)
      ::close(loadavg_fd_);
  }

  asio::io_context& context() { return io_; }

  void enqueue(caf::resumable* job) override {
    DRTP_ASSERT(job != nullptr, "the scheduler enqueues real jobs");
    bool wake = false;
    bool dropped = false;
    {
      std::lock_guard<std::mutex> guard{mtx_};
      if (stopped_) {
        dropped = true;
      } else {
        queue_.push_back(job);
        // The loop thread drains the queue after the handler it is in; any
        // other thread must wake the loop, once until the next drain.
        wake = !armed_ && std::this_thread::get_id() != loop_thread_id_;
        armed_ = armed_ || wake;
      }
    }
    if (dropped)
      cleanup_and_release(job); // after stop(): nothing runs it any more
    else if (wake)
      asio::post(io_, [] {}); // run_loop drains after every handler
  }

  caf::actor_clock& clock() noexcept override { return clock_; }

  // The printer must keep working while the loop is busy or gone.
  bool detaches_utility_actors() const override { return true; }

  void start() override {
    work_.emplace(io_.get_executor());
    std::promise<void> started;
    loop_thread_ = std::thread([this, &started] {
      loop_thread_id_ = std::this_thread::get_id();
      started.set_value();
      caf::detail::set_thread_name("drtp.loop");
      system().thread_started();
      for (;;) {
        try {
          run_loop();
          break;
        } catch (const std::exception& e) {
          // A throwing handler must not take the process down with it.
          std::fprintf(stderr, "drtp: internal error in the I/O loop: %s\n",
                       e.what());
        }
      }
      system().thread_terminates();
    });
    started.get_future().wait();
    abstract_coordinator::start();
  }

  void stop() override {
    stop_actors();
    work_.reset();
    io_.stop();
    if (loop_thread_.joinable())
      loop_thread_.join();
    std::vector<caf::resumable*> left;
    {
      std::lock_guard<std::mutex> guard{mtx_};
      stopped_ = true;
      left.swap(queue_);
    }
    for (auto* job : left)
      cleanup_and_release(job);
    // Handlers still queued (socket completions after close) hold actor
    // handles: run them here so those are released while the system lives;
    // what they enqueue is cleaned up at once.
    clock_.stop();
    io_.restart();
    io_.poll();
  }

private:
  /// Runs one socket event (or timer, or wake-up) at a time and, after each,
  /// the actors it woke: not from a handler posted behind asio's reactor,
  /// since each post cost an epoll_wait(0) before it ran, three per event
  /// forwarded. Draining first also runs what a handler that threw left
  /// queued.
  ///
  /// With busy_poll_us_ > 0 the loop keeps polling for that long after each
  /// event before it sleeps in epoll_wait. Why: a round trip
  /// through DRTP crosses two relays, and on a VM each sleep costs a halted
  /// vCPU and an IPI to wake it (35% of a relay's samples in 64-byte
  /// ping-pong); the answer to what a relay just forwarded usually comes
  /// back within ~100 us. While polling, sched_yield() hands this CPU to
  /// anything runnable here, and polling stops as soon as more tasks are
  /// runnable than there are CPUs: a CPU that only looks busy would keep a
  /// woken task queued behind another CPU's work (p999 went from 0.5 to
  /// 4 ms beside a CPU hog without this check). An idle process sleeps
  /// after one window. Off by default, like haproxy's busy-polling.
  void run_loop() {
    if (busy_poll_us_ == 0) {
      while (!io_.stopped()) {
        drain();
        io_.run_one();
      }
      return;
    }
    using clock = std::chrono::steady_clock;
    const auto window = std::chrono::microseconds(busy_poll_us_);
    auto last_event = clock::now();
    while (!io_.stopped()) {
      drain();
      if (io_.poll_one() > 0) {
        last_event = clock::now();
      } else if (clock::now() - last_event < window && !cpus_wanted()) {
        sched_yield();
      } else {
        io_.run_one(); // sleeps until the next event
        last_event = clock::now();
      }
    }
  }

  /// True when more tasks are runnable than there are CPUs: polling on
  /// would keep a CPU looking busy while a woken task waits for one.
  bool cpus_wanted() {
    if (loadavg_fd_ < 0)
      return false;
    char buf[128];
    auto n = ::pread(loadavg_fd_, buf, sizeof(buf) - 1, 0);
    if (n <= 0)
      return false;
    buf[n] = '\0';
    // "0.00 0.01 0.05 R/T LAST": R tasks runnable now, this one included.
    const char* p = buf;
    for (int spaces = 0; *p != '\0' && spaces < 3; ++p)
      if (*p == ' ')
        ++spaces;
    return std::strtol(p, nullptr, 10) > cpus_;
  }

  /// Runs the actors that messages woke, and those that their messages
  /// woke, up to `drain_rounds_max` rounds: then socket events go first, so
  /// actors that keep messaging each other cannot starve them.
  void drain() {
    for (int round = 0; round < drain_rounds_max; ++round) {
      {
        std::lock_guard<std::mutex> guard{mtx_};
        if (queue_.empty())
          return;
        batch_.swap(queue_);
        armed_ = false;
      }
      run_batch();
    }
    std::lock_guard<std::mutex> guard{mtx_};
    if (!queue_.empty() && !armed_) {
      armed_ = true;
      asio::post(io_, [] {});
    }
  }

  void run_batch() {
    size_t i = 0;
    try {
      for (; i < batch_.size(); ++i)
        resume(batch_[i]);
    } catch (...) {
      // The jobs after the one that threw have not run: they go next time.
      for (++i; i < batch_.size(); ++i)
        enqueue(batch_[i]);
      batch_.clear();
      throw;
    }
    batch_.clear();
  }

  void resume(caf::resumable* job) {
    switch (job->resume(&unit_, max_throughput_)) {
      case caf::resumable::resume_later:
        enqueue(job); // keeps its reference
        break;
      case caf::resumable::done:
      case caf::resumable::awaiting_message:
        intrusive_ptr_release(job);
        break;
      case caf::resumable::shutdown_execution_unit:
        break; // only CAF's own workers get this
    }
  }

  /// A message chain through a process is a few actors long (connection
  /// -> session -> tunnel); 64 rounds leave room for bursts.
  static constexpr int drain_rounds_max = 64;
  const uint32_t busy_poll_us_;
  int loadavg_fd_ = -1; // read while polling; -1: polling never stops early
  const long cpus_ = std::max(1u, std::thread::hardware_concurrency());
  // Declared before the rest, destroyed after: sockets and timers of asio_io
  // use it.
  asio::io_context io_{1};
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>>
    work_;
  std::thread loop_thread_;
  std::thread::id loop_thread_id_;
  loop_clock clock_;
  loop_unit unit_;
  std::mutex mtx_;
  std::vector<caf::resumable*> queue_; // guarded by mtx_
  bool armed_ = false;                 // guarded: a wake-up is posted
  bool stopped_ = false;               // guarded
  std::vector<caf::resumable*> batch_; // loop thread only
};

void loop_unit::exec_later(caf::resumable* job) {
  parent_.enqueue(job);
}

} // namespace

void use_loop_scheduler(caf::actor_system_config& cfg, uint32_t busy_poll_us) {
  DRTP_ASSERT(busy_poll_us <= busy_poll_us_max, "busy polling is bounded");
  cfg.module_factories.push_back(
    [busy_poll_us](caf::actor_system& sys) -> caf::actor_system::module* {
      return new loop_coordinator(sys, busy_poll_us);
    });
}

asio::io_context* loop_context(caf::actor_system& sys) {
  auto* loop = dynamic_cast<loop_coordinator*>(&sys.scheduler());
  return loop ? &loop->context() : nullptr;
}

} // namespace drtp::net
