#include "bench/load.hpp"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <sys/socket.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include "bench/system.hpp"
#include "tests/support/sock.hpp"

namespace drtp::bench {

/// `streams` parallel uploads of `bytes` in total to the sink; Gbit/s of
/// the sum over the wall time; 0 on any error.
double throughput_gbps(uint16_t port, uint64_t bytes, int streams) {
  uint64_t each = bytes / static_cast<uint64_t>(streams);
  std::vector<sock::fd> socks;
  for (int i = 0; i < streams; ++i) {
    auto s = sock::connect_tcp("127.0.0.1", port, 60000);
    if (!s)
      return 0;
    socks.push_back(std::move(s));
  }
  std::atomic<int> ok{0};
  auto t0 = clock_type::now();
  std::vector<std::thread> ts;
  for (auto& s : socks)
    ts.emplace_back([&, fd = s.get()] {
      std::vector<char> buf(256 * 1024, 'd');
      if (!sock::send_all(fd, "SINK", 4))
        return;
      for (uint64_t left = each; left > 0;) {
        auto n = std::min<uint64_t>(left, buf.size());
        if (!sock::send_all(fd, buf.data(), n))
          return;
        left -= n;
      }
      ::shutdown(fd, SHUT_WR);
      unsigned char count[8];
      if (!sock::recv_all(fd, count, 8))
        return;
      uint64_t got = 0;
      for (int i = 0; i < 8; ++i)
        got = (got << 8) | count[i];
      if (got == each)
        ++ok;
    });
  for (auto& t : ts)
    t.join();
  double secs = seconds_since(t0);
  if (ok != streams)
    return 0;
  return static_cast<double>(each * streams) * 8 / secs / 1e9;
}

latency ping_pong(uint16_t port, int rounds) {
  latency out;
  auto s = sock::connect_tcp("127.0.0.1", port, 5000);
  if (!s)
    return out;
  char msg[64];
  std::memset(msg, 'p', sizeof(msg));
  std::vector<double> samples;
  samples.reserve(rounds);
  for (int i = 0; i < rounds + ping_pong_warmup; ++i) {
    auto t0 = clock_type::now();
    char back[64];
    if (!sock::send_all(s.get(), msg, sizeof(msg))
        || !sock::recv_all(s.get(), back, sizeof(back)))
      return out;
    if (i >= ping_pong_warmup) // warm-up first
      samples.push_back(seconds_since(t0) * 1e6);
  }
  std::sort(samples.begin(), samples.end());
  auto at = [&](double q) {
    return samples[std::min(samples.size() - 1,
                            static_cast<size_t>(q * samples.size()))];
  };
  out.p50_us = at(0.50);
  out.p99_us = at(0.99);
  out.p999_us = at(0.999);
  return out;
}

/// `threads` loops of connect, 64 B there and back, close, for `seconds`:
/// completions per second (failures do not count).
double conn_rate(uint16_t port, int threads, double seconds, uint64_t& failed) {
  std::atomic<uint64_t> done{0}, bad{0};
  auto t0 = clock_type::now();
  auto deadline = t0 + std::chrono::duration_cast<clock_type::duration>(
                         std::chrono::duration<double>(seconds));
  std::vector<std::thread> ts;
  for (int i = 0; i < threads; ++i)
    ts.emplace_back([&] {
      char msg[64], back[64];
      std::memset(msg, 'c', sizeof(msg));
      while (clock_type::now() < deadline) {
        auto s = sock::connect_tcp("127.0.0.1", port, 3000);
        if (s && sock::send_all(s.get(), msg, 64)
            && sock::recv_all(s.get(), back, 64)) {
          ++done;
        } else {
          ++bad;
          if (bad > 1000) // the path is down or refusing: stop hammering
            return;
          sleep_ms(1);
        }
      }
    });
  for (auto& t : ts)
    t.join();
  failed = bad;
  return static_cast<double>(done) / seconds_since(t0);
}

/// Opens up to n sessions that each carried 1 byte there and back (so the
/// session is established end to end), 32 at a time, for at most
/// `budget_s`.
std::vector<sock::fd> open_sessions(uint16_t port, int n, double budget_s,
                                    uint64_t& failed) {
  std::vector<sock::fd> held;
  std::mutex mtx;
  std::atomic<int> next{0};
  std::atomic<uint64_t> bad{0};
  auto t0 = clock_type::now();
  std::vector<std::thread> ts;
  for (int i = 0; i < 32; ++i)
    ts.emplace_back([&] {
      while (next++ < n && seconds_since(t0) < budget_s) {
        auto s = sock::connect_tcp("127.0.0.1", port, 5000);
        char b = 'i';
        if (s && sock::send_all(s.get(), &b, 1) && sock::recv_all(s.get(), &b, 1)) {
          std::lock_guard<std::mutex> g{mtx};
          held.push_back(std::move(s));
        } else {
          ++bad;
        }
      }
    });
  for (auto& t : ts)
    t.join();
  failed = bad;
  return held;
}

int idle_visitors::open(uint16_t port, int n, double budget_s, uint64_t& failed) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
    return 0;
  std::fflush(nullptr);
  pid_ = fork();
  if (pid_ == 0) {
    ::close(sv[0]);
    uint64_t bad = 0;
    auto held = open_sessions(port, n, budget_s, bad);
    uint64_t msg[2] = {held.size(), bad};
    sock::send_all(sv[1], msg, sizeof(msg));
    char x;
    (void) !::read(sv[1], &x, 1); // until the parent says so (or dies)
    _exit(0);
  }
  ::close(sv[1]);
  ctl_ = sv[0];
  uint64_t msg[2] = {0, 0};
  if (pid_ < 0 || !sock::recv_all(ctl_, msg, sizeof(msg)))
    return 0;
  failed = msg[1];
  return static_cast<int>(msg[0]);
}

void idle_visitors::close() {
  if (ctl_ >= 0)
    ::close(ctl_);
  ctl_ = -1;
  if (pid_ > 0) {
    int st;
    waitpid(pid_, &st, 0);
  }
  pid_ = -1;
}

} // namespace drtp::bench
