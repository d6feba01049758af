#include "tests/support/sock.hpp"

#include <arpa/inet.h>
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <fcntl.h>
#include <map>
#include <mutex>
#include <poll.h>
#include <sys/epoll.h>
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

// SRCE: the next 8 bytes (some maybe in `got` already) say how many bytes
// to send; then the client's EOF.
void serve_source(int c, const std::atomic<bool>& stop, const char* got,
                  size_t got_len) {
  unsigned char n8[8];
  size_t have = 0;
  while (have < 8 && have < got_len) {
    n8[have] = static_cast<unsigned char>(got[have]);
    ++have;
  }
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
}

// SINK: the byte count, big-endian, at the client's EOF.
void send_count(int c, uint64_t sunk) {
  unsigned char out[8];
  for (int i = 0; i < 8; ++i)
    out[i] = static_cast<unsigned char>(sunk >> (56 - 8 * i));
  send_all(c, out, 8);
}

// `pre`: bytes already read from c (by epoll_server), handled as if they
// were the first receive.
void serve_one(int c, const std::atomic<bool>& stop, std::string pre = {}) {
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
    ssize_t k;
    if (!pre.empty()) {
      std::memcpy(buf.data(), pre.data(), pre.size());
      k = static_cast<ssize_t>(pre.size());
      pre.clear();
    } else {
      k = ::recv(c, buf.data(), buf.size(), 0);
    }
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
      if (mode == sink)
        send_count(c, sunk);
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
        serve_source(c, stop, buf.data() + off, static_cast<size_t>(k) - off);
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
    workers_.emplace_back([c, this] { serve_one(c, stop_); });
  }
}

struct epoll_server::impl {
  struct conn {
    std::string head; // bytes seen while they could still be "SINK"/"SRCE"
    std::string pending; // echo bytes the socket would not take yet
    bool decided = false;
  };
  int ep = -1;
  int wake = -1; // a pipe's read end: stop() writes to the other
  int wake_w = -1;
  std::map<int, conn> conns;
  std::mutex mtx; // guards bulk
  std::vector<std::thread> bulk;

  /// Waits for reads only, or for writes too while echo bytes are pending.
  void watch(int c, uint32_t events) {
    epoll_event ev{};
    ev.events = events;
    ev.data.fd = c;
    ::epoll_ctl(ep, EPOLL_CTL_MOD, c, &ev);
  }

  /// Echo as much as the socket takes; keep the rest for EPOLLOUT.
  bool echo(int c, conn& st, const char* p, size_t n) {
    if (st.pending.empty()) {
      auto k = ::send(c, p, n, MSG_NOSIGNAL);
      if (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
        return false;
      size_t sent = k > 0 ? static_cast<size_t>(k) : 0;
      p += sent;
      n -= sent;
      if (n == 0)
        return true;
      watch(c, EPOLLIN | EPOLLOUT);
    }
    st.pending.append(p, n);
    return true;
  }
};

epoll_server::epoll_server(uint16_t port, const std::string& host)
  : impl_(std::make_unique<impl>()) {
  listener_ = listen_tcp(host, port, port_);
  if (!listener_)
    throw std::runtime_error("epoll server: cannot listen on " + host + ":"
                             + std::to_string(port) + ": " + std::strerror(errno));
  ::listen(listener_.get(), 4096);
  ::fcntl(listener_.get(), F_SETFL, O_NONBLOCK);
  int p[2];
  if (::pipe(p) != 0)
    throw std::runtime_error("epoll server: pipe failed");
  impl_->wake = p[0];
  impl_->wake_w = p[1];
  impl_->ep = ::epoll_create1(0);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = listener_.get();
  ::epoll_ctl(impl_->ep, EPOLL_CTL_ADD, listener_.get(), &ev);
  ev.data.fd = impl_->wake;
  ::epoll_ctl(impl_->ep, EPOLL_CTL_ADD, impl_->wake, &ev);
  thread_ = std::thread([this] { loop(); });
}

epoll_server::~epoll_server() {
  stop();
  ::close(impl_->ep);
  ::close(impl_->wake);
  ::close(impl_->wake_w);
}

void epoll_server::stop() {
  if (stop_.exchange(true))
    return;
  char x = 1;
  (void) !::write(impl_->wake_w, &x, 1);
  if (thread_.joinable())
    thread_.join();
  for (auto& [c, st] : impl_->conns)
    ::close(c);
  impl_->conns.clear();
  open_ = 0;
  std::lock_guard<std::mutex> g{impl_->mtx};
  for (auto& t : impl_->bulk)
    if (t.joinable())
      t.join();
}

void epoll_server::loop() {
  auto& I = *impl_;
  std::vector<epoll_event> evs(1024);
  std::vector<char> buf(64 * 1024);
  while (!stop_) {
    int n = ::epoll_wait(I.ep, evs.data(), static_cast<int>(evs.size()), 200);
    for (int i = 0; i < n && !stop_; ++i) {
      int c = evs[i].data.fd;
      if (c == I.wake)
        break;
      if (c == listener_.get()) {
        accept_all();
        continue;
      }
      if (!I.conns.count(c))
        continue;
      if ((evs[i].events & EPOLLOUT) && !flush_pending(c))
        continue;
      if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
        on_readable(c, buf);
    }
  }
}

void epoll_server::accept_all() {
  auto& I = *impl_;
  for (;;) {
    int a = ::accept4(listener_.get(), nullptr, nullptr, SOCK_NONBLOCK);
    if (a < 0)
      break;
    ++connections_;
    ++open_;
    int one = 1;
    setsockopt(a, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    I.conns[a];
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = a;
    ::epoll_ctl(I.ep, EPOLL_CTL_ADD, a, &ev);
  }
}

void epoll_server::drop(int c) {
  ::epoll_ctl(impl_->ep, EPOLL_CTL_DEL, c, nullptr);
  ::close(c);
  impl_->conns.erase(c);
  --open_;
}

bool epoll_server::flush_pending(int c) {
  auto& st = impl_->conns.at(c);
  auto k = ::send(c, st.pending.data(), st.pending.size(), MSG_NOSIGNAL);
  if (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
    drop(c);
    return false;
  }
  if (k > 0)
    st.pending.erase(0, static_cast<size_t>(k));
  if (st.pending.empty())
    impl_->watch(c, EPOLLIN);
  return true;
}

void epoll_server::on_readable(int c, std::vector<char>& buf) {
  auto& I = *impl_;
  auto it = I.conns.find(c);
  auto& st = it->second;
  auto k = ::recv(c, buf.data(), buf.size(), 0);
  if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
    return;
  if (k <= 0) { // EOF: echo what is held back, then close
    if (!st.decided && !st.head.empty())
      I.echo(c, st, st.head.data(), st.head.size());
    if (st.pending.empty())
      ::shutdown(c, SHUT_WR);
    drop(c);
    return;
  }
  if (st.decided) {
    if (!I.echo(c, st, buf.data(), static_cast<size_t>(k)))
      drop(c);
    return;
  }
  st.head.append(buf.data(), static_cast<size_t>(k));
  auto prefix_of = [&](const char* magic) {
    auto m = std::min<size_t>(st.head.size(), 4);
    return std::memcmp(st.head.data(), magic, m) == 0;
  };
  if ((prefix_of("SINK") || prefix_of("SRCE")) && st.head.size() < 4)
    return; // may still become a bulk transfer
  if (prefix_of("SINK") || prefix_of("SRCE")) {
    // Bulk: a thread of its own, blocking, as in echo_server.
    std::string pre = std::move(st.head);
    ::epoll_ctl(I.ep, EPOLL_CTL_DEL, c, nullptr);
    I.conns.erase(it);
    --open_;
    ::fcntl(c, F_SETFL, 0);
    std::lock_guard<std::mutex> g{I.mtx};
    I.bulk.emplace_back(
      [c, this, pre = std::move(pre)]() mutable { serve_one(c, stop_, std::move(pre)); });
    return;
  }
  st.decided = true;
  std::string head = std::move(st.head);
  if (!I.echo(c, st, head.data(), head.size()))
    drop(c);
}

bool echo_in_pieces(uint16_t port, size_t bytes, uint64_t seed, int pause_ms) {
  auto s = connect_tcp("127.0.0.1", port, 10000);
  if (!s)
    return false;
  auto data = random_bytes(bytes, seed);
  size_t piece = std::max<size_t>(bytes / 4, 1);
  for (size_t off = 0; off < bytes; off += piece) {
    if (!send_all(s.get(), data.data() + off, std::min(piece, bytes - off)))
      return false;
    if (pause_ms > 0)
      ::usleep(static_cast<useconds_t>(pause_ms) * 1000);
  }
  ::shutdown(s.get(), SHUT_WR);
  std::vector<char> back;
  return recv_to_eof(s.get(), back, bytes + 1) && back == data;
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
