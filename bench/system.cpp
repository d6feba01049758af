#include "bench/system.hpp"

#include <cstdio>
#include <cstdlib>
#include <dirent.h>
#include <map>
#include <sstream>
#include <sys/resource.h>
#include <thread>
#include <unistd.h>

#include "tests/support/proc.hpp"

namespace drtp::bench {

double seconds_since(clock_type::time_point t0) {
  return std::chrono::duration<double>(clock_type::now() - t0).count();
}

void sleep_ms(int ms) {
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
}

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

uint64_t rss_kib(pid_t root) {
  uint64_t sum = 0;
  for (auto p : process_tree(root)) {
    auto kib = test::vm_rss_kib(p);
    if (kib > 0)
      sum += static_cast<uint64_t>(kib);
  }
  return sum;
}

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

} // namespace drtp::bench
