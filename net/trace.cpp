#include "net/trace.hpp"

#include <chrono>
#include <cstdio>
#include <ctime>
#include <mutex>

namespace drtp::net {

tracer::~tracer() = default;

namespace {

class stderr_tracer final : public tracer {
public:
  explicit stderr_tracer(int level) : level_(level) {
  }

  void emit(const std::string& host, const std::string& who,
            const std::string& what) override {
    using namespace std::chrono;
    auto now = system_clock::now();
    auto secs = system_clock::to_time_t(now);
    auto ms = duration_cast<milliseconds>(now.time_since_epoch()).count() % 1000;
    std::tm tm{};
    gmtime_r(&secs, &tm);
    char stamp[32];
    std::strftime(stamp, sizeof(stamp), "%H:%M:%S", &tm);
    std::lock_guard<std::mutex> guard{mtx_};
    std::fprintf(stderr, "%s.%03d %s %s: %s\n", stamp, static_cast<int>(ms),
                 host.c_str(), who.c_str(), what.c_str());
  }

  bool verbose() const override {
    return level_ > 0;
  }

private:
  int level_;
  std::mutex mtx_;
};

class null_tracer final : public tracer {
public:
  void emit(const std::string&, const std::string&,
            const std::string&) override {
  }
};

} // namespace

std::shared_ptr<tracer> make_stderr_tracer(int level) {
  return std::make_shared<stderr_tracer>(level);
}

std::shared_ptr<tracer> make_null_tracer() {
  return std::make_shared<null_tracer>();
}

} // namespace drtp::net
