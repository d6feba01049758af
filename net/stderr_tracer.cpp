#include "net/stderr_tracer.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <map>
#include <mutex>
#include <utility>

namespace drtp::net {


namespace {

class stderr_tracer final : public tracer {
public:
  explicit stderr_tracer(int level) : level_(level) {
  }

  ~stderr_tracer() override {
    for (auto& [kind, b] : budgets_)
      if (b.dropped > 0)
        write_line(kind.first, "log", dropped_text(kind.second, b.dropped));
  }

  void emit(const std::string& host, const std::string& who,
            const std::string& what) override {
    std::lock_guard<std::mutex> guard{mtx_};
    if (level_ == 0 && !spend(host, who))
      return;
    write_line(host, who, what);
  }

  uint64_t lines_dropped_total() const override {
    return dropped_total_.load(std::memory_order_relaxed);
  }

  bool verbose() const override {
    return level_ > 0;
  }

  void audit(const std::string& host, const std::string& what,
             bool authenticated) override {
    std::lock_guard<std::mutex> guard{mtx_};
    // Authenticated decisions bypass the budget; the unauthenticated ones
    // spend the "audit" budget, which only they draw on.
    if (!authenticated && level_ == 0 && !spend(host, "audit"))
      return;
    write_line(host, "audit", what);
  }

private:
  /// A budget per host and kind of component ("tunnel" for tunnel#7): a
  /// flood of failed handshakes must not silence the POP's other lines.
  struct budget {
    double tokens = log_lines_burst;
    std::chrono::steady_clock::time_point refilled =
      std::chrono::steady_clock::now();
    uint64_t dropped = 0;
    std::chrono::steady_clock::time_point told{}; // the last "dropped" line
  };
  /// Kinds come from the code, hosts from the command line: a handful.
  /// Anything past this shares one budget.
  static constexpr size_t budgets_max = 64;
  std::atomic<uint64_t> dropped_total_{0};

  /// False if the line is to be dropped. Lock held.
  bool spend(const std::string& host, const std::string& who) {
    auto kind = std::make_pair(host, who.substr(0, who.find('#')));
    auto it = budgets_.find(kind);
    if (it == budgets_.end()) {
      if (budgets_.size() >= budgets_max)
        kind = {"*", "*"};
      it = budgets_.try_emplace(kind).first;
    }
    auto& b = it->second;
    auto now = std::chrono::steady_clock::now();
    std::chrono::duration<double> elapsed = now - b.refilled;
    b.refilled = now;
    b.tokens = std::min(static_cast<double>(log_lines_burst),
                        b.tokens + elapsed.count() * log_lines_per_second);
    if (b.tokens < 1.0) {
      ++b.dropped;
      dropped_total_.fetch_add(1, std::memory_order_relaxed);
      return false;
    }
    b.tokens -= 1.0;
    // At most one such line a second, or a flood would be half of them.
    if (b.dropped > 0 && now - b.told >= std::chrono::seconds(1)) {
      write_line(host, "log", dropped_text(kind.second, b.dropped));
      b.dropped = 0;
      b.told = now;
    }
    return true;
  }

  static std::string dropped_text(const std::string& kind, uint64_t n) {
    return std::to_string(n) + " log lines of " + kind
           + " dropped: more than " + std::to_string(log_lines_per_second)
           + " a second (after a burst of " + std::to_string(log_lines_burst)
           + ")";
  }

  void write_line(const std::string& host, const std::string& who,
                  const std::string& what) {
    using namespace std::chrono;
    auto now = system_clock::now();
    auto secs = system_clock::to_time_t(now);
    auto ms = duration_cast<milliseconds>(now.time_since_epoch()).count() % 1000;
    std::tm tm{};
    gmtime_r(&secs, &tm);
    char stamp[32];
    std::strftime(stamp, sizeof(stamp), "%H:%M:%S", &tm);
    std::fprintf(stderr, "%s.%03d %s %s: %s\n", stamp, static_cast<int>(ms),
                 escape_for_log(host).c_str(), escape_for_log(who).c_str(),
                 escape_for_log(what).c_str());
  }

  const int level_;
  std::mutex mtx_;
  std::map<std::pair<std::string, std::string>, budget> budgets_; // mtx_
};

} // namespace

std::shared_ptr<tracer> make_stderr_tracer(int level) {
  return std::make_shared<stderr_tracer>(level);
}

} // namespace drtp::net
