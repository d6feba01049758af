#include "tests/support/proc.hpp"
#include "tests/support/spawn.hpp"

#include <csignal>
#include <cstdlib>
#include <fcntl.h>
#include <fstream>
#include <sstream>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

namespace drtp::test {

process::process(const std::vector<std::string>& argv,
                 const std::vector<std::string>& env_extra) {
  static int counter = 0;
  log_path_ = "/tmp/drtp-test-" + std::to_string(getpid()) + "-"
              + std::to_string(counter++) + ".log";
  pid_ = tools::spawn_logged(argv, log_path_, env_extra);
}

process::~process() {
  if (pid_ > 0 && !reaped_) {
    ::kill(pid_, SIGKILL);
    waitpid(pid_, &status_, 0);
  }
  ::unlink(log_path_.c_str());
}

std::string process::output() const {
  std::ifstream in{log_path_};
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool process::wait_for(const std::string& needle,
                       std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (output().find(needle) != std::string::npos)
      return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

size_t process::count(const std::string& needle) const {
  auto out = output();
  size_t n = 0;
  for (auto i = out.find(needle); i != std::string::npos;
       i = out.find(needle, i + needle.size()))
    ++n;
  return n;
}

bool process::wait_for_count(const std::string& needle, size_t n,
                             std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (count(needle) >= n)
      return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

void process::signal(int sig) {
  if (pid_ > 0 && !reaped_)
    ::kill(pid_, sig);
}

int process::wait_exit(std::chrono::milliseconds timeout) {
  if (reaped_)
    return WIFEXITED(status_) ? WEXITSTATUS(status_) : 128 + WTERMSIG(status_);
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (waitpid(pid_, &status_, WNOHANG) == pid_) {
      reaped_ = true;
      return WIFEXITED(status_) ? WEXITSTATUS(status_) : 128 + WTERMSIG(status_);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return -1;
}

std::string bin_dir() {
  return DRTP_BIN_DIR;
}

unsigned number_after(const std::string& text, const std::string& prefix) {
  auto i = text.find(prefix);
  if (i == std::string::npos)
    return 0;
  return static_cast<unsigned>(std::strtoul(text.c_str() + i + prefix.size(),
                                            nullptr, 10));
}

} // namespace drtp::test
