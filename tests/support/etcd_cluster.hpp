#pragma once
// A real etcd cluster (Debian's etcd-server) on 127.0.0.1 for the tests:
// free client and peer ports, data in a make_temp_dir, short heartbeat and
// election times for loopback; members stopped by PID (SIGKILL) with the
// cluster, or one at a time by the test.

#include <chrono>
#include <memory>
#include <string>
#include <vector>
#include <sys/types.h>

#include "tests/support/proc.hpp"

namespace drtp::test {

class etcd_cluster {
public:
  /// Starts `members` members and waits until every one is healthy; throws
  /// std::runtime_error (one line, with the end of a member's log) if not.
  explicit etcd_cluster(size_t members = 3,
                        std::chrono::milliseconds timeout = std::chrono::seconds(20));
  ~etcd_cluster(); // kills every member, removes the data
  etcd_cluster(const etcd_cluster&) = delete;
  etcd_cluster& operator=(const etcd_cluster&) = delete;

  size_t size() const { return members_.size(); }
  uint16_t client_port(size_t i) const { return members_.at(i).client_port; }
  /// "http://127.0.0.1:P1,http://127.0.0.1:P2,..."
  std::string client_urls() const;
  /// "etcd:" + client_urls(): drtp-control's `store:`.
  std::string store_url() const { return "etcd:" + client_urls(); }
  pid_t pid(size_t i) const;
  bool running(size_t i) const;

  /// SIGKILL member i and reap it.
  void kill(size_t i);
  /// Starts member i again on its data; true once it is healthy.
  bool restart(size_t i, std::chrono::milliseconds timeout = std::chrono::seconds(20));
  /// Whether every running member says healthy (it has a leader) within timeout.
  bool wait_healthy(std::chrono::milliseconds timeout);
  /// Whether member i answers /health with "true" now.
  bool healthy(size_t i) const;
  /// The end of member i's log, for a failure message.
  std::string log_tail(size_t i) const;

private:
  struct member {
    std::string name;
    uint16_t client_port = 0;
    uint16_t peer_port = 0;
    std::unique_ptr<process> proc;
  };
  void start(size_t i);

  std::string dir_;
  std::string initial_cluster_;
  std::vector<member> members_;
};

} // namespace drtp::test
