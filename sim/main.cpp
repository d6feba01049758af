// drtp-sim: runs scenario files in the deterministic simulator with the
// production actors. `run` replays one seed (byte-for-byte the same trace
// every time), `sweep` tries many seeds with randomised fault schedules on
// several processes and prints a replay command for each failure.

#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "sim/scenario.hpp"
#include "sim/scenario_file.hpp"
#include "cli/args.hpp"

using namespace drtp;

namespace {

// Measured on the release build (2-core VM); see scenarios/README.md.
const char* const speed_note =
  "In our measurements the 3-POP, 100-session scenario (joes-pg-3-pops.yaml)\n"
  "runs at about 1000 x real time (23 s of virtual time in 16-24 ms), and a\n"
  "sweep of pop-crash.yaml does about 2900 seeds per minute on 2 cores\n"
  "(release build, 2-core VM).\n";

const char* const main_help =
  "usage: drtp-sim COMMAND ...\n"
  "\n"
  "Runs scenario files (see scenarios/README.md) in the deterministic\n"
  "simulator, with the production actors, in virtual time.\n"
  "\n"
  "commands:\n"
  "  run FILE [--seed N] ...      run one seed; same seed, same trace\n"
  "  sweep FILE --seeds N ...     many seeds with randomised fault schedules\n"
  "\n"
  "`drtp-sim COMMAND --help` says more.\n";

const char* const run_help =
  "usage: drtp-sim run FILE [--seed N] [--trace OUT] [--json OUT]\n"
  "                         [--check-determinism] [--sweep-variant N] [-q]\n"
  "\n"
  "Runs the scenario once and prints what happened: sessions ok and failed,\n"
  "bytes, how long each fault took to detect and repair, every expectation\n"
  "with ok/FAILED, broken invariants, and the trace hash.\n"
  "\n"
  "  --seed N             the run's seed (default 1)\n"
  "  --trace OUT          write the trace, one event per line:\n"
  "                       \"<virtual s> <host> <actor>: <event>\" ('-': stdout)\n"
  "  --json OUT           the same trace as JSON lines:\n"
  "                       {\"t_us\":..,\"host\":..,\"who\":..,\"what\":..}\n"
  "  --check-determinism  run twice; fail unless trace hash and summary match\n"
  "  --sweep-variant N    the randomised fault schedule `sweep` ran for seed N\n"
  "  -q                   print only the PASS/FAIL line\n"
  "\n"
  "exit status: 0 every expectation and invariant held, 1 one did not,\n"
  "2 bad usage or a malformed scenario file.\n";

const char* const sweep_help =
  "usage: drtp-sim sweep FILE --seeds N [--jobs J] [--first-seed S]\n"
  "\n"
  "Runs seeds S..S+N-1 (S defaults to 1). For each seed the fault schedule\n"
  "is randomised within the scenario's fault budget: the same number and\n"
  "kinds of faults, each moved within +-50% of the gap to its neighbours,\n"
  "and each POP a fault names swapped for a random POP with chance 1/2 (a\n"
  "restart or heal follows the host or pair its fault actually hit). Prints\n"
  "a replay command for every failing seed, then a summary.\n"
  "\n"
  "  --seeds N        how many seeds\n"
  "  --jobs J         worker processes (default 2)\n"
  "  --first-seed S   the first seed (default 1)\n"
  "\n"
  "exit status: 0 every seed passed, 1 one failed, 2 bad usage or file.\n";

using wall_clock = std::chrono::steady_clock;

double seconds_since(wall_clock::time_point t0) {
  return std::chrono::duration<double>(wall_clock::now() - t0).count();
}

uint64_t parse_u64(const std::string& text, const std::string& what) {
  if (text.empty() || text.find_first_not_of("0123456789") != std::string::npos)
    throw cli::error(what + " must be a whole number, got '" + text + "'");
  errno = 0;
  auto v = std::strtoull(text.c_str(), nullptr, 10);
  if (errno != 0)
    throw cli::error(what + " is too large: '" + text + "'");
  return v;
}

std::string fixed_secs(uint64_t us) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.3f s", us / 1e6);
  return buf;
}

std::string hex64(uint64_t v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%016" PRIx64, v);
  return buf;
}

// -- JSON lines ----------------------------------------------------------------------

/// Appends `s` as a JSON string: quotes, backslashes and control characters
/// escaped, invalid UTF-8 replaced so every line parses.
void json_string(std::string& out, const std::string& s) {
  out += '"';
  size_t i = 0;
  while (i < s.size()) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
      ++i;
    } else if (c < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\u%04x", c);
      out += buf;
      ++i;
    } else if (c < 0x80) {
      out += static_cast<char>(c);
      ++i;
    } else {
      size_t len = c >= 0xf0 && c < 0xf5 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 ? 2 : 0;
      bool valid = len > 0 && i + len <= s.size();
      for (size_t k = 1; valid && k < len; ++k)
        valid = (static_cast<unsigned char>(s[i + k]) & 0xc0) == 0x80;
      if (valid) {
        out.append(s, i, len);
        i += len;
      } else {
        out += "\\ufffd";
        ++i;
      }
    }
  }
  out += '"';
}

/// "<s>.<us> <host> <who>: <what>" as one JSON object; a line that does not
/// have that shape comes out whole as "line".
std::string trace_to_json(const std::string& line) {
  std::string out = "{";
  auto sp1 = line.find(' ');
  auto sp2 = sp1 == std::string::npos ? sp1 : line.find(' ', sp1 + 1);
  auto colon = sp2 == std::string::npos ? sp2 : line.find(": ", sp2 + 1);
  bool shaped = colon != std::string::npos;
  uint64_t t_us = 0;
  if (shaped) {
    auto stamp = line.substr(0, sp1);
    auto dot = stamp.find('.');
    auto secs = stamp.substr(0, dot);
    auto frac = dot == std::string::npos ? "" : stamp.substr(dot + 1);
    shaped = !secs.empty() && frac.size() == 6
             && secs.find_first_not_of("0123456789") == std::string::npos
             && frac.find_first_not_of("0123456789") == std::string::npos;
    if (shaped)
      t_us = std::strtoull(secs.c_str(), nullptr, 10) * 1'000'000
             + std::strtoull(frac.c_str(), nullptr, 10);
  }
  if (!shaped) {
    out += "\"line\":";
    json_string(out, line);
    return out + "}";
  }
  out += "\"t_us\":" + std::to_string(t_us) + ",\"host\":";
  json_string(out, line.substr(sp1 + 1, sp2 - sp1 - 1));
  out += ",\"who\":";
  json_string(out, line.substr(sp2 + 1, colon - sp2 - 1));
  out += ",\"what\":";
  json_string(out, line.substr(colon + 2));
  return out + "}";
}

void write_lines(const std::string& path, const std::vector<std::string>& lines,
                 bool json) {
  std::ofstream file;
  std::ostream* out = &std::cout;
  if (path != "-") {
    file.open(path, std::ios::binary | std::ios::trunc);
    if (!file)
      throw cli::error("cannot write " + path + ": " + std::strerror(errno));
    out = &file;
  }
  for (auto& l : lines)
    *out << (json ? trace_to_json(l) : l) << '\n';
  out->flush();
  if (!*out)
    throw cli::error("cannot write " + path);
}

/// The first reason a report failed, on one line.
std::string first_failure(const sim::scenario_report& r) {
  if (!r.violations.empty())
    return r.violations.front();
  for (auto& e : r.expectations)
    if (!e.ok)
      return "expect " + e.what + ": FAILED (" + e.detail + ")";
  return "";
}

// -- run -----------------------------------------------------------------------------

int cmd_run(cli::args& a) {
  if (a.flag("--help") || a.flag("-h")) {
    std::cout << run_help << "\n" << speed_note;
    return 0;
  }
  auto seed_text = a.value("--seed");
  auto trace_path = a.value("--trace");
  auto json_path = a.value("--json");
  auto variant_text = a.value("--sweep-variant");
  bool check = a.flag("--check-determinism");
  bool quiet = a.flag("-q") || a.flag("--quiet");
  auto files = a.positional();
  a.finish();
  if (files.size() != 1)
    throw cli::error("run takes one scenario file (see drtp-sim run --help)");
  uint64_t seed = seed_text ? parse_u64(*seed_text, "--seed") : 1;
  auto spec = sim::load_scenario(files[0]);
  if (variant_text) {
    auto variant = parse_u64(*variant_text, "--sweep-variant");
    spec = sim::sweep_variant(spec, variant);
    if (!quiet) {
      std::cout << "fault schedule of sweep variant " << variant << ":\n";
      for (auto& f : spec.faults)
        std::cout << "  " << fixed_secs(f.at_us) << " " << sim::to_string(f.kind)
                  << " " << f.a << (f.b.empty() ? "" : (f.both_ways ? " <-> " : " -> ") + f.b)
                  << "\n";
    }
  }

  sim::run_options opts;
  opts.keep_trace = trace_path.has_value() || json_path.has_value();
  auto t0 = wall_clock::now();
  auto report = sim::run_scenario(spec, seed, opts);
  auto wall_s = seconds_since(t0);
  auto summary = sim::summarize(report);
  if (quiet) {
    std::cout << summary.substr(0, summary.find('\n') + 1);
  } else {
    std::cout << summary;
    char buf[160];
    std::snprintf(buf, sizeof(buf),
                  "  wall time %.3f s: %.0f simulated seconds per wall second\n",
                  wall_s, wall_s > 0 ? report.virtual_us / 1e6 / wall_s : 0.0);
    std::cout << buf;
  }
  if (trace_path)
    write_lines(*trace_path, report.trace, false);
  if (json_path)
    write_lines(*json_path, report.trace, true);
  bool ok = report.ok();
  if (check) {
    // The trace is not kept the second time: the hash covers every line.
    auto again = sim::run_scenario(spec, seed);
    auto summary_again = sim::summarize(again);
    if (again.trace_hash == report.trace_hash && summary_again == summary) {
      std::cout << "deterministic: trace hash " << hex64(report.trace_hash) << " twice\n";
    } else {
      std::cout << "NOT deterministic: trace hash " << hex64(report.trace_hash)
                << " then " << hex64(again.trace_hash) << "\n";
      if (summary_again != summary)
        std::cout << "second summary:\n" << summary_again;
      ok = false;
    }
  }
  std::cout.flush();
  return ok ? 0 : 1;
}

// -- sweep ---------------------------------------------------------------------------

struct seed_result {
  bool ok = false;
  std::string why;
};

/// One worker process: runs its share of seeds, one line per seed on `fd`:
/// "<seed> <0|1> <why>\n".
[[noreturn]] void sweep_worker(const sim::scenario_spec& spec,
                               const std::vector<uint64_t>& seeds, int fd) {
  for (auto seed : seeds) {
    std::string line;
    try {
      auto r = sim::run_scenario(sim::sweep_variant(spec, seed), seed);
      line = std::to_string(seed) + (r.ok() ? " 1 " : " 0 ") + first_failure(r);
    } catch (const std::exception& e) {
      line = std::to_string(seed) + " 0 exception: " + e.what();
    }
    for (auto& c : line)
      if (c == '\n')
        c = ' ';
    line += '\n';
    size_t done = 0;
    while (done < line.size()) {
      auto n = ::write(fd, line.data() + done, line.size() - done);
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        ::_exit(3);
      done += static_cast<size_t>(n);
    }
  }
  ::close(fd);
  ::_exit(0);
}

/// A forked sweep worker: its pid, and the pipe its results come through.
struct worker {
  pid_t pid;
  int fd;
  std::string buffer;
};

/// `jobs` workers, each with every jobs-th seed from `first` on.
std::vector<worker> start_workers(const sim::scenario_spec& spec, uint64_t jobs,
                                  uint64_t count, uint64_t first) {
  // Separate processes: the simulator's actor system runs on one thread, and
  // processes share nothing that could couple the runs.
  std::vector<worker> workers;
  std::cout.flush();
  std::fflush(nullptr);
  for (uint64_t j = 0; j < jobs; ++j) {
    std::vector<uint64_t> mine;
    for (uint64_t i = j; i < count; i += jobs)
      mine.push_back(first + i);
    int fds[2];
    if (::pipe(fds) != 0)
      throw cli::error(std::string("pipe: ") + std::strerror(errno));
    auto pid = ::fork();
    if (pid < 0)
      throw cli::error(std::string("fork: ") + std::strerror(errno));
    if (pid == 0) {
      ::close(fds[0]);
      for (auto& w : workers)
        ::close(w.fd);
      sweep_worker(spec, mine, fds[1]);
    }
    ::close(fds[1]);
    workers.push_back({pid, fds[0], ""});
  }
  return workers;
}

/// The complete lines in the worker's buffer: "SEED OK WHY".
void take_lines(worker& w, std::map<uint64_t, seed_result>& results, bool tty,
                uint64_t count) {
  size_t nl;
  while ((nl = w.buffer.find('\n')) != std::string::npos) {
    std::istringstream line{w.buffer.substr(0, nl)};
    w.buffer.erase(0, nl + 1);
    uint64_t seed = 0;
    int ok = 0;
    line >> seed >> ok;
    std::string why;
    std::getline(line >> std::ws, why);
    results[seed] = {ok == 1, why};
    if (tty)
      std::fprintf(stderr, "\r%zu/%" PRIu64 " seeds", results.size(), count);
  }
}

/// Reads every worker's results until all pipes close.
std::map<uint64_t, seed_result> collect_results(std::vector<worker>& workers,
                                                uint64_t count) {
  std::map<uint64_t, seed_result> results;
  bool tty = ::isatty(STDERR_FILENO) != 0;
  size_t open = workers.size();
  while (open > 0) {
    std::vector<pollfd> pfds;
    for (auto& w : workers)
      if (w.fd >= 0)
        pfds.push_back({w.fd, POLLIN, 0});
    if (::poll(pfds.data(), pfds.size(), -1) < 0) {
      if (errno == EINTR)
        continue;
      throw cli::error(std::string("poll: ") + std::strerror(errno));
    }
    for (auto& w : workers) {
      if (w.fd < 0)
        continue;
      auto p = std::find_if(pfds.begin(), pfds.end(),
                            [&](const pollfd& x) { return x.fd == w.fd; });
      if (p == pfds.end() || p->revents == 0)
        continue;
      char buf[4096];
      auto n = ::read(w.fd, buf, sizeof(buf));
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0) {
        ::close(w.fd);
        w.fd = -1;
        --open;
        continue;
      }
      w.buffer.append(buf, static_cast<size_t>(n));
      take_lines(w, results, tty, count);
    }
  }
  if (tty)
    std::fprintf(stderr, "\n");
  return results;
}

void reap_workers(const std::vector<worker>& workers) {
  for (auto& w : workers) {
    int status = 0;
    while (::waitpid(w.pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (WIFSIGNALED(status) || (WIFEXITED(status) && WEXITSTATUS(status) != 0))
      std::cout << "worker " << w.pid << " died ("
                << (WIFSIGNALED(status) ? "signal " + std::to_string(WTERMSIG(status))
                                        : "exit " + std::to_string(WEXITSTATUS(status)))
                << "); its unreported seeds count as failed\n";
  }
}

/// Prints each failed seed with how to replay it; the number failed.
size_t report_failures(const std::map<uint64_t, seed_result>& results,
                       uint64_t count, uint64_t first, const std::string& self,
                       const std::string& file) {
  size_t failed = 0;
  for (uint64_t i = 0; i < count; ++i) {
    auto seed = first + i;
    auto r = results.find(seed);
    if (r != results.end() && r->second.ok)
      continue;
    ++failed;
    std::cout << "seed " << seed << " FAILED: "
              << (r == results.end() ? "no result (the worker died)" : r->second.why)
              << "\n  replay: " << self << " run " << file << " --seed " << seed
              << " --sweep-variant " << seed << "\n";
  }
  return failed;
}

int cmd_sweep(cli::args& a, const std::string& self) {
  if (a.flag("--help") || a.flag("-h")) {
    std::cout << sweep_help << "\n" << speed_note;
    return 0;
  }
  auto seeds_text = a.value("--seeds");
  auto jobs_text = a.value("--jobs");
  auto first_text = a.value("--first-seed");
  auto files = a.positional();
  a.finish();
  if (files.size() != 1)
    throw cli::error("sweep takes one scenario file (see drtp-sim sweep --help)");
  if (!seeds_text)
    throw cli::error("sweep needs --seeds N");
  auto count = parse_u64(*seeds_text, "--seeds");
  auto jobs = jobs_text ? parse_u64(*jobs_text, "--jobs") : 2;
  auto first = first_text ? parse_u64(*first_text, "--first-seed") : 1;
  if (count == 0)
    throw cli::error("--seeds must be at least 1");
  if (jobs < 1 || jobs > 64)
    throw cli::error("--jobs must be 1-64");
  if (first == 0)
    throw cli::error("--first-seed must be at least 1 (variant 0 is the file as written)");
  jobs = std::min(jobs, count);
  auto spec = sim::load_scenario(files[0]);

  auto t0 = wall_clock::now();
  auto workers = start_workers(spec, jobs, count, first);
  auto results = collect_results(workers, count);
  reap_workers(workers);
  auto wall_s = seconds_since(t0);
  auto failed = report_failures(results, count, first, self, files[0]);
  char buf[200];
  std::snprintf(buf, sizeof(buf), "%" PRIu64 " seeds, %zu failed, %.1f s wall, %.1f seeds/min\n",
                count, failed, wall_s, wall_s > 0 ? count * 60.0 / wall_s : 0.0);
  std::cout << buf;
  return failed == 0 ? 0 : 1;
}

} // namespace

int main(int argc, char** argv) {
  std::string self = argc > 0 ? argv[0] : "drtp-sim";
  std::string cmd = argc > 1 ? argv[1] : "";
  if (cmd.empty() || cmd == "--help" || cmd == "-h" || cmd == "help") {
    std::cout << main_help << "\n" << speed_note;
    return cmd.empty() ? 2 : 0;
  }
  try {
    cli::args a{argc, argv, 2};
    if (cmd == "run")
      return cmd_run(a);
    if (cmd == "sweep")
      return cmd_sweep(a, self);
    throw cli::error("unknown command '" + cmd + "' (run or sweep; see --help)");
  } catch (const sim::scenario_error& e) {
    std::cerr << "drtp-sim: " << e.what() << "\n";
    return 2;
  } catch (const cli::error& e) {
    std::cerr << "drtp-sim: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "drtp-sim: " << e.what() << "\n";
    return 2;
  }
}
