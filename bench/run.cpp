// drtp-bench run: every path measured side by side on loopback, in one run.
//
// Paths: direct loopback; DRTP public path (drtp-pop + drtp serve, TLS 1.3
// tunnel); DRTP patch panel (hook only, see setup_patch_panel); haproxy in
// TCP mode; OpenSSH `ssh -R` (aes128-gcm). All of them lead to the same
// sock::epoll_server. Figures: bulk throughput (1 and 4 streams, SINK mode),
// 64-byte round trips (p50/p99/p999), new connections per second (32
// threads: connect, 64 B there and back, close), RSS idle and with N idle
// sessions, CPU seconds per GiB from /proc/PID/stat around the throughput
// runs. Medians over --runs, with min-max; ratios to direct and haproxy.

#include "bench/run.hpp"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include "net/loop_coordinator.hpp"
#include "net/seam/assert.hpp"
#include "tests/support/proc.hpp"
#include "tests/support/sock.hpp"

namespace drtp::bench {

namespace {

using namespace std::chrono_literals;
using test::free_port;
using test::number_after;
using test::process;
using test::wait_accepts;
using clock_type = std::chrono::steady_clock;

double seconds_since(clock_type::time_point t0) {
  return std::chrono::duration<double>(clock_type::now() - t0).count();
}

void sleep_ms(int ms) {
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
}

// ---------------------------------------------------------------- processes

std::string self_dir() {
  char buf[4096];
  auto n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n <= 0)
    return ".";
  std::string p(buf, static_cast<size_t>(n));
  return p.substr(0, p.rfind('/'));
}

std::string read_text(const std::string& path) {
  std::string out;
  if (FILE* f = std::fopen(path.c_str(), "r")) {
    char buf[4096];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0)
      out.append(buf, n);
    std::fclose(f);
  }
  return out;
}

bool write_text(const std::string& path, const std::string& text) {
  FILE* f = std::fopen(path.c_str(), "w");
  if (!f)
    return false;
  std::fwrite(text.data(), 1, text.size(), f);
  return std::fclose(f) == 0;
}

/// pid and all its descendants (sshd forks a process per connection).
std::vector<pid_t> process_tree(pid_t root) {
  std::multimap<pid_t, pid_t> kids;
  if (DIR* d = opendir("/proc")) {
    while (auto* e = readdir(d)) {
      pid_t p = static_cast<pid_t>(std::atoi(e->d_name));
      if (p <= 0)
        continue;
      auto st = read_text("/proc/" + std::string(e->d_name) + "/stat");
      auto r = st.rfind(')');
      if (r == std::string::npos)
        continue;
      int ppid = 0;
      char state;
      if (std::sscanf(st.c_str() + r + 1, " %c %d", &state, &ppid) == 2)
        kids.emplace(ppid, p);
    }
    closedir(d);
  }
  std::vector<pid_t> out{root};
  for (size_t i = 0; i < out.size(); ++i) {
    auto range = kids.equal_range(out[i]);
    for (auto it = range.first; it != range.second; ++it)
      out.push_back(it->second);
  }
  return out;
}

/// VmRSS of the process and its descendants, KiB.
uint64_t rss_kib(pid_t root) {
  uint64_t sum = 0;
  for (auto p : process_tree(root)) {
    auto s = read_text("/proc/" + std::to_string(p) + "/status");
    auto i = s.find("VmRSS:");
    if (i != std::string::npos)
      sum += std::strtoull(s.c_str() + i + 6, nullptr, 10);
  }
  return sum;
}

/// utime + stime of the process and its live descendants, seconds.
double cpu_seconds(pid_t root) {
  static const double hz = static_cast<double>(sysconf(_SC_CLK_TCK));
  uint64_t ticks = 0;
  for (auto p : process_tree(root)) {
    auto st = read_text("/proc/" + std::to_string(p) + "/stat");
    auto r = st.rfind(')');
    if (r == std::string::npos)
      continue;
    std::istringstream in(st.substr(r + 2));
    std::string f;
    // after ')': state(3) ppid pgrp session tty tpgid flags minflt cminflt
    // majflt cmajflt utime(14) stime(15)
    std::vector<std::string> fields;
    for (int i = 0; i < 13 && in >> f; ++i)
      fields.push_back(f);
    if (fields.size() == 13)
      ticks += std::stoull(fields[11]) + std::stoull(fields[12]);
  }
  return static_cast<double>(ticks) / hz;
}

std::string find_program(const std::vector<std::string>& candidates) {
  for (auto& c : candidates)
    if (access(c.c_str(), X_OK) == 0)
      return c;
  return {};
}

std::string last_line(const std::string& text) {
  auto t = text;
  while (!t.empty() && (t.back() == '\n' || t.back() == '\r'))
    t.pop_back();
  auto i = t.rfind('\n');
  t = i == std::string::npos ? t : t.substr(i + 1);
  return t.size() > 160 ? t.substr(0, 160) : t;
}

// -------------------------------------------------------------------- load

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

struct latency {
  double p50_us = 0, p99_us = 0, p999_us = 0;
};

constexpr int ping_pong_warmup = 200;

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

/// The visitors of the idle sessions live in a forked process: its own
/// descriptor table (10 000 sessions need 10 000 descriptors on the visitor
/// side and as many at the service, more than one process may have when
/// the hard limit is 20 000) and its memory apart from the service's.
/// open() returns once the sessions are open; close() ends them.
class idle_visitors {
public:
  int open(uint16_t port, int n, double budget_s, uint64_t& failed) {
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
  void close() {
    if (ctl_ >= 0)
      ::close(ctl_);
    ctl_ = -1;
    if (pid_ > 0) {
      int st;
      waitpid(pid_, &st, 0);
    }
    pid_ = -1;
  }
  ~idle_visitors() { close(); }

private:
  pid_t pid_ = -1;
  int ctl_ = -1;
};

// ------------------------------------------------------------------ paths

struct proc_ref {
  std::string label; // "pop", "agent", "haproxy", "sshd", "ssh"
  pid_t pid;
};

struct idle_figure {
  int wanted = 0;
  int established = 0;
  uint64_t failed = 0;
  double open_s = 0;
  std::vector<uint64_t> rss_before_kib, rss_after_kib; // per proc
};

struct path {
  std::string key, name;
  uint16_t port = 0;
  std::string na; // why this path is not measured ("" = measured)
  // Another path's processes with one setting changed: same memory, so no
  // idle-session figures.
  bool variant = false;
  std::vector<proc_ref> procs;
  std::vector<double> gbps1, gbps4, p50, p99, p999, cps;
  uint64_t conn_failed = 0;
  std::vector<uint64_t> rss_idle_kib;
  std::vector<idle_figure> idle;
  std::vector<double> cpu1, cpu4; // per proc, seconds
  double gib1 = 0, gib4 = 0;      // moved during those runs
  // CPU cost per operation is steadier than wall-clock figures on a shared
  // machine: it does not count the time a process waited for a core.
  std::vector<double> cpu_rtt, cpu_conn; // per proc, seconds
  double rtts = 0, conns = 0;            // done during those runs
};

struct setup_ctx {
  std::string dir, bin;
  uint16_t service_port;
  std::vector<std::unique_ptr<process>>* children;
  int sessions_max = 0;         // the largest batch of idle sessions asked for
  bool told_fd_limit = false;   // the haproxy notice below, once a run
};

/// A child whose log stays in the run's directory; stopped (`sig`, then
/// SIGKILL after 3 s) when the run ends, in reverse order of start.
process& spawn(setup_ctx& c, const std::vector<std::string>& argv,
               const std::string& log, std::vector<std::string> env = {},
               int sig = SIGTERM) {
  c.children->push_back(std::make_unique<process>(
    argv, test::process_options{std::move(env), c.dir + "/" + log, sig}));
  return *c.children->back();
}

/// A throwaway certificate and key in DIR/{prefix}c.pem, DIR/{prefix}k.pem;
/// their "sha256:..." fingerprint, or "" with p.na set.
std::string gen_cert(setup_ctx& c, path& p, const std::string& prefix) {
  process gen({c.bin + "/drtp-pop", "gen-cert", "--cert",
               c.dir + "/" + prefix + "c.pem", "--key", c.dir + "/" + prefix + "k.pem"},
              test::process_options{{}, c.dir + "/" + prefix + "gen.log", SIGTERM});
  if (!gen.wait_for("sha256:", 10s)) {
    p.na = "gen-cert failed: " + last_line(gen.output());
    return "";
  }
  auto out = gen.output();
  return out.substr(0, out.find('\n'));
}

/// The public path: visitor -> drtp-pop -> TLS tunnel -> drtp serve ->
/// service. `prefix` keeps the files of two such paths apart.
void setup_drtp(setup_ctx& c, path& p, const std::string& prefix,
                uint32_t busy_poll_us) {
  auto fp = gen_cert(c, p, prefix);
  if (fp.empty())
    return;
  auto poll = std::to_string(busy_poll_us);
  // SIGINT: stop at once (SIGTERM would drain).
  auto& pop = spawn(c,
                    {c.bin + "/drtp-pop", "--cert", c.dir + "/" + prefix + "c.pem",
                     "--key", c.dir + "/" + prefix + "k.pem", "--listen",
                     "127.0.0.1:0", "--service", "bench", "--public",
                     "127.0.0.1:0", "--busy-poll-us", poll},
                    prefix + "pop.log", {"DRTP_SECRET=bench-secret"}, SIGINT);
  if (!pop.wait_for("public on", 10s)) {
    p.na = "drtp-pop did not start: " + last_line(pop.output());
    return;
  }
  auto pop_out = pop.output();
  auto tunnel_port = number_after(pop_out, "agents dial 127.0.0.1:");
  auto public_port = number_after(pop_out, "public on 127.0.0.1:");
  auto& agent = spawn(c,
                      {c.bin + "/drtp", "serve", "--pop",
                       "127.0.0.1:" + std::to_string(tunnel_port), "--service",
                       "bench", "--local",
                       "127.0.0.1:" + std::to_string(c.service_port),
                       "--pop-fingerprint", fp, "--busy-poll-us", poll},
                      prefix + "agent.log", {"DRTP_SECRET=bench-secret"}, SIGINT);
  if (!agent.wait_for("tunnel up", 10s)) {
    p.na = "drtp serve did not connect: " + last_line(agent.output());
    return;
  }
  p.port = static_cast<uint16_t>(public_port);
  p.procs = {{"pop", pop.pid()}, {"agent", agent.pid()}};
}

/// The patch panel: visitor -> `drtp connect` (a local listener) -> POP
/// (splice) -> `drtp serve` -> service; a private service with no public
/// port, on a POP of its own so that its processes count apart.
void setup_patch_panel(setup_ctx& c, path& p) {
  auto fp = gen_cert(c, p, "p");
  if (fp.empty())
    return;
  write_text(c.dir + "/joe.secret", "bench service secret\n");
  write_text(c.dir + "/sam.secret", "bench principal secret\n");
  auto& pop = spawn(c,
                    {c.bin + "/drtp-pop", "--cert", c.dir + "/pc.pem", "--key",
                     c.dir + "/pk.pem", "--listen", "127.0.0.1:0", "--service",
                     "bench", "--private", "--allow", "sam", "--secret-file",
                     c.dir + "/joe.secret", "--principal",
                     "sam=" + c.dir + "/sam.secret"},
                    "ppop.log", {}, SIGINT);
  if (!pop.wait_for("private", 10s)) {
    p.na = "drtp-pop (private service) did not start: " + last_line(pop.output());
    return;
  }
  auto tunnel = "127.0.0.1:"
                + std::to_string(number_after(pop.output(), "agents dial 127.0.0.1:"));
  auto& agent = spawn(c,
                      {c.bin + "/drtp", "serve", "--pop", tunnel, "--service",
                       "bench", "--local",
                       "127.0.0.1:" + std::to_string(c.service_port),
                       "--secret-file", c.dir + "/joe.secret", "--pop-fingerprint",
                       fp, "--tunnels", "1"},
                      "pagent.log", {}, SIGINT);
  if (!agent.wait_for(" up", 10s)) {
    p.na = "drtp serve did not connect: " + last_line(agent.output());
    return;
  }
  auto port = free_port();
  auto& conn = spawn(c,
                     {c.bin + "/drtp", "connect", "--pop", tunnel, "--service",
                      "bench", "--listen", "127.0.0.1:" + std::to_string(port),
                      "--principal", "sam", "--secret-file", c.dir + "/sam.secret",
                      "--pop-fingerprint", fp, "--tunnels", "1"},
                     "connect.log", {}, SIGINT);
  if (!conn.wait_for(" up", 10s) || !wait_accepts(port, 10s, &conn)) {
    p.na = "drtp connect did not come up: " + last_line(conn.output());
    return;
  }
  p.port = port;
  p.procs = {{"connect", conn.pid()}, {"pop", pop.pid()}, {"agent", agent.pid()}};
}

std::string haproxy_exe(path& p) {
  auto exe = find_program({"/usr/sbin/haproxy", "/usr/bin/haproxy",
                           "/usr/local/sbin/haproxy"});
  if (exe.empty())
    p.na = "haproxy not installed (scripts/bench.sh installs it)";
  return exe;
}

/// One haproxy in TCP mode relaying `bind` to `server` (haproxy's own
/// syntax, TLS options included); the process, or nullptr with p.na set.
process* spawn_haproxy(setup_ctx& c, path& p, const std::string& exe,
                     const std::string& name, uint16_t port,
                     const std::string& bind, const std::string& server,
                     bool busy_polling = false) {
  auto cfg = c.dir + "/" + name + ".cfg";
  rlimit r{};
  getrlimit(RLIMIT_NOFILE, &r);
  // Two descriptors a session; haproxy refuses a maxconn it cannot back.
  auto maxconn = std::min<rlim_t>(30000, (r.rlim_cur - 100) / 2);
  if (maxconn < static_cast<rlim_t>(c.sessions_max) && !c.told_fd_limit) {
    c.told_fd_limit = true;
    std::fprintf(stderr,
                 "drtp-bench: a haproxy relay holds at most %llu sessions here: "
                 "two descriptors each, and the descriptor limit is %llu\n",
                 static_cast<unsigned long long>(maxconn),
                 static_cast<unsigned long long>(r.rlim_cur));
  }
  write_text(cfg, "global\n"
                  "  maxconn " + std::to_string(maxconn) + "\n"
                  + (busy_polling ? "  busy-polling\n" : "") +
                  "defaults\n"
                  "  mode tcp\n"
                  "  timeout connect 5s\n"
                  "  timeout client 1h\n"
                  "  timeout server 1h\n"
                  "frontend bench\n"
                  "  bind " + bind + "\n"
                  "  default_backend echo\n"
                  "backend echo\n"
                  "  server echo " + server + "\n");
  auto& h = spawn(c, {exe, "-f", cfg, "-db"}, name + ".log");
  if (!wait_accepts(port, 5s, &h)) {
    p.na = name + " did not start: " + last_line(h.output());
    return nullptr;
  }
  return &h;
}

void setup_haproxy(setup_ctx& c, path& p, bool busy_polling) {
  auto exe = haproxy_exe(p);
  if (exe.empty())
    return;
  auto port = free_port();
  auto* h = spawn_haproxy(c, p, exe, busy_polling ? "haproxy-poll" : "haproxy",
                          port, "127.0.0.1:" + std::to_string(port),
                          "127.0.0.1:" + std::to_string(c.service_port),
                          busy_polling);
  if (!h)
    return;
  p.port = port;
  p.procs = {{"haproxy", h->pid()}};
}

/// DRTP's shape built from haproxy: an edge relay in front of an inner relay
/// next to the service, two processes like POP and agent, but one TCP
/// connection per visitor instead of one tunnel. With `tls` the hop between
/// them is TLS 1.3 (haproxy-tls); without, it is plain TCP (haproxy-2): the
/// cost of the second relay alone, the floor of any two-relay design.
void setup_haproxy_pair(setup_ctx& c, path& p, bool tls) {
  auto exe = haproxy_exe(p);
  if (exe.empty())
    return;
  std::string prefix = tls ? "haproxy-" : "haproxy2-";
  std::string inner_opts, edge_opts;
  if (tls) {
    if (gen_cert(c, p, "h").empty())
      return;
    write_text(c.dir + "/hboth.pem",
               read_text(c.dir + "/hc.pem") + read_text(c.dir + "/hk.pem"));
    inner_opts = " ssl crt " + c.dir + "/hboth.pem ssl-min-ver TLSv1.3";
    edge_opts = " ssl verify none ssl-min-ver TLSv1.3";
  }
  auto inner_port = free_port();
  auto* inner = spawn_haproxy(
    c, p, exe, prefix + "inner", inner_port,
    "127.0.0.1:" + std::to_string(inner_port) + inner_opts,
    "127.0.0.1:" + std::to_string(c.service_port));
  if (!inner)
    return;
  auto edge_port = free_port();
  auto* edge = spawn_haproxy(c, p, exe, prefix + "edge", edge_port,
                             "127.0.0.1:" + std::to_string(edge_port),
                             "127.0.0.1:" + std::to_string(inner_port)
                               + edge_opts);
  if (!edge)
    return;
  p.port = edge_port;
  p.procs = {{"edge", edge->pid()}, {"inner", inner->pid()}};
}

void setup_ssh(setup_ctx& c, path& p) {
  auto sshd = find_program({"/usr/sbin/sshd"});
  auto ssh = find_program({"/usr/bin/ssh"});
  auto keygen = find_program({"/usr/bin/ssh-keygen"});
  if (sshd.empty() || ssh.empty() || keygen.empty()) {
    p.na = "openssh-server/-client not installed (scripts/bench.sh installs them)";
    return;
  }
  auto d = c.dir + "/ssh";
  ::mkdir(d.c_str(), 0700);
  ::mkdir("/run/sshd", 0755); // privilege separation directory
  for (auto& [key, type] : {std::pair<std::string, std::string>{"host_key", "ed25519"},
                            {"user_key", "ed25519"}}) {
    process g({keygen, "-q", "-N", "", "-t", type, "-f", d + "/" + key},
              test::process_options{{}, d + "/keygen.log", SIGTERM});
    if (g.wait_exit(60s) != 0) {
      p.na = "ssh-keygen failed: " + last_line(read_text(d + "/keygen.log"));
      return;
    }
  }
  write_text(d + "/authorized_keys", read_text(d + "/user_key.pub"));
  ::chmod((d + "/authorized_keys").c_str(), 0600);
  auto sport = free_port();
  write_text(d + "/sshd_config",
             "ListenAddress 127.0.0.1:" + std::to_string(sport) + "\n"
             "HostKey " + d + "/host_key\n"
             "AuthorizedKeysFile " + d + "/authorized_keys\n"
             "PidFile " + d + "/sshd.pid\n"
             "StrictModes no\n"
             "UsePAM no\n"
             "PermitRootLogin prohibit-password\n"
             "PasswordAuthentication no\n"
             "KbdInteractiveAuthentication no\n"
             "AllowTcpForwarding yes\n"
             "GatewayPorts no\n"
             "Ciphers aes128-gcm@openssh.com\n"
             "MaxStartups 100:30:200\n"
             "LogLevel ERROR\n");
  auto& server = spawn(c, {sshd, "-D", "-f", d + "/sshd_config", "-e"}, "sshd.log");
  if (!wait_accepts(sport, 5s, &server)) {
    p.na = "sshd did not start: " + last_line(server.output());
    return;
  }
  auto fport = free_port();
  auto& client = spawn(
    c,
    {ssh, "-N", "-F", "/dev/null", "-o", "StrictHostKeyChecking=no", "-o",
     "UserKnownHostsFile=/dev/null", "-o", "ExitOnForwardFailure=yes", "-o",
     "BatchMode=yes", "-o", "LogLevel=ERROR", "-i", d + "/user_key", "-p",
     std::to_string(sport), "-c", "aes128-gcm@openssh.com", "-R",
     "127.0.0.1:" + std::to_string(fport) + ":127.0.0.1:"
       + std::to_string(c.service_port),
     "root@127.0.0.1"},
    "ssh.log");
  if (!wait_accepts(fport, 10s, &client)) {
    p.na = "ssh -R did not come up: " + last_line(client.output() + server.output());
    return;
  }
  p.port = fport;
  p.procs = {{"sshd", server.pid()}, {"ssh", client.pid()}};
}

// ---------------------------------------------------------------- figures

struct stats {
  double median = 0, min = 0, max = 0;
  bool ok = false;
};

stats summarize(std::vector<double> v) {
  stats s;
  v.erase(std::remove_if(v.begin(), v.end(), [](double x) { return !(x > 0); }),
          v.end());
  if (v.empty())
    return s;
  std::sort(v.begin(), v.end());
  s.ok = true;
  s.min = v.front();
  s.max = v.back();
  s.median = v.size() % 2 ? v[v.size() / 2]
                          : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
  return s;
}

std::string fmt(const char* f, double x) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), f, x);
  return buf;
}

std::string cell(const stats& s, const char* f, bool spread) {
  if (!s.ok)
    return "fail";
  auto out = fmt(f, s.median);
  if (spread && s.max > s.min)
    out += " (" + fmt(f, s.min) + "–" + fmt(f, s.max) + ")";
  return out;
}

/// a's median over b's, or NaN when either is missing.
double median_ratio(const stats& a, const stats& b) {
  if (!a.ok || !b.ok || b.median <= 0)
    return std::nan("");
  return a.median / b.median;
}

std::string ratio(const stats& a, const stats& b) {
  double r = median_ratio(a, b);
  return r == r ? fmt("%.2fx", r) : "–";
}

/// RSS grown per established idle session, for process `proc` of `p`.
double kib_per_session(const path& p, const idle_figure& f, size_t proc) {
  if (f.established <= 0)
    return 0;
  return (static_cast<double>(f.rss_after_kib[proc])
          - static_cast<double>(p.rss_idle_kib[proc]))
         / f.established;
}

/// The rows of the targets table: a target, this run's figure, whether it
/// is met, and the same figure for each of DRTP's shapes built from haproxy.
struct target_rows {
  size_t shapes = 0;
  std::vector<std::string> lines;

  void add(const std::string& target, const std::string& shown, bool met,
           std::vector<std::string> others = {}) {
    others.resize(shapes, "–");
    std::string r = "| " + target + " | " + shown + " | " + (met ? "yes" : "no");
    for (auto& o : others)
      r += " | " + o;
    lines.push_back(r + " |\n");
  }
};

/// DRTP's medians against haproxy's, and the shapes' beside them.
void add_haproxy_rows(target_rows& rows, const path& drtp,
                      const std::vector<const path*>& shapes, const path& hap,
                      bool conns) {
  auto vs_haproxy = [&](const char* target, std::vector<double> path::*figure,
                        double bound, bool at_least) {
    auto of = [&](const path& p) {
      return median_ratio(summarize(p.*figure), summarize(hap.*figure));
    };
    auto meets = [&](double r) { return at_least ? r >= bound : r <= bound; };
    double r = of(drtp);
    if (r != r)
      return;
    std::vector<std::string> others;
    for (auto* shape : shapes) {
      double f = of(*shape);
      others.push_back(f == f ? fmt("%.2fx", f) + (meets(f) ? " (met)" : "") : "–");
    }
    rows.add(target, fmt("%.2fx", r), meets(r), others);
  };
  vs_haproxy("1 stream >= 1.0x haproxy", &path::gbps1, 1.0, true);
  vs_haproxy("4 streams >= 0.8x haproxy", &path::gbps4, 0.8, true);
  vs_haproxy("RTT p50 <= 1.0x haproxy", &path::p50, 1.0, false);
  vs_haproxy("RTT p99 <= 1.2x haproxy", &path::p99, 1.2, false);
  if (conns)
    vs_haproxy("new conn/s >= 1.0x haproxy", &path::cps, 1.0, true);
}

/// The memory targets, from DRTP's batches of idle sessions.
void add_idle_rows(target_rows& rows, const path& drtp) {
  for (auto& f : drtp.idle) {
    if (f.established <= 0)
      continue;
    double worst_kib = 0, total_mib = 0;
    for (size_t i = 0; i < drtp.procs.size(); ++i) {
      worst_kib = std::max(worst_kib, kib_per_session(drtp, f, i));
      total_mib += f.rss_after_kib[i] / 1024.0;
    }
    rows.add("<= 16 KiB per idle session (" + std::to_string(f.established) + ")",
             fmt("%.1f KiB per side", worst_kib), worst_kib <= 16.0);
    if (f.wanted == 10000) {
      bool all = f.established == f.wanted;
      rows.add("10 000 sessions in <= 300 MiB (POP + agent)",
               fmt("%.1f MiB", total_mib)
                 + (all ? "" : " (only " + std::to_string(f.established) + " opened)"),
               all && total_mib <= 300.0);
    }
  }
}

/// The issue's targets for the DRTP public path, each against this run's
/// medians. Figures to read, not a verdict on the code: timings never fail
/// a test.
void print_targets(const std::vector<path>& paths, const path* hap, bool conns) {
  const path* drtp = nullptr;
  // DRTP's shape built from haproxy, without and with TLS: what a target
  // asks of any design with a relay on each side.
  std::vector<const path*> shapes;
  for (auto& p : paths) {
    if (p.key == "drtp" && p.na.empty())
      drtp = &p;
    if ((p.key == "haproxy-2" || p.key == "haproxy-tls") && p.na.empty())
      shapes.push_back(&p);
  }
  if (drtp == nullptr)
    return;
  target_rows rows;
  rows.shapes = shapes.size();
  if (hap != nullptr)
    add_haproxy_rows(rows, *drtp, shapes, *hap, conns);
  add_idle_rows(rows, *drtp);
  if (rows.lines.empty())
    return; // neither haproxy nor idle sessions measured
  std::printf("\nDRTP public against its targets in this run%s:\n\n",
              hap == nullptr ? " (no haproxy measured: no ratios)" : "");
  std::string head = "| target | this run | met |";
  std::string rule = "|---|---|---|";
  for (auto* shape : shapes) {
    head += " " + shape->name + " |";
    rule += "---|";
  }
  if (!shapes.empty())
    std::printf("Beside DRTP, the same ratios for DRTP's shape built from two "
                "haproxy relays:\nwhat each target asks of any design with a "
                "relay on each side.\n\n");
  std::printf("%s\n%s\n", head.c_str(), rule.c_str());
  for (auto& r : rows.lines)
    std::fputs(r.c_str(), stdout);
}

std::string json_num(double x) {
  return x == x ? fmt("%.6g", x) : "null";
}

std::string json_str(const std::string& s) {
  std::string o = "\"";
  for (char ch : s) {
    if (ch == '"' || ch == '\\')
      o += '\\';
    if (static_cast<unsigned char>(ch) < 0x20)
      o += ' ';
    else
      o += ch;
  }
  return o + "\"";
}

std::string json_stats(const stats& s) {
  if (!s.ok)
    return "null";
  return "{\"median\": " + json_num(s.median) + ", \"min\": " + json_num(s.min)
         + ", \"max\": " + json_num(s.max) + "}";
}

std::string json_list(const std::vector<double>& v) {
  std::string o = "[";
  for (size_t i = 0; i < v.size(); ++i)
    o += (i ? ", " : "") + json_num(v[i]);
  return o + "]";
}

std::vector<int> parse_ints(const std::string& s) {
  std::vector<int> out;
  std::stringstream in(s);
  std::string w;
  while (std::getline(in, w, ','))
    if (!w.empty())
      out.push_back(std::stoi(w));
  return out;
}

void raise_nofile() {
  rlimit r{};
  getrlimit(RLIMIT_NOFILE, &r);
  rlim_t want = 65536;
  if (r.rlim_cur >= want)
    return;
  rlimit n{want, std::max(want, r.rlim_max)};
  if (setrlimit(RLIMIT_NOFILE, &n) != 0) { // no CAP_SYS_RESOURCE: the hard limit
    n = {r.rlim_max, r.rlim_max};
    setrlimit(RLIMIT_NOFILE, &n);
  }
}

} // namespace

const char* run_usage() {
  return R"(  drtp-bench run [--quick] [--runs N] [--bytes N] [--rounds N]
                 [--conn-seconds S] [--sessions N,N] [--paths LIST]
                 [--json FILE]
      starts drtp-pop and drtp serve (from this directory), haproxy (TCP
      mode) and sshd + ssh -R (throwaway keys and configs) on loopback and
      measures side by side, for each path and direct loopback: throughput
      with 1 and 4 streams, 64-byte round trips (p50/p99/p999), new
      connections per second (32 threads), RSS idle and with N idle sessions,
      CPU seconds per GiB; medians over --runs (default 3) with min-max.
      --paths: comma list of direct,drtp,drtp-poll,panel,haproxy,
      haproxy-poll,haproxy-2,haproxy-tls,ssh (default all but
      haproxy-poll; drtp-poll is drtp with --busy-poll-us 100;
      haproxy-poll is haproxy with busy-polling, which spins a core even
      when idle, so measure it alone; haproxy-2 and haproxy-tls are DRTP's
      shape built from two haproxy relays, plain TCP or TLS 1.3 between
      them);
      --sessions 0 skips idle sessions, --conn-seconds 0 skips conn/s.
      --quick: about 30 s, for smoke tests.
)";
}

/// The table of the processes that carry each path: RSS idle and with idle
/// sessions, CPU per GiB, per round trip and per new connection. Nothing
/// when no measured path has processes of its own (--paths direct).
void print_processes(const std::vector<path>& paths,
                     const std::vector<int>& sessions) {
  auto measured = [](const path& p) { return p.na.empty() && !p.procs.empty(); };
  if (std::none_of(paths.begin(), paths.end(), measured))
    return;
  std::printf("\nMemory and CPU of the processes that carry each path "
              "(RSS includes forked children; KiB/session = (RSS with N open - "
              "RSS idle) / N established):\n\n");
  std::printf("| path | process | RSS idle MiB |");
  for (int n : sessions)
    std::printf(" %d sessions: MiB, KiB/session |", n);
  std::printf(" CPU s/GiB 1 stream | CPU s/GiB 4 streams | CPU us/round trip |"
              " CPU us/new conn |\n|---|---|---|");
  for (size_t i = 0; i < sessions.size(); ++i)
    std::printf("---|");
  std::printf("---|---|---|---|\n");
  for (auto& p : paths) {
    if (!measured(p))
      continue;
    for (size_t i = 0; i < p.procs.size(); ++i) {
      std::printf("| %s | %s | %.1f |", p.name.c_str(), p.procs[i].label.c_str(),
                  p.rss_idle_kib[i] / 1024.0);
      for (size_t q = 0; q < sessions.size(); ++q) {
        if (q >= p.idle.size()) {
          std::printf(" – |");
          continue;
        }
        auto& f = p.idle[q];
        double per = kib_per_session(p, f, i);
        std::string note;
        if (f.established < f.wanted)
          note = " (only " + std::to_string(f.established) + " of "
                 + std::to_string(f.wanted) + " opened in "
                 + fmt("%.0f", f.open_s) + " s)";
        std::printf(" %.1f, %.1f%s |", f.rss_after_kib[i] / 1024.0, per,
                    note.c_str());
      }
      std::printf(" %s | %s | %s | %s |\n",
                  p.gib1 > 0 ? fmt("%.2f", p.cpu1[i] / p.gib1).c_str() : "–",
                  p.gib4 > 0 ? fmt("%.2f", p.cpu4[i] / p.gib4).c_str() : "–",
                  p.rtts > 0 ? fmt("%.1f", p.cpu_rtt[i] / p.rtts * 1e6).c_str()
                             : "–",
                  p.conns > 0 ? fmt("%.1f", p.cpu_conn[i] / p.conns * 1e6).c_str()
                              : "–");
    }
  }
}

namespace {

/// What `drtp-bench run` was asked to measure, and how much of it.
struct run_options {
  uint64_t bytes = 0;
  int rounds = 0;
  int runs = 0;
  double conn_s = 0;
  std::vector<int> sessions; // idle-session batches, none of them 0
  double idle_budget_s = 0;  // to open one batch
  std::set<std::string> want; // path keys
  std::optional<std::string> json;
};

run_options parse_run_options(cli::args& a) {
  bool quick = a.flag("--quick");
  auto bytes_opt = a.value("--bytes");
  auto rounds_opt = a.value("--rounds");
  auto runs_opt = a.value("--runs");
  auto conn_opt = a.value("--conn-seconds");
  auto sessions_opt = a.value("--sessions");
  auto paths_opt = a.value("--paths");
  run_options o;
  o.json = a.value("--json");
  a.finish();
  o.bytes = bytes_opt ? std::stoull(*bytes_opt) : (quick ? 64ull << 20 : 1ull << 30);
  o.rounds = rounds_opt ? std::stoi(*rounds_opt) : (quick ? 1000 : 20000);
  o.runs = runs_opt ? std::max(1, std::stoi(*runs_opt)) : (quick ? 1 : 3);
  o.conn_s = conn_opt ? std::stod(*conn_opt) : (quick ? 1.0 : 3.0);
  o.sessions = sessions_opt ? parse_ints(*sessions_opt)
                            : (quick ? std::vector<int>{200}
                                     : std::vector<int>{1000, 10000});
  o.sessions.erase(std::remove(o.sessions.begin(), o.sessions.end(), 0),
                   o.sessions.end());
  o.idle_budget_s = quick ? 10 : 25;
  // Not haproxy-poll: its busy-polling spins a core even when idle, which
  // would slow every other path of the run.
  for (auto& k : {"direct", "drtp", "drtp-poll", "panel", "haproxy",
                  "haproxy-2", "haproxy-tls", "ssh"})
    o.want.insert(k);
  if (paths_opt) {
    o.want.clear();
    std::stringstream in(*paths_opt);
    std::string w;
    while (std::getline(in, w, ','))
      o.want.insert(w);
  }
  return o;
}

/// Every wanted path, set up in the order of the tables; a path that could
/// not be set up is there with `na` saying why.
std::vector<path> setup_paths(setup_ctx& ctx, const std::set<std::string>& want) {
  std::vector<path> paths;
  auto add = [&](const char* key, const char* name,
                 std::function<void(setup_ctx&, path&)> setup) {
    if (!want.count(key))
      return;
    path p;
    p.key = key;
    p.name = name;
    if (setup)
      setup(ctx, p);
    else
      p.port = ctx.service_port;
    paths.push_back(std::move(p));
    std::fprintf(stderr, "drtp-bench: %-8s %s\n", key,
                 paths.back().na.empty()
                   ? ("on 127.0.0.1:" + std::to_string(paths.back().port)).c_str()
                   : ("n/a: " + paths.back().na).c_str());
  };
  add("direct", "direct loopback", nullptr);
  add("drtp", "DRTP public (TLS tunnel)", [](setup_ctx& c, path& p) {
    setup_drtp(c, p, "", net::busy_poll_us_default);
  });
  add("drtp-poll", "DRTP public, --busy-poll-us 100", [](setup_ctx& c, path& p) {
    p.variant = true;
    setup_drtp(c, p, "b", net::busy_poll_us_suggested);
  });
  add("panel", "DRTP patch panel (drtp connect)", setup_patch_panel);
  add("haproxy", "haproxy (TCP mode)",
      [](setup_ctx& c, path& p) { setup_haproxy(c, p, false); });
  add("haproxy-poll", "haproxy, busy-polling", [](setup_ctx& c, path& p) {
    p.variant = true;
    setup_haproxy(c, p, true);
  });
  add("haproxy-2", "haproxy edge -> haproxy inner (plain)",
      [](setup_ctx& c, path& p) { setup_haproxy_pair(c, p, false); });
  add("haproxy-tls", "haproxy edge -> TLS -> haproxy inner",
      [](setup_ctx& c, path& p) { setup_haproxy_pair(c, p, true); });
  add("ssh", "ssh -R (aes128-gcm)", setup_ssh);
  return paths;
}

template <class F>
void for_each_live(std::vector<path>& paths, F f) {
  for (auto& p : paths)
    if (p.na.empty())
      f(p);
}

std::vector<uint64_t> rss_now(const path& p) {
  std::vector<uint64_t> v;
  for (auto& pr : p.procs)
    v.push_back(rss_kib(pr.pid));
  return v;
}

std::vector<double> cpu_now(const path& p) {
  std::vector<double> v;
  for (auto& pr : p.procs)
    v.push_back(cpu_seconds(pr.pid));
  return v;
}

/// Adds what each process of `p` spent between `before` and `after`.
void add_cpu(std::vector<double>& sum, const std::vector<double>& before,
             const std::vector<double>& after) {
  DRTP_ASSERT(before.size() == after.size() && sum.size() == after.size(),
              "one CPU figure per process of the path, before and after");
  for (size_t i = 0; i < sum.size(); ++i)
    sum[i] += after[i] - before[i];
}

/// A batch of `n` idle sessions through `p`: how many opened, and the RSS of
/// its processes before and with them open.
void measure_idle(path& p, int n, double budget_s) {
  std::fprintf(stderr, "drtp-bench: %-8s %d idle sessions\n", p.key.c_str(), n);
  idle_figure f;
  f.wanted = n;
  f.rss_before_kib = rss_now(p);
  auto t0 = clock_type::now();
  idle_visitors visitors;
  f.established = visitors.open(p.port, n, budget_s, f.failed);
  f.open_s = seconds_since(t0);
  sleep_ms(300);
  f.rss_after_kib = rss_now(p);
  visitors.close();
  p.idle.push_back(f);
  sleep_ms(500); // let the path tear them down
}

void measure_throughput(path& p, uint64_t bytes) {
  auto c0 = cpu_now(p);
  p.gbps1.push_back(throughput_gbps(p.port, bytes, 1));
  auto c1 = cpu_now(p);
  p.gbps4.push_back(throughput_gbps(p.port, bytes, 4));
  auto c2 = cpu_now(p);
  p.cpu1.resize(p.procs.size());
  p.cpu4.resize(p.procs.size());
  add_cpu(p.cpu1, c0, c1);
  add_cpu(p.cpu4, c1, c2);
  p.gib1 += static_cast<double>(bytes) / (1ull << 30);
  p.gib4 += static_cast<double>(bytes / 4 * 4) / (1ull << 30);
}

void measure_round_trips(path& p, int rounds) {
  p.cpu_rtt.resize(p.procs.size());
  auto c0 = cpu_now(p);
  auto l = ping_pong(p.port, rounds);
  auto c1 = cpu_now(p);
  p.p50.push_back(l.p50_us);
  p.p99.push_back(l.p99_us);
  p.p999.push_back(l.p999_us);
  p.rtts += rounds + ping_pong_warmup;
  add_cpu(p.cpu_rtt, c0, c1);
}

void measure_conn_rate(path& p, double conn_s) {
  p.cpu_conn.resize(p.procs.size());
  if (conn_s <= 0)
    return;
  uint64_t failed = 0;
  auto c0 = cpu_now(p);
  auto t0 = clock_type::now();
  p.cps.push_back(conn_rate(p.port, 32, conn_s, failed));
  auto c1 = cpu_now(p);
  p.conns += p.cps.back() * seconds_since(t0);
  add_cpu(p.cpu_conn, c0, c1);
  p.conn_failed += failed;
  sleep_ms(200);
}

/// Idle sessions first, on fresh processes; then the runs, interleaved
/// across paths so that each sees the same machine.
void measure(std::vector<path>& paths, const run_options& o) {
  sleep_ms(500);
  for_each_live(paths, [&](path& p) { p.rss_idle_kib = rss_now(p); });
  for (int n : o.sessions)
    for_each_live(paths, [&](path& p) {
      if (!p.variant)
        measure_idle(p, n, o.idle_budget_s);
    });
  for (int r = 0; r < o.runs; ++r) {
    std::fprintf(stderr, "drtp-bench: run %d/%d\n", r + 1, o.runs);
    for_each_live(paths, [&](path& p) {
      measure_throughput(p, o.bytes);
      measure_round_trips(p, o.rounds);
      measure_conn_rate(p, o.conn_s);
    });
  }
}

/// The measured path with this key, or nullptr.
const path* measured(const std::vector<path>& paths, const std::string& key) {
  for (auto& p : paths)
    if (p.key == key && p.na.empty())
      return &p;
  return nullptr;
}

void print_figures(const std::vector<path>& paths, const run_options& o,
                   double total_s) {
  const path* direct = measured(paths, "direct");
  const path* hap = measured(paths, "haproxy");
  auto S = [](const std::vector<double>& v) { return summarize(v); };
  std::printf("\n%d run(s) in %.0f s; %.0f MiB per throughput run (4 streams: "
              "%.0f MiB each); %d round trips of 64 B; new connections: 32 "
              "threads for %.1f s\n\n",
              o.runs, total_s, o.bytes / 1048576.0, o.bytes / 4 / 1048576.0,
              o.rounds, o.conn_s);
  std::printf("| path | 1 stream Gb/s | 4 streams Gb/s | RTT p50 us | p99 us | "
              "p999 us | new conn/s | 1 st. / direct | 1 st. / haproxy | "
              "p50 / haproxy | conn/s / haproxy |\n");
  std::printf("|---|---|---|---|---|---|---|---|---|---|---|\n");
  for (auto& p : paths) {
    if (!p.na.empty()) {
      std::printf("| %s | n/a (%s) |||||||||| \n", p.name.c_str(), p.na.c_str());
      continue;
    }
    auto g1 = S(p.gbps1), g4 = S(p.gbps4), l50 = S(p.p50), l99 = S(p.p99),
         l999 = S(p.p999), c = S(p.cps);
    std::string cps = o.conn_s > 0 ? cell(c, "%.0f", true) : "–";
    if (p.conn_failed)
      cps += " [" + std::to_string(p.conn_failed) + " failed]";
    std::printf("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
                p.name.c_str(), cell(g1, "%.2f", true).c_str(),
                cell(g4, "%.2f", true).c_str(), cell(l50, "%.0f", true).c_str(),
                cell(l99, "%.0f", false).c_str(), cell(l999, "%.0f", false).c_str(),
                cps.c_str(), direct ? ratio(g1, S(direct->gbps1)).c_str() : "–",
                hap ? ratio(g1, S(hap->gbps1)).c_str() : "–",
                hap ? ratio(l50, S(hap->p50)).c_str() : "–",
                hap && o.conn_s > 0 ? ratio(c, S(hap->cps)).c_str() : "–");
  }
  print_processes(paths, o.sessions);
  print_targets(paths, hap, o.conn_s > 0);
}

/// direct and DRTP public must have moved bytes and answered round trips.
bool sane(const std::vector<path>& paths) {
  for (auto& p : paths)
    if (p.na.empty() && (p.key == "direct" || p.key == "drtp")
        && (!summarize(p.gbps1).ok || !summarize(p.p50).ok))
      return false;
  return true;
}

/// `p`'s medians over those of `direct` and haproxy, as a JSON object's body.
std::string json_ratios(const path& p, const path* direct, const path* hap) {
  std::string rels;
  auto rel = [&](const char* name, const std::vector<double>& a,
                 const std::vector<double>& b) {
    auto sa = summarize(a), sb = summarize(b);
    if (sa.ok && sb.ok && sb.median > 0)
      rels += std::string(rels.empty() ? "" : ", ") + "\"" + name
              + "\": " + json_num(sa.median / sb.median);
  };
  if (direct) {
    rel("gbps_1_vs_direct", p.gbps1, direct->gbps1);
    rel("gbps_4_vs_direct", p.gbps4, direct->gbps4);
    rel("rtt_p50_vs_direct", p.p50, direct->p50);
    rel("conn_per_s_vs_direct", p.cps, direct->cps);
  }
  if (hap) {
    rel("gbps_1_vs_haproxy", p.gbps1, hap->gbps1);
    rel("gbps_4_vs_haproxy", p.gbps4, hap->gbps4);
    rel("rtt_p50_vs_haproxy", p.p50, hap->p50);
    rel("conn_per_s_vs_haproxy", p.cps, hap->cps);
  }
  return rels;
}

/// Process `i` of `p`: its memory, CPU per unit of work and idle batches.
std::string json_process(const path& p, size_t i) {
  std::string j = "\n       {\"name\": " + json_str(p.procs[i].label)
                  + ", \"rss_idle_kib\": " + std::to_string(p.rss_idle_kib[i])
                  + ", \"cpu_s_per_gib_1\": "
                  + json_num(p.gib1 > 0 ? p.cpu1[i] / p.gib1 : 0)
                  + ", \"cpu_s_per_gib_4\": "
                  + json_num(p.gib4 > 0 ? p.cpu4[i] / p.gib4 : 0)
                  + ", \"cpu_us_per_round_trip\": "
                  + json_num(p.rtts > 0 ? p.cpu_rtt[i] / p.rtts * 1e6 : 0)
                  + ", \"cpu_us_per_new_conn\": "
                  + json_num(p.conns > 0 ? p.cpu_conn[i] / p.conns * 1e6 : 0)
                  + ", \"idle_sessions\": [";
  for (size_t q = 0; q < p.idle.size(); ++q) {
    auto& f = p.idle[q];
    double per = kib_per_session(p, f, i);
    j += std::string(q ? ", " : "") + "{\"wanted\": " + std::to_string(f.wanted)
         + ", \"established\": " + std::to_string(f.established)
         + ", \"failed\": " + std::to_string(f.failed)
         + ", \"open_s\": " + json_num(f.open_s)
         + ", \"rss_before_kib\": " + std::to_string(f.rss_before_kib[i])
         + ", \"rss_kib\": " + std::to_string(f.rss_after_kib[i])
         + ", \"kib_per_session\": " + json_num(per) + "}";
  }
  return j + "]}";
}

std::string json_path(const path& p, const path* direct, const path* hap) {
  std::string j = "    {\"key\": " + json_str(p.key) + ", \"name\": " + json_str(p.name);
  if (!p.na.empty())
    return j + ", \"na\": " + json_str(p.na) + "}";
  j += ", \"port\": " + std::to_string(p.port);
  j += ",\n     \"gbps_1\": " + json_stats(summarize(p.gbps1))
       + ", \"gbps_1_runs\": " + json_list(p.gbps1);
  j += ",\n     \"gbps_4\": " + json_stats(summarize(p.gbps4))
       + ", \"gbps_4_runs\": " + json_list(p.gbps4);
  j += ",\n     \"rtt_p50_us\": " + json_stats(summarize(p.p50))
       + ", \"rtt_p99_us\": " + json_stats(summarize(p.p99))
       + ", \"rtt_p999_us\": " + json_stats(summarize(p.p999));
  j += ",\n     \"conn_per_s\": " + json_stats(summarize(p.cps))
       + ", \"conn_per_s_runs\": " + json_list(p.cps)
       + ", \"conn_failed\": " + std::to_string(p.conn_failed);
  j += ",\n     \"ratios\": {" + json_ratios(p, direct, hap) + "}";
  j += ",\n     \"processes\": [";
  for (size_t i = 0; i < p.procs.size(); ++i)
    j += std::string(i ? ", " : "") + json_process(p, i);
  return j + "]}";
}

void write_json(const std::string& file, const std::vector<path>& paths,
                const run_options& o, double total_s) {
  const path* direct = measured(paths, "direct");
  const path* hap = measured(paths, "haproxy");
  std::string j = "{\n  \"runs\": " + std::to_string(o.runs)
                  + ", \"bytes\": " + std::to_string(o.bytes)
                  + ", \"rounds\": " + std::to_string(o.rounds)
                  + ", \"conn_seconds\": " + json_num(o.conn_s)
                  + ", \"conn_threads\": 32, \"seconds\": " + json_num(total_s)
                  + ",\n  \"paths\": [\n";
  for (size_t k = 0; k < paths.size(); ++k)
    j += json_path(paths[k], direct, hap) + (k + 1 < paths.size() ? ",\n" : "\n");
  j += "  ]\n}\n";
  std::fflush(stdout); // the tables first, when both go to one file
  if (!write_text(file, j))
    std::fprintf(stderr, "drtp-bench: cannot write %s\n", file.c_str());
  else
    std::fprintf(stderr, "drtp-bench: figures written to %s\n", file.c_str());
}

} // namespace

int cmd_run(cli::args& a) {
  auto o = parse_run_options(a);
  // 10 000 idle sessions take 20 000+ descriptors here; drtp-pop, drtp,
  // haproxy and sshd are children and inherit the limit.
  raise_nofile();
  auto t_start = clock_type::now();
  char tmpl[] = "/tmp/drtp-bench-XXXXXX";
  std::string dir = mkdtemp(tmpl);
  std::vector<std::unique_ptr<process>> children;
  sock::epoll_server service;
  setup_ctx ctx{dir, self_dir(), service.port(), &children};
  for (int n : o.sessions)
    ctx.sessions_max = std::max(ctx.sessions_max, n);

  auto paths = setup_paths(ctx, o.want);
  measure(paths, o);
  double total_s = seconds_since(t_start);
  print_figures(paths, o, total_s);
  if (o.json)
    write_json(*o.json, paths, o, total_s);

  // Stop in reverse order of start (ssh before sshd, agent before POP).
  while (!children.empty())
    children.pop_back();
  service.stop();
  std::string cmd = "rm -rf " + dir;
  (void) std::system(cmd.c_str());
  return sane(paths) ? 0 : 1;
}

} // namespace drtp::bench
