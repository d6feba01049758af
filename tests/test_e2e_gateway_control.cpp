// Gateways end to end with the real binaries (issue 15): drtp-control --dev,
// drtp-pop following it (public host 127.0.0.1), drtpctl creates a service
// and a public gateway with --allow-cidr 127.0.0.2/32, drtp serve runs the
// agent; `drtpctl get gateway` shows the POP's address and the port; a
// visitor from 127.0.0.2 passes bytes. A change applied with drtpctl apply
// reaches the POP: how long until a new visitor sees it is printed.
//
// The refusal of a visitor from 127.0.0.3 needs the POP's enforcement of
// allow_cidr: it runs when check_cidr_refusal is true (or
// DRTP_CHECK_CIDR_REFUSAL=1 in the environment).

#include <gtest/gtest.h>

#include <algorithm>
#include <arpa/inet.h>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <netinet/in.h>
#include <string>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include "tests/support/proc.hpp"
#include "tests/support/sock.hpp"

using namespace drtp::test;
using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

namespace {

/// Whether the POP refuses visitors outside allowCIDRs (h-gwpop's part):
/// turn on once it is merged.
constexpr bool check_cidr_refusal = true;

bool refusal_checked() {
  const char* env = std::getenv("DRTP_CHECK_CIDR_REFUSAL");
  return check_cidr_refusal || (env && std::string(env) == "1");
}

std::string bin(const std::string& name) {
  return bin_dir() + "/" + name;
}

/// One echo session to 127.0.0.1:port from source address `from`
/// (127.0.0.0/8 is all loopback on Linux); false on any failure.
bool echo_from(const std::string& from, uint16_t port, uint64_t seed) {
  drtp::sock::fd s(::socket(AF_INET, SOCK_STREAM, 0));
  if (!s)
    return false;
  timeval tv{2, 0};
  ::setsockopt(s.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(s.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  sockaddr_in src{};
  src.sin_family = AF_INET;
  ::inet_pton(AF_INET, from.c_str(), &src.sin_addr);
  if (::bind(s.get(), reinterpret_cast<sockaddr*>(&src), sizeof src) != 0)
    return false;
  sockaddr_in dst{};
  dst.sin_family = AF_INET;
  dst.sin_port = htons(port);
  ::inet_pton(AF_INET, "127.0.0.1", &dst.sin_addr);
  if (::connect(s.get(), reinterpret_cast<sockaddr*>(&dst), sizeof dst) != 0)
    return false;
  auto data = drtp::sock::random_bytes(2048, seed);
  std::vector<char> back(data.size());
  return drtp::sock::send_all(s.get(), data.data(), data.size())
         && drtp::sock::recv_all(s.get(), back.data(), back.size()) && back == data;
}

/// Polls `ok` every 20 ms; the milliseconds until it held, or -1 at the deadline.
template <class F>
long long until(F ok, std::chrono::milliseconds timeout) {
  auto t0 = clock_type::now();
  while (clock_type::now() - t0 < timeout) {
    if (ok())
      return std::chrono::duration_cast<std::chrono::milliseconds>(clock_type::now() - t0).count();
    std::this_thread::sleep_for(20ms);
  }
  return -1;
}

class gateway_control : public ::testing::Test {
protected:
  void SetUp() override {
    dir_ = make_temp_dir("gwctl");
    cp_ = dir_ + "/control";
    auto control_port = free_port();
    base_ = "https://127.0.0.1:" + std::to_string(control_port);
    control_ = std::make_unique<process>(
      std::vector<std::string>{bin("drtp-control"), "--dev", "--state-dir", cp_, "--listen",
                               "127.0.0.1:" + std::to_string(control_port)},
      process_options{{}, "", SIGTERM, 3000ms});
    ASSERT_TRUE(control_->wait_for("drtp-control: listening on", 15s)) << control_->output();
    pin_ = read_line(cp_ + "/pin");
    ASSERT_EQ(pin_.rfind("sha256:", 0), 0u) << pin_;
  }

  void TearDown() override {
    agent_.reset();
    pop_.reset();
    control_.reset();
    remove_tree(dir_);
  }

  /// drtpctl with the connection flags; its exit status, output in `out`.
  int ctl(const std::string& args, std::string& out) {
    auto r = run_shell(bin("drtpctl") + " --control " + base_ + " --pin " + pin_ + " --token-file "
                       + cp_ + "/admin.token " + args + " 2>&1");
    out = r.out;
    return r.rc;
  }

  std::string dir_, cp_, base_, pin_;
  std::unique_ptr<process> control_, pop_, agent_;
};

} // namespace

TEST_F(gateway_control, a_gateway_made_with_drtpctl_reaches_the_pop) {
  std::string out;
  process gen({bin("drtp-pop"), "gen-cert", "--cert", dir_ + "/pop.crt", "--key",
               dir_ + "/pop.key"});
  ASSERT_EQ(gen.wait_exit(10s), 0) << gen.output();
  auto tunnel_port = free_port();
  pop_ = std::make_unique<process>(std::vector<std::string>{
    bin("drtp-pop"), "--control", base_, "--control-pin", pin_, "--name", "pop-a", "--region",
    "eu", "--pop-secret-file", cp_ + "/pops.secret", "--public-address", "127.0.0.1",
    "--public-host", "127.0.0.1", "--state-dir", dir_ + "/pop-a", "--listen",
    "127.0.0.1:" + std::to_string(tunnel_port), "--cert", dir_ + "/pop.crt", "--key",
    dir_ + "/pop.key"});
  ASSERT_TRUE(pop_->wait_for("registered", 15s)) << pop_->output();

  drtp::sock::echo_server echo;
  ASSERT_EQ(ctl("create service echo --local 127.0.0.1:" + std::to_string(echo.port())
                  + " --secret-out " + dir_ + "/echo.secret",
                out),
            0)
    << out;
  auto port = free_port();
  ASSERT_EQ(ctl("create gateway echo-gw --service echo --port " + std::to_string(port)
                  + " --allow-cidr 127.0.0.2/32",
                out),
            0)
    << out;
  EXPECT_NE(out.find("gateway/echo-gw created"), std::string::npos) << out;
  // A second public gateway for the service: refused, one line.
  EXPECT_EQ(ctl("create gateway other --service echo --port " + std::to_string(free_port()), out),
            1);
  EXPECT_NE(out.find("echo-gw"), std::string::npos) << out;
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 1) << out;

  agent_ = std::make_unique<process>(
    std::vector<std::string>{bin("drtp"), "serve", "--control", base_, "--control-pin", pin_,
                             "--service", "echo", "--secret-file", dir_ + "/echo.secret",
                             "--region", "eu", "--tunnels", "1"},
    process_options{{}, "", SIGTERM, 3000ms});
  auto first = until([&] { return echo_from("127.0.0.2", port, 1); }, 20s);
  ASSERT_GE(first, 0) << pop_->output() << agent_->output();
  std::printf("figure: a visitor from 127.0.0.2 passed bytes %lld ms after drtp serve started\n",
              first);

  // drtpctl get gateway: the POP's address and the gateway's port (once
  // the agent has reported its tunnel).
  auto want = "pop-a=127.0.0.1:" + std::to_string(port);
  auto shown = until(
    [&] { return ctl("get gateway", out) == 0 && out.find(want) != std::string::npos; }, 15s);
  EXPECT_GE(shown, 0) << out;
  EXPECT_NE(out.find("NAME"), std::string::npos);
  EXPECT_NE(out.find("ADDRESSES"), std::string::npos);
  std::printf("%s", out.c_str());
  EXPECT_EQ(ctl("get gw echo-gw -o json", out), 0);
  EXPECT_NE(out.find("\"addresses\""), std::string::npos) << out;

  if (refusal_checked())
    EXPECT_FALSE(echo_from("127.0.0.3", port, 2)) << "127.0.0.3 is outside 127.0.0.2/32";

  // A change by drtpctl apply: a new port, 127.0.0.3 allowed instead.
  auto port2 = free_port();
  {
    std::ofstream f(dir_ + "/gw.yaml");
    f << "apiVersion: drtp.dev/v1\nkind: Gateway\nmetadata:\n  name: echo-gw\nspec:\n"
         "  service: echo\n  type: public\n  port: "
      << port2 << "\n  allowCIDRs: [127.0.0.3/32]\n";
  }
  auto t0 = clock_type::now();
  ASSERT_EQ(ctl("apply -f " + dir_ + "/gw.yaml", out), 0) << out;
  EXPECT_NE(out.find("gateway/echo-gw configured"), std::string::npos) << out;
  auto seen = until([&] { return echo_from("127.0.0.3", port2, 3); }, 10s);
  ASSERT_GE(seen, 0) << pop_->output();
  auto total = std::chrono::duration_cast<std::chrono::milliseconds>(clock_type::now() - t0).count();
  std::printf("figure: drtpctl apply -> a new visitor passes on the new port in %lld ms "
              "(apply included: %lld ms; target <= 1000)\n",
              seen, static_cast<long long>(total));
  if (refusal_checked()) {
    auto refused = until([&] { return !echo_from("127.0.0.2", port2, 4); }, 5s);
    EXPECT_GE(refused, 0) << "127.0.0.2 is outside 127.0.0.3/32 now";
    std::printf("figure: the narrowed allowCIDRs refuse 127.0.0.2 within %lld ms\n", refused);
  } else {
    std::printf("note: CIDR refusal not checked (the POP's enforcement is h-gwpop's; set "
                "check_cidr_refusal or DRTP_CHECK_CIDR_REFUSAL=1)\n");
  }
  EXPECT_EQ(ctl("delete gateway echo-gw", out), 0) << out;
}
