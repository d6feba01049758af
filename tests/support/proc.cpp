#include "tests/support/proc.hpp"
#include "tests/support/sock.hpp"
#include "tests/support/spawn.hpp"

#include <cstdio>
#include <cstdlib>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

namespace drtp::test {

process::process(const std::vector<std::string>& argv,
                 const std::vector<std::string>& env_extra)
  : process(argv, process_options{env_extra}) {
}

process::process(const std::vector<std::string>& argv, process_options opts)
  : opts_(std::move(opts)) {
  if (opts_.log_path.empty()) {
    static int counter = 0;
    opts_.log_path = "/tmp/drtp-test-" + std::to_string(getpid()) + "-"
                     + std::to_string(counter++) + ".log";
    own_log_ = true;
  }
  pid_ = tools::spawn_logged(argv, opts_.log_path, opts_.env_extra);
}

process::~process() {
  if (pid_ > 0 && !reaped_) {
    if (opts_.stop_signal != SIGKILL) {
      ::kill(pid_, opts_.stop_signal);
      wait_exit(opts_.stop_grace);
    }
    if (!reaped_) {
      ::kill(pid_, SIGKILL);
      waitpid(pid_, &status_, 0);
    }
  }
  if (own_log_)
    ::unlink(opts_.log_path.c_str());
}

std::string process::output() const {
  std::ifstream in{opts_.log_path};
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

int process::exit_status() const {
  return WIFEXITED(status_) ? WEXITSTATUS(status_) : 128 + WTERMSIG(status_);
}

int process::wait_exit(std::chrono::milliseconds timeout) {
  if (reaped_)
    return exit_status();
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (alive())
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    else
      return reaped_ ? exit_status() : -1;
  }
  return -1;
}

bool process::alive() {
  if (pid_ <= 0 || reaped_)
    return false;
  if (waitpid(pid_, &status_, WNOHANG) == pid_) {
    reaped_ = true;
    return false;
  }
  return true;
}

std::string bin_dir() {
  return DRTP_BIN_DIR;
}

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string read_line(const std::string& path) {
  auto s = read_text(path);
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r'))
    s.pop_back();
  return s;
}

shell_result run_shell(const std::string& cmd) {
  shell_result r;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr)
    return r;
  char buf[16384];
  size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0)
    r.out.append(buf, n);
  int status = ::pclose(p);
  r.rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

unsigned number_after(const std::string& text, const std::string& prefix) {
  auto i = text.find(prefix);
  if (i == std::string::npos)
    return 0;
  return static_cast<unsigned>(std::strtoul(text.c_str() + i + prefix.size(),
                                            nullptr, 10));
}

uint16_t free_port() {
  uint16_t p = 0;
  auto s = sock::listen_tcp("127.0.0.1", 0, p);
  return p;
}

std::string make_temp_dir(const std::string& name) {
  std::string tmpl = "/tmp/drtp-" + name + "-XXXXXX";
  if (!mkdtemp(tmpl.data()))
    throw std::runtime_error("cannot make a directory like " + tmpl);
  return tmpl;
}

void remove_tree(const std::string& dir) {
  std::error_code ignored;
  std::filesystem::remove_all(dir, ignored);
}

long vm_rss_kib(pid_t pid) {
  std::ifstream in{"/proc/" + std::to_string(pid) + "/status"};
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmRSS:", 0) == 0)
      return std::strtol(line.c_str() + 6, nullptr, 10);
  return -1;
}

bool wait_accepts(uint16_t port, std::chrono::milliseconds timeout,
                  process* owner) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (sock::connect_tcp("127.0.0.1", port, 500))
      return true;
    if (owner && !owner->alive())
      return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

std::string gen_pop_cert(const std::string& dir) {
  process gen({bin_dir() + "/drtp-pop", "gen-cert", "--cert", dir + "/c.pem", "--key",
               dir + "/k.pem"});
  if (gen.wait_exit(std::chrono::seconds(10)) != 0)
    return "";
  return gen.output().substr(0, gen.output().find('\n'));
}

} // namespace drtp::test
