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
//
// Here: the command line and the phases of a run. The paths and the
// processes that carry them are in bench/paths, the load put on them in
// bench/load, the tables and the JSON in bench/report, /proc and files in
// bench/system.

#include "bench/run.hpp"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <sstream>

#include "bench/load.hpp"
#include "bench/paths.hpp"
#include "bench/report.hpp"
#include "bench/run_options.hpp"
#include "bench/system.hpp"
#include "net/seam/assert.hpp"
#include "tests/support/proc.hpp"
#include "tests/support/sock.hpp"

namespace drtp::bench {

namespace {

std::vector<int> parse_ints(const std::string& s) {
  std::vector<int> out;
  std::stringstream in(s);
  std::string w;
  while (std::getline(in, w, ','))
    if (!w.empty())
      out.push_back(std::stoi(w));
  return out;
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

namespace {

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

/// direct and DRTP public must have moved bytes and answered round trips.
bool sane(const std::vector<path>& paths) {
  for (auto& p : paths)
    if (p.na.empty() && (p.key == "direct" || p.key == "drtp")
        && (!summarize(p.gbps1).ok || !summarize(p.p50).ok))
      return false;
  return true;
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
  std::vector<std::unique_ptr<test::process>> children;
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
