#pragma once
// Plain blocking sockets for the bench, the demo and the tests: a known-good
// echo service and clients that do not share a line of code with DRTP.

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace drtp::sock {

/// RAII file descriptor.
class fd {
public:
  fd() = default;
  explicit fd(int x) : fd_(x) {}
  fd(fd&& o) noexcept : fd_(o.release()) {}
  fd& operator=(fd&& o) noexcept;
  ~fd();
  int get() const { return fd_; }
  int release() { int x = fd_; fd_ = -1; return x; }
  explicit operator bool() const { return fd_ >= 0; }
private:
  int fd_ = -1;
};

/// Connects to host:port (IPv4 literal or "localhost"); invalid fd on error,
/// with errno set. `timeout_ms` bounds connect and every later recv/send.
fd connect_tcp(const std::string& host, uint16_t port, int timeout_ms = 5000);

/// Listens on 127.0.0.1:port (0 = any free port).
fd listen_tcp(const std::string& host, uint16_t port, uint16_t& bound_port);

bool send_all(int s, const void* data, size_t n);
/// Reads exactly n bytes; false on EOF, error or timeout.
bool recv_all(int s, void* data, size_t n);
/// Reads until EOF into out (at most max_bytes). false on error or timeout.
bool recv_to_eof(int s, std::vector<char>& out, size_t max_bytes);

/// A thread-per-connection echo service that also knows two extra tricks:
/// a connection that starts with "SINK" is drained and answered with the
/// 8-byte count at EOF (upload throughput), one that starts with "SRCE" gets
/// the next 8 bytes' worth of bytes sent to it (download throughput).
class echo_server {
public:
  explicit echo_server(uint16_t port = 0, const std::string& host = "127.0.0.1");
  ~echo_server();
  uint16_t port() const { return port_; }
  uint64_t connections() const { return connections_; }
  void stop();

private:
  void accept_loop();
  fd listener_;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> connections_{0};
  std::thread thread_;
  std::vector<std::thread> workers_;
};

/// One epoll thread that echoes any number of connections, cheaply: the
/// benchmark's service for round trips, new connections per second and
/// thousands of idle sessions (a thread per connection would put the
/// harness's own memory in the way). A connection that starts with "SINK"
/// or "SRCE" is handed to a thread of its own and behaves as in
/// echo_server (bulk throughput); any other first byte means echo at once,
/// so a 1-byte probe comes straight back.
class epoll_server {
public:
  explicit epoll_server(uint16_t port = 0, const std::string& host = "127.0.0.1");
  ~epoll_server();
  uint16_t port() const { return port_; }
  uint64_t connections() const { return connections_; }
  /// Connections held open by the epoll thread right now.
  uint64_t open_now() const { return open_; }
  void stop();

private:
  struct impl;
  void loop();
  void accept_all();
  void drop(int c);
  /// Sends what is pending for `c`; false if that dropped it.
  bool flush_pending(int c);
  void on_readable(int c, std::vector<char>& buf);
  std::unique_ptr<impl> impl_;
  fd listener_;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> connections_{0};
  std::atomic<uint64_t> open_{0};
  std::thread thread_;
};

/// Deterministic pseudo-random bytes.
std::vector<char> random_bytes(size_t n, uint64_t seed);

/// One echo session through 127.0.0.1:`port`: random_bytes(bytes, seed) sent
/// in four pieces with `pause_ms` between them (a session that lives a
/// while, so faults land in the middle of some), then EOF; true if exactly
/// the same bytes came back.
bool echo_in_pieces(uint16_t port, size_t bytes, uint64_t seed, int pause_ms);

} // namespace drtp::sock
