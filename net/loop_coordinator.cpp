#include "net/loop_coordinator.hpp"

#include <cassert>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include <asio.hpp>

#include "caf/actor_system.hpp"
#include "caf/actor_system_config.hpp"
#include "caf/detail/set_thread_name.hpp"
#include "caf/detail/thread_safe_actor_clock.hpp"
#include "caf/execution_unit.hpp"
#include "caf/resumable.hpp"
#include "caf/scheduler/abstract_coordinator.hpp"

namespace drtp::net {

namespace {

class loop_coordinator;

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
  explicit loop_coordinator(caf::actor_system& sys)
    : abstract_coordinator(sys), unit_(&sys, *this) {
  }

  asio::io_context& context() { return io_; }

  void enqueue(caf::resumable* job) override {
    assert(job != nullptr);
    bool arm = false;
    bool dropped = false;
    {
      std::lock_guard<std::mutex> guard{mtx_};
      if (stopped_) {
        dropped = true;
      } else {
        queue_.push_back(job);
        arm = !armed_;
        armed_ = true;
      }
    }
    if (dropped)
      cleanup_and_release(job); // after stop(): nothing runs it any more
    else if (arm)
      asio::post(io_, [this] { run_jobs(); });
  }

  caf::actor_clock& clock() noexcept override { return clock_; }

  // The printer must keep working while the loop is busy or gone.
  bool detaches_utility_actors() const override { return true; }

  void start() override {
    work_.emplace(io_.get_executor());
    loop_thread_ = std::thread([this] {
      caf::detail::set_thread_name("drtp.loop");
      system().thread_started();
      for (;;) {
        try {
          io_.run();
          break;
        } catch (const std::exception&) {
          // A throwing handler must not take the process down with it; the
          // handlers log their own failures.
        }
      }
      system().thread_terminates();
    });
    clock_thread_ = std::thread([this] {
      caf::detail::set_thread_name("drtp.clock");
      clock_.run_dispatch_loop();
    });
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
    io_.restart();
    io_.poll();
    clock_.cancel_dispatch_loop();
    if (clock_thread_.joinable())
      clock_thread_.join();
  }

private:
  /// Drains what was queued when it started; jobs enqueued meanwhile arm a
  /// new run, so socket events interleave with actors and nothing starves.
  void run_jobs() {
    {
      std::lock_guard<std::mutex> guard{mtx_};
      batch_.swap(queue_);
      armed_ = false;
    }
    for (auto* job : batch_) {
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
    batch_.clear();
  }

  // Declared first, destroyed last: sockets and timers of asio_io use it.
  asio::io_context io_{1};
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>>
    work_;
  std::thread loop_thread_;
  caf::detail::thread_safe_actor_clock clock_;
  std::thread clock_thread_;
  loop_unit unit_;
  std::mutex mtx_;
  std::vector<caf::resumable*> queue_; // guarded by mtx_
  bool armed_ = false;                 // guarded: a run_jobs is posted
  bool stopped_ = false;               // guarded
  std::vector<caf::resumable*> batch_; // loop thread only
};

void loop_unit::exec_later(caf::resumable* job) {
  parent_.enqueue(job);
}

} // namespace

void use_loop_scheduler(caf::actor_system_config& cfg) {
  cfg.module_factories.push_back(
    [](caf::actor_system& sys) -> caf::actor_system::module* {
      return new loop_coordinator(sys);
    });
}

asio::io_context* loop_context(caf::actor_system& sys) {
  auto* loop = dynamic_cast<loop_coordinator*>(&sys.scheduler());
  return loop ? &loop->context() : nullptr;
}

} // namespace drtp::net
