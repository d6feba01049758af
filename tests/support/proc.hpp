#pragma once
// Child processes for end-to-end tests: start a binary with its output in a
// file, wait (bounded) for a line, signal it, reap it.

#include <chrono>
#include <string>
#include <vector>
#include <sys/types.h>

namespace drtp::test {

class process {
public:
  process(const std::vector<std::string>& argv,
          const std::vector<std::string>& env_extra = {});
  ~process(); // SIGKILL and reap if still running
  process(const process&) = delete;
  process& operator=(const process&) = delete;

  /// Waits until the combined stdout/stderr contains `needle`.
  bool wait_for(const std::string& needle, std::chrono::milliseconds timeout);
  std::string output() const;
  /// How often `needle` occurs in the output so far.
  size_t count(const std::string& needle) const;
  /// Waits until `needle` occurs at least `n` times.
  bool wait_for_count(const std::string& needle, size_t n,
                      std::chrono::milliseconds timeout);
  void signal(int sig);
  /// Waits for exit; returns the exit status, or -1 on timeout.
  int wait_exit(std::chrono::milliseconds timeout);
  pid_t pid() const { return pid_; }

private:
  pid_t pid_ = -1;
  std::string log_path_;
  bool reaped_ = false;
  int status_ = 0;
};

/// The directory the binaries were built in.
std::string bin_dir();

/// The number after `prefix` in `text` (e.g. a port), or 0.
unsigned number_after(const std::string& text, const std::string& prefix);

} // namespace drtp::test
