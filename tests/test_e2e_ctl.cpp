// drtpctl, the real binary, against the real drtp-control --dev on
// loopback: create with a secret made here (only its public key stored,
// and drtp-pop derives the same key from it), apply of a multi-document
// file (created, unchanged, configured), get as a table, YAML and JSON,
// describe, delete, and the one-line errors (a bad field in document 2, a
// wrong pin, a wrong token, nothing listening).

#include <gtest/gtest.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <regex>
#include <sstream>
#include <string>
#include <sys/stat.h>
#include <sys/wait.h>

#include "tests/support/proc.hpp"

using namespace drtp::test;
using namespace std::chrono_literals;

namespace {

void write_file(const std::string& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
}

std::string trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r'))
    s.pop_back();
  return s;
}

struct result {
  int rc = -1;
  std::string out, err;
  std::string all() const { return out + err; }
};

/// Runs `command` in a shell; stdout and stderr apart.
result shell(const std::string& command, const std::string& dir) {
  auto err_file = dir + "/stderr";
  std::string cmd = "timeout 20 " + command + " 2>" + err_file;
  result r;
  auto sh = run_shell(cmd);
  r.out = std::move(sh.out);
  r.rc = sh.rc;
  r.err = read_text(err_file);
  return r;
}

size_t count(const std::string& text, const std::string& needle) {
  size_t n = 0;
  for (auto i = text.find(needle); i != std::string::npos; i = text.find(needle, i + 1))
    ++n;
  return n;
}

/// The value after "KEY: " on the line that has it.
std::string after(const std::string& text, const std::string& key) {
  auto i = text.find(key);
  if (i == std::string::npos)
    return "";
  auto end = text.find('\n', i);
  return text.substr(i + key.size(), end == std::string::npos ? std::string::npos : end - i - key.size());
}

const std::string key_a = "ed25519:" + std::string(64, 'a');

std::string resources(const std::string& web_local, const std::string& db_local) {
  return "# the fleet's registry\n"
         "apiVersion: drtp.dev/v1\n"
         "kind: Org\n"
         "metadata: {name: acme}\n"
         "spec:\n"
         "  displayName: Acme Inc.\n"
         "---\n"
         "apiVersion: drtp.dev/v1\n"
         "kind: Principal\n"
         "metadata:\n"
         "  name: sam\n"
         "spec:\n"
         "  publicKey: " + key_a + "\n"
         "  org: acme\n"
         "  groups: [ops]\n"
         "---\n"
         "apiVersion: drtp.dev/v1\n"
         "kind: DRTPConnection\n"
         "metadata:\n"
         "  name: web\n"
         "spec:\n"
         "  protocol: tcp\n"
         "  local: " + web_local + "\n"
         "  publicPort: 18080\n"
         "  publicKey: " + key_a + "\n"
         "  org: acme\n"
         "---\n"
         "apiVersion: drtp.dev/v1\n"
         "kind: DRTPConnection\n"
         "metadata:\n"
         "  name: db\n"
         "spec:\n"
         "  local: " + db_local + "\n"
         "  publicKey: \"" + key_a + "\"\n"
         "  allow: [sam, \"group:ops\"]\n"
         "  tunnels: 1\n"
         "---\n"
         "apiVersion: drtp.dev/v1\n"
         "kind: DRTPServer\n"
         "metadata:\n"
         "  name: edge-1\n"
         "spec:\n"
         "  region: eu-west\n"
         "  tunnelAddress: 127.0.0.1:7000\n"
         "  publicAddress: edge-1.example.net\n"
         "  verify: {pin: \"sha256:" + std::string(64, 'b') + "\"}\n"
         "  capacity: {tunnels: 100}\n";
}

class ctl_e2e : public ::testing::Test {
protected:
  void SetUp() override {
    dir_ = make_temp_dir("ctl");
    port_ = free_port();
    cp_ = std::make_unique<process>(
      std::vector<std::string>{bin_dir() + "/drtp-control", "--dev", "--state-dir", dir_ + "/cp",
                               "--listen", "127.0.0.1:" + std::to_string(port_)},
      process_options{{}, "", SIGTERM, 3000ms});
    ASSERT_TRUE(cp_->wait_for("drtp-control: listening on", 15s)) << cp_->output();
    pin_ = trimmed(read_text(dir_ + "/cp/pin"));
    token_ = trimmed(read_text(dir_ + "/cp/admin.token"));
    ASSERT_EQ(pin_.size(), 71u) << pin_;
    ASSERT_FALSE(token_.empty());
  }
  void TearDown() override {
    cp_.reset();
    remove_tree(dir_);
  }

  std::string url() const { return "https://127.0.0.1:" + std::to_string(port_); }

  /// drtpctl with the right connection flags.
  result ctl(const std::string& args) {
    return shell(bin_dir() + "/drtpctl --control " + url() + " --pin " + pin_
                   + " --token-file " + dir_ + "/cp/admin.token " + args,
                 dir_);
  }

  std::string dir_;
  uint16_t port_ = 0;
  std::unique_ptr<process> cp_;
  std::string pin_, token_;
};

} // namespace

TEST_F(ctl_e2e, create_service_prints_the_secret_once_and_stores_only_its_public_key) {
  auto made = ctl("create service joes-pg --local 127.0.0.1:5432 --public-port 15432");
  ASSERT_EQ(made.rc, 0) << made.all();
  EXPECT_NE(made.out.find("drtpconnection/joes-pg created"), std::string::npos) << made.out;
  auto secret = after(made.out, "secret: ");
  ASSERT_TRUE(std::regex_match(secret, std::regex("[0-9a-f]{64}"))) << made.out;
  EXPECT_EQ(count(made.all(), secret), 1u);
  auto key = after(made.out, "publicKey:  ");
  ASSERT_TRUE(std::regex_match(key, std::regex("ed25519:[0-9a-f]{64}"))) << made.out;

  // The registry holds the public key, never the secret.
  auto got = ctl("get service joes-pg -o json");
  ASSERT_EQ(got.rc, 0) << got.all();
  EXPECT_NE(got.out.find("\"publicKey\": \"" + key + "\""), std::string::npos) << got.out;
  EXPECT_EQ(got.out.find(secret), std::string::npos);
  EXPECT_EQ(got.out.find("secret"), std::string::npos) << got.out;
  EXPECT_EQ(read_text(dir_ + "/cp/registry.db").find(secret), std::string::npos);

  // The POP derives the same key from the secret: the agent's login works.
  write_file(dir_ + "/s.txt", secret + "\n");
  auto pop = shell(bin_dir() + "/drtp-pop public-key --service joes-pg < " + dir_ + "/s.txt",
                   dir_);
  ASSERT_EQ(pop.rc, 0) << pop.all();
  EXPECT_EQ(trimmed(pop.out), "public_key: " + key);

  // --secret-out: a new 0600 file, nothing printed, never overwritten.
  auto out_file = dir_ + "/db.secret";
  auto to_file = ctl("create service db --local 127.0.0.1:5433 --allow sam --secret-out " + out_file);
  ASSERT_EQ(to_file.rc, 0) << to_file.all();
  auto file_secret = trimmed(read_text(out_file));
  ASSERT_EQ(file_secret.size(), 64u);
  EXPECT_EQ(to_file.all().find(file_secret), std::string::npos) << to_file.all();
  struct stat st {};
  ASSERT_EQ(::stat(out_file.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto again = ctl("create service db2 --local 127.0.0.1:5433 --secret-out " + out_file);
  EXPECT_EQ(again.rc, 2) << again.all();
  EXPECT_NE(again.err.find("exists"), std::string::npos) << again.err;
  EXPECT_EQ(trimmed(read_text(out_file)), file_secret);

  // A name taken: 409, one line; a principal and an org likewise.
  auto dup = ctl("create service joes-pg --local 127.0.0.1:5432");
  EXPECT_EQ(dup.rc, 1) << dup.all();
  EXPECT_NE(dup.err.find("already exists (HTTP 409)"), std::string::npos) << dup.err;
  EXPECT_EQ(count(dup.err, "\n"), 1u) << dup.err;
  auto sam = ctl("create principal sam --group ops");
  ASSERT_EQ(sam.rc, 0) << sam.all();
  auto sam_secret = after(sam.out, "secret: ");
  write_file(dir_ + "/sam.txt", sam_secret + "\n");
  auto sam_key = shell(bin_dir() + "/drtp-pop public-key --principal sam < " + dir_ + "/sam.txt",
                       dir_);
  EXPECT_EQ(trimmed(sam_key.out), "public_key: " + after(sam.out, "publicKey:  "));
  EXPECT_EQ(ctl("create org acme --display-name Acme").rc, 0);
  auto bad = ctl("create service x --local nowhere");
  EXPECT_EQ(bad.rc, 2) << bad.all();
  EXPECT_NE(bad.err.find("--local: expected host:port"), std::string::npos) << bad.err;
}

TEST_F(ctl_e2e, apply_get_describe_delete) {
  auto file = dir_ + "/fleet.yaml";
  write_file(file, resources("127.0.0.1:8080", "127.0.0.1:5432"));
  auto first = ctl("apply -f " + file);
  ASSERT_EQ(first.rc, 0) << first.all();
  for (auto ref : {"org/acme", "principal/sam", "drtpconnection/web", "drtpconnection/db",
                   "drtpserver/edge-1"})
    EXPECT_NE(first.out.find(std::string(ref) + " created"), std::string::npos) << first.out;
  auto second = ctl("apply -f " + file);
  ASSERT_EQ(second.rc, 0) << second.all();
  EXPECT_EQ(count(second.out, " unchanged\n"), 5u) << second.out;
  write_file(file, resources("127.0.0.1:8081", "127.0.0.1:5432"));
  auto third = shell("cat " + file + " | " + bin_dir() + "/drtpctl --control " + url() + " --pin "
                       + pin_ + " --token-file " + dir_ + "/cp/admin.token apply -f -",
                     dir_);
  ASSERT_EQ(third.rc, 0) << third.all();
  EXPECT_NE(third.out.find("drtpconnection/web configured"), std::string::npos) << third.out;
  EXPECT_EQ(count(third.out, " unchanged\n"), 4u) << third.out;

  auto services = ctl("get services");
  ASSERT_EQ(services.rc, 0) << services.all();
  std::printf("%s", services.out.c_str());
  EXPECT_TRUE(std::regex_search(services.out,
                                std::regex("NAME +PROTOCOL +LOCAL +PUBLIC-PORT +POPS +AGENTS")))
    << services.out;
  EXPECT_TRUE(std::regex_search(services.out, std::regex("web +tcp +127.0.0.1:8081 +18080 +- +0")))
    << services.out;
  EXPECT_TRUE(std::regex_search(services.out, std::regex("db +tcp +127.0.0.1:5432 +private")))
    << services.out;
  auto servers = ctl("get server");
  std::printf("%s", servers.out.c_str());
  EXPECT_TRUE(std::regex_search(servers.out, std::regex("NAME +REGION +READY +TUNNELS +AGE")))
    << servers.out;
  EXPECT_TRUE(std::regex_search(servers.out, std::regex("edge-1 +eu-west +false +0/100")))
    << servers.out;
  auto yaml = ctl("get drtpserver edge-1 -o yaml");
  ASSERT_EQ(yaml.rc, 0) << yaml.all();
  EXPECT_NE(yaml.out.find("kind: DRTPServer"), std::string::npos) << yaml.out;
  EXPECT_NE(yaml.out.find("region: eu-west"), std::string::npos) << yaml.out;
  EXPECT_TRUE(std::regex_search(yaml.out, std::regex("resourceVersion: \"[0-9]+\""))) << yaml.out;
  auto list = ctl("get principals -o json");
  EXPECT_NE(list.out.find("\"kind\": \"PrincipalList\""), std::string::npos) << list.out;
  EXPECT_NE(list.out.find("\"sam\""), std::string::npos) << list.out;
  // What -o yaml prints applies again, unchanged.
  write_file(dir_ + "/edge.yaml", yaml.out);
  auto reapply = ctl("apply -f " + dir_ + "/edge.yaml");
  EXPECT_EQ(reapply.rc, 0) << reapply.all();
  EXPECT_NE(reapply.out.find("drtpserver/edge-1 unchanged"), std::string::npos) << reapply.all();

  // A List (get KIND -o yaml) applies as its items.
  auto services_yaml = ctl("get services -o yaml");
  write_file(dir_ + "/services.yaml", services_yaml.out);
  auto relist = ctl("apply -f " + dir_ + "/services.yaml");
  EXPECT_EQ(relist.rc, 0) << relist.all();
  EXPECT_EQ(count(relist.out, " unchanged\n"), 2u) << relist.all();

  auto described = ctl("describe service db");
  ASSERT_EQ(described.rc, 0) << described.all();
  std::printf("%s", described.out.c_str());
  for (auto s : {"Name:", "db", "Kind:", "DRTPConnection", "Spec:", "local: 127.0.0.1:5432",
                 "- sam", "Status:"})
    EXPECT_NE(described.out.find(s), std::string::npos) << s << "\n" << described.out;

  auto deleted = ctl("delete service web");
  ASSERT_EQ(deleted.rc, 0) << deleted.all();
  EXPECT_NE(deleted.out.find("drtpconnection/web deleted"), std::string::npos) << deleted.out;
  auto gone = ctl("get service web");
  EXPECT_EQ(gone.rc, 1) << gone.all();
  EXPECT_NE(gone.err.find("(HTTP 404)"), std::string::npos) << gone.err;
  auto gone_again = ctl("delete service web");
  EXPECT_EQ(gone_again.rc, 1) << gone_again.all();
}

TEST_F(ctl_e2e, errors_are_one_line) {
  // A bad field in document 2 (its line is 14): nothing is applied.
  auto file = dir_ + "/svc.yaml";
  write_file(file, "apiVersion: drtp.dev/v1\n"
                   "kind: Org\n"
                   "metadata: {name: first}\n"
                   "spec: {}\n"
                   "---\n"
                   "# the database\n"
                   "apiVersion: drtp.dev/v1\n"
                   "kind: DRTPConnection\n"
                   "metadata:\n"
                   "  name: db\n"
                   "spec:\n"
                   "  protocol: tcp\n"
                   "  publicKey: " + key_a + "\n"
                   "  local: localhost\n");
  auto bad = ctl("apply -f " + file);
  EXPECT_EQ(bad.rc, 1) << bad.all();
  EXPECT_EQ(bad.err, "drtpctl: " + file + ": document 2 (line 14): spec.local: expected host:port\n");
  EXPECT_EQ(ctl("get org first").rc, 1); // nothing applied

  write_file(file, "apiVersion: drtp.dev/v1\nkind: Org\nmetadata: {name: a}\nspec: {}\n---\n"
                   "apiVersion: drtp.dev/v1\nkind: Gadget\nmetadata: {name: b}\nspec: {}\n"
                   "---\napiVersion: drtp.dev/v1\nkind: Org\nspec: {}\n"
                   "---\nkind: Org\nmetadata: {name: c\n");
  auto three = ctl("apply -f " + file);
  EXPECT_EQ(three.rc, 1);
  EXPECT_NE(three.err.find(": document 2 (line 7): kind: unknown kind 'Gadget'"), std::string::npos)
    << three.err;
  EXPECT_NE(three.err.find(": document 3 (line 11): metadata.name: required"), std::string::npos)
    << three.err;
  EXPECT_NE(three.err.find(": document 4 (line 16): "), std::string::npos) << three.err;
  EXPECT_EQ(count(three.err, "\n"), 3u) << three.err;

  // Wrong pin: refused, one line saying so.
  auto wrong_pin = shell(bin_dir() + "/drtpctl --control " + url() + " --pin sha256:"
                           + std::string(64, 'c') + " --token-file " + dir_
                           + "/cp/admin.token get services",
                         dir_);
  EXPECT_EQ(wrong_pin.rc, 1) << wrong_pin.all();
  EXPECT_NE(wrong_pin.err.find("does --pin match"), std::string::npos) << wrong_pin.err;
  EXPECT_EQ(count(wrong_pin.err, "\n"), 1u) << wrong_pin.err;

  // Wrong token, from the environment: 401, and the token is not printed.
  write_file(dir_ + "/wrong.token", "not-the-token-1234\n");
  auto wrong = shell("env DRTP_CONTROL=" + url() + " DRTP_CONTROL_PIN=" + pin_ + " DRTP_TOKEN_FILE="
                       + dir_ + "/wrong.token " + bin_dir() + "/drtpctl get services",
                     dir_);
  EXPECT_EQ(wrong.rc, 1) << wrong.all();
  EXPECT_NE(wrong.err.find("401"), std::string::npos) << wrong.err;
  EXPECT_EQ(wrong.all().find("not-the-token-1234"), std::string::npos) << wrong.all();
  EXPECT_EQ(count(wrong.err, "\n"), 1u) << wrong.err;
  // The right token, from the environment too.
  auto right = shell("env DRTP_CONTROL=" + url() + " DRTP_CONTROL_PIN=" + pin_ + " DRTP_TOKEN_FILE="
                       + dir_ + "/cp/admin.token " + bin_dir() + "/drtpctl get orgs",
                     dir_);
  EXPECT_EQ(right.rc, 0) << right.all();
  EXPECT_EQ(right.all().find(token_), std::string::npos);

  // --ca instead of --pin: the dev certificate is its own CA (and names
  // 127.0.0.1); another certificate is not.
  auto ca = shell(bin_dir() + "/drtpctl --control " + url() + " --ca " + dir_ + "/cp/cert.pem"
                    + " --token-file " + dir_ + "/cp/admin.token get orgs",
                  dir_);
  EXPECT_EQ(ca.rc, 0) << ca.all();
  auto other = shell(bin_dir() + "/drtp-pop gen-cert --cert " + dir_ + "/other.pem --key " + dir_
                       + "/other.key",
                     dir_);
  ASSERT_EQ(other.rc, 0) << other.all();
  auto wrong_ca = shell(bin_dir() + "/drtpctl --control " + url() + " --ca " + dir_
                          + "/other.pem --token-file " + dir_ + "/cp/admin.token get orgs",
                        dir_);
  EXPECT_EQ(wrong_ca.rc, 1) << wrong_ca.all();
  EXPECT_NE(wrong_ca.err.find("is its certificate signed by --ca?"), std::string::npos)
    << wrong_ca.err;

  // Nothing listening.
  auto closed = shell(bin_dir() + "/drtpctl --control https://127.0.0.1:" + std::to_string(free_port())
                        + " --pin " + pin_ + " --token-file " + dir_ + "/cp/admin.token get orgs",
                      dir_);
  EXPECT_EQ(closed.rc, 1) << closed.all();
  EXPECT_NE(closed.err.find("cannot reach the control plane"), std::string::npos) << closed.err;

  // Usage: exit status 2; --help: 0.
  EXPECT_EQ(ctl("get").rc, 2);
  EXPECT_EQ(ctl("get gadgets").rc, 2);
  EXPECT_EQ(ctl("frobnicate").rc, 2);
  EXPECT_EQ(ctl("").rc, 2);
  auto help = shell(bin_dir() + "/drtpctl --help", dir_);
  EXPECT_EQ(help.rc, 0);
  EXPECT_NE(help.out.find("apply -f FILE"), std::string::npos);
  for (auto c : {"apply", "get", "describe", "delete", "create"})
    EXPECT_EQ(shell(bin_dir() + "/drtpctl " + std::string(c) + " --help", dir_).rc, 0) << c;
  EXPECT_EQ(cp_->output().find(token_), std::string::npos);
}
