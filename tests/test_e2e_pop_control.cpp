// drtp-pop --control, the real binaries: drtp-control --dev, two POPs that
// register themselves and follow the registry, static agents (drtp serve
// --pop), visitors on loopback, and curl as the operator. A new public
// service's listener opens, a deleted one closes with goaway to its agent, a
// rotated credential refuses the old secret, 100 random changes of other
// services fail no session of an unchanged one, and a POP restarted while
// the control plane is down serves from its registry.json, then registers
// again when the control plane is back. A public port held by another
// process is one line and the POP serves on; SIGTERM leaves the registry
// saying the POP is not ready.

#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <sys/stat.h>
#include <thread>
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

/// curl's body and, last line, the HTTP status.
std::string curl(const std::string& args) {
  std::string cmd = "curl -sk --max-time 10 -w '\\n%{http_code}' " + args + " 2>&1";
  std::string out = run_shell(cmd).out;
  return out;
}

/// Several requests in one curl (one process, one kept-alive link): each
/// element is one request's arguments; the statuses, in order.
std::vector<int> curl_batch(const std::vector<std::string>& requests) {
  std::string cmd = "curl";
  for (size_t i = 0; i < requests.size(); ++i)
    cmd += std::string(i ? " --next" : "") + " -sk --max-time 10 -o /dev/null -w '%{http_code}\\n' "
           + requests[i];
  cmd += " 2>&1";
  std::vector<int> out;
  std::istringstream lines(run_shell(cmd).out);
  std::string line;
  while (out.size() < requests.size() && std::getline(lines, line))
    out.push_back(std::atoi(line.c_str()));
  return out;
}

/// Milliseconds since t0.
long long ms_since(clock_type::time_point t0) {
  return static_cast<long long>(
    std::chrono::duration_cast<std::chrono::milliseconds>(clock_type::now() - t0).count());
}

int status_of(const std::string& curl_out) {
  auto nl = curl_out.rfind('\n');
  return nl == std::string::npos ? 0 : std::atoi(curl_out.c_str() + nl + 1);
}

size_t count_of(const std::string& text, const std::string& needle) {
  size_t n = 0;
  for (auto at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1))
    ++n;
  return n;
}

/// Polls until host:port accepts (or, with `open` false, refuses); the
/// milliseconds it took, or -1 at the deadline.
long wait_port_state(const std::string& host, uint16_t port, bool open,
                     std::chrono::milliseconds timeout) {
  auto t0 = clock_type::now();
  while (clock_type::now() - t0 < timeout) {
    bool accepts = static_cast<bool>(drtp::sock::connect_tcp(host, port, 200));
    if (accepts == open)
      return static_cast<long>(
        std::chrono::duration_cast<std::chrono::milliseconds>(clock_type::now() - t0).count());
    std::this_thread::sleep_for(2ms);
  }
  return -1;
}

/// An echo session through host:port, bounded by the socket timeouts.
bool echo_via(const std::string& host, uint16_t port, size_t bytes, uint64_t seed) {
  auto s = drtp::sock::connect_tcp(host, port, 3000);
  if (!s)
    return false;
  auto data = drtp::sock::random_bytes(bytes, seed);
  std::vector<char> back(bytes);
  size_t half = bytes / 2;
  if (!drtp::sock::send_all(s.get(), data.data(), half)
      || !drtp::sock::recv_all(s.get(), back.data(), half))
    return false;
  std::this_thread::sleep_for(10ms); // a session that lives a while
  if (!drtp::sock::send_all(s.get(), data.data() + half, bytes - half)
      || !drtp::sock::recv_all(s.get(), back.data() + half, bytes - half))
    return false;
  return back == data;
}

/// Retries an echo until it works (a tunnel coming up); false at the deadline.
bool echo_eventually(const std::string& host, uint16_t port, std::chrono::milliseconds timeout) {
  auto t0 = clock_type::now();
  for (uint64_t seed = 1; clock_type::now() - t0 < timeout; ++seed) {
    if (echo_via(host, port, 4096, seed))
      return true;
    std::this_thread::sleep_for(50ms);
  }
  return false;
}

struct pop_proc {
  std::string name, host; // host: where its public listeners bind
  uint16_t tunnel_port = 0;
  std::unique_ptr<process> proc;
};

class pop_control : public ::testing::Test {
protected:
  void SetUp() override {
    dir_ = make_temp_dir("pop-control");
    cp_dir_ = dir_ + "/control";
    control_port_ = free_port();
    base_ = "https://127.0.0.1:" + std::to_string(control_port_);
    pop_pin_ = gen_cert("pop");
    pop_b_pin_ = gen_cert("pop-b");
    ASSERT_EQ(pop_pin_.rfind("sha256:", 0), 0u);
    pops_[0] = {"pop-a", "127.0.0.1", free_port(), nullptr};
    pops_[1] = {"pop-b", "127.0.0.2", free_port(), nullptr};
  }

  void TearDown() override {
    stop_load();
    agents_.clear();
    for (auto& p : pops_)
      p.proc.reset();
    control_.reset();
    remove_tree(dir_);
  }

  /// dir/NAME.crt and .key; their pin.
  std::string gen_cert(const std::string& name) {
    process gen({bin("drtp-pop"), "gen-cert", "--cert", dir_ + "/" + name + ".crt", "--key",
                 dir_ + "/" + name + ".key"});
    EXPECT_EQ(gen.wait_exit(10s), 0) << gen.output();
    return gen.output().substr(0, gen.output().find('\n'));
  }

  void start_control() {
    control_ = std::make_unique<process>(
      std::vector<std::string>{bin("drtp-control"), "--dev", "--state-dir", cp_dir_, "--listen",
                               "127.0.0.1:" + std::to_string(control_port_)},
      process_options{{}, "", SIGTERM, 3000ms});
    ASSERT_TRUE(control_->wait_for("drtp-control: listening on", 15s)) << control_->output();
    token_ = read_line(cp_dir_ + "/admin.token");
    control_pin_ = read_line(cp_dir_ + "/pin");
    ASSERT_FALSE(token_.empty());
    ASSERT_EQ(control_pin_.rfind("sha256:", 0), 0u) << control_pin_;
  }

  static std::string cert(const pop_proc& p) {
    return p.name == "pop-b" ? "pop-b" : "pop";
  }

  /// pop-b also has a YAML (static services: none at first).
  void start_pop(pop_proc& p) {
    std::vector<std::string> argv{
      bin("drtp-pop"), "--control", base_, "--control-pin", control_pin_, "--name", p.name,
      "--region", p.name == "pop-a" ? "eu" : "us", "--pop-secret-file", cp_dir_ + "/pops.secret",
      "--public-address", p.host, "--public-host", p.host, "--state-dir",
      dir_ + "/" + p.name, "--listen", "127.0.0.1:" + std::to_string(p.tunnel_port), "--cert",
      dir_ + "/" + cert(p) + ".crt", "--key", dir_ + "/" + cert(p) + ".key"};
    if (p.name == "pop-b") {
      if (!std::ifstream{dir_ + "/pop-b.yaml"})
        std::ofstream{dir_ + "/pop-b.yaml"} << "services: []\n";
      argv.push_back("--config");
      argv.push_back(dir_ + "/pop-b.yaml");
    }
    p.proc = std::make_unique<process>(argv);
  }

  std::string api(const std::string& rest) const {
    return "'" + base_ + "/apis/drtp.dev/v1/" + rest + "'";
  }
  std::string auth() const {
    return "-H 'Authorization: Bearer " + token_ + "' -H 'Content-Type: application/json' ";
  }

  /// A service's secret file and its publicKey (made by drtp-pop gen-secret).
  std::string make_secret(const std::string& service, const std::string& file) {
    process gen({bin("drtp-pop"), "gen-secret", "--out", dir_ + "/" + file, "--service",
                 service});
    EXPECT_EQ(gen.wait_exit(10s), 0) << gen.output();
    auto out = gen.output();
    auto at = out.find("ed25519:");
    return at == std::string::npos ? "" : out.substr(at, 8 + 64);
  }

  static std::string connection_json(const std::string& name, const std::string& key,
                                     uint16_t public_port, const std::string& allow = "") {
    return R"({"apiVersion":"drtp.dev/v1","kind":"DRTPConnection","metadata":{"name":")" + name
           + R"("},"spec":{"protocol":"tcp","local":"127.0.0.1:1","publicPort":)"
           + std::to_string(public_port) + R"(,"publicKey":")" + key + R"(","allow":[)"
           + (allow.empty() ? "" : "\"" + allow + "\"") + "]}}";
  }

  // curl's arguments for a create, a replace and a delete.
  std::string create_args(const std::string& name, const std::string& key,
                          uint16_t port) const {
    return auth() + "-X POST --data '" + connection_json(name, key, port) + "' "
           + api("drtpconnections");
  }
  std::string replace_args(const std::string& name, const std::string& key, uint16_t port,
                           const std::string& allow = "") const {
    return auth() + "-X PUT --data '" + connection_json(name, key, port, allow) + "' "
           + api("drtpconnections/" + name);
  }
  std::string remove_args(const std::string& name) const {
    return auth() + "-X DELETE " + api("drtpconnections/" + name);
  }
  int create(const std::string& name, const std::string& key, uint16_t port) {
    return status_of(curl(create_args(name, key, port)));
  }
  int replace(const std::string& name, const std::string& key, uint16_t port) {
    return status_of(curl(replace_args(name, key, port)));
  }
  int remove(const std::string& name) {
    return status_of(curl(remove_args(name)));
  }

  /// A static agent of `service` through both POPs.
  process& serve(const std::string& service, const std::string& secret_file) {
    std::vector<std::string> argv{bin("drtp"), "serve", "--service", service, "--local",
                                  "127.0.0.1:" + std::to_string(echo_.port()), "--secret-file",
                                  dir_ + "/" + secret_file};
    for (auto& p : pops_) {
      argv.push_back("--pop");
      argv.push_back("127.0.0.1:" + std::to_string(p.tunnel_port) + "@"
                     + (p.name == "pop-a" ? "eu" : "us") + ",fingerprint="
                     + (p.name == "pop-b" ? pop_b_pin_ : pop_pin_));
    }
    agents_.push_back(std::make_unique<process>(argv));
    return *agents_.back();
  }

  void start_load(uint16_t port) {
    for (int t = 0; t < 4; ++t)
      load_.emplace_back([this, t, port] {
        auto& host = pops_[t % 2].host;
        for (uint64_t n = static_cast<uint64_t>(t); !stop_ && n < 100000; n += 4) {
          ++attempts_;
          if (!echo_via(host, port, 16 * 1024, n))
            ++failures_;
        }
      });
  }

  void stop_load() {
    stop_ = true;
    for (auto& t : load_)
      t.join();
    load_.clear();
  }

  std::string dir_, cp_dir_, base_, token_, control_pin_, pop_pin_, pop_b_pin_;
  uint16_t control_port_ = 0;
  std::unique_ptr<process> control_;
  pop_proc pops_[2];
  std::vector<std::unique_ptr<process>> agents_;
  drtp::sock::echo_server echo_;
  std::vector<std::thread> load_;
  std::atomic<bool> stop_{false};
  std::atomic<int> attempts_{0}, failures_{0};
};

} // namespace

TEST_F(pop_control, pops_follow_the_registry_live_and_serve_without_it) {
  auto t_start = clock_type::now();
  auto phase = [&](const char* what) {
    std::printf("phase: %s at %lld ms\n", what, ms_since(t_start));
    std::fflush(stdout);
  };
  start_control();
  for (auto& p : pops_)
    start_pop(p);
  for (auto& p : pops_)
    ASSERT_TRUE(p.proc->wait_for("drtp-pop: control plane: synced", 15s)) << p.proc->output();

  // Both DRTPServers registered and ready.
  auto servers = curl(auth() + api("drtpservers"));
  EXPECT_EQ(status_of(servers), 200) << servers;
  EXPECT_NE(servers.find("\"pop-a\""), std::string::npos) << servers;
  EXPECT_NE(servers.find("\"pop-b\""), std::string::npos) << servers;
  EXPECT_EQ(count_of(servers, "\"ready\":true"), 2u) << servers;
  EXPECT_NE(servers.find(pop_pin_), std::string::npos) << servers;
  EXPECT_NE(servers.find(pop_b_pin_), std::string::npos) << servers;

  // A new public service: its listener opens at both POPs.
  auto echo_key = make_secret("echo", "echo.secret");
  auto echo_port = free_port();
  ASSERT_EQ(create("echo", echo_key, echo_port), 201);
  auto t_created = clock_type::now();
  long open_ms[2];
  // Since the 201 (polled one after the other: pop-b's may have opened
  // while pop-a's was awaited).
  for (int i = 0; i < 2; ++i) {
    auto waited = wait_port_state(pops_[i].host, echo_port, true, 5s);
    ASSERT_GE(waited, 0) << pops_[i].proc->output();
    open_ms[i] = static_cast<long>(ms_since(t_created));
  }
  std::printf("figure: create (201) -> public listener accepting: pop-a by %ld ms, pop-b by "
              "%ld ms (target < 1000)\n",
              open_ms[0], open_ms[1]);
  auto& echo_agent = serve("echo", "echo.secret");
  ASSERT_TRUE(echo_agent.wait_for("2 of 2 up", 15s)) << echo_agent.output();
  for (auto& p : pops_)
    EXPECT_TRUE(echo_eventually(p.host, echo_port, 5s)) << p.proc->output();

  phase("echo served");
  // A rotated credential: the old secret is refused at its next login,
  // the new one gets in.
  auto old_key = make_secret("svc", "svc-old.secret");
  auto new_key = make_secret("svc", "svc-new.secret");
  auto svc_port = free_port();
  ASSERT_EQ(create("svc", old_key, svc_port), 201);
  auto& old_agent = serve("svc", "svc-old.secret");
  ASSERT_TRUE(old_agent.wait_for("2 of 2 up", 15s)) << old_agent.output();
  EXPECT_TRUE(echo_eventually(pops_[0].host, svc_port, 5s));
  ASSERT_EQ(replace("svc", new_key, svc_port), 200);
  EXPECT_EQ(old_agent.wait_exit(15s), 1) << old_agent.output();
  EXPECT_NE(old_agent.output().find("rejected service 'svc': wrong secret"), std::string::npos)
    << old_agent.output();
  auto& new_agent = serve("svc", "svc-new.secret");
  ASSERT_TRUE(new_agent.wait_for("2 of 2 up", 15s)) << new_agent.output();
  EXPECT_TRUE(echo_eventually(pops_[1].host, svc_port, 5s));

  phase("rotated");
  // A deleted service: its listeners close, its agent gets goaway.
  ASSERT_EQ(remove("svc"), 200);
  for (auto& p : pops_)
    EXPECT_GE(wait_port_state(p.host, svc_port, false, 5s), 0) << p.proc->output();
  EXPECT_EQ(new_agent.wait_exit(15s), 1) << new_agent.output();
  EXPECT_NE(new_agent.output().find("draining"), std::string::npos) << new_agent.output();
  EXPECT_NE(new_agent.output().find("unknown service"), std::string::npos)
    << new_agent.output();
  {
    auto out = new_agent.output();
    auto at = out.find("draining");
    auto from = at == std::string::npos ? 0 : out.rfind('\n', at) + 1;
    std::printf("figure: the deleted service's agent: %s\n",
                out.substr(from, out.find('\n', from) - from).c_str());
  }

  phase("deleted");
  // 100 random changes of other services while sessions of echo run.
  auto ups_before = echo_agent.count("tunnel up");
  auto r_key = make_secret("r", "r.secret"); // any valid key will do for these
  constexpr int names = 8;
  std::vector<uint16_t> ports;
  for (int i = 0; i < 2 * names; ++i)
    ports.push_back(free_port());
  std::vector<int> state(names, -1); // -1 absent, else which of its two ports
  std::mt19937 rng{14};
  start_load(echo_port);
  std::this_thread::sleep_for(200ms);
  int refused = 0, creates = 0, updates = 0, deletes = 0;
  auto t_changes = clock_type::now();
  // In batches of 10 requests per curl (a process and a TLS handshake per
  // change would take most of the test's time), 20 ms apart: the POPs see
  // bursts and lone changes both.
  for (int batch = 0; batch < 10; ++batch) {
    std::vector<std::string> requests;
    for (int n = 0; n < 10; ++n) {
      auto i = static_cast<int>(rng() % names);
      auto name = "r" + std::to_string(i);
      if (state[i] < 0) {
        state[i] = static_cast<int>(rng() % 2);
        requests.push_back(create_args(name, r_key, ports[2 * i + state[i]]));
        ++creates;
      } else if (rng() % 3 == 0) {
        requests.push_back(remove_args(name));
        state[i] = -1;
        ++deletes;
      } else {
        // A new public port, or a new allow list on the same one.
        if (rng() % 2)
          state[i] = 1 - state[i];
        requests.push_back(
          replace_args(name, r_key, ports[2 * i + state[i]], rng() % 2 ? "group:ops" : ""));
        ++updates;
      }
    }
    auto statuses = curl_batch(requests);
    refused += static_cast<int>(requests.size() - statuses.size());
    for (auto st : statuses)
      if (st / 100 != 2)
        ++refused;
    std::this_thread::sleep_for(20ms);
  }
  auto changes_ms = ms_since(t_changes);
  // The last change reached both POPs: every present service listens there.
  for (int i = 0; i < names; ++i)
    for (auto& p : pops_) {
      if (state[i] >= 0) {
        EXPECT_GE(wait_port_state(p.host, ports[2 * i + state[i]], true, 5s), 0)
          << "r" << i << " at " << p.name;
      }
    }
  std::this_thread::sleep_for(300ms);
  stop_load();
  EXPECT_EQ(refused, 0);
  EXPECT_GT(attempts_.load(), 20);
  EXPECT_EQ(failures_.load(), 0);
  EXPECT_EQ(echo_agent.count("tunnel up"), ups_before) << echo_agent.output();
  std::printf("figure: 100 random changes (%d creates, %d updates, %d deletes) in %lld ms; "
              "%d echo sessions of the unchanged service meanwhile, %d failed\n",
              creates, updates, deletes, static_cast<long long>(changes_ms), attempts_.load(),
              failures_.load());

  phase("changes done");
  // SIGHUP adds a static service to pop-b's YAML and swaps its
  // certificate; the registry's services stay, the DRTPServer gets the new
  // pin.
  make_secret("st", "st.secret");
  auto new_pin = gen_cert("pop-b2");
  ASSERT_EQ(::rename((dir_ + "/pop-b2.key").c_str(), (dir_ + "/pop-b.key").c_str()), 0);
  ASSERT_EQ(::rename((dir_ + "/pop-b2.crt").c_str(), (dir_ + "/pop-b.crt").c_str()), 0);
  auto st_port = free_port();
  std::ofstream{dir_ + "/pop-b.yaml"} << "services:\n  - name: st\n    secret_file: " << dir_
                                      << "/st.secret\n    public: " << pops_[1].host << ":"
                                      << st_port << "\n";
  pops_[1].proc->signal(SIGHUP);
  EXPECT_TRUE(pops_[1].proc->wait_for("SIGHUP: config reloaded: ", 5s))
    << pops_[1].proc->output();
  EXPECT_GE(wait_port_state(pops_[1].host, st_port, true, 5s), 0) << pops_[1].proc->output();
  EXPECT_TRUE(echo_via(pops_[1].host, echo_port, 4096, 7));
  bool pin_published = false;
  for (int n = 0; n < 50 && !pin_published; ++n) {
    pin_published = curl(auth() + api("drtpservers/pop-b")).find(new_pin) != std::string::npos;
    if (!pin_published)
      std::this_thread::sleep_for(50ms);
  }
  EXPECT_TRUE(pin_published) << pops_[1].proc->output();
  for (int i = 0; i < names; ++i) {
    if (state[i] >= 0) {
      EXPECT_GE(wait_port_state(pops_[1].host, ports[2 * i + state[i]], true, 1s), 0)
        << "r" << i << " after the SIGHUP";
    }
  }

  // What pop-a last knew, on disk for its owner only, public keys only.
  struct stat st {};
  ASSERT_EQ(::stat((dir_ + "/pop-a/registry.json").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto snapshot = read_line(dir_ + "/pop-a/registry.json");
  EXPECT_NE(snapshot.find("\"echo\""), std::string::npos) << snapshot;
  EXPECT_EQ(snapshot.find(read_line(dir_ + "/echo.secret")), std::string::npos);

  // Static stability: the control plane gone, pop-a restarted, it serves
  // from its registry.json.
  control_.reset(); // SIGTERM, then SIGKILL
  pops_[0].proc.reset();
  start_pop(pops_[0]);
  auto& pa = *pops_[0].proc;
  ASSERT_TRUE(pa.wait_for("service 'echo' public on", 10s)) << pa.output();
  EXPECT_TRUE(pa.wait_for("control plane unreachable, serving what it last knew", 10s))
    << pa.output();
  EXPECT_TRUE(echo_eventually(pops_[0].host, echo_port, 10s)) << echo_agent.output();

  phase("served from registry.json");
  // The control plane back: the POP registers again and syncs.
  start_control();
  EXPECT_TRUE(pa.wait_for("drtp-pop: control plane: registered", 15s)) << pa.output();
  EXPECT_TRUE(pa.wait_for("drtp-pop: control plane: synced", 5s)) << pa.output();
  EXPECT_TRUE(echo_via(pops_[0].host, echo_port, 4096, 8));
  for (auto& p : pops_)
    EXPECT_TRUE(p.proc->alive()) << p.proc->output();
  std::printf("figure: whole test %lld ms\n", ms_since(t_start));
}

// A public port another process holds: pop-a serves on (one line naming
// the service and the port, the other service public). Then SIGTERM: the
// registry says pop-a is not ready (status.draining) before it exits.
TEST_F(pop_control, a_taken_port_is_one_line_and_a_drain_leaves_the_registry_told) {
  auto t_start = clock_type::now();
  start_control();
  uint16_t busy_port = 0;
  auto busy = drtp::sock::listen_tcp(pops_[0].host, 0, busy_port);
  ASSERT_TRUE(busy);
  auto free_key = make_secret("free", "free.secret");
  auto taken_key = make_secret("taken", "taken.secret");
  auto free_port_ = free_port();
  EXPECT_EQ(create("free", free_key, free_port_), 201);
  EXPECT_EQ(create("taken", taken_key, busy_port), 201);
  start_pop(pops_[0]);
  auto& pa = *pops_[0].proc;
  ASSERT_TRUE(pa.wait_for("drtp-pop: control plane: synced", 15s)) << pa.output();
  EXPECT_TRUE(pa.wait_for("service 'taken' has no public listener (port "
                            + std::to_string(busy_port) + ")",
                          5s))
    << pa.output();
  EXPECT_GE(wait_port_state(pops_[0].host, free_port_, true, 5000ms), 0) << pa.output();
  EXPECT_TRUE(pa.alive()) << pa.output();
  auto me = curl(auth() + api("drtpservers/pop-a"));
  EXPECT_NE(me.find("\"ready\":true"), std::string::npos) << me;

  auto t0 = clock_type::now();
  pa.signal(SIGTERM);
  EXPECT_EQ(pa.wait_exit(5000ms), 0) << pa.output();
  auto exit_ms = ms_since(t0);
  me = curl(auth() + api("drtpservers/pop-a"));
  EXPECT_NE(me.find("\"ready\":false"), std::string::npos) << me;
  EXPECT_NE(me.find("\"draining\":true"), std::string::npos) << me;
  EXPECT_NE(pa.output().find("marked draining in the registry"), std::string::npos)
    << pa.output();
  std::printf("figure: taken port %u named in one line (%zu), pop-a served on; SIGTERM -> "
              "registry told and exited in %lld ms; whole test %lld ms\n",
              busy_port, count_of(pa.output(), "has no public listener"), exit_ms,
              ms_since(t_start));
}
