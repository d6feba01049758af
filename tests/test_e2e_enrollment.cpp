// Enrollment end to end with the real binaries (issue 15): drtp-control
// --dev --cert-lifetime 60 (its CA), drtp-pop following it (it learns the
// CA), drtpctl registers a service with a public gateway, and
//
//  - drtp serve --state-dir enrolls by the secret: DIR/identity.json (0600,
//    no secret in it), the POP logs the agent in by its certificate; one
//    visitor connection keeps echoing while the certificate is renewed in
//    band (at ~40 s) and past the first certificate's notAfter (60 s);
//    a restart without any secret starts from identity.json; deleting the
//    service drops the tunnel (the time is printed);
//  - drtp connect --state-dir, a principal, the same: enrolled, then by
//    certificate without the secret.

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <memory>
#include <netinet/in.h>
#include <string>
#include <sys/socket.h>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include "tests/support/proc.hpp"
#include "tests/support/sock.hpp"

using namespace drtp::test;
using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

namespace {

std::string bin(const std::string& name) {
  return bin_dir() + "/" + name;
}

drtp::sock::fd dial(uint16_t port) {
  drtp::sock::fd s(::socket(AF_INET, SOCK_STREAM, 0));
  if (!s)
    return s;
  timeval tv{3, 0};
  ::setsockopt(s.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(s.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  sockaddr_in dst{};
  dst.sin_family = AF_INET;
  dst.sin_port = htons(port);
  ::inet_pton(AF_INET, "127.0.0.1", &dst.sin_addr);
  if (::connect(s.get(), reinterpret_cast<sockaddr*>(&dst), sizeof dst) != 0)
    return drtp::sock::fd{};
  return s;
}

bool echo_on(int fd, uint64_t seed) {
  auto data = drtp::sock::random_bytes(1024, seed);
  std::vector<char> back(data.size());
  return drtp::sock::send_all(fd, data.data(), data.size())
         && drtp::sock::recv_all(fd, back.data(), back.size()) && back == data;
}

bool echo_once(uint16_t port, uint64_t seed) {
  auto s = dial(port);
  return s && echo_on(s.get(), seed);
}

template <class F>
long long until(F ok, std::chrono::milliseconds timeout) {
  auto t0 = clock_type::now();
  while (clock_type::now() - t0 < timeout) {
    if (ok())
      return std::chrono::duration_cast<std::chrono::milliseconds>(clock_type::now() - t0).count();
    std::this_thread::sleep_for(50ms);
  }
  return -1;
}

class enrollment : public ::testing::Test {
protected:
  void SetUp() override {
    dir_ = make_temp_dir("enroll");
    cp_ = dir_ + "/control";
    auto control_port = free_port();
    base_ = "https://127.0.0.1:" + std::to_string(control_port);
    control_ = std::make_unique<process>(
      std::vector<std::string>{bin("drtp-control"), "--dev", "--state-dir", cp_, "--listen",
                               "127.0.0.1:" + std::to_string(control_port), "--cert-lifetime",
                               "60"},
      process_options{{}, "", SIGTERM, 3000ms});
    ASSERT_TRUE(control_->wait_for("drtp-control: listening on", 15s)) << control_->output();
    pin_ = read_line(cp_ + "/pin");
    process gen({bin("drtp-pop"), "gen-cert", "--cert", dir_ + "/pop.crt", "--key",
                 dir_ + "/pop.key"});
    ASSERT_EQ(gen.wait_exit(10s), 0) << gen.output();
    pop_ = std::make_unique<process>(std::vector<std::string>{
      bin("drtp-pop"), "--control", base_, "--control-pin", pin_, "--name", "pop-a", "--region",
      "eu", "--pop-secret-file", cp_ + "/pops.secret", "--public-address", "127.0.0.1",
      "--public-host", "127.0.0.1", "--state-dir", dir_ + "/pop-a", "--listen",
      "127.0.0.1:" + std::to_string(free_port()), "--cert", dir_ + "/pop.crt", "--key",
      dir_ + "/pop.key"});
    ASSERT_TRUE(pop_->wait_for("registered", 15s)) << pop_->output();
  }

  void TearDown() override {
    agent_.reset();
    pop_.reset();
    control_.reset();
    remove_tree(dir_);
  }

  int ctl(const std::string& args, std::string& out) {
    auto r = run_shell(bin("drtpctl") + " --control " + base_ + " --pin " + pin_
                       + " --token-file " + cp_ + "/admin.token " + args + " 2>&1");
    out = r.out;
    return r.rc;
  }

  std::vector<std::string> control_flags() const {
    return {"--control", base_, "--control-pin", pin_};
  }

  std::unique_ptr<process> serve(bool with_secret) {
    std::vector<std::string> argv{bin("drtp"), "serve"};
    for (auto& f : control_flags())
      argv.push_back(f);
    for (auto f : {"--service", "echo", "--region", "eu", "--tunnels", "1", "--state-dir"})
      argv.emplace_back(f);
    argv.push_back(dir_ + "/agent");
    if (with_secret) {
      argv.emplace_back("--secret-file");
      argv.push_back(dir_ + "/echo.secret");
    }
    return std::make_unique<process>(argv, process_options{{}, "", SIGTERM, 3000ms});
  }

  std::string dir_, cp_, base_, pin_;
  std::unique_ptr<process> control_, pop_, agent_;
};

} // namespace

TEST_F(enrollment, an_agent_enrolls_renews_in_band_and_restarts_without_its_secret) {
  std::string out;
  drtp::sock::echo_server echo;
  ASSERT_EQ(ctl("create service echo --local 127.0.0.1:" + std::to_string(echo.port())
                  + " --secret-out " + dir_ + "/echo.secret",
                out),
            0)
    << out;
  auto port = free_port();
  ASSERT_EQ(ctl("create gateway echo-gw --service echo --port " + std::to_string(port), out), 0)
    << out;

  auto t0 = clock_type::now();
  agent_ = serve(true);
  ASSERT_TRUE(agent_->wait_for("certificate for service/echo", 20s)) << agent_->output();
  ASSERT_TRUE(pop_->wait_for("certificate login of agent", 20s)) << pop_->output();
  ASSERT_GE(until([&] { return echo_once(port, 1); }, 20s), 0) << agent_->output();
  std::printf("figure: enrolled and serving by certificate %.0f ms after drtp serve started\n",
              std::chrono::duration<double, std::milli>(clock_type::now() - t0).count());
  struct stat st{};
  auto id_file = dir_ + "/agent/identity.json";
  ASSERT_EQ(::stat(id_file.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto secret = read_line(dir_ + "/echo.secret");
  EXPECT_EQ(read_text(id_file).find(secret), std::string::npos) << "no secret in identity.json";
  EXPECT_EQ(agent_->output().find(secret), std::string::npos);

  // One visitor connection held across the renewal (2/3 of 60 s, counted
  // from receipt) and past the first certificate's notAfter.
  auto held = dial(port);
  ASSERT_TRUE(held);
  int echoes = 0;
  auto started = clock_type::now();
  while (clock_type::now() - started < 68s) {
    ASSERT_TRUE(echo_on(held.get(), 100 + echoes))
      << "the held connection broke after "
      << std::chrono::duration<double>(clock_type::now() - started).count() << " s\n"
      << pop_->output() << agent_->output();
    ++echoes;
    std::this_thread::sleep_for(500ms);
  }
  EXPECT_TRUE(pop_->wait_for("renewed certificate of agent", 1s)) << pop_->output();
  EXPECT_EQ(pop_->count("expired: tunnel closed"), 0u) << pop_->output();
  EXPECT_GE(agent_->count("certificate for service/echo"), 2u) << agent_->output();
  std::printf("figure: one connection echoed %d times over 68 s across the in-band renewal; "
              "the POP: %zu certificate login(s), %zu renewal(s)\n",
              echoes, pop_->count("certificate login of agent"),
              pop_->count("renewed certificate of agent"));

  // A restart without any secret: identity.json signs in.
  held = drtp::sock::fd{};
  agent_.reset();
  agent_ = serve(false);
  ASSERT_TRUE(agent_->wait_for("saved certificate for service/echo", 10s)) << agent_->output();
  ASSERT_GE(until([&] { return echo_once(port, 2); }, 20s), 0) << agent_->output();

  // Deleting the service: the POP drops its tunnel and refuses visitors.
  auto logins = pop_->count("service 'echo' removed");
  auto d0 = clock_type::now();
  ASSERT_EQ(ctl("delete service echo", out), 0) << out;
  auto gone = until([&] { return pop_->count("service 'echo' removed") > logins; }, 10s);
  EXPECT_GE(gone, 0) << pop_->output();
  std::printf("figure: drtpctl delete service -> the POP dropped the agent's tunnel in %lld ms "
              "(%.0f ms with drtpctl)\n",
              gone, std::chrono::duration<double, std::milli>(clock_type::now() - d0).count());
  EXPECT_FALSE(echo_once(port, 3));
}

TEST_F(enrollment, a_principal_enrolls_and_connects_by_certificate_afterwards) {
  std::string out;
  drtp::sock::echo_server echo;
  ASSERT_EQ(ctl("create service echo --local 127.0.0.1:" + std::to_string(echo.port())
                  + " --secret-out " + dir_ + "/echo.secret",
                out),
            0)
    << out;
  ASSERT_EQ(ctl("create principal sam --secret-out " + dir_ + "/sam.secret", out), 0) << out;
  ASSERT_EQ(ctl("create gateway echo-pp --service echo --private --allow-principal sam", out), 0)
    << out;
  agent_ = serve(true);
  ASSERT_TRUE(pop_->wait_for("certificate login of agent", 20s)) << pop_->output();

  auto listen = free_port();
  auto connect = [&](bool with_secret) {
    std::vector<std::string> argv{bin("drtp"), "connect"};
    for (auto& f : control_flags())
      argv.push_back(f);
    for (auto f : {"--service", "echo", "--principal", "sam", "--tunnels", "1", "--state-dir"})
      argv.emplace_back(f);
    argv.push_back(dir_ + "/sam");
    argv.emplace_back("--listen");
    argv.push_back("127.0.0.1:" + std::to_string(listen));
    if (with_secret) {
      argv.emplace_back("--secret-file");
      argv.push_back(dir_ + "/sam.secret");
    }
    return std::make_unique<process>(argv, process_options{{}, "", SIGTERM, 3000ms});
  };
  auto client = connect(true);
  ASSERT_TRUE(client->wait_for("certificate for principal/sam", 20s)) << client->output();
  ASSERT_GE(until([&] { return echo_once(listen, 4); }, 20s), 0)
    << client->output() << pop_->output();
  EXPECT_TRUE(pop_->wait_for("certificate login of principal 'sam'", 5s)) << pop_->output();
  client.reset();
  client = connect(false);
  ASSERT_TRUE(client->wait_for("saved certificate for principal/sam", 10s)) << client->output();
  ASSERT_GE(until([&] { return echo_once(listen, 5); }, 20s), 0) << client->output();
  EXPECT_GE(pop_->count("certificate login of principal 'sam'"), 2u) << pop_->output();
}
