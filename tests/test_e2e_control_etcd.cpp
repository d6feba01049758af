// Two real drtp-control replicas on one real 3-member etcd cluster
// (loopback), spoken to with curl over TLS (--cacert, the admin token in a
// header file, never in argv): a change through replica A reaches a watcher
// on replica B; then writes alternate through A and B while A is killed -9
// and so is one etcd member; the writer goes on through B, as a client
// would; every acknowledged write is listed by B afterwards, and by A once
// it and the member are back. Figures (latency, errors, the longest gap) are
// printed, not asserted.

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <sys/stat.h>

#include <nlohmann/json.hpp>

#include "tests/support/etcd_cluster.hpp"
#include "tests/support/proc.hpp"

using namespace drtp::test;
using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

namespace {

long long ms_since(steady::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(steady::now() - t).count();
}

struct answer {
  int status = 0; // 0: no HTTP answer (refused, timed out)
  std::string body;
};

/// One curl request; `args` after the common ones (TLS with the cluster's
/// certificate as CA, the admin token from a header file).
answer curl(const std::string& common, const std::string& args) {
  std::string cmd = "curl -sS --max-time 5 -w '\\n%{http_code}' " + common + " " + args
                    + " 2>/dev/null";
  std::string out = run_shell(cmd).out;
  answer a;
  auto nl = out.rfind('\n');
  if (nl == std::string::npos)
    return a;
  a.status = std::atoi(out.c_str() + nl + 1);
  a.body = out.substr(0, nl);
  return a;
}

void write_file(const std::string& path, const std::string& text, mode_t mode) {
  {
    std::ofstream out(path, std::ios::trunc);
    out << text;
  }
  ::chmod(path.c_str(), mode);
}

std::string org_body(const std::string& name) {
  return R"({"apiVersion":"drtp.dev/v1","kind":"Org","metadata":{"name":")" + name
         + R"("},"spec":{"displayName":"replicas test"}})";
}

/// The names of a list answer's items, and its resourceVersion.
std::set<std::string> item_names(const std::string& body, std::string* rv = nullptr) {
  std::set<std::string> out;
  auto j = nlohmann::json::parse(body, nullptr, false);
  if (!j.is_object() || !j.contains("items") || !j["items"].is_array())
    return out;
  for (auto& it : j["items"])
    if (it.contains("metadata") && it["metadata"].contains("name"))
      out.insert(it["metadata"]["name"].get<std::string>());
  if (rv && j.contains("metadata") && j["metadata"].contains("resourceVersion"))
    *rv = j["metadata"]["resourceVersion"].get<std::string>();
  return out;
}

/// A throwaway certificate, admin token and config for both replicas.
struct replica_setup {
  std::string dir, config, common;
  bool ok = false;
  std::string error;

  replica_setup(const std::string& store) : dir(make_temp_dir("replicas")) {
    auto cert = dir + "/cert.pem", key = dir + "/key.pem";
    std::string gen = "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 "
                      "-nodes -days 1 -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 "
                      "-keyout " + key + " -out " + cert + " >/dev/null 2>&1";
    if (std::system(gen.c_str()) != 0) {
      error = "openssl could not make a certificate";
      return;
    }
    auto token_file = dir + "/admin.token";
    process g({bin_dir() + "/drtp-control", "gen-admin-token", "--out", token_file});
    if (g.wait_exit(10s) != 0) {
      error = "gen-admin-token failed: " + g.output();
      return;
    }
    auto out = g.output();
    auto at = out.find("admin_token_sha256: ");
    if (at == std::string::npos) {
      error = "gen-admin-token printed no digest: " + out;
      return;
    }
    auto digest = out.substr(at + 20, 7 + 64);
    auto token = read_text(token_file);
    while (!token.empty() && (token.back() == '\n' || token.back() == '\r'))
      token.pop_back();
    write_file(dir + "/auth.header", "Authorization: Bearer " + token + "\n", 0600);
    config = dir + "/control.yaml";
    write_file(config,
               "tls: {cert: " + cert + ", key: " + key + "}\nstore: " + store
                 + "\nadmin_token_sha256: " + digest + "\n",
               0600);
    common = "--cacert " + cert + " -H @" + dir + "/auth.header";
    ok = true;
  }
  ~replica_setup() { remove_tree(dir); }
};

struct replica {
  replica(const replica_setup& s, uint16_t port)
    : port(port),
      base("https://127.0.0.1:" + std::to_string(port) + "/apis/drtp.dev/v1"),
      proc(std::make_unique<process>(
        std::vector<std::string>{bin_dir() + "/drtp-control", "--config", s.config, "--listen",
                                 "127.0.0.1:" + std::to_string(port)},
        process_options{{}, "", SIGTERM, 3000ms})) {}
  bool ready() { return proc->wait_for("drtp-control: listening on", 15s); }
  uint16_t port;
  std::string base;
  std::unique_ptr<process> proc;
};

TEST(control_etcd_e2e, two_replicas_one_cluster_watch_across_and_no_acknowledged_write_lost) {
  std::unique_ptr<etcd_cluster> cluster;
  try {
    cluster = std::make_unique<etcd_cluster>(3);
  } catch (const std::exception& e) {
    FAIL() << e.what();
  }
  replica_setup s(cluster->store_url());
  ASSERT_TRUE(s.ok) << s.error;
  auto port_a = free_port(), port_b = free_port();
  replica a(s, port_a), b(s, port_b);
  ASSERT_TRUE(a.ready()) << a.proc->output();
  ASSERT_TRUE(b.ready()) << b.proc->output();
  auto json = std::string("-H 'Content-Type: application/json' ");

  // (1) A change through A reaches a watcher on B.
  auto listed = curl(s.common, "'" + b.base + "/orgs'");
  ASSERT_EQ(listed.status, 200) << listed.body;
  std::string rv;
  item_names(listed.body, &rv);
  ASSERT_FALSE(rv.empty()) << listed.body;
  process watch({"/usr/bin/curl", "-sS", "-N", "--max-time", "25", "--cacert",
                 s.dir + "/cert.pem", "-H", "@" + s.dir + "/auth.header",
                 b.base + "/orgs?watch=1&resourceVersion=" + rv});
  // The watch is open once B answers it (a BOOKMARK comes within 5 s, but
  // the first change need not wait for it): give curl its handshake.
  std::this_thread::sleep_for(300ms);
  auto t_post = steady::now();
  auto made = curl(s.common, json + "-X POST --data '" + org_body("watched") + "' '" + a.base
                               + "/orgs'");
  auto post_ms = ms_since(t_post);
  ASSERT_EQ(made.status, 201) << made.body;
  auto t_ack = steady::now();
  ASSERT_TRUE(watch.wait_for("\"watched\"", 10s)) << watch.output();
  auto seen_ms = ms_since(t_ack);
  EXPECT_NE(watch.output().find("\"ADDED\""), std::string::npos) << watch.output();
  std::printf("watch across replicas: POST through A answered in %lld ms, the ADDED line on B's "
              "watch %lld ms after that answer (%lld ms from the request)\n",
              post_ms, seen_ms, post_ms + seen_ms);

  // What one curl round trip costs here (process, TLS, a read), beside a write.
  auto t_get = steady::now();
  for (int i = 0; i < 5; ++i)
    curl(s.common, "'" + b.base + "/orgs/watched'");
  std::printf("one GET through curl: %lld ms on average\n", ms_since(t_get) / 5);

  // (2) Writes alternating through A and B; A and one etcd member killed
  // at the write kill_at; the writer then uses B only.
  constexpr int writes = 300, kill_at = 100, attempts_max = 4;
  std::set<std::string> acked;
  size_t errors = 0, conflicts_after_retry = 0;
  long long gap_max_ms = 0, b_gap_max_ms = 0;
  bool a_up = true;
  auto t0 = steady::now();
  auto last_ack = t0, last_b_answer = t0;
  for (int i = 0; i < writes && ms_since(t0) < 20000; ++i) {
    if (i == kill_at) {
      a.proc->signal(SIGKILL);
      a.proc->wait_exit(5s);
      cluster->kill(0); // the member each store tries first
    }
    auto name = "w-" + std::to_string(i);
    bool use_a = a_up && i % 2 == 0;
    for (int attempt = 0; attempt < attempts_max; ++attempt) {
      auto& r = use_a ? a : b;
      auto got = curl(s.common, json + "-X POST --data '" + org_body(name) + "' '" + r.base
                                  + "/orgs'");
      if (!use_a && got.status != 0) {
        b_gap_max_ms = std::max(b_gap_max_ms, ms_since(last_b_answer));
        last_b_answer = steady::now();
      }
      if (got.status == 201) {
        acked.insert(name);
        gap_max_ms = std::max(gap_max_ms, ms_since(last_ack));
        last_ack = steady::now();
        break;
      }
      ++errors;
      if (got.status == 409 && attempt > 0) {
        // An earlier attempt may have been applied without its answer
        // reaching us (etcd's ambiguous write): not acknowledged, not lost.
        ++conflicts_after_retry;
        break;
      }
      if (use_a && got.status == 0) {
        a_up = false; // A is gone: go on through B, as a client would
        use_a = false;
        continue;
      }
      std::this_thread::sleep_for(100ms);
    }
  }
  auto writes_ms = ms_since(t0);
  EXPECT_FALSE(a_up) << "the writer never saw A fail";

  // Every acknowledged write is listed by B.
  auto after = curl(s.common, "'" + b.base + "/orgs'");
  ASSERT_EQ(after.status, 200) << after.body;
  auto names_b = item_names(after.body);
  size_t lost = 0;
  for (auto& n : acked)
    lost += names_b.count(n) == 0;
  EXPECT_EQ(lost, 0u);
  EXPECT_GT(acked.size(), static_cast<size_t>(writes / 2));
  EXPECT_TRUE(b.proc->alive());
  std::printf("writes through A and B, A and etcd member 0 killed -9 at write %d: %zu of %d "
              "acknowledged (201) in %lld ms, %zu lost, %zu errors (%zu conflicts on a retry), "
              "longest gap between acknowledgements %lld ms, longest wait for an answer from B "
              "%lld ms; B lists %zu orgs\n",
              kill_at, acked.size(), writes, writes_ms, lost, errors, conflicts_after_retry,
              gap_max_ms, b_gap_max_ms, names_b.size());

  // The member and A back: A serves the same list.
  auto t_back = steady::now();
  EXPECT_TRUE(cluster->restart(0)) << cluster->log_tail(0);
  a.proc = std::make_unique<process>(
    std::vector<std::string>{bin_dir() + "/drtp-control", "--config", s.config, "--listen",
                             "127.0.0.1:" + std::to_string(port_a)},
    process_options{{}, "", SIGTERM, 3000ms});
  ASSERT_TRUE(a.ready()) << a.proc->output();
  auto again = curl(s.common, "'" + a.base + "/orgs'");
  ASSERT_EQ(again.status, 200) << again.body;
  auto names_a = item_names(again.body);
  EXPECT_EQ(names_a, names_b);
  std::printf("etcd member 0 and replica A restarted in %lld ms; A lists %zu orgs, the same as B: "
              "%s\n",
              ms_since(t_back), names_a.size(), names_a == names_b ? "yes" : "no");
}

} // namespace
