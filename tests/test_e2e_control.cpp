// drtp-control, the real binary (--dev: self-signed certificate, SQLite in
// its state dir), spoken to with curl over TLS: health without sign-in,
// refusal with an audit line, create and read as the operator, and the
// registry kept across a restart.

#include <gtest/gtest.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>

#include "tests/support/proc.hpp"

using namespace drtp::test;
using namespace std::chrono_literals;

namespace {

/// curl's body and, last line, the HTTP status.
std::string curl(const std::string& args) {
  std::string cmd = "curl -sk --max-time 10 -w '\\n%{http_code}' " + args + " 2>&1";
  std::string out = run_shell(cmd).out;
  return out;
}

struct control_plane {
  explicit control_plane(const std::string& dir, uint16_t port)
    : proc({bin_dir() + "/drtp-control", "--dev", "--state-dir", dir, "--listen",
            "127.0.0.1:" + std::to_string(port)},
           process_options{{}, "", SIGTERM, 3000ms}) {}
  process proc;
};

} // namespace

TEST(control_e2e, serves_the_api_refuses_strangers_and_keeps_its_registry) {
  auto dir = make_temp_dir("control");
  auto port = free_port();
  auto base = "https://127.0.0.1:" + std::to_string(port);
  auto svc = "'" + base + "/apis/drtp.dev/v1/drtpconnections";
  {
    control_plane cp(dir, port);
    ASSERT_TRUE(cp.proc.wait_for("drtp-control: listening on", 15s)) << cp.proc.output();
    auto token = read_text(dir + "/admin.token");
    while (!token.empty() && (token.back() == '\n' || token.back() == '\r'))
      token.pop_back();
    ASSERT_FALSE(token.empty());
    // The token is in a file only: never in the output.
    EXPECT_EQ(cp.proc.output().find(token), std::string::npos);

    auto health = curl("'" + base + "/healthz'");
    EXPECT_EQ(health.rfind("ok", 0), 0u) << health;
    EXPECT_NE(health.find("\n200"), std::string::npos) << health;
    auto anon = curl(svc + "'");
    EXPECT_NE(anon.find("\n401"), std::string::npos) << anon;
    auto wrong = curl("-H 'Authorization: Bearer not-the-token' " + svc + "'");
    EXPECT_NE(wrong.find("\n401"), std::string::npos) << wrong;
    EXPECT_TRUE(cp.proc.wait_for("audit: control refused", 5s)) << cp.proc.output();

    auto auth = "-H 'Authorization: Bearer " + token + "' -H 'Content-Type: application/json' ";
    std::string body = R"({"apiVersion":"drtp.dev/v1","kind":"DRTPConnection",)"
                       R"("metadata":{"name":"joes-pg"},"spec":{"protocol":"tcp",)"
                       R"("local":"127.0.0.1:5432","publicKey":"ed25519:)" +
                       std::string(64, 'a') + R"("}})";
    auto created = curl(auth + "-X POST --data '" + body + "' " + svc + "'");
    EXPECT_NE(created.find("\n201"), std::string::npos) << created;
    auto again = curl(auth + "-X POST --data '" + body + "' " + svc + "'");
    EXPECT_NE(again.find("\n409"), std::string::npos) << again;
    auto bad = curl(auth + "-X POST --data '{\"kind\":' " + svc + "'");
    EXPECT_NE(bad.find("\n400"), std::string::npos) << bad;
    EXPECT_TRUE(cp.proc.alive());
  }
  {
    control_plane cp(dir, port);
    ASSERT_TRUE(cp.proc.wait_for("drtp-control: listening on", 15s)) << cp.proc.output();
    auto token = read_text(dir + "/admin.token");
    while (!token.empty() && token.back() == '\n')
      token.pop_back();
    auto got = curl("-H 'Authorization: Bearer " + token + "' " + svc + "/joes-pg'");
    EXPECT_NE(got.find("\"joes-pg\""), std::string::npos) << got;
    EXPECT_NE(got.find("\n200"), std::string::npos) << got;
  }
  remove_tree(dir);
}
