#pragma once
// Child processes for the end-to-end tests and the bench: start a binary with
// its output in a file, wait (bounded) for a line or for its port to accept,
// signal it, reap it.

#include <chrono>
#include <csignal>
#include <cstdint>
#include <string>
#include <vector>
#include <sys/types.h>

namespace drtp::test {

struct process_options {
  /// Extra NAME=VALUE entries for the child's environment.
  std::vector<std::string> env_extra;
  /// Where the output goes and stays (the bench keeps its logs); empty: a
  /// temporary file, removed with the process.
  std::string log_path;
  /// What the end of the scope sends: SIGKILL at once, or this signal and
  /// SIGKILL only after `stop_grace`, so that a child can shut down cleanly
  /// (drtp-pop drains on SIGTERM, stops at once on SIGINT).
  int stop_signal = SIGKILL;
  std::chrono::milliseconds stop_grace{3000};
};

class process {
public:
  process(const std::vector<std::string>& argv,
          const std::vector<std::string>& env_extra = {});
  process(const std::vector<std::string>& argv, process_options opts);
  ~process(); // stop_signal (default SIGKILL) and reap if still running
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
  /// Still running (reaps it if it has exited).
  bool alive();
  pid_t pid() const { return pid_; }

private:
  int exit_status() const;

  pid_t pid_ = -1;
  process_options opts_;
  bool own_log_ = false; // a temporary log, removed with the process
  bool reaped_ = false;
  int status_ = 0;
};

/// The directory the binaries were built in.
std::string bin_dir();

/// A file's whole text ("" if it cannot be read).
std::string read_text(const std::string& path);
/// The same without trailing newlines (a pin, a token, a one-line file).
std::string read_line(const std::string& path);

/// What a shell command printed on stdout (add 2>&1 for stderr) and its
/// exit status (-1 if it did not exit).
struct shell_result {
  std::string out;
  int rc = -1;
};
shell_result run_shell(const std::string& cmd);

/// The number after `prefix` in `text` (e.g. a port), or 0.
unsigned number_after(const std::string& text, const std::string& prefix);

/// A port that was free on 127.0.0.1 a moment ago.
uint16_t free_port();

/// A fresh directory /tmp/drtp-NAME-XXXXXX for a test's files; throws if
/// none can be made.
std::string make_temp_dir(const std::string& name);

/// drtp-pop gen-cert into dir/c.pem and dir/k.pem; the certificate's
/// fingerprint (sha256:HEX), or empty if it failed.
std::string gen_pop_cert(const std::string& dir);
/// Removes a directory made by make_temp_dir, with everything in it.
void remove_tree(const std::string& dir);

/// VmRSS of one process in KiB, from /proc/PID/status; -1 if it is gone.
long vm_rss_kib(pid_t pid);

/// Waits until 127.0.0.1:port accepts a connection; false on timeout, or at
/// once when `owner` (the process that should listen there) has exited.
bool wait_accepts(uint16_t port, std::chrono::milliseconds timeout,
                  process* owner = nullptr);

} // namespace drtp::test
