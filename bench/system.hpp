#pragma once
// What the bench asks of the machine: wall time, small files, the memory and
// CPU of a process tree from /proc, programs on the PATH, the descriptor
// limit.

#include <chrono>
#include <cstdint>
#include <string>
#include <sys/types.h>
#include <vector>

namespace drtp::bench {

using clock_type = std::chrono::steady_clock;

double seconds_since(clock_type::time_point t0);
void sleep_ms(int ms);

/// The directory of the running binary (drtp-pop and drtp are beside it).
std::string self_dir();
std::string read_text(const std::string& path);
bool write_text(const std::string& path, const std::string& text);

/// pid and all its descendants (sshd forks a process per connection).
std::vector<pid_t> process_tree(pid_t root);
/// VmRSS of the process and its descendants, KiB.
uint64_t rss_kib(pid_t root);
/// utime + stime of the process and its live descendants, seconds.
double cpu_seconds(pid_t root);

/// The first of `candidates` that is executable, or "".
std::string find_program(const std::vector<std::string>& candidates);
/// The last line of a log, at most 160 characters: why a path is n/a.
std::string last_line(const std::string& text);

/// As many descriptors as the hard limit allows, up to 65 536.
void raise_nofile();

} // namespace drtp::bench
