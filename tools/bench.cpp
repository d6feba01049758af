// drtp-bench: the local service, the checker and the benchmark.
//
//   drtp-bench echo --listen HOST:PORT          an echo service (demo, tests)
//   drtp-bench check --connect HOST:PORT ...    visitors that verify every byte
//   drtp-bench run [--quick]                    DRTP beside direct loopback

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

#include "tools/cli_common.hpp"
#include "tools/sock.hpp"

namespace {

using namespace drtp;
using clock_type = std::chrono::steady_clock;

const char* usage = R"(drtp-bench - local service, checker and benchmark for DRTP

Usage:
  drtp-bench echo --listen HOST:PORT
      an echo service (stands in for Joe's service in the demo)
  drtp-bench check --connect HOST:PORT [--sessions N] [--bytes N]
      N concurrent visitors each send N random bytes, half-close, and check
      they get exactly those bytes back; prints a summary, exit 1 on failure
  drtp-bench run [--quick] [--bytes N] [--rounds N]
      starts drtp-pop and drtp serve (from this directory) on loopback and
      measures one-stream throughput and 64-byte round trips through the
      TLS tunnel beside the same on direct loopback
)";

double seconds_since(clock_type::time_point t0) {
  return std::chrono::duration<double>(clock_type::now() - t0).count();
}

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

/// Upload `bytes` to the sink, wait for its count: Gbit/s.
double throughput_gbps(const std::string& host, uint16_t port, uint64_t bytes) {
  auto s = sock::connect_tcp(host, port, 30000);
  if (!s)
    return 0;
  std::vector<char> buf(256 * 1024, 'd');
  auto t0 = clock_type::now();
  if (!sock::send_all(s.get(), "SINK", 4))
    return 0;
  for (uint64_t left = bytes; left > 0;) {
    auto n = std::min<uint64_t>(left, buf.size());
    if (!sock::send_all(s.get(), buf.data(), n))
      return 0;
    left -= n;
  }
  ::shutdown(s.get(), SHUT_WR);
  unsigned char count[8];
  if (!sock::recv_all(s.get(), count, 8))
    return 0;
  uint64_t got = 0;
  for (int i = 0; i < 8; ++i)
    got = (got << 8) | count[i];
  if (got != bytes)
    return 0;
  return static_cast<double>(bytes) * 8 / seconds_since(t0) / 1e9;
}

struct latency {
  double p50_us = 0, p99_us = 0, p999_us = 0;
};

latency ping_pong(const std::string& host, uint16_t port, int rounds) {
  latency out;
  auto s = sock::connect_tcp(host, port, 5000);
  if (!s)
    return out;
  char msg[64];
  std::memset(msg, 'p', sizeof(msg));
  std::vector<double> samples;
  samples.reserve(rounds);
  for (int i = 0; i < rounds + 100; ++i) {
    auto t0 = clock_type::now();
    char back[64];
    if (!sock::send_all(s.get(), msg, sizeof(msg))
        || !sock::recv_all(s.get(), back, sizeof(back)))
      return out;
    if (i >= 100) // warm-up first
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

std::string self_dir() {
  char buf[4096];
  auto n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n <= 0)
    return ".";
  std::string p(buf, static_cast<size_t>(n));
  return p.substr(0, p.rfind('/'));
}

/// A child process whose output goes to a log file; killed on scope exit.
struct child {
  pid_t pid = -1;
  std::string log;
  child(std::vector<std::string> argv, std::string log_path,
        std::vector<std::string> env = {})
    : log(std::move(log_path)) {
    pid = fork();
    if (pid == 0) {
      int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      dup2(fd, 1);
      dup2(fd, 2);
      for (auto& e : env)
        putenv(const_cast<char*>(e.c_str()));
      std::vector<char*> args;
      for (auto& a : argv)
        args.push_back(const_cast<char*>(a.c_str()));
      args.push_back(nullptr);
      execv(args[0], args.data());
      _exit(127);
    }
  }
  ~child() {
    if (pid > 0) {
      kill(pid, SIGTERM);
      int st;
      waitpid(pid, &st, 0);
    }
  }
  std::string output() const {
    std::string out;
    if (FILE* f = std::fopen(log.c_str(), "r")) {
      char buf[4096];
      size_t n;
      while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0)
        out.append(buf, n);
      std::fclose(f);
    }
    return out;
  }
  bool wait_for(const std::string& needle, int timeout_ms) {
    for (int i = 0; i < timeout_ms / 20; ++i) {
      if (output().find(needle) != std::string::npos)
        return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return false;
  }
};

unsigned number_after(const std::string& text, const std::string& prefix) {
  auto i = text.find(prefix);
  return i == std::string::npos
           ? 0
           : static_cast<unsigned>(std::strtoul(text.c_str() + i + prefix.size(),
                                                nullptr, 10));
}

int cmd_run(cli::args& a) {
  bool quick = a.flag("--quick");
  auto bytes_opt = a.value("--bytes");
  auto rounds_opt = a.value("--rounds");
  a.finish();
  uint64_t bytes = bytes_opt ? std::stoull(*bytes_opt)
                             : (quick ? 16ull << 20 : 1ull << 30);
  int rounds = rounds_opt ? std::stoi(*rounds_opt) : (quick ? 500 : 20000);
  int runs = quick ? 1 : 3;

  char tmpl[] = "/tmp/drtp-bench-XXXXXX";
  std::string dir = mkdtemp(tmpl);
  auto bin = self_dir();
  sock::echo_server service;
  std::string fp;
  {
    child gen({bin + "/drtp-pop", "gen-cert", "--cert", dir + "/c.pem", "--key",
               dir + "/k.pem"},
              dir + "/gen2.log");
    gen.wait_for("sha256:", 10000);
    auto out = gen.output();
    fp = out.substr(0, out.find('\n'));
  }
  child pop({bin + "/drtp-pop", "--cert", dir + "/c.pem", "--key", dir + "/k.pem",
             "--listen", "127.0.0.1:0", "--service", "bench", "--public",
             "127.0.0.1:0"},
            dir + "/pop.log", {"DRTP_SECRET=bench-secret"});
  if (!pop.wait_for("public on", 10000)) {
    std::fprintf(stderr, "drtp-bench: POP did not start:\n%s", pop.output().c_str());
    return 1;
  }
  auto pop_out = pop.output();
  auto tunnel_port = number_after(pop_out, "agents dial 127.0.0.1:");
  auto public_port = number_after(pop_out, "public on 127.0.0.1:");
  child agent({bin + "/drtp", "serve", "--pop",
               "127.0.0.1:" + std::to_string(tunnel_port), "--service", "bench",
               "--local", "127.0.0.1:" + std::to_string(service.port()),
               "--pop-fingerprint", fp},
              dir + "/agent.log", {"DRTP_SECRET=bench-secret"});
  if (!agent.wait_for("tunnel up", 10000)) {
    std::fprintf(stderr, "drtp-bench: agent did not connect:\n%s",
                 agent.output().c_str());
    return 1;
  }
  struct path {
    const char* name;
    uint16_t port;
    std::vector<double> gbps;
    std::vector<latency> lat;
  };
  std::vector<path> paths{{"direct loopback", service.port(), {}, {}},
                          {"DRTP public (TLS tunnel)",
                           static_cast<uint16_t>(public_port), {}, {}}};
  for (int r = 0; r < runs; ++r)
    for (auto& p : paths) { // side by side, interleaved: same machine state
      p.gbps.push_back(throughput_gbps("127.0.0.1", p.port, bytes));
      p.lat.push_back(ping_pong("127.0.0.1", p.port, rounds));
    }
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v.empty() ? 0 : v[v.size() / 2];
  };
  std::printf("\n%d run(s), %.0f MiB per throughput run, %d round trips of 64 B\n\n",
              runs, bytes / 1048576.0, rounds);
  std::printf("| path | 1 stream Gb/s (median, min-max) | RTT p50 us | p99 us | p999 us |\n");
  std::printf("|---|---|---|---|---|\n");
  for (auto& p : paths) {
    std::vector<double> p50, p99, p999;
    for (auto& l : p.lat) {
      p50.push_back(l.p50_us);
      p99.push_back(l.p99_us);
      p999.push_back(l.p999_us);
    }
    auto mm = std::minmax_element(p.gbps.begin(), p.gbps.end());
    std::printf("| %s | %.2f (%.2f-%.2f) | %.0f | %.0f | %.0f |\n", p.name,
                median(p.gbps), *mm.first, *mm.second, median(p50), median(p99),
                median(p999));
  }
  auto d = median(paths[0].gbps), t = median(paths[1].gbps);
  std::printf("\nDRTP / direct: throughput %.2fx\n", d > 0 ? t / d : 0.0);
  bool sane = t > 0 && paths[1].lat.front().p50_us > 0;
  std::string cmd = "rm -rf " + dir;
  (void) std::system(cmd.c_str());
  return sane ? 0 : 1;
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
      return argc < 2 ? 2 : 0;
    }
    std::string cmd = argv[1];
    cli::args a{argc, argv, 2};
    if (cmd == "run")
      return cmd_run(a);
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
