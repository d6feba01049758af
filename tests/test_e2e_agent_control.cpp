// drtp serve --control and drtp connect --control, the real binaries (issue
// 14): drtp-control --dev, three static drtp-pops registered through the API
// by the operator (their own --control is another piece of work), then the
// agent with nothing but the control plane's URL and pin, the service's name
// and its secret. It reaches K = 2 tunnels in distinct regions, visitors come
// through two POPs, a principal comes through the patch panel; a wrong
// secret ends it in one line. With the control plane killed, traffic keeps
// flowing and a killed POP's tunnel is replaced among the POPs it knows; an
// agent restarted meanwhile starts from its --state-dir.

#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <sys/stat.h>
#include <sys/socket.h>
#include <thread>

#include <nlohmann/json.hpp>

#include "tests/support/proc.hpp"
#include "tests/support/sock.hpp"

using namespace drtp::test;
using namespace std::chrono_literals;
using json = nlohmann::json;
using clock_type = std::chrono::steady_clock;

namespace {

constexpr int pop_count = 3;
const char* const regions[pop_count] = {"eu", "us", "ap"};

std::string bin(const std::string& name) {
  return bin_dir() + "/" + name;
}

/// A shell command's output (stdout and stderr).
std::string run(const std::string& cmd) {
  std::string out = run_shell(cmd + " 2>&1").out;
  return out;
}

/// `drtp-pop public-key --service NAME` (or --principal) of a secret file.
std::string public_key(const std::string& flag, const std::string& name,
                       const std::string& secret_file) {
  auto out = run(bin("drtp-pop") + " public-key " + flag + " " + name + " < " + secret_file);
  auto at = out.find("ed25519:");
  return at == std::string::npos ? "" : out.substr(at, 8 + 64);
}

double ms_since(clock_type::time_point t0) {
  return std::chrono::duration<double, std::milli>(clock_type::now() - t0).count();
}

class agent_control : public ::testing::Test {
protected:
  void SetUp() override {
    dir_ = make_temp_dir("agentctl");
    std::ofstream{dir_ + "/joe"} << "joe's service secret\n";
    std::ofstream{dir_ + "/sam"} << "sam's own secret\n";
    std::ofstream{dir_ + "/wrong"} << "not joe's secret\n";
    start_control();
    for (int i = 0; i < pop_count; ++i)
      start_pop(i);
    for (int i = 0; i < pop_count; ++i)
      register_pop(i);
    create_service();
  }

  void TearDown() override {
    agent_.reset();
    connect_.reset();
    for (auto& p : pops_)
      p.reset();
    control_.reset();
    remove_tree(dir_);
  }

  void start_control() {
    control_port_ = free_port();
    control_ = std::make_unique<process>(
      std::vector<std::string>{bin("drtp-control"), "--dev", "--state-dir", dir_ + "/control",
                               "--listen", "127.0.0.1:" + std::to_string(control_port_)},
      process_options{{}, "", SIGTERM, 3000ms});
    ASSERT_TRUE(control_->wait_for("drtp-control: listening on", 15s)) << control_->output();
    url_ = "https://127.0.0.1:" + std::to_string(control_port_);
    pin_ = read_line(dir_ + "/control/pin");
    token_ = read_line(dir_ + "/control/admin.token");
    ASSERT_EQ(pin_.rfind("sha256:", 0), 0u) << pin_;
    ASSERT_FALSE(token_.empty());
  }

  /// A static POP: the service `echo` public, principal sam allowed on it.
  void start_pop(int i) {
    auto fp_file = dir_ + "/pop" + std::to_string(i) + ".fp";
    pops_[i] = std::make_unique<process>(std::vector<std::string>{
      bin("drtp-pop"), "--dev", "--fingerprint-out", fp_file, "--listen", "127.0.0.1:0",
      "--service", "echo", "--public", "127.0.0.1:0", "--secret-file", dir_ + "/joe",
      "--allow", "sam", "--principal", "sam=" + dir_ + "/sam"});
    ASSERT_TRUE(pops_[i]->wait_for("public on", 10s)) << pops_[i]->output();
    auto out = pops_[i]->output();
    tunnel_port_[i] = number_after(out, "agents dial 127.0.0.1:");
    public_port_[i] = static_cast<uint16_t>(number_after(out, "public on 127.0.0.1:"));
    pop_pin_[i] = read_line(fp_file);
    ASSERT_NE(tunnel_port_[i], 0u) << out;
    ASSERT_NE(public_port_[i], 0u) << out;
    ASSERT_EQ(pop_pin_[i].rfind("sha256:", 0), 0u) << pop_pin_[i];
  }

  static std::string pop_name(int i) {
    return std::string("pop-") + regions[i];
  }

  /// The operator's request: body and, last line, the HTTP status.
  std::string api(const std::string& method, const std::string& path,
                  const std::string& body = "") {
    std::string cmd = "curl -sk --max-time 10 -w '\\n%{http_code}' -X " + method
                      + " -H 'Authorization: Bearer " + token_ + "'";
    if (!body.empty()) {
      auto f = dir_ + "/body.json";
      std::ofstream{f} << body;
      cmd += " -H 'Content-Type: application/json' --data @" + f;
    }
    return run(cmd + " '" + url_ + "/apis/drtp.dev/v1/" + path + "'");
  }

  static int status_of(const std::string& answer) {
    auto nl = answer.rfind('\n');
    return std::atoi(answer.c_str() + (nl == std::string::npos ? 0 : nl + 1));
  }

  /// The operator registers the POP (as drtp-pop --control will itself),
  /// then gives it a fresh lease: the registry stamps renewTime now.
  void register_pop(int i) {
    json s = {{"apiVersion", "drtp.dev/v1"},
              {"kind", "DRTPServer"},
              {"metadata", {{"name", pop_name(i)}}},
              {"spec",
               {{"region", regions[i]},
                {"tunnelAddress", "127.0.0.1:" + std::to_string(tunnel_port_[i])},
                {"publicAddress", "127.0.0.1"},
                {"verify", {{"pin", pop_pin_[i]}}}}}};
    auto r = api("POST", "drtpservers", s.dump());
    ASSERT_EQ(status_of(r), 201) << r;
    json st = {{"status",
                {{"lease",
                  {{"renewTime", "2000-01-01T00:00:00.000Z"}, {"durationSeconds", 3600}}}}}};
    r = api("PUT", "drtpservers/" + pop_name(i) + "/status", st.dump());
    ASSERT_EQ(status_of(r), 200) << r;
  }

  void create_service() {
    auto svc_key = public_key("--service", "echo", dir_ + "/joe");
    auto sam_key = public_key("--principal", "sam", dir_ + "/sam");
    ASSERT_FALSE(svc_key.empty());
    ASSERT_FALSE(sam_key.empty());
    json c = {{"apiVersion", "drtp.dev/v1"},
              {"kind", "DRTPConnection"},
              {"metadata", {{"name", "echo"}}},
              {"spec",
               {{"protocol", "tcp"},
                {"local", "127.0.0.1:" + std::to_string(echo_.port())},
                {"publicKey", svc_key},
                {"allow", {"sam"}},
                {"tunnels", 2}}}};
    auto r = api("POST", "drtpconnections", c.dump());
    ASSERT_EQ(status_of(r), 201) << r;
    json p = {{"apiVersion", "drtp.dev/v1"},
              {"kind", "Principal"},
              {"metadata", {{"name", "sam"}}},
              {"spec", {{"publicKey", sam_key}}}};
    r = api("POST", "principals", p.dump());
    ASSERT_EQ(status_of(r), 201) << r;
  }

  std::vector<std::string> control_args() const {
    return {"--control", url_, "--control-pin", pin_};
  }

  /// `drtp serve --control URL --control-pin PIN --service echo
  /// --secret-file F --region eu`, plus `extra`.
  std::unique_ptr<process> serve(const std::string& secret,
                                 const std::vector<std::string>& extra = {}) {
    std::vector<std::string> argv{bin("drtp"), "serve"};
    auto c = control_args();
    argv.insert(argv.end(), c.begin(), c.end());
    std::vector<std::string> rest{"--service", "echo", "--secret-file", dir_ + "/" + secret,
                                  "--region", "eu"};
    argv.insert(argv.end(), rest.begin(), rest.end());
    argv.insert(argv.end(), extra.begin(), extra.end());
    return std::make_unique<process>(argv, process_options{{}, "", SIGTERM, 3000ms});
  }

  bool visit(int i) const {
    return drtp::sock::echo_in_pieces(public_port_[i], 4096, 7 + i, 0);
  }

  /// The POPs holding the service's tunnels, as the agent reported them
  /// into DRTPConnection.status (sorted by the registry).
  std::vector<std::string> reported_pops() {
    auto r = api("GET", "drtpconnections/echo");
    auto j = json::parse(r.substr(0, r.rfind('\n')), nullptr, false);
    if (!j.is_object() || !j.contains("status") || !j["status"].contains("pops"))
      return {};
    return j["status"]["pops"].get<std::vector<std::string>>();
  }

  std::string dir_, url_, pin_, token_;
  uint16_t control_port_ = 0;
  unsigned tunnel_port_[pop_count] = {0, 0, 0};
  uint16_t public_port_[pop_count] = {0, 0, 0};
  std::string pop_pin_[pop_count];
  drtp::sock::echo_server echo_;
  std::unique_ptr<process> control_;
  std::unique_ptr<process> pops_[pop_count];
  std::unique_ptr<process> agent_, connect_;
};

} // namespace

TEST_F(agent_control, serve_and_connect_need_only_the_control_plane_and_a_secret) {
  // A wrong secret: one line naming who was refused, non-zero, at once.
  auto t_wrong = clock_type::now();
  auto wrong = serve("wrong");
  EXPECT_EQ(wrong->wait_exit(10s), 1) << wrong->output();
  auto wrong_ms = ms_since(t_wrong);
  EXPECT_NE(wrong->output().find("drtp: the control plane refused service/echo: "),
            std::string::npos)
    << wrong->output();
  EXPECT_EQ(wrong->output().find("not joe's secret"), std::string::npos);
  EXPECT_EQ(wrong->count("refused"), 1u) << wrong->output();

  auto t0 = clock_type::now();
  agent_ = serve("joe");
  ASSERT_TRUE(agent_->wait_for("2 of 2 up", 10s)) << agent_->output();
  auto k_ms = ms_since(t0);
  // Region eu first, then another region: never two tunnels in one region.
  auto out = agent_->output();
  EXPECT_NE(out.find("tunnel up to POP pop-eu"), std::string::npos) << out;
  EXPECT_NE(out.find("drtp serve: service 'echo' -> its registered local address"),
            std::string::npos)
    << out;

  // Visitors through both POPs holding a tunnel.
  int held[2] = {0, 0}, n = 0;
  for (int i = 0; i < pop_count && n < 2; ++i)
    if (out.find("tunnel up to POP " + pop_name(i)) != std::string::npos)
      held[n++] = i;
  ASSERT_EQ(n, 2) << out;
  for (int i : held)
    EXPECT_TRUE(visit(i)) << pop_name(i);

  // The agent reports its tunnels into DRTPConnection.status.
  std::vector<std::string> want{pop_name(held[0]), pop_name(held[1])};
  std::sort(want.begin(), want.end());
  std::vector<std::string> seen;
  auto t_rep = clock_type::now();
  for (int tries = 0; tries < 100 && seen != want; ++tries) {
    seen = reported_pops();
    if (seen != want)
      std::this_thread::sleep_for(100ms);
  }
  EXPECT_EQ(seen, want);
  auto rep_ms = ms_since(t_rep);

  // The patch panel: sam, a principal of the registry (and of the POPs'
  // static config), allowed on the service.
  auto listen = free_port();
  std::vector<std::string> argv{bin("drtp"), "connect"};
  auto c = control_args();
  argv.insert(argv.end(), c.begin(), c.end());
  std::vector<std::string> rest{"--service", "echo", "--principal", "sam", "--secret-file",
                                dir_ + "/sam", "--listen",
                                "127.0.0.1:" + std::to_string(listen), "--region", "eu"};
  argv.insert(argv.end(), rest.begin(), rest.end());
  auto t_conn = clock_type::now();
  connect_ = std::make_unique<process>(argv);
  ASSERT_TRUE(connect_->wait_for("2 of 2 up", 10s)) << connect_->output();
  auto conn_ms = ms_since(t_conn);
  EXPECT_TRUE(drtp::sock::echo_in_pieces(listen, 100000, 3, 0)) << connect_->output();

  std::printf("agent --control: start to 2 tunnels %.0f ms (connect: %.0f ms), status "
              "reported within %.0f ms more, wrong secret refused in %.0f ms\n",
              k_ms, conn_ms, rep_ms, wrong_ms);
}

TEST_F(agent_control, keeps_serving_without_the_control_plane) {
  auto state = dir_ + "/agent-state";
  agent_ = serve("joe", {"--state-dir", state});
  ASSERT_TRUE(agent_->wait_for("2 of 2 up", 10s)) << agent_->output();
  auto snap = state + "/bootstrap.json";
  struct stat st {};
  ASSERT_EQ(::stat(snap.c_str(), &st), 0) << agent_->output();
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto saved = json::parse(read_line(snap), nullptr, false);
  ASSERT_TRUE(saved.is_object()) << read_line(snap);
  EXPECT_EQ(saved["pops"].size(), 3u) << saved.dump();

  auto out = agent_->output();
  int held[2] = {0, 0}, spare = -1, n = 0;
  for (int i = 0; i < pop_count; ++i)
    if (n < 2 && out.find("tunnel up to POP " + pop_name(i)) != std::string::npos)
      held[n++] = i;
    else
      spare = i;
  ASSERT_EQ(n, 2) << out;
  ASSERT_NE(spare, -1);

  // sam's patch panel, up while the control plane is.
  auto listen = free_port();
  std::vector<std::string> argv{bin("drtp"), "connect"};
  auto c = control_args();
  argv.insert(argv.end(), c.begin(), c.end());
  std::vector<std::string> rest{"--service", "echo", "--principal", "sam", "--secret-file",
                                dir_ + "/sam", "--listen",
                                "127.0.0.1:" + std::to_string(listen), "--state-dir",
                                dir_ + "/connect-state"};
  argv.insert(argv.end(), rest.begin(), rest.end());
  connect_ = std::make_unique<process>(argv);
  ASSERT_TRUE(connect_->wait_for("2 of 2 up", 10s)) << connect_->output();

  // Visitors through the POP that stays, all along (bounded: 20 s).
  std::atomic<bool> stop{false};
  std::atomic<int> visits{0}, failed{0};
  std::thread load([&] {
    for (auto until = clock_type::now() + 20s; !stop && clock_type::now() < until;) {
      if (!visit(held[0]))
        ++failed;
      ++visits;
    }
  });

  // The control plane goes: traffic keeps flowing.
  control_->signal(SIGKILL);
  ASSERT_GE(control_->wait_exit(5s), 0);
  for (int round = 0; round < 3; ++round)
    for (int i : held)
      EXPECT_TRUE(visit(i)) << pop_name(i) << " round " << round;

  // A POP goes too: the agent replaces its tunnel from what it knows.
  auto victim = held[1];
  auto t_kill = clock_type::now();
  pops_[victim]->signal(SIGKILL);
  ASSERT_GE(pops_[victim]->wait_exit(5s), 0);
  bool replaced = agent_->wait_for("tunnel up to POP " + pop_name(spare), 10s);
  auto replace_ms = ms_since(t_kill);
  stop = true;
  load.join();
  ASSERT_TRUE(replaced) << agent_->output();
  EXPECT_EQ(failed.load(), 0) << "of " << visits.load() << " visits through "
                              << pop_name(held[0]);
  EXPECT_TRUE(visit(held[0]));
  EXPECT_TRUE(visit(spare));
  // The patch panel too, on the POPs it knows.
  EXPECT_TRUE(drtp::sock::echo_in_pieces(listen, 100000, 5, 0)) << connect_->output();

  // An agent restarted meanwhile starts from its snapshot.
  agent_.reset();
  auto t0 = clock_type::now();
  agent_ = serve("joe", {"--state-dir", state});
  ASSERT_TRUE(agent_->wait_for("starting from the saved state", 10s)) << agent_->output();
  ASSERT_TRUE(agent_->wait_for("2 of 2 up", 15s)) << agent_->output();
  auto restart_ms = ms_since(t0);
  EXPECT_TRUE(visit(held[0]));
  EXPECT_TRUE(visit(spare));
  std::printf("agent --control: control plane down, %d visits through %s, %d failed; POP %s "
              "killed, tunnel replaced in %.0f ms; restart from the snapshot to 2 tunnels "
              "in %.0f ms\n",
              visits.load(), pop_name(held[0]).c_str(), failed.load(),
              pop_name(victim).c_str(), replace_ms, restart_ms);
}

TEST(agent_control_cli, control_without_service_is_a_usage_error) {
  process p({bin("drtp"), "serve", "--control", "https://127.0.0.1:1", "--control-pin",
             "sha256:" + std::string(64, 'a')});
  EXPECT_EQ(p.wait_exit(5s), 2) << p.output();
  EXPECT_NE(p.output().find("--control needs --service"), std::string::npos) << p.output();
}

TEST(agent_control_cli, an_unreachable_control_plane_is_one_line_per_retry) {
  auto dead = free_port();
  process p({bin("drtp"), "serve", "--control", "https://127.0.0.1:" + std::to_string(dead),
             "--control-pin", "sha256:" + std::string(64, 'a'), "--service", "echo"},
            {"DRTP_SECRET=any secret: it is never sent"});
  ASSERT_TRUE(p.wait_for_count("retrying in", 2, 5s)) << p.output();
  auto out = p.output();
  // The announce line, then exactly one line per attempt, with backoff.
  size_t lines = 0;
  for (char ch : out)
    lines += ch == '\n';
  EXPECT_LE(lines, 1 + p.count("retrying in")) << out;
  EXPECT_NE(out.find("no saved state to start from"), std::string::npos) << out;
  EXPECT_TRUE(p.alive());
}
