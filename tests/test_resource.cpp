// The registry's resource model (control/resource) and sign-in
// (control/auth): JSON round trips, errors that name the field, names,
// times, and the Authorization header.

#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include <string>
#include <tuple>
#include <vector>

#include "control/auth.hpp"
#include "control/resource.hpp"
#include "net/openssl_crypto.hpp"
#include "net/wire/handshake.hpp"
#include "net/wire/hex.hpp"

using namespace drtp;
using namespace drtp::control;

namespace {

// -- generators: valid objects -------------------------------------------------------

rc::Gen<std::string> gen_name() {
  return rc::gen::map(
    rc::gen::pair(rc::gen::nonEmpty(rc::gen::container<std::string>(
                    rc::gen::elementOf(std::string("abcdefghijklmnopqrstuvwxyz0123456789")))),
                  rc::gen::inRange(0, 4)),
    [](const std::pair<std::string, int>& p) {
      auto s = p.first.substr(0, 30);
      // A '-' inside, never first or last.
      if (p.second == 0 && s.size() >= 3)
        s[s.size() / 2] = '-';
      return s;
    });
}

rc::Gen<std::string> gen_hex(size_t bytes) {
  return rc::gen::map(rc::gen::container<std::string>(bytes, rc::gen::arbitrary<char>()),
                      [](const std::string& raw) { return net::to_hex(raw); });
}

rc::Gen<std::string> gen_host() {
  return rc::gen::oneOf(gen_name(), rc::gen::element<std::string>("10.0.0.1", "::1", "fe80::2"),
                        rc::gen::map(gen_name(), [](const std::string& n) { return n + ".example"; }));
}

rc::Gen<uint16_t> gen_port() {
  return rc::gen::inRange<uint16_t>(1, 65535);
}

rc::Gen<int64_t> gen_time() {
  // Years 0000-9999, where RFC 3339 can write a time.
  return rc::gen::inRange<int64_t>(-62167219200000, 253402300799999);
}

std::vector<std::string> gen_names() {
  auto n = *rc::gen::inRange<size_t>(0, 4);
  return *rc::gen::container<std::vector<std::string>>(n, gen_name());
}

object_meta gen_meta() {
  object_meta m;
  m.name = *gen_name();
  m.resource_version = *rc::gen::arbitrary<uint64_t>();
  if (*rc::gen::arbitrary<bool>())
    m.creation_timestamp = rfc3339(*gen_time());
  if (*rc::gen::arbitrary<bool>())
    m.uid = *gen_hex(16);
  return m;
}

server gen_server() {
  server x;
  x.meta = gen_meta();
  x.spec.region = *gen_name();
  x.spec.tunnel_host = *gen_host();
  x.spec.tunnel_port = *gen_port();
  if (*rc::gen::arbitrary<bool>())
    x.spec.public_address = *gen_host();
  if (*rc::gen::arbitrary<bool>())
    x.spec.pin = "sha256:" + *gen_hex(32);
  else
    x.spec.ca_pem = "-----BEGIN CERTIFICATE-----\n" + *gen_hex(40) + "\n-----END CERTIFICATE-----\n";
  x.spec.capacity_tunnels = *rc::gen::arbitrary<uint32_t>();
  x.spec.draining = *rc::gen::arbitrary<bool>();
  if (*rc::gen::arbitrary<bool>())
    x.status.lease_renew_unix_ms = *gen_time();
  x.status.lease_duration_s = *rc::gen::inRange<uint32_t>(0, 86400);
  x.status.ready = *rc::gen::arbitrary<bool>();
  x.status.tunnels = *rc::gen::arbitrary<uint32_t>();
  x.status.services = gen_names();
  return x;
}

connection gen_connection() {
  connection x;
  x.meta = gen_meta();
  x.spec.local_host = *gen_host();
  x.spec.local_port = *gen_port();
  x.spec.public_port = *rc::gen::arbitrary<uint16_t>();
  x.spec.public_key = "ed25519:" + *gen_hex(32);
  if (*rc::gen::arbitrary<bool>())
    x.spec.org = *gen_name();
  for (auto& n : gen_names())
    x.spec.allow.push_back(*rc::gen::arbitrary<bool>() ? "group:" + n : n);
  x.spec.tunnels = *rc::gen::inRange<uint32_t>(1, 4);
  auto agents = *rc::gen::inRange(0, 3);
  for (int i = 0; i < agents; ++i) {
    agent_report a;
    a.id = *gen_hex(8);
    if (*rc::gen::arbitrary<bool>())
      a.address = "192.0.2.7:" + std::to_string(*gen_port());
    a.pops = gen_names();
    if (*rc::gen::arbitrary<bool>())
      a.last_seen_unix_ms = *gen_time();
    x.status.agents.push_back(a);
  }
  x.status.pops = gen_names();
  if (*rc::gen::arbitrary<bool>())
    x.status.last_seen_unix_ms = *gen_time();
  return x;
}

principal gen_principal() {
  principal x;
  x.meta = gen_meta();
  x.spec.public_key = "ed25519:" + *gen_hex(32);
  if (*rc::gen::arbitrary<bool>())
    x.spec.org = *gen_name();
  x.spec.groups = gen_names();
  x.spec.revoked = *rc::gen::arbitrary<bool>();
  return x;
}

org gen_org() {
  org x;
  x.meta = gen_meta();
  x.spec.display_name = *rc::gen::container<std::string>(rc::gen::inRange<char>(0x20, 0x7f));
  return x;
}

// -- equality, field by field ---------------------------------------------------------

auto fields_of(const object_meta& m) {
  return std::tie(m.name, m.resource_version, m.creation_timestamp, m.uid);
}
auto fields_of(const server_spec& s) {
  return std::tie(s.region, s.tunnel_host, s.tunnel_port, s.public_address, s.pin, s.ca_pem,
                  s.capacity_tunnels, s.draining);
}
auto fields_of(const server_status& s) {
  return std::tie(s.lease_renew_unix_ms, s.lease_duration_s, s.ready, s.tunnels, s.services);
}
auto fields_of(const connection_spec& s) {
  return std::tie(s.protocol, s.local_host, s.local_port, s.public_port, s.public_key, s.org,
                  s.allow, s.tunnels);
}
auto fields_of(const agent_report& a) {
  return std::tie(a.id, a.address, a.pops, a.last_seen_unix_ms);
}
auto fields_of(const principal_spec& s) {
  return std::tie(s.public_key, s.org, s.groups, s.revoked);
}

bool same(const server& a, const server& b) {
  return fields_of(a.meta) == fields_of(b.meta) && fields_of(a.spec) == fields_of(b.spec)
         && fields_of(a.status) == fields_of(b.status);
}
bool same(const connection& a, const connection& b) {
  if (a.status.agents.size() != b.status.agents.size())
    return false;
  for (size_t i = 0; i < a.status.agents.size(); ++i)
    if (fields_of(a.status.agents[i]) != fields_of(b.status.agents[i]))
      return false;
  return fields_of(a.meta) == fields_of(b.meta) && fields_of(a.spec) == fields_of(b.spec)
         && a.status.pops == b.status.pops
         && a.status.last_seen_unix_ms == b.status.last_seen_unix_ms;
}
bool same(const principal& a, const principal& b) {
  return fields_of(a.meta) == fields_of(b.meta) && fields_of(a.spec) == fields_of(b.spec);
}
bool same(const org& a, const org& b) {
  return fields_of(a.meta) == fields_of(b.meta) && a.spec.display_name == b.spec.display_name;
}

// -- round trips -------------------------------------------------------------------------

RC_GTEST_PROP(resource, server_round_trips, ()) {
  auto x = gen_server();
  server y;
  std::string error;
  RC_ASSERT(parse_server(to_json(x), y, error));
  RC_ASSERT(error.empty());
  RC_ASSERT(same(x, y));
}

RC_GTEST_PROP(resource, connection_round_trips, ()) {
  auto x = gen_connection();
  connection y;
  std::string error;
  RC_ASSERT(parse_connection(to_json(x), y, error));
  RC_ASSERT(same(x, y));
}

RC_GTEST_PROP(resource, principal_round_trips, ()) {
  auto x = gen_principal();
  principal y;
  std::string error;
  RC_ASSERT(parse_principal(to_json(x), y, error));
  RC_ASSERT(same(x, y));
}

RC_GTEST_PROP(resource, org_round_trips, ()) {
  auto x = gen_org();
  org y;
  std::string error;
  RC_ASSERT(parse_org(to_json(x), y, error));
  RC_ASSERT(same(x, y));
}

RC_GTEST_PROP(resource, any_text_is_parsed_or_refused_with_a_line, (const std::string& text)) {
  connection c;
  std::string error;
  if (!parse_connection(text, c, error)) {
    RC_ASSERT(!error.empty());
    RC_ASSERT(error.find('\n') == std::string::npos);
  }
}

// -- errors name the field -----------------------------------------------------------------

const char* joes_pg = R"({"apiVersion": "drtp.dev/v1", "kind": "DRTPConnection",
  "metadata": {"name": "joes-pg"},
  "spec": {"protocol": "tcp", "local": "127.0.0.1:5432",
           "publicKey": "ed25519:00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"}})";

/// joes_pg with `from` replaced by `to` (which must be in it).
std::string edited(const std::string& from, const std::string& to) {
  std::string s = joes_pg;
  auto at = s.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  return at == std::string::npos ? s : s.replace(at, from.size(), to);
}

std::string connection_error(const std::string& text) {
  connection c;
  std::string error;
  EXPECT_FALSE(parse_connection(text, c, error)) << text;
  EXPECT_EQ(error.find('\n'), std::string::npos) << error;
  return error;
}

TEST(resource, a_minimal_connection_takes_the_defaults) {
  connection c;
  std::string error;
  ASSERT_TRUE(parse_connection(joes_pg, c, error)) << error;
  EXPECT_EQ(c.meta.name, "joes-pg");
  EXPECT_EQ(c.spec.local_host, "127.0.0.1");
  EXPECT_EQ(c.spec.local_port, 5432);
  EXPECT_EQ(c.spec.public_port, 0);
  EXPECT_EQ(c.spec.tunnels, 2u);
  EXPECT_TRUE(c.spec.allow.empty());
}

TEST(resource, errors_name_the_field) {
  EXPECT_EQ(connection_error(edited("127.0.0.1:5432", "127.0.0.1")), "spec.local: expected host:port");
  EXPECT_EQ(connection_error(edited("127.0.0.1:5432", "h:0")), "spec.local: expected host:port");
  EXPECT_EQ(connection_error(edited("127.0.0.1:5432", "::1:5432")), "spec.local: expected host:port");
  EXPECT_EQ(connection_error(edited("\"tcp\"", "\"udp\"")).rfind("spec.protocol: ", 0), 0u);
  EXPECT_EQ(connection_error(edited("\"joes-pg\"", "\"Joes_PG\"")).rfind("metadata.name: ", 0), 0u);
  EXPECT_EQ(connection_error(edited("ed25519:00", "ed25519:zz")).rfind("spec.publicKey: ", 0), 0u);
  EXPECT_EQ(connection_error(edited("\"tcp\",", "\"tcp\", \"tunnels\": 4,")).rfind("spec.tunnels: ", 0), 0u);
  EXPECT_EQ(connection_error(edited("\"tcp\",", "\"tcp\", \"tunnels\": -1,")).rfind("spec.tunnels: ", 0), 0u);
  EXPECT_EQ(connection_error(edited("\"tcp\",", "\"tcp\", \"publicPort\": 1.5,")).rfind("spec.publicPort: ", 0), 0u);
  EXPECT_EQ(connection_error(edited("\"tcp\",", "\"tcp\", \"publicPort\": 65536,")).rfind("spec.publicPort: ", 0), 0u);
  EXPECT_EQ(connection_error(edited("\"tcp\",", "\"tcp\", \"allow\": [\"sam\", \"group:\"],")),
            "spec.allow[1]: expected a principal name or group:NAME");
  EXPECT_EQ(connection_error(edited("\"DRTPConnection\"", "\"DRTPServer\"")), "kind: expected DRTPConnection");
  EXPECT_EQ(connection_error(edited("\"drtp.dev/v1\"", "\"v1\"")), "apiVersion: expected drtp.dev/v1");
  EXPECT_EQ(connection_error(edited("\"metadata\": {\"name\": \"joes-pg\"},", "")), "metadata: expected an object");
  EXPECT_EQ(connection_error(R"({"apiVersion": "drtp.dev/v1", "kind": "DRTPConnection",
                                 "metadata": {"name": "x"}})"),
            "spec: required");
  EXPECT_EQ(connection_error(edited("eff\"}}", "eff\"}, \"status\": {\"agents\": [{\"id\": \"a\"}, {\"id\": \"b\", \"lastSeen\": \"yesterday\"}]}}")),
            "status.agents[1].lastSeen: expected an RFC 3339 time (2026-12-02T18:03:08.123Z)");
  EXPECT_EQ(connection_error(edited("\"name\": \"joes-pg\"", "\"name\": \"joes-pg\", \"resourceVersion\": 5")),
            "metadata.resourceVersion: expected a string");
  EXPECT_EQ(connection_error(edited("\"name\": \"joes-pg\"", "\"name\": \"joes-pg\", \"resourceVersion\": \"5x\"")),
            "metadata.resourceVersion: expected a decimal number in a string");
}

TEST(resource, unknown_fields_are_refused_wherever_they_are) {
  EXPECT_EQ(connection_error(edited("\"tcp\",", "\"tcp\", \"colour\": \"red\",")), "spec.colour: unknown field");
  EXPECT_EQ(connection_error(edited("\"kind\"", "\"extra\": 1, \"kind\"")), "extra: unknown field");
  EXPECT_EQ(connection_error(edited("\"name\": \"joes-pg\"", "\"name\": \"joes-pg\", \"labels\": {}")),
            "metadata.labels: unknown field");
  EXPECT_EQ(connection_error(edited("eff\"}}", "eff\"}, \"status\": {\"agents\": [{\"id\": \"a\", \"pid\": 1}]}}")),
            "status.agents[0].pid: unknown field");
  principal p;
  std::string error;
  EXPECT_FALSE(parse_principal(R"({"apiVersion": "drtp.dev/v1", "kind": "Principal",
    "metadata": {"name": "sam"}, "spec": {"publicKey":
    "ed25519:00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"}, "status": {}})",
                               p, error));
  EXPECT_EQ(error, "status: a Principal has no status");
}

TEST(resource, hostile_documents_are_refused_with_one_line) {
  EXPECT_EQ(connection_error("{\"apiVersion\": "), "malformed JSON at byte 16");
  EXPECT_EQ(connection_error("[1, 2]"), "expected a JSON object");
  EXPECT_EQ(connection_error(std::string(100000, '[') + std::string(100000, ']')).rfind("JSON nested deeper", 0), 0u);
  EXPECT_EQ(connection_error(std::string(2 * 1024 * 1024, ' ')).rfind("object of ", 0), 0u);
  std::string many = "\"sam\"";
  for (int i = 0; i < 1024; ++i)
    many += ", \"sam\"";
  EXPECT_EQ(connection_error(edited("\"tcp\",", "\"tcp\", \"allow\": [" + many + "],")),
            "spec.allow: more than 1024 entries");
}

TEST(resource, a_server_needs_one_way_to_verify_it) {
  const std::string base = R"({"apiVersion": "drtp.dev/v1", "kind": "DRTPServer",
    "metadata": {"name": "pop-1"}, "spec": {"region": "eu-west", "tunnelAddress": "[::1]:8443", VERIFY}})";
  auto with = [&](const std::string& verify) {
    auto s = base;
    return s.replace(s.find("VERIFY"), 6, verify);
  };
  server x;
  std::string error;
  std::string pin = "sha256:" + std::string(64, 'a');
  ASSERT_TRUE(parse_server(with("\"verify\": {\"pin\": \"" + pin + "\"}"), x, error)) << error;
  EXPECT_EQ(x.spec.tunnel_host, "::1");
  EXPECT_EQ(x.spec.tunnel_port, 8443);
  EXPECT_EQ(x.spec.pin, pin);
  EXPECT_FALSE(parse_server(with("\"draining\": false"), x, error));
  EXPECT_EQ(error.rfind("spec.verify: required", 0), 0u);
  EXPECT_FALSE(parse_server(with("\"verify\": {}"), x, error));
  EXPECT_EQ(error, "spec.verify: expected one of pin and ca");
  EXPECT_FALSE(parse_server(with("\"verify\": {\"pin\": \"sha256:abc\"}"), x, error));
  EXPECT_EQ(error, "spec.verify.pin: expected sha256: and 64 hex digits");
  EXPECT_FALSE(parse_server(with("\"verify\": {\"ca\": \"not a certificate\"}"), x, error));
  EXPECT_EQ(error, "spec.verify.ca: expected a PEM certificate");
}

// -- names, kinds, keys ---------------------------------------------------------------------

TEST(resource, names_are_dns_labels) {
  for (auto ok : {"a", "0", "a-b", "joes-pg", "a1-2b"})
    EXPECT_TRUE(valid_name(ok)) << ok;
  EXPECT_TRUE(valid_name(std::string(63, 'a')));
  for (auto bad : {"", "-a", "a-", "A", "a_b", "a.b", "a b", "é"})
    EXPECT_FALSE(valid_name(bad)) << bad;
  EXPECT_FALSE(valid_name(std::string(64, 'a')));
  EXPECT_FALSE(valid_name(std::string("a\0b", 3)));
}

TEST(resource, kinds_by_any_of_their_names) {
  EXPECT_EQ(parse_kind("DRTPServer"), kind::server);
  EXPECT_EQ(parse_kind("drtpservers"), kind::server);
  EXPECT_EQ(parse_kind("server"), kind::server);
  EXPECT_EQ(parse_kind("Service"), kind::connection);
  EXPECT_EQ(parse_kind("drtpconnection"), kind::connection);
  EXPECT_EQ(parse_kind("connection"), kind::connection);
  EXPECT_EQ(parse_kind("PRINCIPALS"), kind::principal);
  EXPECT_EQ(parse_kind("org"), kind::org);
  EXPECT_EQ(parse_kind("Orgs"), kind::org);
  EXPECT_FALSE(parse_kind("pods"));
  EXPECT_FALSE(parse_kind(""));
  EXPECT_EQ(store_key(kind::connection, "joes-pg"), "/drtp/v1/drtpconnections/joes-pg");
  EXPECT_EQ(store_prefix(kind::server), "/drtp/v1/drtpservers/");
  EXPECT_EQ(std::string(kind_plural(kind::principal)), "principals");
}

// -- time -------------------------------------------------------------------------------------

TEST(resource, rfc3339_known_values) {
  EXPECT_EQ(rfc3339(0), "1970-01-01T00:00:00.000Z");
  EXPECT_EQ(rfc3339(1796234588123), "2026-12-02T18:03:08.123Z");
  EXPECT_EQ(rfc3339(951868799999), "2000-02-29T23:59:59.999Z");
  EXPECT_EQ(rfc3339(-1000), "1969-12-31T23:59:59.000Z");
  int64_t t = 0;
  ASSERT_TRUE(parse_rfc3339("2026-12-02T18:03:08.123Z", t));
  EXPECT_EQ(t, 1796234588123);
  ASSERT_TRUE(parse_rfc3339("2026-12-02T19:03:08.123456+01:00", t));
  EXPECT_EQ(t, 1796234588123);
  ASSERT_TRUE(parse_rfc3339("2026-12-02t18:03:08z", t));
  EXPECT_EQ(t, 1796234588000);
  for (auto bad : {"", "2026-12-02", "2026-12-02T18:03:08", "2026-12-02 18:03:08Z",
                   "2026-02-29T00:00:00Z", "2026-13-01T00:00:00Z", "2026-12-02T24:00:00Z",
                   "2026-12-02T18:60:00Z", "2026-12-02T18:03:08.Z", "2026-12-02T18:03:08+1:00",
                   "2026-12-02T18:03:08.1234567890Z", "2026-12-02T18:03:08Zjunk", "+026-12-02T18:03:08Z"})
    EXPECT_FALSE(parse_rfc3339(bad, t)) << bad;
}

RC_GTEST_PROP(resource, rfc3339_round_trips, ()) {
  auto t = *gen_time();
  int64_t back = 0;
  RC_ASSERT(parse_rfc3339(rfc3339(t), back));
  RC_ASSERT(back == t);
}

// -- sign-in ------------------------------------------------------------------------------------

class auth_test : public ::testing::Test {
protected:
  static void SetUpTestSuite() {
    // scrypt is slow on purpose: one key for the suite.
    key = new net::login_key(net::derive_login_key("joe's secret", net::service_salt("joes-pg")));
  }
  static void TearDownTestSuite() {
    delete key;
    key = nullptr;
  }
  static net::login_key* key;
  std::shared_ptr<net::crypto> c = net::make_openssl_crypto();
};

net::login_key* auth_test::key = nullptr;

TEST_F(auth_test, a_signature_holds_for_its_link_only) {
  const std::string link_a(32, 'a');
  const std::string link_b(32, 'b');
  auto header = auth_header(*c, kind_service, "joes-pg", key->seed, link_a);
  EXPECT_EQ(header.rfind("DRTP-Ed25519 service/joes-pg ", 0), 0u);
  auth_claim claim;
  ASSERT_TRUE(parse_auth_header(header, claim));
  EXPECT_FALSE(claim.bearer);
  EXPECT_EQ(claim.kind, "service");
  EXPECT_EQ(claim.name, "joes-pg");
  EXPECT_EQ(claim.signature.size(), net::signature_bytes);
  EXPECT_TRUE(check_signature(*c, claim, key->public_key, link_a));
  EXPECT_FALSE(check_signature(*c, claim, key->public_key, link_b));
  // The name and kind are signed too.
  auto other = claim;
  other.name = "other";
  EXPECT_FALSE(check_signature(*c, other, key->public_key, link_a));
  other = claim;
  other.kind = kind_principal;
  EXPECT_FALSE(check_signature(*c, other, key->public_key, link_a));
  // Another key's.
  std::string wrong_key(net::public_key_bytes, '\x01');
  EXPECT_FALSE(check_signature(*c, claim, wrong_key, link_a));
  EXPECT_FALSE(check_signature(*c, claim, "short", link_a));
}

TEST_F(auth_test, bearer_tokens_parse) {
  auth_claim claim;
  ASSERT_TRUE(parse_auth_header("Bearer abc.DEF-123", claim));
  EXPECT_TRUE(claim.bearer);
  EXPECT_EQ(claim.token, "abc.DEF-123");
  ASSERT_TRUE(parse_auth_header("bearer tok", claim));
  EXPECT_EQ(claim.token, "tok");
  EXPECT_FALSE(check_signature(*c, claim, key->public_key, "x"));
}

TEST_F(auth_test, malformed_headers_are_refused) {
  auto good = auth_header(*c, kind_pop, "pop-1", key->seed, "binding");
  auto sig = good.substr(good.rfind(' ') + 1);
  std::string colons;
  for (size_t i = 0; i < sig.size(); i += 2)
    colons += (i ? ":" : "") + sig.substr(i, 2);
  for (const auto& bad : std::vector<std::string>{
         std::string(), std::string("Bearer"), std::string("Bearer "), std::string("Bearer a b"),
        std::string("Basic dXNlcjpwYXNz"), std::string("Bearer\ttok"),
        "DRTP-Ed25519 pop/pop-1", "DRTP-Ed25519 pop/pop-1  " + sig, "DRTP-Ed25519 agent/pop-1 " + sig,
        "DRTP-Ed25519 pop/Pop_1 " + sig, "DRTP-Ed25519 pop " + sig, "DRTP-Ed25519 pop/pop-1 " + sig.substr(2),
        "DRTP-Ed25519 pop/pop-1 " + sig + "00", "DRTP-Ed25519 pop/pop-1 " + colons,
        "DRTP-Ed25519 pop/pop-1 zz" + sig.substr(2), "DRTP-Ed25519  pop/pop-1 " + sig}) {
    auth_claim claim;
    EXPECT_FALSE(parse_auth_header(bad, claim)) << bad;
  }
  auth_claim claim;
  EXPECT_TRUE(parse_auth_header(good, claim));
}

TEST_F(auth_test, a_header_over_one_kib_is_refused) {
  auth_claim claim;
  EXPECT_TRUE(parse_auth_header("Bearer " + std::string(1024 - 7, 't'), claim));
  EXPECT_FALSE(parse_auth_header("Bearer " + std::string(1024 - 6, 't'), claim));
  EXPECT_FALSE(parse_auth_header("Bearer " + std::string(1 << 20, 't'), claim));
}

TEST_F(auth_test, keys_salts_and_digests) {
  std::string raw;
  ASSERT_TRUE(parse_public_key(public_key_text(key->public_key), raw));
  EXPECT_EQ(raw, key->public_key);
  EXPECT_FALSE(parse_public_key("ed25519:abcd", raw));
  EXPECT_FALSE(parse_public_key(net::to_hex(key->public_key), raw));
  EXPECT_FALSE(parse_public_key("ed25519:" + net::to_hex(std::string(31, 'k')) + "z0", raw));
  EXPECT_NE(pop_fleet_salt(), net::service_salt(""));
  EXPECT_NE(pop_fleet_salt(), net::principal_salt(""));
  auto d = admin_token_digest(*c, "token-1");
  EXPECT_EQ(d.size(), 7u + 64u);
  EXPECT_EQ(d.rfind("sha256:", 0), 0u);
  EXPECT_EQ(d, admin_token_digest(*c, "token-1"));
  EXPECT_NE(d, admin_token_digest(*c, "token-2"));
}

} // namespace
