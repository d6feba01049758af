#include "cli/signals.hpp"

#include <atomic>
#include <csignal>

namespace drtp::cli {

namespace {

std::atomic<int> stop_signal_{0};
std::atomic<bool> reload_{false};

void on_signal(int sig) {
  stop_signal_ = sig;
}

void on_hangup(int) {
  reload_ = true;
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

void ignore_hangup() {
  std::signal(SIGHUP, SIG_IGN);
}

void install_reload_signal() {
  struct sigaction sa {};
  sa.sa_handler = on_hangup;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGHUP, &sa, nullptr);
}

bool reload_requested() {
  return reload_.exchange(false);
}

} // namespace drtp::cli
