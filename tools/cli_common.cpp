#include "tools/cli_common.hpp"

#include <atomic>
#include <cassert>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <malloc.h>
#include <sstream>

#include "caf/actor_system.hpp"
#include "caf/actor_system_config.hpp"
#include "caf/atom.hpp"
#include "net/asio_io.hpp"
#include "net/loop_coordinator.hpp"

namespace drtp::cli {

args::args(int argc, char** argv, int first) {
  for (int i = first; i < argc; ++i)
    words_.emplace_back(argv[i]);
  used_.assign(words_.size(), false);
}

std::optional<std::string> args::value(const std::string& name) {
  std::optional<std::string> result;
  for (size_t i = 0; i < words_.size(); ++i) {
    if (used_[i])
      continue;
    auto& w = words_[i];
    if (w == name) {
      if (i + 1 >= words_.size())
        throw error("option " + name + " needs a value");
      used_[i] = used_[i + 1] = true;
      result = words_[i + 1];
      ++i;
    } else if (w.rfind(name + "=", 0) == 0) {
      used_[i] = true;
      result = w.substr(name.size() + 1);
    }
  }
  return result;
}

std::vector<std::string> args::values(const std::string& name) {
  std::vector<std::string> out;
  for (size_t i = 0; i < words_.size(); ++i) {
    if (used_[i])
      continue;
    if (words_[i] == name) {
      if (i + 1 >= words_.size())
        throw error("option " + name + " needs a value");
      used_[i] = used_[i + 1] = true;
      out.push_back(words_[++i]);
    } else if (words_[i].rfind(name + "=", 0) == 0) {
      used_[i] = true;
      out.push_back(words_[i].substr(name.size() + 1));
    }
  }
  return out;
}

bool args::flag(const std::string& name) {
  bool found = false;
  for (size_t i = 0; i < words_.size(); ++i) {
    if (!used_[i] && words_[i] == name) {
      used_[i] = true;
      found = true;
    }
  }
  return found;
}

std::vector<std::string> args::positional() {
  std::vector<std::string> out;
  for (size_t i = 0; i < words_.size(); ++i) {
    if (!used_[i] && words_[i].rfind("-", 0) != 0) {
      used_[i] = true;
      out.push_back(words_[i]);
    }
  }
  return out;
}

void args::finish() {
  for (size_t i = 0; i < words_.size(); ++i)
    if (!used_[i])
      throw error("unknown option '" + words_[i] + "' (see --help)");
}

void parse_host_port(const std::string& s, const std::string& what,
                     std::string& host, uint16_t& port) {
  auto colon = s.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == s.size())
    throw error(what + " must be HOST:PORT, got '" + s + "'");
  host = s.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  auto p = s.substr(colon + 1);
  char* end = nullptr;
  errno = 0;
  auto v = std::strtoul(p.c_str(), &end, 10);
  if (errno != 0 || *end != '\0' || v > 65535)
    throw error(what + " has a bad port '" + p + "'");
  port = static_cast<uint16_t>(v);
}

std::string read_secret(const std::optional<std::string>& file,
                        const char* env_var) {
  std::string secret;
  if (file) {
    std::ifstream in{*file, std::ios::binary};
    if (!in)
      throw error("cannot read secret file " + *file + ": "
                  + std::strerror(errno));
    std::ostringstream ss;
    ss << in.rdbuf();
    secret = ss.str();
  } else if (auto v = std::getenv(env_var)) {
    secret = v;
  } else {
    throw error(std::string("no secret: pass --secret-file FILE or set ")
                + env_var);
  }
  while (!secret.empty() && (secret.back() == '\n' || secret.back() == '\r'))
    secret.pop_back();
  if (secret.empty())
    throw error("the secret is empty");
  return secret;
}

namespace {

std::atomic<int> stop_signal_{0};

void on_signal(int sig) {
  stop_signal_ = sig;
}

} // namespace

void install_stop_signals() {
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  std::signal(SIGPIPE, SIG_IGN);
}

bool stop_requested() {
  return stop_signal_ != 0;
}

int stop_signal() {
  return stop_signal_;
}

void clear_stop_signal() {
  stop_signal_ = 0;
}

struct runtime::impl {
  caf::actor_system_config cfg;
  std::unique_ptr<caf::actor_system> sys;
  std::unique_ptr<net::asio_io> io;
  std::shared_ptr<net::tracer> trace;
};

uint32_t parse_uint(const std::string& text, const std::string& what,
                    uint32_t min, uint32_t max, const std::string& unit) {
  assert(min <= max);
  // Digits only: strtoul alone would take "", " 5", "+5" and wrap "-1".
  bool digits = !text.empty() && text.size() <= 10
                && text.find_first_not_of("0123456789") == std::string::npos;
  auto v = digits ? std::stoull(text) : 0ull;
  if (!digits || v < min || v > max)
    throw error(what + " must be " + std::to_string(min) + "-" + std::to_string(max)
                + " " + unit + ", got '" + text + "'");
  return static_cast<uint32_t>(v);
}

uint32_t busy_poll_us(args& a) {
  auto v = a.value("--busy-poll-us");
  return v ? parse_uint(*v, "--busy-poll-us", 0, net::busy_poll_us_max,
                        "microseconds")
           : net::busy_poll_us_default;
}

runtime::runtime(std::shared_ptr<net::tracer> trace,
                 std::optional<net::tls_identity> server_identity,
                 uint32_t busy_poll_us)
  : impl_(std::make_unique<impl>()) {
  // Socket buffers of 64 KiB come and go at line rate: keep freed memory in
  // the heap instead of trimming it and faulting it back in on each read.
  mallopt(M_MMAP_THRESHOLD, 1 << 20);
  mallopt(M_TRIM_THRESHOLD, 64 << 20);
  // Every actor runs on the I/O thread (see net/loop_coordinator.hpp).
  net::use_loop_scheduler(impl_->cfg, busy_poll_us);
  impl_->cfg.set("logger.console", caf::atom("none"));
  impl_->cfg.set("logger.file-verbosity", caf::atom("quiet"));
  impl_->sys = std::make_unique<caf::actor_system>(impl_->cfg);
  // Binaries exit with actors still running; do not wait for them.
  impl_->sys->await_actors_before_shutdown(false);
  impl_->trace = std::move(trace);
  impl_->io = std::make_unique<net::asio_io>(*impl_->sys, impl_->trace,
                                             std::move(server_identity));
}

runtime::~runtime() {
  stop();
}

caf::actor_system& runtime::sys() {
  return *impl_->sys;
}

const caf::actor& runtime::io() const {
  return impl_->io->handle();
}

std::shared_ptr<net::tracer> runtime::trace() const {
  return impl_->trace;
}

void runtime::stop() {
  if (impl_->io)
    impl_->io->stop();
}

} // namespace drtp::cli
