// One pin per POP, on real sockets: two `drtp-pop --dev` POPs (each with its
// own fresh certificate) used together by one `drtp serve`; and a POP that
// does not know the service is set aside while the other carries visitors.

#include <gtest/gtest.h>

#include <fstream>
#include <memory>
#include <sys/socket.h>

#include "tests/support/proc.hpp"
#include "tests/support/sock.hpp"

using namespace std::chrono_literals;
using drtp::test::process;

namespace {

class pins : public ::testing::Test {
protected:
  void SetUp() override {
    dir_ = drtp::test::make_temp_dir("pins");
    std::ofstream{dir_ + "/secret"} << "pinned secret\n";
  }

  void TearDown() override {
    agent_.reset();
    for (auto& p : pops_)
      p.reset();
    drtp::test::remove_tree(dir_);
  }

  static std::string bin(const std::string& name) {
    return drtp::test::bin_dir() + "/" + name;
  }

  /// A --dev POP for `service`; returns its index.
  int start_pop(const std::string& service) {
    int i = static_cast<int>(pops_.size());
    pops_.push_back(std::make_unique<process>(std::vector<std::string>{
      bin("drtp-pop"), "--dev", "--listen", "127.0.0.1:0", "--service", service,
      "--public", "127.0.0.1:0", "--secret-file", dir_ + "/secret"}));
    EXPECT_TRUE(pops_[i]->wait_for("public on", 10s)) << pops_[i]->output();
    auto out = pops_[i]->output();
    auto at = out.find("certificate sha256:");
    EXPECT_NE(at, std::string::npos) << out;
    fps_.push_back(out.substr(at + 12, 7 + 64));
    tunnel_ports_.push_back(drtp::test::number_after(out, "agents dial 127.0.0.1:"));
    public_ports_.push_back(drtp::test::number_after(out, "public on 127.0.0.1:"));
    return i;
  }

  std::vector<std::string> serve_argv(const std::vector<std::string>& pop_args) {
    std::vector<std::string> argv{bin("drtp"), "serve"};
    for (auto& p : pop_args) {
      argv.push_back("--pop");
      argv.push_back(p);
    }
    std::vector<std::string> rest{"--tunnels", "2", "--service", "echo", "--local",
                                  "127.0.0.1:" + std::to_string(echo_.port()),
                                  "--secret-file", dir_ + "/secret"};
    argv.insert(argv.end(), rest.begin(), rest.end());
    return argv;
  }

  std::string pop_arg(int i, bool pinned) const {
    auto a = "127.0.0.1:" + std::to_string(tunnel_ports_[i]) + (i == 0 ? "@eu" : "@us");
    return pinned ? a + ",fingerprint=" + fps_[i] : a;
  }

  bool echo_once(int i) const {
    auto s = drtp::sock::connect_tcp("127.0.0.1", public_ports_[i], 10000);
    if (!s)
      return false;
    auto data = drtp::sock::random_bytes(50000, 7 + i);
    if (!drtp::sock::send_all(s.get(), data.data(), data.size()))
      return false;
    ::shutdown(s.get(), SHUT_WR);
    std::vector<char> back;
    return drtp::sock::recv_to_eof(s.get(), back, data.size() + 1) && back == data;
  }

  std::string dir_;
  std::vector<std::unique_ptr<process>> pops_;
  std::vector<std::string> fps_;
  std::vector<unsigned> tunnel_ports_, public_ports_;
  std::unique_ptr<process> agent_;
  drtp::sock::echo_server echo_;
};

} // namespace

TEST_F(pins, two_dev_pops_each_with_its_own_pin_are_used_together) {
  start_pop("echo");
  start_pop("echo");
  ASSERT_EQ(fps_.size(), 2u);
  ASSERT_NE(fps_[0], fps_[1]);
  agent_ = std::make_unique<process>(serve_argv({pop_arg(0, true), pop_arg(1, true)}));
  ASSERT_TRUE(agent_->wait_for("2 of 2 up", 10s)) << agent_->output();
  EXPECT_TRUE(echo_once(0));
  EXPECT_TRUE(echo_once(1));
}

TEST_F(pins, one_pin_for_two_dev_pops_reaches_only_one) {
  // What --pop-fingerprint did before: one pin for every POP.
  start_pop("echo");
  start_pop("echo");
  auto argv = serve_argv({pop_arg(0, false), pop_arg(1, false)});
  argv.push_back("--pop-fingerprint");
  argv.push_back(fps_[0]);
  agent_ = std::make_unique<process>(argv);
  ASSERT_TRUE(agent_->wait_for("1 of 2 up", 10s)) << agent_->output();
  EXPECT_TRUE(echo_once(0));
  EXPECT_FALSE(agent_->wait_for("2 of 2 up", 2s)) << agent_->output();
}

TEST_F(pins, ambiguous_or_malformed_pins_are_one_clear_line) {
  start_pop("echo");
  start_pop("echo");
  auto twice = serve_argv({pop_arg(0, false), pop_arg(1, false)});
  for (auto& fp : fps_) {
    twice.push_back("--pop-fingerprint");
    twice.push_back(fp);
  }
  process a(twice);
  EXPECT_EQ(a.wait_exit(5s), 2);
  EXPECT_NE(a.output().find("--pop-fingerprint given 2 times: it pins every POP alike; "
                            "pin each POP with --pop HOST:PORT,fingerprint=sha256:HEX"),
            std::string::npos)
    << a.output();
  process b(serve_argv({pop_arg(0, true) + ",region=eu"}));
  EXPECT_EQ(b.wait_exit(5s), 2);
  EXPECT_NE(b.output().find("only ,fingerprint=sha256:HEX may follow"), std::string::npos)
    << b.output();
  process c(serve_argv({pop_arg(0, true), pop_arg(1, false)}));
  EXPECT_EQ(c.wait_exit(5s), 2);
  EXPECT_NE(c.output().find("cannot verify the POP 127.0.0.1:" + std::to_string(tunnel_ports_[1])),
            std::string::npos)
    << c.output();
  process d(serve_argv({"127.0.0.1:1,fingerprint=sha256:abcd"}));
  EXPECT_EQ(d.wait_exit(5s), 2);
  EXPECT_NE(d.output().find("fingerprint must be sha256: and 64 hex digits"),
            std::string::npos)
    << d.output();
}

TEST_F(pins, a_pop_that_rejects_the_service_is_set_aside_the_other_serves) {
  start_pop("echo");
  start_pop("other"); // does not know 'echo'
  agent_ = std::make_unique<process>(serve_argv({pop_arg(0, true), pop_arg(1, true)}));
  ASSERT_TRUE(agent_->wait_for("set aside", 10s)) << agent_->output();
  EXPECT_NE(agent_->output().find("rejected service 'echo': unknown service; set aside"),
            std::string::npos)
    << agent_->output();
  ASSERT_TRUE(agent_->wait_for("1 of 2 up", 10s)) << agent_->output();
  EXPECT_TRUE(agent_->alive()) << agent_->output();
  EXPECT_TRUE(echo_once(0));
  EXPECT_TRUE(agent_->alive()) << agent_->output();
}

TEST_F(pins, every_pop_rejecting_stops_the_agent_with_one_line) {
  start_pop("other");
  start_pop("another");
  agent_ = std::make_unique<process>(serve_argv({pop_arg(0, true), pop_arg(1, true)}));
  EXPECT_EQ(agent_->wait_exit(10s), 1) << agent_->output();
  EXPECT_EQ(agent_->count("error: every POP rejected service 'echo': unknown service"),
            1u)
    << agent_->output();
}
