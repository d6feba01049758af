#include "net/process_metrics.hpp"

#include "net/asio_io.hpp"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

namespace drtp::net {

namespace {

void family(std::string& out, const char* name, const char* type, const char* help,
            double value) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.6f", value);
  out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n"
         + name + " " + buf + "\n";
}

/// The fields of /proc/self/stat after the command name (which may hold
/// spaces and parentheses: it ends at the last ')').
std::vector<std::string> stat_fields() {
  std::ifstream in("/proc/self/stat");
  std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto close = all.rfind(')');
  std::vector<std::string> out;
  if (close == std::string::npos)
    return out;
  std::istringstream rest(all.substr(close + 1));
  std::string f;
  while (rest >> f)
    out.push_back(f);
  return out;
}

double boot_time_s() {
  std::ifstream in("/proc/stat");
  std::string key;
  double v = 0;
  while (in >> key) {
    if (key == "btime") {
      in >> v;
      return v;
    }
    in.ignore(1 << 20, '\n');
  }
  return 0;
}

} // namespace

void append_process_metrics(std::string& out) {
  auto f = stat_fields();
  // After the name: state is field 3 of stat(5), so index i holds field i+3.
  auto field = [&](size_t n) -> double {
    return n >= 3 && n - 3 < f.size() ? std::strtod(f[n - 3].c_str(), nullptr) : 0;
  };
  double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  double page = static_cast<double>(sysconf(_SC_PAGESIZE));
  family(out, "process_cpu_seconds_total", "counter",
         "User and system CPU time spent, in seconds.", (field(14) + field(15)) / ticks);
  family(out, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.",
         field(24) * page);
  family(out, "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.",
         field(23));
  family(out, "process_start_time_seconds", "gauge",
         "Start time of the process since the Unix epoch, in seconds.",
         boot_time_s() + field(22) / ticks);
  size_t fds = 0;
  if (DIR* d = opendir("/proc/self/fd")) {
    while (auto* e = readdir(d))
      if (e->d_name[0] != '.')
        ++fds;
    closedir(d);
    if (fds > 0)
      --fds; // the directory's own descriptor
  }
  family(out, "process_open_fds", "gauge", "Number of open file descriptors.",
         static_cast<double>(fds));
  rlimit lim{};
  getrlimit(RLIMIT_NOFILE, &lim);
  family(out, "process_max_fds", "gauge", "Maximum number of open file descriptors.",
         static_cast<double>(lim.rlim_cur));
}

void install_process_metrics(metrics& m, std::shared_ptr<const tracer> trace) {
  m.set_collector([](std::string& out) { append_process_metrics(out); });
  m.set_refresh([trace](metrics& r) {
    r.gauge(metric::write_queue_bytes).set(static_cast<int64_t>(asio_write_queue_bytes()));
    if (trace)
      r.counter(metric::log_lines_dropped_total).mirror(trace->lines_dropped_total());
  });
}

} // namespace drtp::net
