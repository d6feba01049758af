// End to end on real sockets: the drtp-pop and drtp binaries, a plain echo
// service, and visitors on loopback.

#include <gtest/gtest.h>

#include <atomic>
#include <csignal>
#include <cstdlib>
#include <fstream>
#include <netinet/in.h>
#include <sstream>
#include <sys/socket.h>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>

#include "tests/support/proc.hpp"
#include "tests/support/sock.hpp"

using namespace std::chrono_literals;
using drtp::test::process;
using drtp::test::vm_rss_kib;

namespace {

class e2e : public ::testing::Test {
protected:
  void SetUp() override {
    dir_ = drtp::test::make_temp_dir("e2e");
    cert_ = dir_ + "/pop.crt";
    key_ = dir_ + "/pop.key";
    process gen({bin("drtp-pop"), "gen-cert", "--cert", cert_, "--key", key_});
    ASSERT_EQ(gen.wait_exit(10s), 0) << gen.output();
    fingerprint_ = gen.output().substr(0, gen.output().find('\n'));
    ASSERT_EQ(fingerprint_.rfind("sha256:", 0), 0u);
    write_file(dir_ + "/secret", "correct horse battery staple\n");
    write_file(dir_ + "/wrong", "not the secret\n");
  }

  void TearDown() override {
    agent_.reset();
    pop_.reset();
    drtp::test::remove_tree(dir_);
  }

  static std::string bin(const std::string& name) {
    return drtp::test::bin_dir() + "/" + name;
  }

  static void write_file(const std::string& path, const std::string& text) {
    std::ofstream out{path};
    out << text;
  }

  /// Starts a POP; port 0 picks free ports, remembered for restarts.
  void start_pop(const std::vector<std::string>& extra = {}) {
    std::vector<std::string> argv{
      bin("drtp-pop"), "--cert", cert_, "--key", key_, "--listen",
      "127.0.0.1:" + std::to_string(tunnel_port_), "--service", "echo",
      "--public", "127.0.0.1:" + std::to_string(public_port_), "--secret-file",
      dir_ + "/secret"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    pop_ = std::make_unique<process>(argv);
    ASSERT_TRUE(pop_->wait_for("public on", 10s)) << pop_->output();
    auto out = pop_->output();
    tunnel_port_ = drtp::test::number_after(out, "agents dial 127.0.0.1:");
    public_port_ = drtp::test::number_after(out, "public on 127.0.0.1:");
    ASSERT_NE(tunnel_port_, 0u);
    ASSERT_NE(public_port_, 0u);
  }

  void start_agent(const std::string& secret = "secret",
                   const std::vector<std::string>& extra = {}) {
    std::vector<std::string> argv{
      bin("drtp"), "serve", "--pop", "127.0.0.1:" + std::to_string(tunnel_port_),
      "--service", "echo", "--local",
      "127.0.0.1:" + std::to_string(echo_.port()), "--secret-file",
      dir_ + "/" + secret, "--pop-fingerprint", fingerprint_, "--agent-id",
      "test-agent"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    agent_ = std::make_unique<process>(argv);
  }

  /// 100 visitors at once, 1 MiB each, every byte back.
  void hundred_visitors() {
    constexpr int visitors = 100;
    constexpr size_t bytes = 1 << 20;
    std::vector<std::thread> threads;
    std::atomic<int> ok{0};
    for (int i = 0; i < visitors; ++i)
      threads.emplace_back([&, i] {
        if (echo_round(drtp::sock::random_bytes(bytes, 1000 + i)))
          ++ok;
      });
    for (auto& t : threads)
      t.join();
    EXPECT_EQ(ok.load(), visitors);
    EXPECT_GE(echo_.connections(), static_cast<uint64_t>(visitors));
  }

  /// One visitor: sends `data`, half-closes, expects it echoed back whole.
  bool echo_round(const std::vector<char>& data) {
    auto s = drtp::sock::connect_tcp("127.0.0.1", public_port_, 20000);
    if (!s)
      return false;
    std::thread writer([&] {
      drtp::sock::send_all(s.get(), data.data(), data.size());
      ::shutdown(s.get(), SHUT_WR);
    });
    std::vector<char> back;
    bool ok = drtp::sock::recv_to_eof(s.get(), back, data.size() + 1);
    writer.join();
    return ok && back == data;
  }

  std::string dir_, cert_, key_, fingerprint_;
  unsigned tunnel_port_ = 0;
  unsigned public_port_ = 0;
  drtp::sock::echo_server echo_;
  std::unique_ptr<process> pop_;
  std::unique_ptr<process> agent_;
};

TEST_F(e2e, hundred_concurrent_visitors_get_their_bytes_back) {
  start_pop();
  start_agent();
  ASSERT_TRUE(agent_->wait_for("tunnel up", 10s)) << agent_->output();
  hundred_visitors();
}

TEST_F(e2e, busy_polling_pop_and_agent_carry_the_same_bytes) {
  start_pop({"--busy-poll-us", "100"});
  start_agent("secret", {"--busy-poll-us", "100"});
  ASSERT_TRUE(agent_->wait_for("tunnel up", 10s)) << agent_->output();
  hundred_visitors();
  EXPECT_TRUE(echo_round(drtp::sock::random_bytes(1, 7)));
}

TEST_F(e2e, half_close_still_delivers_the_whole_response) {
  start_pop();
  start_agent();
  ASSERT_TRUE(agent_->wait_for("tunnel up", 10s)) << agent_->output();
  // echo_round shuts the write side first and then reads everything back.
  EXPECT_TRUE(echo_round(drtp::sock::random_bytes(3 * 1000 * 1000 + 7, 5)));
  EXPECT_TRUE(echo_round(drtp::sock::random_bytes(1, 6)));
}

TEST_F(e2e, wrong_secret_is_refused_with_a_clear_error) {
  start_pop();
  start_agent("wrong");
  EXPECT_EQ(agent_->wait_exit(10s), 1) << agent_->output();
  EXPECT_NE(agent_->output().find("wrong secret"), std::string::npos)
    << agent_->output();
  ASSERT_TRUE(pop_->wait_for("refused agent", 5s)) << pop_->output();
  EXPECT_EQ(pop_->output().find("not the secret"), std::string::npos);
  EXPECT_EQ(agent_->output().find("not the secret"), std::string::npos);
}

TEST_F(e2e, what_a_pop_config_stores_cannot_log_in) {
  // gen-secret writes a new secret (0600) and prints only the config line.
  auto secret_file = dir_ + "/gen.secret";
  process gen({bin("drtp-pop"), "gen-secret", "--out", secret_file, "--service", "echo"});
  ASSERT_EQ(gen.wait_exit(10s), 0) << gen.output();
  std::string secret;
  std::getline(std::ifstream{secret_file}, secret);
  ASSERT_EQ(secret.size(), 64u);
  struct stat st {};
  ASSERT_EQ(::stat(secret_file.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(gen.output().find(secret), std::string::npos) << "the secret is never printed";
  auto line = gen.output().substr(0, gen.output().find('\n'));
  ASSERT_EQ(line.rfind("public_key: ed25519:", 0), 0u) << line;
  // public-key prints the same line from the secret on stdin.
  process pk({"/bin/sh", "-c", bin("drtp-pop") + " public-key --service echo < " + secret_file});
  ASSERT_EQ(pk.wait_exit(10s), 0) << pk.output();
  EXPECT_EQ(pk.output(), line + "\n");
  process again({bin("drtp-pop"), "gen-secret", "--out", secret_file, "--service", "echo"});
  EXPECT_EQ(again.wait_exit(10s), 2) << again.output();
  write_file(dir_ + "/pop.yaml", "listen: 127.0.0.1:0\ntls: {cert: " + cert_ + ", key: " + key_
                                   + "}\nservices:\n  - name: echo\n    " + line
                                   + "\n    public: 127.0.0.1:0\n");
  pop_ = std::make_unique<process>(
    std::vector<std::string>{bin("drtp-pop"), "--config", dir_ + "/pop.yaml"});
  ASSERT_TRUE(pop_->wait_for("public on", 10s)) << pop_->output();
  tunnel_port_ = drtp::test::number_after(pop_->output(), "agents dial 127.0.0.1:");
  public_port_ = drtp::test::number_after(pop_->output(), "public on 127.0.0.1:");
  // Whoever read the config tries what it holds as the agent's secret: the
  // whole value, and its bytes in hex. Refused, every time.
  auto stored = line.substr(std::string("public_key: ").size());
  write_file(dir_ + "/stored", stored + "\n");
  write_file(dir_ + "/stored_hex", stored.substr(std::string("ed25519:").size()) + "\n");
  for (auto* f : {"stored", "stored_hex"}) {
    start_agent(f);
    EXPECT_TRUE(agent_->wait_for("wrong secret", 10s)) << agent_->output();
    EXPECT_EQ(agent_->output().find("tunnel up"), std::string::npos) << agent_->output();
    agent_.reset();
  }
  // The secret itself logs in.
  start_agent("gen.secret");
  ASSERT_TRUE(agent_->wait_for("tunnel up", 10s)) << agent_->output();
  EXPECT_TRUE(echo_round(drtp::sock::random_bytes(1000, 3)));
}

TEST_F(e2e, peer_supplied_names_cannot_forge_a_log_line) {
  start_pop();
  // The agent id travels in the hello and the POP logs it: a newline in it
  // used to start a line of the attacker's choosing.
  const std::string forged = "12:00:00.000 pop audit: allowed principal 'root'";
  agent_ = std::make_unique<process>(std::vector<std::string>{
    bin("drtp"), "serve", "--pop", "127.0.0.1:" + std::to_string(tunnel_port_),
    "--service", "echo", "--local", "127.0.0.1:" + std::to_string(echo_.port()),
    "--secret-file", dir_ + "/secret", "--pop-fingerprint", fingerprint_,
    "--agent-id", "evil\n" + forged + "\x1b[2J"});
  ASSERT_TRUE(pop_->wait_for("tunnel up", 10s)) << pop_->output();
  auto out = pop_->output();
  EXPECT_EQ(out.find("\n" + forged), std::string::npos) << out;
  EXPECT_EQ(out.find('\x1b'), std::string::npos) << "no escape reaches the terminal";
  EXPECT_NE(out.find("evil\\x0a" + forged + "\\x1b[2J"), std::string::npos) << out;
}

TEST_F(e2e, visitor_without_tunnel_is_refused_within_a_second) {
  start_pop();
  auto start = std::chrono::steady_clock::now();
  auto s = drtp::sock::connect_tcp("127.0.0.1", public_port_, 2000);
  ASSERT_TRUE(s);
  char c;
  auto n = ::recv(s.get(), &c, 1, 0);
  auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_LE(n, 0); // EOF or reset, not data and not a timeout
  EXPECT_LT(elapsed, 1s);
}

TEST_F(e2e, a_flood_of_bad_connections_does_not_flood_the_log) {
  start_pop();
  // Plain text to the TLS port: one "TLS handshake ... failed" line each,
  // until the log's budget is spent.
  constexpr int threads_n = 4;
  constexpr int per_thread = 500;
  auto started = std::chrono::steady_clock::now();
  std::vector<std::thread> threads;
  // Only connections that were made can be logged: on a loaded machine a
  // connect may time out, and that one never reaches the POP.
  std::atomic<size_t> connected{0};
  for (int t = 0; t < threads_n; ++t)
    threads.emplace_back([this, &connected] {
      const char junk[] = "GET / HTTP/1.0\r\n\r\n";
      for (int i = 0; i < per_thread; ++i) {
        auto s = drtp::sock::connect_tcp("127.0.0.1", tunnel_port_, 5000);
        if (s) {
          ++connected;
          drtp::sock::send_all(s.get(), junk, sizeof(junk) - 1);
        }
      }
    });
  for (auto& t : threads)
    t.join();
  std::this_thread::sleep_for(200ms); // the POP works through the backlog
  double seconds = std::chrono::duration<double>(
                     std::chrono::steady_clock::now() - started)
                     .count();
  size_t lines = pop_->count("TLS handshake with");
  EXPECT_GE(lines, 100u) << "the first failures are logged";
  EXPECT_LE(lines, 1000 + static_cast<size_t>(100 * seconds) + 10)
    << "flood of " << threads_n * per_thread << " took " << seconds << " s";
  // Lines that get through later say how many were dropped, at most once a
  // second: every bad connection is either logged or counted.
  auto accounted = [this] {
    auto out = pop_->output();
    size_t n = pop_->count("TLS handshake with");
    const std::string tail = " log lines of listener dropped";
    for (size_t at = out.find(tail); at != std::string::npos;
         at = out.find(tail, at + 1)) {
      size_t begin = out.rfind(' ', at - 1) + 1;
      n += std::stoul(out.substr(begin, at - begin));
    }
    return n;
  };
  size_t sent = connected.load();
  EXPECT_GE(sent, threads_n * per_thread * 9 / 10u) << "most connects succeed";
  for (int i = 0; i < 20 && accounted() != sent; ++i) {
    std::this_thread::sleep_for(1100ms);
    auto s = drtp::sock::connect_tcp("127.0.0.1", tunnel_port_, 5000);
    ASSERT_TRUE(s);
    drtp::sock::send_all(s.get(), "junk", 4);
    ++sent;
    std::this_thread::sleep_for(100ms);
  }
  EXPECT_EQ(accounted(), sent);
  EXPECT_GE(pop_->count("log lines of listener dropped"), 1u);
  // And the POP still serves.
  start_agent();
  ASSERT_TRUE(agent_->wait_for("tunnel up", 10s)) << agent_->output();
  EXPECT_TRUE(echo_round(drtp::sock::random_bytes(100000, 7)));
}

TEST_F(e2e, the_agent_survives_sighup) {
  start_pop();
  start_agent();
  ASSERT_TRUE(agent_->wait_for("tunnel up", 10s)) << agent_->output();
  agent_->signal(SIGHUP); // it used to die of it (exit 129)
  std::this_thread::sleep_for(300ms);
  EXPECT_TRUE(agent_->alive()) << agent_->output();
  EXPECT_TRUE(echo_round(drtp::sock::random_bytes(1000, 3)));
}

TEST_F(e2e, agent_reconnects_after_the_pop_restarts) {
  start_pop();
  start_agent();
  ASSERT_TRUE(agent_->wait_for("tunnel up", 10s)) << agent_->output();
  ASSERT_TRUE(echo_round(drtp::sock::random_bytes(1000, 1)));
  pop_->signal(SIGKILL);
  pop_->wait_exit(5s);
  start_pop(); // same ports, same certificate
  bool ok = false;
  for (int i = 0; i < 100 && !ok; ++i) {
    ok = echo_round(drtp::sock::random_bytes(1000, 2));
    if (!ok)
      std::this_thread::sleep_for(100ms);
  }
  EXPECT_TRUE(ok) << agent_->output();
}

TEST_F(e2e, slow_reader_neither_stalls_others_nor_grows_memory) {
  start_pop();
  start_agent();
  ASSERT_TRUE(agent_->wait_for("tunnel up", 10s)) << agent_->output();
  ASSERT_TRUE(echo_round(drtp::sock::random_bytes(1 << 20, 1)));
  auto pop_before = vm_rss_kib(pop_->pid());
  auto agent_before = vm_rss_kib(agent_->pid());
  // The slow visitor pushes 256 MiB and never reads its echo: the echo
  // service blocks, the agent stops reading it, credit runs out, the POP
  // stops reading the visitor. Nothing piles up in between.
  auto slow = drtp::sock::connect_tcp("127.0.0.1", public_port_, 30000);
  ASSERT_TRUE(slow);
  std::atomic<uint64_t> pushed{0};
  std::thread pusher([&] {
    std::vector<char> buf(1 << 20, 's');
    timeval tv{3, 0}; // give up once backpressure has held for 3 s
    setsockopt(slow.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    for (int i = 0; i < 256; ++i) {
      if (!drtp::sock::send_all(slow.get(), buf.data(), buf.size()))
        break;
      pushed += buf.size();
    }
  });
  std::this_thread::sleep_for(1s);
  // Meanwhile other visitors on the same tunnel go at full speed.
  for (int i = 0; i < 5; ++i)
    EXPECT_TRUE(echo_round(drtp::sock::random_bytes(1 << 20, 10 + i)));
  pusher.join();
  EXPECT_LT(pushed.load(), 64ull << 20) << "backpressure never reached the visitor";
#ifdef __SANITIZE_ADDRESS__
  GTEST_SKIP() << "ASan's quarantine holds freed memory: RSS says nothing here";
#endif
  auto pop_growth = vm_rss_kib(pop_->pid()) - pop_before;
  auto agent_growth = vm_rss_kib(agent_->pid()) - agent_before;
  // One window (1 MiB) plus socket reads in flight, not the 256 MiB pushed.
  EXPECT_LT(pop_growth, 16 * 1024) << "POP grew by " << pop_growth << " KiB";
  EXPECT_LT(agent_growth, 16 * 1024) << "agent grew by " << agent_growth << " KiB";
}

TEST_F(e2e, admin_port_reports_status_and_drains) {
  uint16_t admin_port = 0;
  { auto probe = drtp::sock::listen_tcp("127.0.0.1", 0, admin_port); }
  auto token_file = dir_ + "/admin.token";
  start_pop({"--admin", "127.0.0.1:" + std::to_string(admin_port), "--admin-token-file",
             token_file});
  EXPECT_NE(pop_->output().find("new admin token written to " + token_file),
            std::string::npos);
  struct stat st {};
  ASSERT_EQ(::stat(token_file.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  std::string token;
  std::ifstream{token_file} >> token;
  ASSERT_EQ(token.size(), 64u);
  start_agent();
  ASSERT_TRUE(agent_->wait_for("tunnel up", 10s)) << agent_->output();
  auto ask = [&](const std::string& cmd) {
    auto s = drtp::sock::connect_tcp("127.0.0.1", admin_port, 5000);
    std::vector<char> out;
    if (s && drtp::sock::send_all(s.get(), cmd.data(), cmd.size()))
      drtp::sock::recv_to_eof(s.get(), out, 1 << 16);
    return std::string(out.begin(), out.end());
  };
  // Without the token (as anyone on the machine could): nothing.
  EXPECT_NE(ask("status\n").find("bad token"), std::string::npos);
  EXPECT_NE(ask("0123456789abcdef0123 drain\n").find("bad token"), std::string::npos);
  EXPECT_EQ(pop_->output().find(token), std::string::npos); // never logged
  auto status = ask(token + " status\n");
  EXPECT_NE(status.find("service echo: 1 tunnel(s)"), std::string::npos) << status;
  EXPECT_NE(ask(token + " reboot\n").find("unknown command"), std::string::npos);
  EXPECT_EQ(ask(token + " drain\n"), "draining\n");
  EXPECT_EQ(pop_->wait_exit(10s), 0) << pop_->output();
}

TEST_F(e2e, idle_admin_connections_cannot_lock_the_operator_out) {
  uint16_t admin_port = 0;
  { auto probe = drtp::sock::listen_tcp("127.0.0.1", 0, admin_port); }
  auto token_file = dir_ + "/admin.token";
  start_pop({"--admin", "127.0.0.1:" + std::to_string(admin_port), "--admin-token-file",
             token_file});
  ASSERT_TRUE(pop_->wait_for("admin commands on", 10s)) << pop_->output();
  std::string token;
  std::ifstream{token_file} >> token;
  // 200 idle connections (the cap is 64): they used to lock everyone out.
  std::vector<drtp::sock::fd> idle;
  for (int i = 0; i < 200; ++i)
    idle.push_back(drtp::sock::connect_tcp("127.0.0.1", admin_port, 5000));
  std::this_thread::sleep_for(200ms);
  auto s = drtp::sock::connect_tcp("127.0.0.1", admin_port, 5000);
  ASSERT_TRUE(s);
  auto cmd = token + " status\n";
  ASSERT_TRUE(drtp::sock::send_all(s.get(), cmd.data(), cmd.size()));
  std::vector<char> out;
  drtp::sock::recv_to_eof(s.get(), out, 1 << 16);
  EXPECT_NE(std::string(out.begin(), out.end()).find("service echo"), std::string::npos)
    << pop_->output();
  // An idle connection is closed after 3 s, not held.
  auto t0 = std::chrono::steady_clock::now();
  auto lone = drtp::sock::connect_tcp("127.0.0.1", admin_port, 5000);
  ASSERT_TRUE(lone);
  std::vector<char> answer;
  drtp::sock::recv_to_eof(lone.get(), answer, 1 << 10);
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
              std::chrono::steady_clock::now() - t0).count();
  EXPECT_NE(std::string(answer.begin(), answer.end()).find("no command within 3000 ms"),
            std::string::npos);
  EXPECT_GE(ms, 2500);
  EXPECT_LE(ms, 10000);
  std::printf("figure: idle admin connection closed after %lld ms\n",
              static_cast<long long>(ms));
}

TEST(cli, admin_token_file_must_be_private) {
  auto dir = drtp::test::make_temp_dir("tok");
  auto file = dir + "/token";
  std::ofstream{file} << "0123456789abcdef0123456789abcdef\n";
  ::chmod(file.c_str(), 0644);
  process pop({drtp::test::bin_dir() + "/drtp-pop", "--dev", "--service", "echo", "--public",
               "127.0.0.1:0", "--admin", "127.0.0.1:0", "--admin-token-file", file},
              {"DRTP_SECRET=s"});
  EXPECT_EQ(pop.wait_exit(5s), 2);
  EXPECT_NE(pop.output().find("admin token file " + file + " may be read by others"),
            std::string::npos)
    << pop.output();
  process no_file({drtp::test::bin_dir() + "/drtp-pop", "--dev", "--service", "echo",
                   "--public", "127.0.0.1:0", "--admin", "127.0.0.1:0"},
                  {"DRTP_SECRET=s"});
  EXPECT_EQ(no_file.wait_exit(5s), 2);
  EXPECT_NE(no_file.output().find("--admin needs --admin-token-file FILE"), std::string::npos)
    << no_file.output();
  drtp::test::remove_tree(dir);
}

/// The keepalive timer of the IPv4 socket local_port -> remote_port, from
/// /proc/net/tcp: its "tr" field is 2 while a keepalive timer runs, 0 on an
/// idle socket without keepalive; -1 if no such socket.
int tcp_timer_kind(unsigned local_port, unsigned remote_port) {
  std::ifstream in{"/proc/net/tcp"};
  std::string line;
  std::getline(in, line); // the header
  while (std::getline(in, line)) {
    std::istringstream f{line};
    std::string sl, local, remote, st, queues, timer;
    f >> sl >> local >> remote >> st >> queues >> timer;
    auto port_of = [](const std::string& a) {
      return std::stoul(a.substr(a.find(':') + 1), nullptr, 16);
    };
    if (st == "01" && port_of(local) == local_port && port_of(remote) == remote_port)
      return std::stoi(timer.substr(0, timer.find(':')), nullptr, 16);
  }
  return -1;
}

unsigned local_port_of(int fd) {
  sockaddr_in a{};
  socklen_t n = sizeof(a);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &n);
  return ntohs(a.sin_port);
}

TEST_F(e2e, visitor_and_local_sockets_have_tcp_keepalive) {
  // A visitor that vanishes without FIN (its machine gone) is found by
  // keepalive probes instead of holding its session forever.
  start_pop();
  start_agent();
  ASSERT_TRUE(agent_->wait_for("tunnel up", 10s)) << agent_->output();
  auto s = drtp::sock::connect_tcp("127.0.0.1", public_port_, 5000);
  ASSERT_TRUE(s);
  char buf[4] = {'p', 'i', 'n', 'g'};
  ASSERT_TRUE(drtp::sock::send_all(s.get(), buf, 4));
  ASSERT_TRUE(drtp::sock::recv_all(s.get(), buf, 4)); // the session is up
  std::this_thread::sleep_for(300ms); // past any retransmit timer
  // The POP's end of the visitor's connection.
  EXPECT_EQ(tcp_timer_kind(public_port_, local_port_of(s.get())), 2);
  // The agent's end of its connection to the local service: the one socket
  // whose peer is the echo server and whose own port is not.
  int agent_end = -1;
  std::ifstream in{"/proc/net/tcp"};
  std::string line;
  std::getline(in, line); // the header
  while (std::getline(in, line)) {
    std::istringstream f{line};
    std::string sl, local, remote, st, queues, timer;
    f >> sl >> local >> remote >> st >> queues >> timer;
    auto rport = std::stoul(remote.substr(remote.find(':') + 1), nullptr, 16);
    if (st == "01" && rport == echo_.port())
      agent_end = std::stoi(timer.substr(0, timer.find(':')), nullptr, 16);
  }
  EXPECT_EQ(agent_end, 2);
}

TEST_F(e2e, a_silent_visitor_is_closed_after_the_idle_timeout) {
  start_pop({"--idle-timeout", "1"});
  start_agent("secret", {"--idle-timeout", "0"}); // the POP's end decides
  ASSERT_TRUE(agent_->wait_for("tunnel up", 10s)) << agent_->output();
  auto s = drtp::sock::connect_tcp("127.0.0.1", public_port_, 5000);
  ASSERT_TRUE(s);
  char buf[4] = {'p', 'i', 'n', 'g'};
  ASSERT_TRUE(drtp::sock::send_all(s.get(), buf, 4));
  ASSERT_TRUE(drtp::sock::recv_all(s.get(), buf, 4));
  auto t0 = std::chrono::steady_clock::now();
  std::vector<char> rest;
  drtp::sock::recv_to_eof(s.get(), rest, 16); // returns when the POP closes it
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
              std::chrono::steady_clock::now() - t0).count();
  EXPECT_GE(ms, 900);
  EXPECT_LE(ms, 5000);
  EXPECT_TRUE(pop_->wait_for("idle timeout 1000 ms", 2s)) << pop_->output();
  std::printf("figure: silent visitor closed by the POP after %lld ms (idle timeout 1 s)\n",
              static_cast<long long>(ms));
}

TEST(cli, busy_port_and_unreadable_files_give_one_clear_line) {
  auto bin = drtp::test::bin_dir();
  uint16_t port = 0;
  auto busy = drtp::sock::listen_tcp("127.0.0.1", 0, port);
  ASSERT_TRUE(busy);
  process pop({bin + "/drtp-pop", "--dev", "--listen",
               "127.0.0.1:" + std::to_string(port), "--service", "x",
               "--public", "127.0.0.1:0"},
              {"DRTP_SECRET=s"});
  EXPECT_EQ(pop.wait_exit(10s), 1) << pop.output();
  EXPECT_NE(pop.output().find("already in use"), std::string::npos)
    << pop.output();
  process nofile({bin + "/drtp", "serve", "--pop", "127.0.0.1:1", "--service",
                  "x", "--local", "127.0.0.1:2", "--insecure", "--secret-file",
                  "/nonexistent/secret"});
  EXPECT_EQ(nofile.wait_exit(5s), 2);
  EXPECT_NE(nofile.output().find("cannot read secret file /nonexistent/secret"),
            std::string::npos)
    << nofile.output();
  process noverify({bin + "/drtp", "serve", "--pop", "127.0.0.1:1", "--service",
                    "x", "--local", "127.0.0.1:2"},
                   {"DRTP_SECRET=s"});
  EXPECT_EQ(noverify.wait_exit(5s), 2);
  EXPECT_NE(noverify.output().find("cannot verify the POP"), std::string::npos)
    << noverify.output();
  process badcfg({bin + "/drtp-pop", "--dev", "--config", "/nonexistent.yaml"});
  EXPECT_EQ(badcfg.wait_exit(5s), 2);
  EXPECT_NE(badcfg.output().find("cannot read config file"), std::string::npos);
}

TEST(cli, hostile_config_files_give_one_line_naming_file_and_line) {
  // Each was an uncaught exception, a silent choice or an unbounded read.
  std::string hex = "ed25519:" + std::string(64, 'a');
  struct bad_config {
    std::string yaml;
    std::string expected;
  } cases[] = {
    {"[a, b]: 1\nservices: []\n", ":1: a key must be a plain word"},
    {"services:\n  - name: a\n    name: b\n    public_key: " + hex
       + "\n    public: 127.0.0.1:1\n",
     ":3: 'name' appears twice"},
    {"services:\n  - name: a\n    secret_file: /dev/zero\n"
     "    public: 127.0.0.1:1\n",
     ":3: secret file /dev/zero holds more than 4096 bytes"},
    {"services:\n  - name: a\n    public_key: " + hex
       + "\n    public: \"127.0.0.1: +0\"\n",
     ": public port of 'a' has a bad port ' +0'"},
    {"services:\n  - name: a\n    public_key: " + hex
       + "\n    allow: [sam, group:ops]\nprincipals:\n  - name: sam\n"
         "    public_key: " + hex + "\n",
     ": service 'a' allows 'group:ops', a group no principal belongs to"},
    // The old form stored what logged in: refused, with the way out.
    {"services:\n  - name: a\n    secret_sha256: " + std::string(64, 'a')
       + "\n    public: 127.0.0.1:1\n",
     ":3: 'secret_sha256' is no longer accepted (it could log in)"},
    {"services:\n  - name: a\n    public_key: " + std::string(64, 'a')
       + "\n    public: 127.0.0.1:1\n",
     ":3: 'public_key' must be ed25519: and 64 hex digits"},
    {"idle_timeout_s: 99999999\nservices: []\n",
     ": idle_timeout_s must be 0-604800 seconds, got '99999999'"},
  };
  auto dir = drtp::test::make_temp_dir("cfg");
  int i = 0;
  for (auto& c : cases) {
    auto path = dir + "/bad" + std::to_string(i++) + ".yaml";
    std::ofstream{path} << c.yaml;
    process pop({drtp::test::bin_dir() + "/drtp-pop", "--dev", "--config", path});
    EXPECT_EQ(pop.wait_exit(5s), 2) << pop.output();
    EXPECT_NE(pop.output().find(path + c.expected), std::string::npos)
      << pop.output();
  }
  drtp::test::remove_tree(dir);
}

TEST(cli, gen_cert_creates_the_key_private_and_never_overwrites) {
  auto dir = drtp::test::make_temp_dir("gencert");
  auto bin = drtp::test::bin_dir() + "/drtp-pop";
  process gen({bin, "gen-cert", "--cert", dir + "/c.pem", "--key", dir + "/k.pem"});
  ASSERT_EQ(gen.wait_exit(10s), 0) << gen.output();
  struct stat st {};
  ASSERT_EQ(::stat((dir + "/k.pem").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u) << "the key is never readable by others";
  process again({bin, "gen-cert", "--cert", dir + "/c2.pem", "--key", dir + "/k.pem"});
  EXPECT_EQ(again.wait_exit(10s), 2);
  EXPECT_NE(again.output().find("never overwrites"), std::string::npos)
    << again.output();
  // A key path that is a symlink is refused, and nothing lands where it points.
  ASSERT_EQ(::symlink((dir + "/target").c_str(), (dir + "/link").c_str()), 0);
  process link({bin, "gen-cert", "--cert", dir + "/c3.pem", "--key", dir + "/link"});
  EXPECT_EQ(link.wait_exit(10s), 2) << link.output();
  EXPECT_NE(::access((dir + "/target").c_str(), F_OK), 0);
  drtp::test::remove_tree(dir);
}

TEST(cli, help_and_bad_flags) {
  process help({drtp::test::bin_dir() + "/drtp", "serve", "--help"});
  EXPECT_EQ(help.wait_exit(5s), 0);
  EXPECT_NE(help.output().find("--pop"), std::string::npos);
  process bad({drtp::test::bin_dir() + "/drtp", "serve", "--bogus"});
  EXPECT_EQ(bad.wait_exit(5s), 2);
  EXPECT_NE(bad.output().find("unknown option"), std::string::npos);
  process pop_help({drtp::test::bin_dir() + "/drtp-pop", "--help"});
  EXPECT_EQ(pop_help.wait_exit(5s), 0);
  EXPECT_NE(pop_help.output().find("--busy-poll-us"), std::string::npos);
  process bad_poll({drtp::test::bin_dir() + "/drtp-pop", "--dev", "--service",
                    "x", "--public", "127.0.0.1:0", "--busy-poll-us", "99999"},
                   {"DRTP_SECRET=s"});
  EXPECT_EQ(bad_poll.wait_exit(5s), 2);
  EXPECT_NE(bad_poll.output().find("--busy-poll-us must be 0-10000 microseconds"),
            std::string::npos)
    << bad_poll.output();
  process no_pop({drtp::test::bin_dir() + "/drtp", "serve", "--pop",
                  "127.0.0.1:1", "--service", "x", "--local", "127.0.0.1:2",
                  "--insecure"},
                 {"DRTP_SECRET=s"});
  // An unreachable POP is retried, not fatal; it must say why.
  EXPECT_TRUE(no_pop.wait_for("connection refused", 5s)) << no_pop.output();
}

} // namespace
