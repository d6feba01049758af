// drtp-bench: the local service, the checker and the benchmark.
//
//   drtp-bench echo --listen HOST:PORT          an echo service (demo, tests)
//   drtp-bench check --connect HOST:PORT ...    visitors that verify every byte
//   drtp-bench run [--quick] ...                DRTP beside direct loopback,
//                                               haproxy and ssh -R (bench_run)

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <mutex>
#include <string>
#include <sys/socket.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include "bench/run.hpp"
#include "bench/system.hpp"
#include "cli/args.hpp"
#include "cli/secrets.hpp"
#include "cli/signals.hpp"
#include "net/runtime.hpp"
#include "tests/support/sock.hpp"

namespace {

using namespace drtp;
using bench::clock_type;
using bench::seconds_since;

const char* usage = R"(drtp-bench - local service, checker and benchmark for DRTP

Usage:
  drtp-bench echo --listen HOST:PORT
      an echo service (stands in for Joe's service in the demo)
  drtp-bench check --connect HOST:PORT [--sessions N] [--bytes N]
      N concurrent visitors each send N random bytes, half-close, and check
      they get exactly those bytes back; prints a summary, exit 1 on failure
)";

struct check_result {
  int ok = 0;
  int failed = 0;
  double seconds = 0;
  std::string first_error;
};

check_result run_check(const std::string& host, uint16_t port, int sessions,
                       size_t bytes) {
  check_result res;
  std::atomic<int> ok{0};
  std::mutex mtx;
  auto t0 = clock_type::now();
  std::vector<std::thread> threads;
  for (int i = 0; i < sessions; ++i)
    threads.emplace_back([&, i] {
      auto data = sock::random_bytes(bytes, 77 + i);
      auto s = sock::connect_tcp(host, port, 30000);
      std::string err;
      if (!s) {
        err = std::string("connect: ") + std::strerror(errno);
      } else {
        std::thread w([&] {
          sock::send_all(s.get(), data.data(), data.size());
          ::shutdown(s.get(), SHUT_WR);
        });
        std::vector<char> back;
        bool got = sock::recv_to_eof(s.get(), back, bytes + 1);
        w.join();
        if (!got)
          err = "receive failed after " + std::to_string(back.size()) + " bytes";
        else if (back != data)
          err = "got " + std::to_string(back.size()) + " bytes, not the "
                + std::to_string(bytes) + " sent";
      }
      if (err.empty()) {
        ++ok;
      } else {
        std::lock_guard<std::mutex> g{mtx};
        if (res.first_error.empty())
          res.first_error = err;
      }
    });
  for (auto& t : threads)
    t.join();
  res.seconds = seconds_since(t0);
  res.ok = ok;
  res.failed = sessions - ok;
  return res;
}

int cmd_check(cli::args& a) {
  auto target = a.value("--connect");
  auto sessions = a.value("--sessions");
  auto bytes = a.value("--bytes");
  a.finish();
  if (!target)
    throw cli::error("check needs --connect HOST:PORT");
  std::string host;
  uint16_t port;
  cli::parse_host_port(*target, "--connect", host, port);
  int n = sessions ? std::stoi(*sessions) : 20;
  size_t b = bytes ? std::stoull(*bytes) : 1 << 20;
  auto r = run_check(host, port, n, b);
  std::printf("check: %d/%d sessions returned all %zu bytes intact in %.2f s "
              "(%.1f MiB through the tunnel each way)\n",
              r.ok, n, b, r.seconds, n * b / 1048576.0);
  if (r.failed > 0)
    std::printf("check: %d failed; first: %s\n", r.failed, r.first_error.c_str());
  return r.failed == 0 ? 0 : 1;
}

int cmd_echo(cli::args& a) {
  auto listen = a.value("--listen");
  a.finish();
  std::string host = "127.0.0.1";
  uint16_t port = 0;
  if (listen)
    cli::parse_host_port(*listen, "--listen", host, port);
  cli::install_stop_signals();
  sock::echo_server srv{port, host};
  std::printf("echo service on %s:%u\n", host.c_str(), srv.port());
  std::fflush(stdout);
  while (!cli::stop_requested())
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  std::fflush(nullptr);
  std::_Exit(0); // worker threads may be blocked on idle clients
}

} // namespace

int main(int argc, char** argv) {
  try {
    std::signal(SIGPIPE, SIG_IGN);
    if (argc < 2 || !std::strcmp(argv[1], "-h") || !std::strcmp(argv[1], "--help")) {
      std::fputs(usage, argc < 2 ? stderr : stdout);
      std::fputs(bench::run_usage(), argc < 2 ? stderr : stdout);
      return argc < 2 ? 2 : 0;
    }
    std::string cmd = argv[1];
    cli::args a{argc, argv, 2};
    if (cmd == "run")
      return bench::cmd_run(a);
    if (cmd == "check")
      return cmd_check(a);
    if (cmd == "echo")
      return cmd_echo(a);
    throw cli::error("unknown command '" + cmd + "' (see --help)");
  } catch (const cli::error& e) {
    std::fprintf(stderr, "drtp-bench: error: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "drtp-bench: error: %s\n", e.what());
    return 1;
  }
}
