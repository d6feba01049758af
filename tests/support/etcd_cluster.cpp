#include "tests/support/etcd_cluster.hpp"

#include <cstdlib>
#include <stdexcept>
#include <thread>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

namespace drtp::test {

namespace {

/// GET path from 127.0.0.1:port, the whole answer ("" on any failure),
/// within about 500 ms.
std::string http_get(uint16_t port, const std::string& path) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0)
    return {};
  timeval tv{0, 500 * 1000};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string out;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0) {
    std::string req = "GET " + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    if (::send(fd, req.data(), req.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(req.size())) {
      char buf[4096];
      for (int i = 0; i < 64; ++i) {
        auto n = ::recv(fd, buf, sizeof(buf), 0);
        if (n <= 0)
          break;
        out.append(buf, static_cast<size_t>(n));
      }
    }
  }
  ::close(fd);
  return out;
}

/// etcd's path: the first in $PATH (process execs without a search).
std::string etcd_binary() {
  const char* path = std::getenv("PATH");
  std::string dirs = path ? path : "/usr/bin:/bin";
  size_t start = 0;
  while (start <= dirs.size()) {
    auto colon = dirs.find(':', start);
    auto d = dirs.substr(start, colon == std::string::npos ? std::string::npos : colon - start);
    start = colon == std::string::npos ? dirs.size() + 1 : colon + 1;
    auto f = (d.empty() ? std::string(".") : d) + "/etcd";
    if (::access(f.c_str(), X_OK) == 0)
      return f;
  }
  return "/usr/bin/etcd";
}

} // namespace

etcd_cluster::etcd_cluster(size_t members, std::chrono::milliseconds timeout) {
  dir_ = make_temp_dir("etcd");
  // A port free_port() saw free may be taken by another test (ctest -j2)
  // before etcd binds it, and then that member exits at once: start the
  // whole cluster again on fresh ports and a fresh data directory, a
  // bounded number of times.
  constexpr int attempts_max = 3;
  std::string why;
  for (int attempt = 1; attempt <= attempts_max; ++attempt) {
    members_.clear();
    initial_cluster_.clear();
    members_.resize(members);
    for (size_t i = 0; i < members; ++i) {
      auto& m = members_[i];
      m.name = "m" + std::to_string(i);
      m.client_port = free_port();
      m.peer_port = free_port();
      if (!initial_cluster_.empty())
        initial_cluster_ += ",";
      initial_cluster_ += m.name + "=http://127.0.0.1:" + std::to_string(m.peer_port);
    }
    for (size_t i = 0; i < members; ++i)
      start(i);
    if (wait_healthy(timeout))
      return;
    // The member to blame: the first that exited, else member 0.
    size_t blamed = 0;
    for (size_t i = 0; i < members; ++i)
      if (!running(i)) {
        blamed = i;
        break;
      }
    why = "attempt " + std::to_string(attempt) + ", member " + std::to_string(blamed)
          + (running(blamed) ? " (running)" : " (exited)") + ": " + log_tail(blamed);
    for (auto& m : members_)
      m.proc.reset();
    remove_tree(dir_);
    dir_ = make_temp_dir("etcd");
  }
  remove_tree(dir_);
  throw std::runtime_error("etcd cluster not healthy within " + std::to_string(timeout.count())
                           + " ms, " + std::to_string(attempts_max) + " attempts; last " + why);
}

etcd_cluster::~etcd_cluster() {
  for (auto& m : members_)
    m.proc.reset(); // SIGKILL and reap
  remove_tree(dir_);
}

void etcd_cluster::start(size_t i) {
  auto& m = members_.at(i);
  auto client = "http://127.0.0.1:" + std::to_string(m.client_port);
  auto peer = "http://127.0.0.1:" + std::to_string(m.peer_port);
  m.proc = std::make_unique<process>(std::vector<std::string>{
    etcd_binary(), "--name", m.name, "--data-dir", dir_ + "/" + m.name,
    "--listen-client-urls", client, "--advertise-client-urls", client,
    "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
    "--initial-cluster", initial_cluster_, "--initial-cluster-state", "new",
    "--initial-cluster-token", "drtp-test",
    // Loopback: a heartbeat every 50 ms, a new leader within about 0.5 s.
    "--heartbeat-interval", "50", "--election-timeout", "500",
    // Progress marks for synced watches (the store's watch revisions).
    "--experimental-watch-progress-notify-interval", "1s",
    "--logger", "zap", "--log-outputs", "stderr", "--log-level", "warn"});
}

std::string etcd_cluster::client_urls() const {
  std::string out;
  for (auto& m : members_) {
    if (!out.empty())
      out += ",";
    out += "http://127.0.0.1:" + std::to_string(m.client_port);
  }
  return out;
}

pid_t etcd_cluster::pid(size_t i) const {
  auto& p = members_.at(i).proc;
  return p ? p->pid() : -1;
}

bool etcd_cluster::running(size_t i) const {
  auto& p = members_.at(i).proc;
  return p && p->alive();
}

void etcd_cluster::kill(size_t i) {
  auto& p = members_.at(i).proc;
  if (!p)
    return;
  p->signal(SIGKILL);
  p->wait_exit(std::chrono::seconds(5));
  p.reset();
}

bool etcd_cluster::restart(size_t i, std::chrono::milliseconds timeout) {
  kill(i);
  start(i);
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (healthy(i))
      return true;
    if (!running(i))
      return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

bool etcd_cluster::healthy(size_t i) const {
  if (!running(i))
    return false;
  auto r = http_get(members_.at(i).client_port, "/health");
  return r.find("\"health\":\"true\"") != std::string::npos;
}

bool etcd_cluster::wait_healthy(std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    bool all = true;
    for (size_t i = 0; i < members_.size() && all; ++i)
      if (members_[i].proc)
        all = healthy(i);
    if (all)
      return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

std::string etcd_cluster::log_tail(size_t i) const {
  auto& p = members_.at(i).proc;
  if (!p)
    return "(not running)";
  auto out = p->output();
  if (out.size() > 400)
    out = out.substr(out.size() - 400);
  for (auto& c : out)
    if (c == '\n')
      c = ' ';
  return out;
}

} // namespace drtp::test
