// The metrics endpoints on real processes, scraped by a real Prometheus
// (Debian's, on loopback, with a throwaway config, stopped by its PID): a
// POP, the agent behind it (drtp serve) and a patch-panel client (drtp
// connect), each with --metrics. The test pushes a known load through the
// public path and the patch panel, then reads through Prometheus' query API
// that the bytes, sessions and tunnels each process counted are the ones it
// pushed. Also: /healthz, /readyz, /debug/sessions, 404, and that
// `promtool check metrics` finds nothing to say about the exposition.

#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sys/socket.h>
#include <thread>

#include "tests/support/proc.hpp"
#include "tests/support/sock.hpp"

using namespace std::chrono_literals;
using drtp::test::free_port;
using drtp::test::process;

namespace {

std::string bin(const std::string& name) {
  return drtp::test::bin_dir() + "/" + name;
}

/// One GET with Connection: close; the status line's code and the body.
std::pair<int, std::string> http_get(uint16_t port, const std::string& target) {
  auto s = drtp::sock::connect_tcp("127.0.0.1", port, 5000);
  if (!s)
    return {0, ""};
  std::string req = "GET " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
  if (!drtp::sock::send_all(s.get(), req.data(), req.size()))
    return {0, ""};
  std::vector<char> back;
  drtp::sock::recv_to_eof(s.get(), back, 8 << 20);
  std::string text(back.begin(), back.end());
  auto sp = text.find(' ');
  auto body = text.find("\r\n\r\n");
  if (sp == std::string::npos || body == std::string::npos)
    return {0, text};
  return {std::atoi(text.c_str() + sp + 1), text.substr(body + 4)};
}

std::string url_encode(const std::string& s) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '_' || c == '-' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

class metrics_e2e : public ::testing::Test {
protected:
  void SetUp() override {
    dir_ = drtp::test::make_temp_dir("metrics");
    fp_ = drtp::test::gen_pop_cert(dir_);
    ASSERT_FALSE(fp_.empty());
    std::ofstream{dir_ + "/joe"} << "joe's service secret\n";
    std::ofstream{dir_ + "/sam"} << "sam's own secret\n";
    for (auto* p : {&pop_m_, &serve_m_, &connect_m_, &prom_port_})
      *p = free_port();
    public_port_ = free_port();
    pop_ = std::make_unique<process>(std::vector<std::string>{
      bin("drtp-pop"), "--cert", dir_ + "/c.pem", "--key", dir_ + "/k.pem", "--listen",
      "127.0.0.1:0", "--service", "pg", "--public", "127.0.0.1:" + std::to_string(public_port_),
      "--allow", "sam", "--secret-file", dir_ + "/joe", "--principal", "sam=" + dir_ + "/sam",
      "--metrics", "127.0.0.1:" + std::to_string(pop_m_)});
    ASSERT_TRUE(pop_->wait_for("public on", 10s)) << pop_->output();
    ASSERT_NE(pop_->output().find("drtp-pop: metrics on http://127.0.0.1:"
                                  + std::to_string(pop_m_) + "/metrics"),
              std::string::npos)
      << pop_->output();
    auto tunnel_port = drtp::test::number_after(pop_->output(), "agents dial 127.0.0.1:");
    auto pop_arg = "127.0.0.1:" + std::to_string(tunnel_port);
    serve_ = std::make_unique<process>(std::vector<std::string>{
      bin("drtp"), "serve", "--service", "pg", "--local",
      "127.0.0.1:" + std::to_string(echo_.port()), "--secret-file", dir_ + "/joe",
      "--pop-fingerprint", fp_, "--agent-id", "joe", "--tunnels", "1", "--pop", pop_arg,
      "--metrics", "127.0.0.1:" + std::to_string(serve_m_)});
    ASSERT_TRUE(serve_->wait_for("1 of 1 up", 10s)) << serve_->output();
    local_port_ = free_port();
    connect_ = std::make_unique<process>(std::vector<std::string>{
      bin("drtp"), "connect", "--service", "pg", "--listen",
      "127.0.0.1:" + std::to_string(local_port_), "--principal", "sam", "--secret-file",
      dir_ + "/sam", "--pop-fingerprint", fp_, "--tunnels", "1", "--pop", pop_arg, "--metrics",
      "127.0.0.1:" + std::to_string(connect_m_)});
    ASSERT_TRUE(connect_->wait_for("1 of 1 up", 10s)) << connect_->output();
  }

  void TearDown() override {
    prometheus_.reset();
    connect_.reset();
    serve_.reset();
    pop_.reset();
    drtp::test::remove_tree(dir_);
  }

  /// Echoes `bytes` through `port` on one connection, whole.
  static bool echo_once(uint16_t port, size_t bytes, uint64_t seed) {
    auto s = drtp::sock::connect_tcp("127.0.0.1", port, 10000);
    if (!s)
      return false;
    auto data = drtp::sock::random_bytes(bytes, seed);
    if (!drtp::sock::send_all(s.get(), data.data(), data.size()))
      return false;
    ::shutdown(s.get(), SHUT_WR);
    std::vector<char> back;
    return drtp::sock::recv_to_eof(s.get(), back, data.size() + 1) && back == data;
  }

  void start_prometheus() {
    std::ofstream f(dir_ + "/prometheus.yml");
    f << "global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\nscrape_configs:\n";
    std::pair<const char*, uint16_t> jobs[] = {
      {"pop", pop_m_}, {"serve", serve_m_}, {"connect", connect_m_}};
    for (auto& [job, port] : jobs)
      f << "  - job_name: " << job << "\n    static_configs:\n      - targets: ['127.0.0.1:"
        << port << "']\n";
    f.close();
    prometheus_ = std::make_unique<process>(std::vector<std::string>{
      "/usr/bin/prometheus", "--config.file=" + dir_ + "/prometheus.yml",
      "--storage.tsdb.path=" + dir_ + "/tsdb",
      "--web.listen-address=127.0.0.1:" + std::to_string(prom_port_)});
    ASSERT_TRUE(prometheus_->wait_for("Server is ready to receive web requests", 30s))
      << prometheus_->output();
  }

  /// The value of an instant query that returns one series; -1 if none.
  double query(const std::string& promql) {
    auto [code, body] = http_get(prom_port_, "/api/v1/query?query=" + url_encode(promql));
    if (code != 200)
      return -1;
    auto j = nlohmann::json::parse(body, nullptr, false);
    if (j.is_discarded() || j["status"] != "success")
      return -1;
    auto& r = j["data"]["result"];
    if (!r.is_array() || r.size() != 1)
      return -1;
    return std::stod(r[0]["value"][1].get<std::string>());
  }

  /// Waits (up to 20 s) until `promql` reads `want`; returns what it read.
  double query_until(const std::string& promql, double want) {
    double got = -1;
    for (int i = 0; i < 200; ++i) {
      got = query(promql);
      if (got == want)
        return got;
      std::this_thread::sleep_for(100ms);
    }
    return got;
  }

  std::string dir_, fp_;
  uint16_t pop_m_ = 0, serve_m_ = 0, connect_m_ = 0, prom_port_ = 0;
  uint16_t public_port_ = 0, local_port_ = 0;
  drtp::sock::echo_server echo_;
  std::unique_ptr<process> pop_, serve_, connect_, prometheus_;
};

} // namespace

TEST_F(metrics_e2e, prometheus_reads_what_the_test_pushed) {
  // The endpoints themselves.
  for (auto port : {pop_m_, serve_m_, connect_m_}) {
    EXPECT_EQ(http_get(port, "/healthz").first, 200);
    EXPECT_EQ(http_get(port, "/nope").first, 404);
    auto ready = http_get(port, "/readyz");
    EXPECT_EQ(ready.first, 200) << ready.second;
    auto sessions = http_get(port, "/debug/sessions");
    EXPECT_EQ(sessions.first, 200);
    EXPECT_FALSE(nlohmann::json::parse(sessions.second, nullptr, false).is_discarded())
      << sessions.second;
    std::printf("/debug/sessions on :%u: %s", port, sessions.second.c_str());
  }
  EXPECT_NE(http_get(serve_m_, "/readyz").second.find("1 of 1 tunnel(s) up"), std::string::npos);

  // A known load: 5 public sessions of 10 000 bytes each way, 3 patch-panel
  // sessions of 20 000.
  constexpr int public_sessions = 5, pp_sessions = 3;
  constexpr size_t public_bytes = 10000, pp_bytes = 20000;
  for (int i = 0; i < public_sessions; ++i)
    ASSERT_TRUE(echo_once(public_port_, public_bytes, 10 + i));
  for (int i = 0; i < pp_sessions; ++i)
    ASSERT_TRUE(echo_once(local_port_, pp_bytes, 20 + i));

  // promtool, Prometheus' own linter, on each exposition.
  for (auto port : {pop_m_, serve_m_, connect_m_}) {
    auto text = http_get(port, "/metrics").second;
    std::ofstream{dir_ + "/scrape.txt"} << text;
    auto lint = drtp::test::run_shell("promtool check metrics < " + dir_ + "/scrape.txt 2>&1");
    EXPECT_EQ(lint.rc, 0) << lint.out;
    EXPECT_EQ(lint.out, "") << lint.out;
  }

  start_prometheus();
  for (auto* job : {"pop", "serve", "connect"})
    EXPECT_EQ(query_until(std::string("up{job=\"") + job + "\"}", 1), 1) << job;

  auto bytes = [&](const char* job, const char* path, const char* dir) {
    return std::string("drtp_service_bytes_total{job=\"") + job + "\",service=\"pg\",path=\""
           + path + "\",direction=\"" + dir + "\"}";
  };
  const double pub = public_sessions * public_bytes, pp = pp_sessions * pp_bytes;
  // The public path, at both of its ends.
  for (auto* job : {"pop", "serve"})
    for (auto* dir : {"to_service", "from_service"})
      EXPECT_EQ(query_until(bytes(job, "public", dir), pub), pub) << job << " " << dir;
  // The patch panel's payload at its two ends (the POP carries the
  // end-to-end records, a little more).
  for (auto* job : {"connect", "serve"})
    for (auto* dir : {"to_service", "from_service"})
      EXPECT_EQ(query_until(bytes(job, "patch_panel", dir), pp), pp) << job << " " << dir;
  EXPECT_GE(query(bytes("pop", "patch_panel", "to_service")), pp);

  auto sessions = [&](const char* job, const char* path) {
    return std::string("sum(drtp_sessions_closed_total{job=\"") + job
           + "\",service=\"pg\",path=\"" + path + "\"})";
  };
  EXPECT_EQ(query_until("drtp_sessions_opened_total{job=\"pop\",path=\"public\"}",
                        public_sessions),
            public_sessions);
  EXPECT_EQ(query_until(sessions("pop", "public"), public_sessions), public_sessions);
  EXPECT_EQ(query_until(sessions("pop", "patch_panel"), pp_sessions), pp_sessions);
  EXPECT_EQ(query_until(sessions("connect", "patch_panel"), pp_sessions), pp_sessions);
  EXPECT_EQ(query_until(sessions("serve", "patch_panel"), pp_sessions), pp_sessions);
  EXPECT_EQ(query_until("drtp_sessions_closed_total{job=\"pop\",path=\"public\",reason=\"done\"}",
                        public_sessions),
            public_sessions);
  EXPECT_EQ(query_until("sum(drtp_sessions_active)", 0), 0);

  // Tunnels: the agent's and the client's, seen from the POP and from them.
  EXPECT_EQ(query_until("drtp_pop_tunnels_up{service=\"pg\",kind=\"agent\"}", 1), 1);
  EXPECT_EQ(query_until("drtp_pop_tunnels_up{service=\"pg\",kind=\"client\"}", 1), 1);
  EXPECT_EQ(query_until("sum(drtp_tunnels_up{job=\"serve\"})", 1), 1);
  EXPECT_EQ(query_until("sum(drtp_tunnels_up{job=\"connect\"})", 1), 1);
  EXPECT_EQ(query_until("drtp_pop_logins_total{kind=\"agent\",result=\"ok\"}", 1), 1);
  EXPECT_EQ(query_until("drtp_audit_decisions_total{decision=\"allow\"}", 1 + pp_sessions),
            1 + pp_sessions); // sam's login, then each session opened
  // The tunnels' heartbeats measured round trips.
  double rtts = -1;
  for (int i = 0; i < 100 && rtts <= 0; ++i, std::this_thread::sleep_for(100ms))
    rtts = query("sum(drtp_tunnel_rtt_seconds_count{job=\"serve\"})");
  EXPECT_GT(rtts, 0);
  EXPECT_GT(query("process_resident_memory_bytes{job=\"pop\"}"), 1e6);
  EXPECT_GT(query("process_open_fds{job=\"pop\"}"), 3);

  std::printf("figure: Prometheus read pop public to_service=%.0f from_service=%.0f, "
              "connect patch_panel to_service=%.0f, pop sessions closed public=%.0f "
              "patch_panel=%.0f, pop RSS %.1f MiB\n",
              query(bytes("pop", "public", "to_service")),
              query(bytes("pop", "public", "from_service")),
              query(bytes("connect", "patch_panel", "to_service")),
              query(sessions("pop", "public")), query(sessions("pop", "patch_panel")),
              query("process_resident_memory_bytes{job=\"pop\"}") / 1048576.0);
}

TEST_F(metrics_e2e, a_taken_metrics_port_is_one_line_and_exit_2) {
  process p({bin("drtp-pop"), "--dev", "--listen", "127.0.0.1:0", "--service", "x", "--public",
             "127.0.0.1:0", "--secret-file", dir_ + "/joe", "--metrics",
             "127.0.0.1:" + std::to_string(pop_m_)});
  EXPECT_EQ(p.wait_exit(10s), 2) << p.output();
  EXPECT_NE(p.output().find("drtp-pop: error: --metrics 127.0.0.1:" + std::to_string(pop_m_)),
            std::string::npos)
    << p.output();
}

// drtp status, at the three hosts of one open patch-panel session: one id.
TEST_F(metrics_e2e, drtp_status_shows_one_session_by_one_id_at_both_ends_and_the_pop) {
  auto s = drtp::sock::connect_tcp("127.0.0.1", local_port_, 10000);
  ASSERT_TRUE(s);
  auto data = drtp::sock::random_bytes(30000, 7);
  ASSERT_TRUE(drtp::sock::send_all(s.get(), data.data(), data.size()));
  std::vector<char> back(data.size());
  ASSERT_TRUE(drtp::sock::recv_all(s.get(), back.data(), back.size()));
  std::this_thread::sleep_for(2500ms); // a telemetry record each way
  auto status = [&](uint16_t port, const char* extra = "") {
    return drtp::test::run_shell(bin("drtp") + " status --metrics 127.0.0.1:"
                                 + std::to_string(port) + " " + extra + " 2>&1");
  };
  auto c = status(connect_m_), e = status(serve_m_), p = status(pop_m_);
  std::printf("figure: drtp status at the connect end:\n%s\n", c.out.c_str());
  ASSERT_EQ(c.rc, 0) << c.out;
  ASSERT_EQ(e.rc, 0) << e.out;
  ASSERT_EQ(p.rc, 0) << p.out;
  auto js = nlohmann::json::parse(status(connect_m_, "--json").out);
  ASSERT_EQ(js["sessions"].size(), 1u) << js.dump();
  auto id = js["sessions"][0]["id"].get<std::string>();
  ASSERT_EQ(id.size(), 32u);
  for (auto* out : {&c.out, &e.out, &p.out}) {
    EXPECT_NE(out->find("1 live session(s)"), std::string::npos) << *out;
    EXPECT_NE(out->find(id.substr(0, 12)), std::string::npos) << *out;
    EXPECT_NE(out->find("patch panel"), std::string::npos) << *out;
  }
  EXPECT_NE(c.out.find("drtp connect for service 'pg'"), std::string::npos) << c.out;
  EXPECT_NE(p.out.find("pop (sam -> joe)"), std::string::npos) << p.out;
  // The other end's round trip came in band.
  EXPECT_TRUE(js["sessions"][0].contains("peer")) << js.dump();
  EXPECT_NE(c.out.find(" ms via "), std::string::npos) << c.out;
  // Nothing listening: one line, exit 1.
  auto none = status(free_port());
  EXPECT_EQ(none.rc, 1);
  EXPECT_NE(none.out.find("drtp: error: --metrics 127.0.0.1:"), std::string::npos) << none.out;
}
