// An authenticated but hostile peer against the real drtp-pop: a TLS client
// written here (blocking OpenSSL, frames from net/wire) logs in as the
// service's agent with the right secret, then lies about credit, floods
// pings, or lets visitors' streams pile up, and never reads. The POP must
// end that tunnel with a clear reason and stay within a stated memory bound.
//
// DRTP_HOSTILE_POP=path runs another drtp-pop, DRTP_HOSTILE_AGENT another
// drtp in the burst test (the figures of the report compare builds); DRTP_HOSTILE_FIGURE=1 uses the report's sizes (1.5 GiB,
// 2 million pings) instead of the test's bounded ones.

#include <gtest/gtest.h>

#include <cstring>

#include <openssl/ssl.h>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sys/socket.h>
#include <thread>

#include "cli/secrets.hpp"
#include "net/openssl_crypto.hpp"
#include "net/wire/control.hpp"
#include "net/wire/frame.hpp"
#include "net/wire/frame_writer.hpp"
#include "net/wire/handshake.hpp"
#include "tests/support/proc.hpp"
#include "tests/support/sock.hpp"

using namespace std::chrono_literals;
using drtp::test::process;
using drtp::test::vm_rss_kib;
namespace net = drtp::net;

namespace {

// ASan's quarantine keeps freed memory resident: under it the POP's RSS
// says nothing about what the POP holds, so the bounds below are checked in
// the other builds only (the protocol errors and resets are checked in all).
#ifdef __SANITIZE_ADDRESS__
constexpr bool rss_is_meaningful = false;
#else
constexpr bool rss_is_meaningful = true;
#endif

bool figure_sizes() {
  auto v = std::getenv("DRTP_HOSTILE_FIGURE");
  return v != nullptr && std::string(v) == "1";
}

/// An agent that knows the secret and none of the manners.
class hostile_agent {
public:
  ~hostile_agent() {
    if (ssl_ != nullptr)
      SSL_free(ssl_);
    if (ctx_ != nullptr)
      SSL_CTX_free(ctx_);
  }

  bool connect(unsigned port) {
    s_ = drtp::sock::connect_tcp("127.0.0.1", static_cast<uint16_t>(port), 5000);
    if (!s_)
      return false;
    ctx_ = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_verify(ctx_, SSL_VERIFY_NONE, nullptr);
    ssl_ = SSL_new(ctx_);
    SSL_set_fd(ssl_, s_.get());
    return SSL_connect(ssl_) == 1;
  }

  bool send(const net::chunk& c) {
    size_t off = 0;
    while (off < c.size()) {
      int n = SSL_write(ssl_, c.data() + off, static_cast<int>(c.size() - off));
      if (n <= 0)
        return false;
      off += static_cast<size_t>(n);
    }
    return true;
  }

  bool read_frame(net::frame& out) {
    while (frames_.empty()) {
      char buf[4096];
      int n = SSL_read(ssl_, buf, sizeof buf);
      if (n <= 0)
        return false;
      if (decoder_.feed(net::chunk::copy_of(buf, static_cast<size_t>(n)), frames_)
          != net::frame_decoder::status::ok)
        return false;
    }
    out = frames_.front();
    frames_.erase(frames_.begin());
    return true;
  }

  /// hello, challenge, proof, accept: then the tunnel is up at the POP.
  bool login(const std::string& service, const std::string& key) {
    net::hello_msg hello;
    hello.service = service;
    hello.agent_id = "hostile";
    auto hello_payload = net::encode(hello);
    if (!send(w_.control(net::frame_type::hello, 0, hello_payload)))
      return false;
    net::frame ch;
    if (!read_frame(ch) || ch.type != net::frame_type::challenge)
      return false;
    // The proof is bound to this TLS connection, as a real agent's is.
    std::string binding(net::channel_binding_bytes, '\0');
    if (SSL_export_keying_material(ssl_, reinterpret_cast<unsigned char*>(binding.data()),
                                   binding.size(), net::channel_binding_label,
                                   std::strlen(net::channel_binding_label), nullptr, 0, 0)
        != 1)
      return false;
    auto crypto = net::make_openssl_crypto();
    net::proof_msg proof;
    proof.signature = net::make_proof(*crypto, key, binding, hello_payload, ch.payload);
    if (!send(w_.control(net::frame_type::proof, 0, net::encode(proof))))
      return false;
    net::frame acc;
    return read_frame(acc) && acc.type == net::frame_type::accept;
  }

  net::frame_writer& writer() { return w_; }

private:
  drtp::sock::fd s_;
  SSL_CTX* ctx_ = nullptr;
  SSL* ssl_ = nullptr;
  net::frame_writer w_;
  net::frame_decoder decoder_;
  std::vector<net::frame> frames_;
};

class hostile : public ::testing::Test {
protected:
  void SetUp() override {
    dir_ = drtp::test::make_temp_dir("hostile");
    auto cert = dir_ + "/pop.crt";
    auto key = dir_ + "/pop.key";
    process gen({pop_bin(), "gen-cert", "--cert", cert, "--key", key});
    ASSERT_EQ(gen.wait_exit(10s), 0) << gen.output();
    {
      std::ofstream out{dir_ + "/secret"};
      out << "correct horse battery staple\n";
    }
    key_ = net::derive_login_key(drtp::cli::read_secret(dir_ + "/secret", "DRTP_SECRET"),
                                 net::service_salt("echo"))
             .seed;
    pop_ = std::make_unique<process>(std::vector<std::string>{
      pop_bin(), "--cert", cert, "--key", key, "--listen", "127.0.0.1:0", "--service",
      "echo", "--public", "127.0.0.1:0", "--secret-file", dir_ + "/secret"});
    ASSERT_TRUE(pop_->wait_for("public on", 10s)) << pop_->output();
    auto out = pop_->output();
    tunnel_port_ = drtp::test::number_after(out, "agents dial 127.0.0.1:");
    public_port_ = drtp::test::number_after(out, "public on 127.0.0.1:");
    ASSERT_TRUE(agent_.connect(tunnel_port_));
    ASSERT_TRUE(agent_.login("echo", key_)) << pop_->output();
    ASSERT_TRUE(pop_->wait_for("now has 1 tunnel", 5s)) << pop_->output();
    rss_before_kib_ = vm_rss_kib(pop_->pid());
  }

  void TearDown() override {
    pop_.reset();
    drtp::test::remove_tree(dir_);
  }

  static std::string pop_bin() {
    if (auto p = std::getenv("DRTP_HOSTILE_POP"))
      return p;
    return drtp::test::bin_dir() + "/drtp-pop";
  }

  long growth_kib() {
    return vm_rss_kib(pop_->pid()) - rss_before_kib_;
  }

  /// A visitor that pushes `bytes` (or until pushing stalls for `stall_ms`).
  std::thread upload(drtp::sock::fd& v, uint64_t bytes, std::atomic<uint64_t>& pushed,
                     int stall_ms = 3000) {
    v = drtp::sock::connect_tcp("127.0.0.1", static_cast<uint16_t>(public_port_), stall_ms);
    return std::thread([&v, bytes, &pushed] {
      std::vector<char> buf(1 << 20, 'v');
      while (pushed < bytes && v) {
        auto n = std::min<uint64_t>(buf.size(), bytes - pushed);
        if (!drtp::sock::send_all(v.get(), buf.data(), n))
          break;
        pushed += n;
      }
    });
  }

  void figure(const std::string& what, long kib) {
    std::cout << "figure: " << what << ": POP RSS grew by " << kib / 1024 << " MiB ("
              << pop_bin() << ")\n";
  }

  std::string dir_, key_;
  unsigned tunnel_port_ = 0, public_port_ = 0;
  std::unique_ptr<process> pop_;
  hostile_agent agent_;
  long rss_before_kib_ = 0;
};

// The peer grants credit beyond the window (as if it read what it never
// did), so the POP would queue a visitor's whole upload on its link.
void inflate_credit(hostile_agent& agent, uint32_t grant_bytes,
                    const std::atomic<uint64_t>& pushed, uint64_t bytes) {
  // The POP's first stream on this tunnel is 2 (the acceptor's ids are even).
  for (int i = 0; i < 200000 && pushed < bytes; ++i) {
    if (!agent.send(agent.writer().window(2, grant_bytes)))
      return; // the POP closed the tunnel
    std::this_thread::sleep_for(1ms);
  }
}

TEST_F(hostile, credit_above_the_window_ends_the_tunnel) {
  uint64_t bytes = figure_sizes() ? 1536ull << 20 : 256ull << 20;
  drtp::sock::fd v;
  std::atomic<uint64_t> pushed{0};
  auto t = upload(v, bytes, pushed);
  std::this_thread::sleep_for(200ms); // the OPEN of stream 2 is out
  inflate_credit(agent_, 0xffffffffu, pushed, bytes);
  auto reason = pop_->wait_for("credit of 4294967295 bytes above the window", 10s);
  v = {};
  t.join();
  figure("credit 0xffffffff, " + std::to_string(pushed >> 20) + " MiB uploaded", growth_kib());
  EXPECT_TRUE(reason) << pop_->output();
  EXPECT_TRUE(pop_->wait_for("lost a tunnel", 5s)) << pop_->output();
  if (rss_is_meaningful) {
    EXPECT_LT(growth_kib(), 80 * 1024);
  }
}

TEST_F(hostile, credit_summing_above_the_window_ends_the_tunnel) {
  // Each grant is one window: only the sum betrays the lie.
  uint64_t bytes = figure_sizes() ? 1536ull << 20 : 256ull << 20;
  drtp::sock::fd v;
  std::atomic<uint64_t> pushed{0};
  auto t = upload(v, bytes, pushed);
  std::this_thread::sleep_for(200ms);
  inflate_credit(agent_, 1u << 20, pushed, bytes);
  auto reason = pop_->wait_for("credit above the window on stream 2", 10s);
  v = {};
  t.join();
  figure("credit of 1 MiB per ms, " + std::to_string(pushed >> 20) + " MiB uploaded",
         growth_kib());
  EXPECT_TRUE(reason) << pop_->output();
  if (rss_is_meaningful) {
    EXPECT_LT(growth_kib(), 80 * 1024);
  }
}

TEST_F(hostile, a_ping_flood_from_a_peer_that_never_reads_ends_the_tunnel) {
  uint64_t pings = figure_sizes() ? 2'000'000 : 200'000;
  std::vector<char> batch;
  for (int i = 0; i < 1000; ++i) {
    auto c = agent_.writer().ping(static_cast<uint64_t>(i));
    batch.insert(batch.end(), c.data(), c.data() + c.size());
  }
  auto batch_chunk = net::chunk::copy_of(batch.data(), batch.size());
  uint64_t sent = 0;
  while (sent < pings && agent_.send(batch_chunk))
    sent += 1000;
  std::this_thread::sleep_for(500ms); // let the POP catch up with what it read
  figure(std::to_string(sent) + " pings sent, none read", growth_kib());
  EXPECT_TRUE(pop_->wait_for("ping flood", 10s)) << pop_->output();
  if (rss_is_meaningful) {
    EXPECT_LT(growth_kib(), 32 * 1024);
  }
}

TEST_F(hostile, many_streams_never_read_cannot_grow_the_queue_past_its_cap) {
  // Each visitor pushes a window's worth; the POP may send it all (credit
  // is honest) but the peer never reads: the link's queue hits its cap.
  int visitors = figure_sizes() ? 1000 : 300;
  // The peer is not silent, only deaf: it pings, so that a slow POP (ASan,
  // a loaded machine) ends the tunnel for its queue, not for silence.
  std::atomic<bool> stop_pings{false};
  std::thread pinger([&] {
    for (uint64_t i = 0; i < 600 && !stop_pings; ++i) {
      if (!agent_.send(agent_.writer().ping(i)))
        return;
      std::this_thread::sleep_for(100ms);
    }
  });
  std::vector<drtp::sock::fd> vs(static_cast<size_t>(visitors));
  std::vector<std::atomic<uint64_t>> pushed(vs.size());
  std::vector<std::thread> ts;
  for (size_t i = 0; i < vs.size(); ++i)
    ts.push_back(upload(vs[i], 1ull << 20, pushed[i], 30000)); // a busy POP reads late
  for (auto& t : ts)
    t.join();
  uint64_t total = 0;
  for (auto& p : pushed)
    total += p;
  if (total <= (256ull << 20)) {
    stop_pings = true;
    pinger.join();
    FAIL() << "the visitors could not push enough to matter";
  }
  auto reason = pop_->wait_for("write queue over", 15s);
  stop_pings = true;
  pinger.join();
  figure(std::to_string(visitors) + " streams of 1 MiB never read", growth_kib());
  EXPECT_TRUE(reason) << pop_->output();
  EXPECT_TRUE(pop_->wait_for("lost a tunnel", 5s)) << pop_->output();
  // The cap (256 MiB) plus what the visitors' sessions hold (measured: 271
  // MiB at the peak), with room for a loaded machine's allocator. The old
  // POP never reset the link (the check above) and grew with every stream.
  if (rss_is_meaningful) {
    EXPECT_LT(growth_kib(), 384 * 1024);
  }
}

} // namespace

namespace {

/// An echo round on an open visitor socket: `n` bytes out, the same back.
bool echo_some(int s, size_t n, uint64_t seed) {
  auto data = drtp::sock::random_bytes(n, seed);
  if (!drtp::sock::send_all(s, data.data(), data.size()))
    return false;
  std::vector<char> back(n);
  return drtp::sock::recv_all(s, back.data(), back.size()) && back == data;
}

// The limits come from the config file: with two visitors per source, a
// third from the same address is refused at once while the two go on.
TEST(limits, a_source_over_its_visitor_limit_is_refused_at_once) {
  auto dir = drtp::test::make_temp_dir("limits");
  auto bin = drtp::test::bin_dir();
  process gen({bin + "/drtp-pop", "gen-cert", "--cert", dir + "/c", "--key", dir + "/k"});
  ASSERT_EQ(gen.wait_exit(10s), 0) << gen.output();
  auto fp = gen.output().substr(0, gen.output().find('\n'));
  {
    std::ofstream s{dir + "/secret"};
    s << "correct horse battery staple\n";
  }
  auto tport = drtp::test::free_port();
  auto pport = drtp::test::free_port();
  {
    std::ofstream c{dir + "/pop.yaml"};
    c << "listen: 127.0.0.1:" << tport << "\ntls:\n  cert: " << dir << "/c\n  key: " << dir
      << "/k\nservices:\n  - name: echo\n    secret_file: " << dir
      << "/secret\n    public: 127.0.0.1:" << pport
      << "\nlimits:\n  visitors_per_source_max: 2\n";
  }
  drtp::sock::echo_server echo;
  auto pop = std::make_unique<process>(
    std::vector<std::string>{bin + "/drtp-pop", "--config", dir + "/pop.yaml"});
  ASSERT_TRUE(pop->wait_for("public on", 10s)) << pop->output();
  auto agent = std::make_unique<process>(std::vector<std::string>{
    bin + "/drtp", "serve", "--pop", "127.0.0.1:" + std::to_string(tport), "--service",
    "echo", "--local", "127.0.0.1:" + std::to_string(echo.port()), "--secret-file",
    dir + "/secret", "--pop-fingerprint", fp, "--agent-id", "a"});
  ASSERT_TRUE(agent->wait_for("tunnel up", 10s)) << agent->output();
  auto v1 = drtp::sock::connect_tcp("127.0.0.1", pport, 5000);
  auto v2 = drtp::sock::connect_tcp("127.0.0.1", pport, 5000);
  ASSERT_TRUE(echo_some(v1.get(), 1000, 1));
  ASSERT_TRUE(echo_some(v2.get(), 1000, 2));
  auto v3 = drtp::sock::connect_tcp("127.0.0.1", pport, 5000);
  ASSERT_TRUE(v3);
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_FALSE(echo_some(v3.get(), 1000, 3)) << "the third visitor was carried";
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s) << "refused, but not at once";
  EXPECT_TRUE(pop->wait_for("too many open streams", 5s)) << pop->output();
  // The two admitted visitors are untouched; once one leaves, a newcomer fits.
  EXPECT_TRUE(echo_some(v1.get(), 1000, 4));
  v2 = {};
  std::this_thread::sleep_for(300ms);
  auto v4 = drtp::sock::connect_tcp("127.0.0.1", pport, 5000);
  EXPECT_TRUE(echo_some(v4.get(), 1000, 5));
  agent.reset();
  pop.reset();
  drtp::test::remove_tree(dir);
}

} // namespace

#include <fcntl.h>
#include <netinet/in.h>
#include <arpa/inet.h>

namespace {

// A burst of visitors from one address against the real POP and agent:
// the sessions opened before it go on, the tunnel stays up, the excess is
// refused at once. DRTP_HOSTILE_FIGURE=1: 19 000 visitors (the report's
// figure; fds permitting), else 3 000.
TEST(limits, a_burst_of_visitors_spares_earlier_sessions_and_the_tunnel) {
  auto dir = drtp::test::make_temp_dir("burst");
  auto bin = drtp::test::bin_dir();
  auto pop_bin = std::getenv("DRTP_HOSTILE_POP") ? std::string(std::getenv("DRTP_HOSTILE_POP"))
                                                 : bin + "/drtp-pop";
  process gen({pop_bin, "gen-cert", "--cert", dir + "/c", "--key", dir + "/k"});
  ASSERT_EQ(gen.wait_exit(10s), 0) << gen.output();
  auto fp = gen.output().substr(0, gen.output().find('\n'));
  {
    std::ofstream s{dir + "/secret"};
    s << "correct horse battery staple\n";
  }
  drtp::sock::epoll_server echo;
  auto pop = std::make_unique<process>(std::vector<std::string>{
    pop_bin, "--cert", dir + "/c", "--key", dir + "/k", "--listen", "127.0.0.1:0",
    "--service", "echo", "--public", "127.0.0.1:0", "--secret-file", dir + "/secret"});
  ASSERT_TRUE(pop->wait_for("public on", 10s)) << pop->output();
  auto tport = drtp::test::number_after(pop->output(), "agents dial 127.0.0.1:");
  auto pport = static_cast<uint16_t>(drtp::test::number_after(pop->output(), "public on 127.0.0.1:"));
  auto agent = std::make_unique<process>(std::vector<std::string>{
    std::getenv("DRTP_HOSTILE_AGENT") ? std::string(std::getenv("DRTP_HOSTILE_AGENT"))
                                      : bin + "/drtp",
    "serve", "--pop", "127.0.0.1:" + std::to_string(tport), "--service",
    "echo", "--local", "127.0.0.1:" + std::to_string(echo.port()), "--secret-file",
    dir + "/secret", "--pop-fingerprint", fp, "--agent-id", "a"});
  ASSERT_TRUE(agent->wait_for("tunnel up", 10s)) << agent->output();
  std::vector<drtp::sock::fd> early;
  for (int i = 0; i < 10; ++i) {
    early.push_back(drtp::sock::connect_tcp("127.0.0.1", pport, 10000));
    ASSERT_TRUE(echo_some(early.back().get(), 100, 10 + i));
  }
  int burst = figure_sizes() ? 19000 : 3000;
  std::vector<drtp::sock::fd> visitors;
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(pport);
  inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < burst; ++i) {
    drtp::sock::fd s{::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0)};
    if (!s)
      break; // out of descriptors: the burst is what we could open
    ::connect(s.get(), reinterpret_cast<sockaddr*>(&to), sizeof to);
    char b = 'x';
    (void)!::send(s.get(), &b, 1, MSG_NOSIGNAL);
    visitors.push_back(std::move(s));
  }
  auto opened_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  // Let both loops chew on it for as long as three heartbeats.
  std::this_thread::sleep_for(3s);
  int early_ok = 0;
  for (size_t i = 0; i < early.size(); ++i)
    early_ok += echo_some(early[i].get(), 100, 100 + i) ? 1 : 0;
  auto lost = pop->count("lost a tunnel") + agent->count("declared dead");
  std::cout << "figure: real burst of " << visitors.size() << " visitors in " << opened_s
            << " s: " << early_ok << "/10 earlier sessions ok, tunnel losses " << lost
            << ", agent's local connections " << echo.connections() << " (" << pop_bin
            << ")\n";
  EXPECT_EQ(early_ok, 10);
  EXPECT_EQ(lost, 0u) << pop->output() << agent->output();
  // The source's burst allowance and open cap, not the whole burst.
  EXPECT_LT(echo.connections(), 1200u);
  visitors.clear();
  agent.reset();
  pop.reset();
  drtp::test::remove_tree(dir);
}

} // namespace
