// drtp-pop reloads its config on SIGHUP, on real sockets: sessions stream
// through service A without a failure while service B is added, rekeyed,
// refused a bad file and removed.

#include <gtest/gtest.h>

#include <atomic>
#include <csignal>
#include <fstream>
#include <memory>
#include <sys/socket.h>
#include <thread>

#include "tests/support/proc.hpp"
#include "tests/support/sock.hpp"

using namespace std::chrono_literals;
using drtp::test::process;

namespace {

class reload : public ::testing::Test {
protected:
  void SetUp() override {
    dir_ = drtp::test::make_temp_dir("reload");
    for (auto name : {"a", "b", "b2"})
      std::ofstream{dir_ + "/" + name + ".secret"} << "secret of " << name << "\n";
    port_a_ = drtp::test::free_port();
    port_b_ = drtp::test::free_port();
  }

  void TearDown() override {
    stop_ = true;
    for (auto& t : load_)
      t.join();
    agent_a_.reset();
    agent_b_.reset();
    pop_.reset();
    drtp::test::remove_tree(dir_);
  }

  static std::string bin(const std::string& name) {
    return drtp::test::bin_dir() + "/" + name;
  }

  /// The config with service a, and b with `b_secret` unless empty.
  void write_config(const std::string& b_secret) {
    std::ofstream out{dir_ + "/pop.yaml"};
    out << "listen: 127.0.0.1:0\nservices:\n"
        << "  - name: a\n    secret_file: " << dir_ << "/a.secret\n"
        << "    public: 127.0.0.1:" << port_a_ << "\n";
    if (!b_secret.empty())
      out << "  - name: b\n    secret_file: " << dir_ << "/" << b_secret << ".secret\n"
          << "    public: 127.0.0.1:" << port_b_ << "\n";
  }

  std::unique_ptr<process> serve(const std::string& service, const std::string& secret) {
    return std::make_unique<process>(std::vector<std::string>{
      bin("drtp"), "serve", "--pop",
      "127.0.0.1:" + std::to_string(tunnel_port_) + ",fingerprint=" + fp_, "--service",
      service, "--local", "127.0.0.1:" + std::to_string(echo_.port()), "--secret-file",
      dir_ + "/" + secret + ".secret"});
  }

  // In pieces with pauses: sessions that are open while the POP reloads.
  bool echo_once(unsigned port, size_t bytes, uint64_t seed) const {
    return drtp::sock::echo_in_pieces(static_cast<uint16_t>(port), bytes, seed, 20);
  }

  void start_load() {
    for (int t = 0; t < 2; ++t)
      load_.emplace_back([this, t] {
        for (uint64_t n = t; !stop_; n += 2) {
          ++attempts_;
          if (!echo_once(port_a_, 64 * 1024, n))
            ++failures_;
        }
      });
  }

  /// SIGHUP, then the n-th answer line.
  bool hup_and_wait(const std::string& needle, size_t n) {
    pop_->signal(SIGHUP);
    return pop_->wait_for_count(needle, n, 10s);
  }

  std::string dir_, fp_;
  unsigned port_a_ = 0, port_b_ = 0, tunnel_port_ = 0;
  std::unique_ptr<process> pop_, agent_a_, agent_b_;
  drtp::sock::echo_server echo_;
  std::vector<std::thread> load_;
  std::atomic<bool> stop_{false};
  std::atomic<int> attempts_{0}, failures_{0};
};

} // namespace

TEST_F(reload, sighup_changes_services_without_failing_a_session_of_the_others) {
  write_config("");
  pop_ = std::make_unique<process>(
    std::vector<std::string>{bin("drtp-pop"), "--config", dir_ + "/pop.yaml", "--dev"});
  ASSERT_TRUE(pop_->wait_for("public on", 10s)) << pop_->output();
  auto out = pop_->output();
  fp_ = out.substr(out.find("certificate sha256:") + 12, 7 + 64);
  tunnel_port_ = drtp::test::number_after(out, "agents dial 127.0.0.1:");
  agent_a_ = serve("a", "a");
  ASSERT_TRUE(agent_a_->wait_for("1 of 1 up", 10s)) << agent_a_->output();
  std::this_thread::sleep_for(100ms);
  auto ups_a = agent_a_->count("tunnel up");
  start_load();
  std::this_thread::sleep_for(500ms);

  // B added: its port opens, its agent gets a tunnel.
  write_config("b");
  ASSERT_TRUE(hup_and_wait("config reloaded: 2 service(s); added: b; 0 tunnel(s) closed", 1))
    << pop_->output();
  ASSERT_TRUE(pop_->wait_for("service 'b' public on", 5s)) << pop_->output();
  agent_b_ = serve("b", "b");
  ASSERT_TRUE(agent_b_->wait_for("1 of 1 up", 10s)) << agent_b_->output();
  EXPECT_TRUE(echo_once(port_b_, 10000, 99));

  // B's secret changed: its tunnel is closed, its agent (old secret) refused.
  write_config("b2");
  ASSERT_TRUE(hup_and_wait("new key: b; 1 tunnel(s) closed", 1)) << pop_->output();
  EXPECT_EQ(agent_b_->wait_exit(10s), 1) << agent_b_->output();
  EXPECT_NE(agent_b_->output().find("rejected service 'b': wrong secret"), std::string::npos)
    << agent_b_->output();

  // A bad file is refused in one line; the old config stays.
  { std::ofstream{dir_ + "/pop.yaml"} << "services: [unclosed\n"; }
  ASSERT_TRUE(hup_and_wait("config not reloaded, the old one stays: " + dir_ + "/pop.yaml", 1))
    << pop_->output();
  agent_b_ = serve("b", "b2");
  ASSERT_TRUE(agent_b_->wait_for("1 of 1 up", 10s)) << agent_b_->output();

  // B removed: its tunnel and its port close.
  write_config("");
  ASSERT_TRUE(hup_and_wait("removed: b; 1 tunnel(s) closed", 1)) << pop_->output();
  EXPECT_EQ(agent_b_->wait_exit(10s), 1) << agent_b_->output();
  EXPECT_NE(agent_b_->output().find("rejected service 'b': unknown service"),
            std::string::npos)
    << agent_b_->output();
  EXPECT_FALSE(drtp::sock::connect_tcp("127.0.0.1", port_b_, 1000));

  std::this_thread::sleep_for(500ms);
  stop_ = true;
  for (auto& t : load_)
    t.join();
  load_.clear();
  EXPECT_TRUE(pop_->alive()) << pop_->output();
  EXPECT_GT(attempts_.load(), 10);
  EXPECT_EQ(failures_.load(), 0) << pop_->output();
  // A's tunnel never went down.
  EXPECT_EQ(agent_a_->count("tunnel up"), ups_a) << agent_a_->output();
  std::printf("figure: %d sessions of service a across 4 reloads, %d failed\n",
              attempts_.load(), failures_.load());
}

TEST_F(reload, sighup_swaps_the_certificate_for_new_links_only) {
  std::string fps[2];
  for (int i = 0; i < 2; ++i) {
    auto n = std::to_string(i);
    process gen({bin("drtp-pop"), "gen-cert", "--cert", dir_ + "/c" + n + ".pem", "--key",
                 dir_ + "/k" + n + ".pem"});
    ASSERT_EQ(gen.wait_exit(10s), 0) << gen.output();
    fps[i] = gen.output().substr(0, gen.output().find('\n'));
  }
  auto config = [&](const std::string& cert, const std::string& key) {
    write_config("");
    std::ofstream{dir_ + "/pop.yaml", std::ios::app}
      << "tls:\n  cert: " << dir_ << "/" << cert << ".pem\n  key: " << dir_ << "/" << key
      << ".pem\n";
  };
  config("c0", "k0");
  pop_ = std::make_unique<process>(
    std::vector<std::string>{bin("drtp-pop"), "--config", dir_ + "/pop.yaml"});
  ASSERT_TRUE(pop_->wait_for("public on", 10s)) << pop_->output();
  tunnel_port_ = drtp::test::number_after(pop_->output(), "agents dial 127.0.0.1:");
  fp_ = fps[0];
  agent_a_ = serve("a", "a");
  ASSERT_TRUE(agent_a_->wait_for("1 of 1 up", 10s)) << agent_a_->output();
  auto ups_a = agent_a_->count("tunnel up");

  config("c1", "k1");
  ASSERT_TRUE(hup_and_wait("config reloaded", 1)) << pop_->output();
  fp_ = fps[1];
  agent_b_ = serve("a", "a"); // pinned to the new certificate
  ASSERT_TRUE(agent_b_->wait_for("1 of 1 up", 10s)) << agent_b_->output();

  // A key that does not belong to the certificate: refused, nothing changes.
  config("c0", "k1");
  ASSERT_TRUE(hup_and_wait("config not reloaded, the old one stays", 1)) << pop_->output();
  auto again = serve("a", "a"); // still the new certificate
  EXPECT_TRUE(again->wait_for("1 of 1 up", 10s)) << again->output();

  EXPECT_TRUE(echo_once(port_a_, 10000, 5));
  EXPECT_EQ(agent_a_->count("tunnel up"), ups_a) << agent_a_->output(); // never cut
  EXPECT_TRUE(agent_a_->alive());
}
