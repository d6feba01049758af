// A gateway's allow_cidr in a static drtp-pop config, on real sockets
// (issue 15): service v4 public on 127.0.0.1 allows 127.0.0.2/32 (a visitor
// bound to 127.0.0.2 passes, one from 127.0.0.1 is refused at accept with an
// audit line naming the gateway and the source); service v6 public on [::1]
// allows ::1/128 (a ::1 visitor passes); then the file allows fd00::/8 and
// SIGHUP: a new ::1 visitor is refused within 1 s while the session opened
// before (end_open_sessions off) keeps echoing.

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <memory>
#include <netinet/in.h>
#include <string>
#include <sys/socket.h>
#include <thread>
#include <vector>

#include "tests/support/proc.hpp"
#include "tests/support/sock.hpp"

using namespace std::chrono_literals;
using drtp::test::process;
using clock_type = std::chrono::steady_clock;

namespace {

/// A connection to host:port (IPv4 or IPv6 literal) from source `from`.
drtp::sock::fd dial_from(const std::string& from, const std::string& host, uint16_t port) {
  bool v6 = host.find(':') != std::string::npos;
  drtp::sock::fd s(::socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM, 0));
  if (!s)
    return s;
  timeval tv{2, 0};
  ::setsockopt(s.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(s.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  if (v6) {
    sockaddr_in6 src{}, dst{};
    src.sin6_family = dst.sin6_family = AF_INET6;
    ::inet_pton(AF_INET6, from.c_str(), &src.sin6_addr);
    ::inet_pton(AF_INET6, host.c_str(), &dst.sin6_addr);
    dst.sin6_port = htons(port);
    if (::bind(s.get(), reinterpret_cast<sockaddr*>(&src), sizeof src) != 0
        || ::connect(s.get(), reinterpret_cast<sockaddr*>(&dst), sizeof dst) != 0)
      return drtp::sock::fd{};
    return s;
  }
  sockaddr_in src{}, dst{};
  src.sin_family = dst.sin_family = AF_INET;
  ::inet_pton(AF_INET, from.c_str(), &src.sin_addr);
  ::inet_pton(AF_INET, host.c_str(), &dst.sin_addr);
  dst.sin_port = htons(port);
  if (::bind(s.get(), reinterpret_cast<sockaddr*>(&src), sizeof src) != 0
      || ::connect(s.get(), reinterpret_cast<sockaddr*>(&dst), sizeof dst) != 0)
    return drtp::sock::fd{};
  return s;
}

bool echo_on(int fd, uint64_t seed) {
  auto data = drtp::sock::random_bytes(1024, seed);
  std::vector<char> back(data.size());
  return drtp::sock::send_all(fd, data.data(), data.size())
         && drtp::sock::recv_all(fd, back.data(), back.size()) && back == data;
}

bool echo_from(const std::string& from, const std::string& host, uint16_t port, uint64_t seed) {
  auto s = dial_from(from, host, port);
  return s && echo_on(s.get(), seed);
}

class allowlist : public ::testing::Test {
protected:
  void SetUp() override {
    dir_ = drtp::test::make_temp_dir("allowlist");
    for (auto name : {"v4", "v6"})
      std::ofstream{dir_ + "/" + name + ".secret"} << "secret of " << name << "\n";
    port4_ = drtp::test::free_port();
    port6_ = drtp::test::free_port();
  }

  void TearDown() override {
    agents_.clear();
    pop_.reset();
    drtp::test::remove_tree(dir_);
  }

  static std::string bin(const std::string& name) {
    return drtp::test::bin_dir() + "/" + name;
  }

  void write_config(const std::string& v6_cidr) {
    std::ofstream out{dir_ + "/pop.yaml"};
    out << "listen: 127.0.0.1:0\nservices:\n"
        << "  - name: v4\n    secret_file: " << dir_ << "/v4.secret\n"
        << "    public: 127.0.0.1:" << port4_ << "\n    gateway: v4-gw\n"
        << "    allow_cidr: [127.0.0.2/32]\n"
        << "  - name: v6\n    secret_file: " << dir_ << "/v6.secret\n"
        << "    public: '[::1]:" << port6_ << "'\n    gateway: v6-gw\n"
        << "    allow_cidr: ['" << v6_cidr << "']\n";
  }

  void serve(const std::string& service) {
    agents_.push_back(std::make_unique<process>(std::vector<std::string>{
      bin("drtp"), "serve", "--pop",
      "127.0.0.1:" + std::to_string(tunnel_port_) + ",fingerprint=" + fp_, "--service",
      service, "--local", "127.0.0.1:" + std::to_string(echo_.port()), "--secret-file",
      dir_ + "/" + service + ".secret"}));
    ASSERT_TRUE(agents_.back()->wait_for("1 of 1 up", 10s)) << agents_.back()->output();
  }

  std::string dir_, fp_;
  uint16_t port4_ = 0, port6_ = 0;
  unsigned tunnel_port_ = 0;
  std::unique_ptr<process> pop_;
  std::vector<std::unique_ptr<process>> agents_;
  drtp::sock::echo_server echo_;
};

} // namespace

TEST_F(allowlist, ipv4_and_ipv6_sources_are_admitted_or_refused_and_a_reload_spares_open_ones) {
  write_config("::1/128");
  pop_ = std::make_unique<process>(
    std::vector<std::string>{bin("drtp-pop"), "--config", dir_ + "/pop.yaml", "--dev"});
  ASSERT_TRUE(pop_->wait_for_count("public on", 2, 10s)) << pop_->output();
  auto out = pop_->output();
  fp_ = out.substr(out.find("certificate sha256:") + 12, 7 + 64);
  tunnel_port_ = drtp::test::number_after(out, "agents dial 127.0.0.1:");
  serve("v4");
  serve("v6");

  EXPECT_TRUE(echo_from("127.0.0.2", "127.0.0.1", port4_, 1)) << pop_->output();
  EXPECT_FALSE(echo_from("127.0.0.1", "127.0.0.1", port4_, 2));
  ASSERT_TRUE(pop_->wait_for("127.0.0.1", 2s));
  EXPECT_TRUE(pop_->wait_for("v4-gw", 2s)) << pop_->output();
  for (auto& line : {std::string("v4-gw")}) {
    auto at = pop_->output().find(line);
    auto start = pop_->output().rfind('\n', at);
    auto end = pop_->output().find('\n', at);
    std::printf("audit: %s\n", pop_->output().substr(start + 1, end - start - 1).c_str());
  }

  auto held = dial_from("::1", "::1", port6_);
  ASSERT_TRUE(held);
  ASSERT_TRUE(echo_on(held.get(), 3)) << pop_->output();

  // ::1 is outside fd00::/8: new visitors refused, the open session stays.
  write_config("fd00::/8");
  auto t0 = clock_type::now();
  pop_->signal(SIGHUP);
  ASSERT_TRUE(pop_->wait_for("config reloaded", 5s)) << pop_->output();
  bool refused = false;
  while (clock_type::now() - t0 < 1s && !refused)
    refused = !echo_from("::1", "::1", port6_, 4);
  auto ms = std::chrono::duration<double, std::milli>(clock_type::now() - t0).count();
  EXPECT_TRUE(refused) << pop_->output();
  std::printf("figure: SIGHUP -> a new ::1 visitor refused after %.0f ms (bound: 1000)\n", ms);
  for (int i = 0; i < 5; ++i)
    EXPECT_TRUE(echo_on(held.get(), 10 + i)) << "the session opened before stays";
  EXPECT_TRUE(echo_from("127.0.0.2", "127.0.0.1", port4_, 5)) << "the other service unchanged";
}
