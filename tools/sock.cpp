#include "tools/sock.hpp"

#include <arpa/inet.h>
#include <cerrno>
#include <cstring>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <random>
#include <stdexcept>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

namespace drtp::sock {

fd& fd::operator=(fd&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0)
      ::close(fd_);
    fd_ = o.release();
  }
  return *this;
}

fd::~fd() {
  if (fd_ >= 0)
    ::close(fd_);
}

namespace {

bool to_addr(const std::string& host, uint16_t port, sockaddr_in& sa) {
  std::memset(&sa, 0, sizeof(sa));
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  auto h = host == "localhost" ? std::string("127.0.0.1") : host;
  return inet_pton(AF_INET, h.c_str(), &sa.sin_addr) == 1;
}

void set_timeouts(int s, int timeout_ms) {
  timeval tv{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
  setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

} // namespace

fd connect_tcp(const std::string& host, uint16_t port, int timeout_ms) {
  sockaddr_in sa;
  if (!to_addr(host, port, sa)) {
    errno = EINVAL;
    return fd{};
  }
  fd s{::socket(AF_INET, SOCK_STREAM, 0)};
  if (!s)
    return s;
  int one = 1;
  setsockopt(s.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  set_timeouts(s.get(), timeout_ms);
  if (::connect(s.get(), reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0)
    return fd{};
  return s;
}

fd listen_tcp(const std::string& host, uint16_t port, uint16_t& bound_port) {
  sockaddr_in sa;
  if (!to_addr(host, port, sa))
    return fd{};
  fd s{::socket(AF_INET, SOCK_STREAM, 0)};
  int one = 1;
  setsockopt(s.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (::bind(s.get(), reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0
      || ::listen(s.get(), 1024) != 0)
    return fd{};
  socklen_t len = sizeof(sa);
  getsockname(s.get(), reinterpret_cast<sockaddr*>(&sa), &len);
  bound_port = ntohs(sa.sin_port);
  return s;
}

bool send_all(int s, const void* data, size_t n) {
  auto p = static_cast<const char*>(data);
  while (n > 0) {
    auto k = ::send(s, p, n, MSG_NOSIGNAL);
    if (k < 0 && errno == EINTR)
      continue;
    if (k <= 0)
      return false;
    p += k;
    n -= static_cast<size_t>(k);
  }
  return true;
}

bool recv_all(int s, void* data, size_t n) {
  auto p = static_cast<char*>(data);
  while (n > 0) {
    auto k = ::recv(s, p, n, 0);
    if (k < 0 && errno == EINTR)
      continue;
    if (k <= 0)
      return false;
    p += k;
    n -= static_cast<size_t>(k);
  }
  return true;
}

bool recv_to_eof(int s, std::vector<char>& out, size_t max_bytes) {
  char buf[65536];
  for (;;) {
    auto k = ::recv(s, buf, sizeof(buf), 0);
    if (k < 0 && errno == EINTR)
      continue;
    if (k < 0)
      return false;
    if (k == 0)
      return true;
    if (out.size() + static_cast<size_t>(k) > max_bytes)
      return false;
    out.insert(out.end(), buf, buf + k);
  }
}

echo_server::echo_server(uint16_t port, const std::string& host) {
  listener_ = listen_tcp(host, port, port_);
  if (!listener_)
    throw std::runtime_error("echo server: cannot listen on " + host + ":"
                             + std::to_string(port) + ": " + std::strerror(errno));
  thread_ = std::thread([this] { accept_loop(); });
}

echo_server::~echo_server() {
  stop();
}

void echo_server::stop() {
  if (stop_.exchange(true))
    return;
  ::shutdown(listener_.get(), SHUT_RDWR);
  if (thread_.joinable())
    thread_.join();
  for (auto& w : workers_)
    if (w.joinable())
      w.join();
}

namespace {

void serve_one(int c, const std::atomic<bool>& stop) {
  fd guard{c};
  int one = 1;
  setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  // A receive timeout lets the worker notice stop(); no send timeout: a
  // tunnel that applies backpressure may hold a send for a long time.
  timeval tv{0, 200 * 1000};
  setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  std::vector<char> buf(256 * 1024);
  enum { unknown, echo, sink } mode = unknown;
  uint64_t sunk = 0;
  char head[4];
  size_t head_len = 0;
  for (;;) {
    auto k = ::recv(c, buf.data(), buf.size(), 0);
    if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
      if (stop)
        return;
      continue;
    }
    if (k < 0)
      return;
    if (k == 0) {
      if (mode == unknown)
        send_all(c, head, head_len);
      if (mode == sink) {
        unsigned char out[8];
        for (int i = 0; i < 8; ++i)
          out[i] = static_cast<unsigned char>(sunk >> (56 - 8 * i));
        send_all(c, out, 8);
      }
      ::shutdown(c, SHUT_WR);
      return;
    }
    size_t off = 0;
    if (mode == unknown) {
      while (head_len < 4 && off < static_cast<size_t>(k))
        head[head_len++] = buf[off++];
      if (head_len < 4)
        continue;
      if (std::memcmp(head, "SINK", 4) == 0) {
        mode = sink;
      } else if (std::memcmp(head, "SRCE", 4) == 0) {
        unsigned char n8[8];
        size_t have = 0;
        while (have < 8 && off < static_cast<size_t>(k))
          n8[have++] = static_cast<unsigned char>(buf[off++]);
        if (have < 8 && !recv_all(c, n8 + have, 8 - have))
          return;
        uint64_t n = 0;
        for (int i = 0; i < 8; ++i)
          n = (n << 8) | n8[i];
        std::vector<char> out(256 * 1024, 'x');
        while (n > 0 && !stop) {
          auto m = std::min<uint64_t>(n, out.size());
          if (!send_all(c, out.data(), m))
            return;
          n -= m;
        }
        ::shutdown(c, SHUT_WR);
        std::vector<char> rest;
        recv_to_eof(c, rest, 1 << 20);
        return;
      } else {
        mode = echo;
        if (!send_all(c, head, 4))
          return;
      }
    }
    if (mode == sink) {
      sunk += static_cast<uint64_t>(k) - off;
    } else if (!send_all(c, buf.data() + off, static_cast<size_t>(k) - off)) {
      return;
    }
  }
}

} // namespace

void echo_server::accept_loop() {
  while (!stop_) {
    pollfd p{listener_.get(), POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0)
      continue;
    int c = ::accept(listener_.get(), nullptr, nullptr);
    if (c < 0)
      continue;
    ++connections_;
    workers_.emplace_back(serve_one, c, std::cref(stop_));
  }
}

std::vector<char> random_bytes(size_t n, uint64_t seed) {
  std::mt19937_64 gen{seed};
  std::vector<char> out(n);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    auto x = gen();
    std::memcpy(out.data() + i, &x, 8);
  }
  for (; i < n; ++i)
    out[i] = static_cast<char>(gen());
  return out;
}

} // namespace drtp::sock
