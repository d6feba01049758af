// The control plane's API logic (control/registry) in the simulator, over
// a memory store: http_call messages go straight to the registry, as the
// HTTP server would send them (no sockets), and the answers are checked
// against docs/control-plane.md: CRUD and its conflicts, errors, sign-in
// and audit, who may do what, the status the registry stamps, bootstrap
// ordering with a lease expiring in virtual time, and watches.

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "actors/http_client.hpp"
#include "actors/http_server.hpp"
#include "caf/all.hpp"
#include "control/api_rules.hpp"
#include "control/auth.hpp"
#include "control/memory_store.hpp"
#include "control/registry.hpp"
#include "control/resource.hpp"
#include "control/watch_history.hpp"
#include "sim/rig.hpp"
#include "sim/scenario.hpp"

using namespace drtp;
using namespace drtp::control;
using json = nlohmann::json;

namespace {

constexpr const char* base = "/apis/drtp.dev/v1";
constexpr uint64_t step_us = 10'000'000; // virtual time a call may take

struct outcome {
  bool done = false;
  bool failed = false; // no answer of the expected type
  http::response resp;
  bool streaming = false;
  std::string stream;
  bool ended = false;
};

/// Sends one http_call to the registry and keeps what comes back; for a
/// watch (stream = true) it is also the connection the lines go to.
caf::behavior caller_actor(caf::event_based_actor* self, caf::actor registry, http_call c,
                           bool stream, std::shared_ptr<outcome> out) {
  c.conn = caf::actor_cast<caf::actor>(self);
  auto failed = [=](caf::error&) {
    out->failed = true;
    out->done = true;
  };
  if (stream)
    self->request(registry, caf::infinite, c)
      .then(
        [=](http_stream_begin& b) {
          out->streaming = true;
          out->resp.status = b.status;
          out->done = true;
        },
        failed);
  else
    self->request(registry, caf::infinite, c)
      .then(
        [=](http::response& r) {
          out->resp = std::move(r);
          out->done = true;
        },
        failed);
  return {
    [=](http_stream_chunk& ch) { out->stream += ch.data; },
    [=](http_stream_end&) {
      out->ended = true;
      self->quit();
    },
  };
}

/// The lines of a watch stream, parsed.
std::vector<json> lines_of(const std::string& stream) {
  std::vector<json> out;
  size_t start = 0;
  while (start < stream.size()) {
    auto nl = stream.find('\n', start);
    if (nl == std::string::npos)
      break;
    out.push_back(json::parse(stream.substr(start, nl - start)));
    start = nl + 1;
  }
  return out;
}

struct request_spec {
  std::string method = "GET";
  std::string path;
  std::string query;
  std::string body;
  std::string authz;
  uint64_t serial = 1;
  std::string peer = "10.0.0.5";
  std::string binding = std::string(32, 'b');
};

struct registry_test : ::testing::Test {
  sim::rig r{7};
  caf::actor store;
  caf::actor registry;
  std::string admin_token = "admin-token-0123456789abcdef";
  net::login_key pop_key = sim::cached_login_key("fleet-secret", pop_fleet_salt());
  net::login_key svc_key = sim::cached_login_key("joes-secret", "salt-joe");
  net::login_key sam_key = sim::cached_login_key("sams-secret", "salt-sam");
  uint64_t next_serial = 100;
  // The CA (issue 15); empty: none.
  std::string ca_seed;
  std::string ca_pem;
  uint32_t cert_lifetime_s = 86400;

  void start(registry_limits lim = {}) {
    store = spawn_memory_store(r.d.sys(), memory_store_params{});
    registry_params p;
    p.e = r.make_env("control", 1);
    p.store = store;
    p.admin_token_digest = admin_token_digest(*r.crypto, admin_token);
    p.pop_public_key = pop_key.public_key;
    p.lease_duration_s = 30;
    p.limits = lim;
    p.ca_seed = ca_seed;
    p.ca_cert_pem = ca_pem;
    p.cert_lifetime_s = cert_lifetime_s;
    registry = spawn_registry(r.d.sys(), std::move(p));
    r.d.run_for(100'000); // its store watches start
  }

  void TearDown() override {
    caf::anon_send_exit(registry, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(store, caf::exit_reason::user_shutdown);
    registry = nullptr;
    store = nullptr;
  }

  std::string admin() const {
    return "Bearer " + admin_token;
  }
  /// The header a caller of `kind` with `key` sends on a link bound to
  /// `binding`.
  std::string signed_by(const char* kind, const std::string& name, const net::login_key& key,
                        const std::string& binding = std::string(32, 'b')) {
    return auth_header(*r.crypto, kind, name, key.seed, binding);
  }

  std::shared_ptr<outcome> send(const request_spec& s, bool stream = false) {
    http_call c;
    c.req.method = s.method;
    c.req.path = s.path;
    c.req.query = s.query;
    c.req.target = s.path + (s.query.empty() ? "" : "?" + s.query);
    c.req.body = s.body;
    if (!s.authz.empty())
      c.req.headers.emplace_back("Authorization", s.authz);
    c.peer_host = s.peer;
    c.peer_port = 40000;
    c.channel_binding = s.binding;
    c.conn_serial = s.serial;
    auto out = std::make_shared<outcome>();
    r.d.sys().spawn(caller_actor, registry, std::move(c), stream, out);
    r.d.run_until([&] { return out->done; }, step_us);
    return out;
  }

  http::response call(const std::string& method, const std::string& path,
                      const std::string& body = "", const std::string& authz = "",
                      const std::string& query = "") {
    request_spec s;
    s.method = method;
    s.path = path;
    s.body = body;
    s.authz = authz.empty() ? admin() : authz;
    s.query = query;
    s.serial = next_serial++;
    auto out = send(s);
    EXPECT_TRUE(out->done && !out->failed) << method << " " << path;
    return out->resp;
  }

  http::response as(const std::string& authz, const std::string& method,
                    const std::string& path, const std::string& body = "",
                    const std::string& query = "") {
    return call(method, path, body, authz, query);
  }

  static json body(const http::response& r) {
    return json::parse(r.body);
  }

  static std::string connection_json(const std::string& name, const net::login_key& key,
                                     std::vector<std::string> allow = {}) {
    json j = {{"apiVersion", "drtp.dev/v1"},
              {"kind", "DRTPConnection"},
              {"metadata", {{"name", name}}},
              {"spec",
               {{"protocol", "tcp"},
                {"local", "127.0.0.1:5432"},
                {"publicKey", public_key_text(key.public_key)},
                {"allow", allow}}}};
    return j.dump();
  }

  static std::string server_json(const std::string& name, const std::string& region) {
    json j = {{"apiVersion", "drtp.dev/v1"},
              {"kind", "DRTPServer"},
              {"metadata", {{"name", name}}},
              {"spec",
               {{"region", region},
                {"tunnelAddress", name + ".example:7000"},
                {"publicAddress", name + ".example"},
                {"verify", {{"pin", "sha256:" + std::string(64, 'a')}}}}}};
    return j.dump();
  }

  static std::string server_status_json(const std::string& name, uint32_t duration_s,
                                        uint32_t tunnels = 0) {
    json j = {{"apiVersion", "drtp.dev/v1"},
              {"kind", "DRTPServer"},
              {"metadata", {{"name", name}}},
              {"status",
               {{"lease", {{"renewTime", "1999-01-01T00:00:00.000Z"},
                           {"durationSeconds", duration_s}}},
                {"ready", true},
                {"tunnels", tunnels}}}};
    return j.dump();
  }

  /// Registers POP `name` as the POP itself would: its object, then a lease.
  void register_pop(const std::string& name, const std::string& region, uint32_t duration_s,
                    uint32_t tunnels = 0) {
    auto me = signed_by(kind_pop, name, pop_key);
    ASSERT_EQ(as(me, "POST", std::string(base) + "/drtpservers", server_json(name, region)).status,
              201);
    ASSERT_EQ(as(me, "PUT", std::string(base) + "/drtpservers/" + name + "/status",
                 server_status_json(name, duration_s, tunnels))
                .status,
              200);
  }
};

std::string path(const std::string& rest) {
  return std::string(base) + "/" + rest;
}

std::string rv_of(const json& obj) {
  return obj["metadata"]["resourceVersion"].get<std::string>();
}

} // namespace

TEST_F(registry_test, crud_with_optimistic_concurrency) {
  start();
  EXPECT_EQ(call("GET", "/healthz", "", "-").status, 200);

  auto created = call("POST", path("drtpconnections"), connection_json("joes-pg", svc_key));
  ASSERT_EQ(created.status, 201) << created.body;
  auto obj = body(created);
  auto rv1 = rv_of(obj);
  EXPECT_NE(rv1, "0");
  // Stamped by the registry's clock (the simulator's epoch, 2026-01-01).
  EXPECT_EQ(obj["metadata"]["creationTimestamp"].get<std::string>().substr(0, 10), "2026-01-01");
  EXPECT_FALSE(obj["metadata"]["uid"].get<std::string>().empty());

  auto again = call("POST", path("drtpconnections"), connection_json("joes-pg", svc_key));
  EXPECT_EQ(again.status, 409);
  EXPECT_EQ(body(again)["reason"], "AlreadyExists");

  auto got = call("GET", path("drtpconnections/joes-pg"));
  ASSERT_EQ(got.status, 200);
  EXPECT_EQ(rv_of(body(got)), rv1);
  EXPECT_EQ(body(got)["spec"]["local"], "127.0.0.1:5432");

  auto change = json::parse(connection_json("joes-pg", svc_key));
  change["metadata"]["resourceVersion"] = rv1;
  change["spec"]["local"] = "127.0.0.1:6543";
  auto replaced = call("PUT", path("drtpconnections/joes-pg"), change.dump());
  ASSERT_EQ(replaced.status, 200) << replaced.body;
  auto rv2 = rv_of(body(replaced));
  EXPECT_NE(rv2, rv1);
  EXPECT_EQ(body(replaced)["metadata"]["creationTimestamp"], obj["metadata"]["creationTimestamp"]);

  // The same resourceVersion again is stale now.
  auto stale = call("PUT", path("drtpconnections/joes-pg"), change.dump());
  EXPECT_EQ(stale.status, 409);
  EXPECT_EQ(body(stale)["reason"], "Conflict");

  auto list = call("GET", path("drtpconnections"));
  ASSERT_EQ(list.status, 200);
  EXPECT_EQ(body(list)["kind"], "DRTPConnectionList");
  EXPECT_EQ(body(list)["items"].size(), 1u);

  EXPECT_EQ(call("DELETE", path("drtpconnections/joes-pg"), "", "", "resourceVersion=" + rv1).status,
            409);
  EXPECT_EQ(call("DELETE", path("drtpconnections/joes-pg")).status, 200);
  auto gone = call("GET", path("drtpconnections/joes-pg"));
  EXPECT_EQ(gone.status, 404);
  EXPECT_EQ(body(gone)["kind"], "Status");
  EXPECT_EQ(call("DELETE", path("drtpconnections/joes-pg")).status, 404);
}

TEST_F(registry_test, malformed_requests_get_one_clear_error) {
  start();
  EXPECT_EQ(call("GET", path("widgets")).status, 404);
  EXPECT_EQ(call("GET", "/elsewhere").status, 404);
  EXPECT_EQ(call("PATCH", path("drtpconnections/joes-pg")).status, 405);
  EXPECT_EQ(call("POST", path("drtpconnections/joes-pg")).status, 405);
  EXPECT_EQ(call("DELETE", path("drtpconnections")).status, 405);
  EXPECT_EQ(call("GET", path("drtpconnections/Not_A_Name")).status, 400);

  auto broken = call("POST", path("drtpconnections"), "{\"apiVersion\": ");
  EXPECT_EQ(broken.status, 400);
  EXPECT_EQ(body(broken)["status"], "Failure");
  EXPECT_FALSE(body(broken)["message"].get<std::string>().empty());

  auto extra = json::parse(connection_json("joes-pg", svc_key));
  extra["spec"]["colour"] = "blue";
  auto unknown = call("POST", path("drtpconnections"), extra.dump());
  EXPECT_EQ(unknown.status, 400);
  EXPECT_NE(body(unknown)["message"].get<std::string>().find("colour"), std::string::npos)
    << unknown.body;

  auto bad_rv = call("GET", path("drtpconnections"), "", "", "watch=1&resourceVersion=x1");
  EXPECT_EQ(bad_rv.status, 400);
}

TEST_F(registry_test, refused_without_or_with_a_wrong_credential_and_audited) {
  start();
  request_spec s;
  s.path = path("drtpconnections");
  auto anon = send(s);
  ASSERT_TRUE(anon->done);
  EXPECT_EQ(anon->resp.status, 401);
  EXPECT_TRUE(r.trace_has("control refused 10.0.0.5 anonymous GET " + s.path + ": no credentials"));

  s.authz = "Bearer wrong-token-0123456789";
  s.serial = 2;
  EXPECT_EQ(send(s)->resp.status, 401);
  EXPECT_TRUE(r.trace_has("wrong admin token"));
  // The wrong token is never written anywhere.
  EXPECT_FALSE(r.trace_has("wrong-token-0123456789"));

  s.authz = "Basic dXNlcjpwYXNz";
  s.serial = 3;
  EXPECT_EQ(send(s)->resp.status, 401);

  // A POP signature by the wrong key, and a right one over another link.
  s.authz = signed_by(kind_pop, "eu1", svc_key);
  s.serial = 4;
  EXPECT_EQ(send(s)->resp.status, 401);
  s.authz = signed_by(kind_pop, "eu1", pop_key, std::string(32, 'x'));
  s.serial = 5;
  EXPECT_EQ(send(s)->resp.status, 401);
  // A signature on a link without TLS is worth nothing.
  s.authz = signed_by(kind_pop, "eu1", pop_key, "");
  s.binding = "";
  s.serial = 6;
  EXPECT_EQ(send(s)->resp.status, 401);
  // A service that does not exist.
  s.binding = std::string(32, 'b');
  s.authz = signed_by(kind_service, "nobody", svc_key);
  s.serial = 7;
  EXPECT_EQ(send(s)->resp.status, 401);
}

TEST_F(registry_test, refusals_drain_the_source_bucket) {
  registry_limits lim;
  lim.refusals.burst = 3;
  lim.refusals.refill_interval_ms = 60'000;
  start(lim);
  request_spec s;
  s.path = path("drtpservers");
  s.authz = "Bearer guess-0000000000000000";
  for (int i = 0; i < 3; ++i)
    EXPECT_EQ(send(s)->resp.status, 401);
  // The bucket is empty: even the right token waits (no signature or
  // token is checked for this source meanwhile).
  s.authz = admin();
  s.serial = 9;
  EXPECT_EQ(send(s)->resp.status, 429);
  // Another network is not affected.
  s.peer = "192.0.2.9";
  EXPECT_EQ(send(s)->resp.status, 200);
  // Tokens come back.
  r.d.run_for(61'000'000);
  s.peer = "10.0.0.5";
  s.serial = 10;
  EXPECT_EQ(send(s)->resp.status, 200);
}

TEST_F(registry_test, a_pop_writes_only_its_own_server) {
  start();
  auto eu1 = signed_by(kind_pop, "eu1", pop_key);
  EXPECT_EQ(as(eu1, "POST", path("drtpservers"), server_json("eu1", "eu")).status, 201);
  EXPECT_EQ(as(eu1, "POST", path("drtpservers"), server_json("us1", "us")).status, 403);
  EXPECT_TRUE(r.trace_has("control refused 10.0.0.5 pop/eu1 POST"));
  EXPECT_EQ(as(eu1, "PUT", path("drtpservers/us1"), server_json("us1", "us")).status, 403);
  EXPECT_EQ(as(eu1, "PUT", path("drtpservers/eu1/status"), server_status_json("eu1", 30)).status,
            200);
  EXPECT_EQ(as(eu1, "DELETE", path("drtpservers/eu1")).status, 403);
  EXPECT_EQ(as(eu1, "POST", path("drtpconnections"), connection_json("x", svc_key)).status, 403);
  // It reads what it serves.
  EXPECT_EQ(as(eu1, "GET", path("drtpconnections")).status, 200);
  EXPECT_EQ(as(eu1, "GET", path("principals")).status, 200);

  // Its lease is the registry's word: renewed now, by the registry's clock.
  auto got = body(call("GET", path("drtpservers/eu1")));
  EXPECT_EQ(got["status"]["lease"]["renewTime"].get<std::string>().substr(0, 10), "2026-01-01");
  EXPECT_EQ(got["status"]["ready"], true);
}

TEST_F(registry_test, an_agent_reads_its_connection_and_writes_its_status) {
  start();
  ASSERT_EQ(call("POST", path("drtpconnections"), connection_json("joes-pg", svc_key)).status, 201);
  ASSERT_EQ(call("POST", path("drtpconnections"), connection_json("other", sam_key)).status, 201);
  auto joe = signed_by(kind_service, "joes-pg", svc_key);
  EXPECT_EQ(as(joe, "GET", path("drtpconnections/joes-pg")).status, 200);
  EXPECT_EQ(as(joe, "GET", path("drtpconnections/other")).status, 403);
  EXPECT_EQ(as(joe, "GET", path("drtpconnections")).status, 403);
  EXPECT_EQ(as(joe, "GET", path("principals")).status, 403);
  EXPECT_EQ(as(joe, "GET", path("drtpservers")).status, 200);
  EXPECT_EQ(as(joe, "PUT", path("drtpconnections/joes-pg"), connection_json("joes-pg", svc_key))
              .status,
            403);

  json st = {{"apiVersion", "drtp.dev/v1"},
             {"kind", "DRTPConnection"},
             {"metadata", {{"name", "joes-pg"}}},
             {"status",
              {{"agents",
                {{{"id", "laptop"}, {"address", "6.6.6.6"}, {"pops", {"eu1", "us1"}}}}}}}};
  auto put = as(joe, "PUT", path("drtpconnections/joes-pg/status"), st.dump());
  ASSERT_EQ(put.status, 200) << put.body;
  st["status"]["agents"][0]["id"] = "server";
  st["status"]["agents"][0]["pops"] = {"ap1"};
  ASSERT_EQ(as(joe, "PUT", path("drtpconnections/joes-pg/status"), st.dump()).status, 200);

  auto got = body(call("GET", path("drtpconnections/joes-pg")));
  auto agents = got["status"]["agents"];
  ASSERT_EQ(agents.size(), 2u) << got.dump();
  // The address is where the registry saw the agent, not what it claimed.
  EXPECT_EQ(agents[0]["address"], "10.0.0.5");
  EXPECT_EQ(got["status"]["pops"], json({"ap1", "eu1", "us1"}));
  // Not another service's status.
  EXPECT_EQ(as(joe, "PUT", path("drtpconnections/other/status"), st.dump()).status, 403);
}

TEST_F(registry_test, agents_per_service_are_bounded) {
  registry_limits lim;
  lim.agents_per_service_max = 2;
  start(lim);
  ASSERT_EQ(call("POST", path("drtpconnections"), connection_json("joes-pg", svc_key)).status, 201);
  auto joe = signed_by(kind_service, "joes-pg", svc_key);
  for (auto id : {"a", "b", "c"}) {
    json st = {{"apiVersion", "drtp.dev/v1"},
               {"kind", "DRTPConnection"},
               {"metadata", {{"name", "joes-pg"}}},
               {"status", {{"agents", {{{"id", id}, {"pops", json::array()}}}}}}};
    ASSERT_EQ(as(joe, "PUT", path("drtpconnections/joes-pg/status"), st.dump()).status, 200);
    r.d.run_for(1'000'000);
  }
  auto agents = body(call("GET", path("drtpconnections/joes-pg")))["status"]["agents"];
  ASSERT_EQ(agents.size(), 2u);
  EXPECT_EQ(agents[0]["id"], "b"); // the one seen longest ago went
  EXPECT_EQ(agents[1]["id"], "c");
}

TEST_F(registry_test, a_principal_reads_the_services_it_is_allowed_on) {
  start();
  json p = {{"apiVersion", "drtp.dev/v1"},
            {"kind", "Principal"},
            {"metadata", {{"name", "sam"}}},
            {"spec", {{"publicKey", public_key_text(sam_key.public_key)}, {"groups", {"dev"}}}}};
  ASSERT_EQ(call("POST", path("principals"), p.dump()).status, 201);
  ASSERT_EQ(call("POST", path("drtpconnections"), connection_json("by-group", svc_key, {"group:dev"}))
              .status,
            201);
  ASSERT_EQ(call("POST", path("drtpconnections"), connection_json("closed", svc_key, {"joe"})).status,
            201);
  auto sam = signed_by(kind_principal, "sam", sam_key);
  EXPECT_EQ(as(sam, "GET", path("drtpconnections/by-group")).status, 200);
  EXPECT_EQ(as(sam, "GET", path("drtpconnections/closed")).status, 403);
  EXPECT_EQ(as(sam, "GET", path("drtpconnections/absent")).status, 403);
  EXPECT_EQ(as(sam, "GET", path("drtpservers")).status, 200);

  // Revoked: no more sign-in.
  auto cur = body(call("GET", path("principals/sam")));
  cur["spec"]["revoked"] = true;
  ASSERT_EQ(call("PUT", path("principals/sam"), cur.dump()).status, 200);
  request_spec s;
  s.path = path("drtpservers");
  s.authz = sam;
  s.serial = 999; // a new link: the old one keeps what it proved
  EXPECT_EQ(send(s)->resp.status, 401);
}

TEST_F(registry_test, bootstrap_orders_ready_pops_region_first_then_distinct_regions) {
  start();
  ASSERT_EQ(call("POST", path("drtpconnections"), connection_json("joes-pg", svc_key)).status, 201);
  register_pop("eu9", "eu", 5); // its lease runs out below
  r.d.run_for(6'000'000);
  register_pop("eu1", "eu", 30, 3);
  register_pop("eu2", "eu", 30, 1);
  register_pop("us1", "us", 30);
  register_pop("ap1", "ap", 30);
  register_pop("us2", "us", 30);
  auto drain = body(call("GET", path("drtpservers/us2")));
  drain["spec"]["draining"] = true;
  ASSERT_EQ(call("PUT", path("drtpservers/us2"), drain.dump()).status, 200);

  auto joe = signed_by(kind_service, "joes-pg", svc_key);
  auto boot = as(joe, "GET", path("drtpconnections/joes-pg/bootstrap"), "", "region=eu");
  ASSERT_EQ(boot.status, 200) << boot.body;
  auto b = body(boot);
  std::vector<std::string> names;
  for (auto& p : b["pops"])
    names.push_back(p["name"]);
  // eu2 (fewer tunnels than eu1), then ap and us, then the rest; not the
  // expired eu9 nor the draining us2.
  EXPECT_EQ(names, (std::vector<std::string>{"eu2", "ap1", "us1", "eu1"}));
  EXPECT_EQ(b["pops"][0]["tunnelAddress"], "eu2.example:7000");
  EXPECT_TRUE(b["pops"][0].contains("verify"));
  EXPECT_FALSE(b["service"].contains("publicKey"));
  EXPECT_EQ(b["service"]["local"], "127.0.0.1:5432");

  auto eu9 = body(call("GET", path("drtpservers/eu9")));
  EXPECT_EQ(eu9["status"]["ready"], false);

  // Only the service's own agent.
  auto other = signed_by(kind_pop, "eu1", pop_key);
  EXPECT_EQ(as(other, "GET", path("drtpconnections/joes-pg/bootstrap")).status, 403);
}

TEST_F(registry_test, watch_from_a_version_sees_later_changes_in_order) {
  start();
  auto list = body(call("GET", path("drtpconnections")));
  auto rv0 = rv_of(list);
  ASSERT_EQ(call("POST", path("drtpconnections"), connection_json("a", svc_key)).status, 201);
  r.d.run_for(100'000); // the registry has seen the change
  auto live_spec = request_spec{};
  live_spec.path = path("drtpconnections");
  live_spec.query = "watch=1";
  live_spec.authz = admin();
  live_spec.serial = 50;
  auto live = send(live_spec, true); // from now: sees b and the delete only

  auto cur = body(call("GET", path("drtpconnections/a")));
  cur["spec"]["local"] = "127.0.0.1:1";
  ASSERT_EQ(call("PUT", path("drtpconnections/a"), cur.dump()).status, 200);
  ASSERT_EQ(call("POST", path("drtpconnections"), connection_json("b", svc_key)).status, 201);
  ASSERT_EQ(call("DELETE", path("drtpconnections/a")).status, 200);

  request_spec s;
  s.path = path("drtpconnections");
  s.query = "watch=1&resourceVersion=" + rv0;
  s.authz = admin();
  s.serial = 51;
  auto w = send(s, true);
  ASSERT_TRUE(w->streaming);
  r.d.run_for(100'000);
  auto lines = lines_of(w->stream);
  ASSERT_EQ(lines.size(), 4u) << w->stream;
  EXPECT_EQ(lines[0]["type"], "ADDED");
  EXPECT_EQ(lines[0]["object"]["metadata"]["name"], "a");
  EXPECT_EQ(lines[1]["type"], "MODIFIED");
  EXPECT_EQ(lines[1]["object"]["spec"]["local"], "127.0.0.1:1");
  EXPECT_EQ(lines[2]["type"], "ADDED");
  EXPECT_EQ(lines[2]["object"]["metadata"]["name"], "b");
  EXPECT_EQ(lines[3]["type"], "DELETED");
  EXPECT_EQ(lines[3]["object"]["metadata"]["name"], "a");
  uint64_t last = 0;
  for (auto& l : lines) {
    auto v = std::stoull(rv_of(l["object"]));
    EXPECT_GT(v, last);
    last = v;
  }

  auto live_lines = lines_of(live->stream);
  ASSERT_EQ(live_lines.size(), 3u) << live->stream;
  EXPECT_EQ(live_lines[0]["type"], "MODIFIED");
  EXPECT_EQ(live_lines[2]["type"], "DELETED");

  // Bookmarks at least every 10 s, with the latest version.
  r.d.run_for(11'000'000);
  auto after = lines_of(w->stream);
  ASSERT_GT(after.size(), 4u);
  EXPECT_EQ(after.back()["type"], "BOOKMARK");
  EXPECT_EQ(rv_of(after.back()["object"]), std::to_string(last));

  // A watcher whose connection is gone gets nothing more.
  caf::anon_send(registry, http_stream_gone{51});
  r.d.run_for(100'000);
  auto size_before = w->stream.size();
  ASSERT_EQ(call("POST", path("drtpconnections"), connection_json("c", svc_key)).status, 201);
  r.d.run_for(100'000);
  EXPECT_EQ(w->stream.size(), size_before);
  EXPECT_NE(live->stream.find("\"c\""), std::string::npos);
}

TEST_F(registry_test, watch_from_a_version_older_than_the_history_gets_410) {
  registry_limits lim;
  lim.history_changes_max = 2;
  start(lim);
  auto rv0 = rv_of(body(call("GET", path("drtpconnections"))));
  for (auto n : {"a", "b", "c", "d"})
    ASSERT_EQ(call("POST", path("drtpconnections"), connection_json(n, svc_key)).status, 201);
  request_spec s;
  s.path = path("drtpconnections");
  s.query = "watch=1&resourceVersion=" + rv0;
  s.authz = admin();
  auto w = send(s, true);
  r.d.run_for(100'000);
  ASSERT_TRUE(w->ended);
  auto lines = lines_of(w->stream);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0]["type"], "ERROR");
  EXPECT_EQ(lines[0]["object"]["code"], 410);
}

TEST_F(registry_test, watchers_are_bounded_per_caller) {
  registry_limits lim;
  lim.watchers_per_caller_max = 2;
  start(lim);
  auto eu1 = signed_by(kind_pop, "eu1", pop_key);
  for (uint64_t i = 0; i < 2; ++i) {
    request_spec s;
    s.path = path("drtpservers");
    s.query = "watch=1";
    s.authz = eu1;
    s.serial = 10 + i;
    EXPECT_TRUE(send(s, true)->streaming);
  }
  request_spec s;
  s.path = path("drtpservers");
  s.query = "watch=1";
  s.authz = eu1;
  s.serial = 20;
  auto third = send(s, false);
  EXPECT_EQ(third->resp.status, 429);
  // Another caller still may.
  s.authz = admin();
  s.serial = 21;
  EXPECT_TRUE(send(s, true)->streaming);
}

// -- the rules alone ---------------------------------------------------------------

TEST(api_rules, routes) {
  api_route rt;
  api_error err;
  ASSERT_TRUE(parse_route("GET", path("drtpservers"), "watch=1&resourceVersion=12", rt, err));
  EXPECT_EQ(rt.op, api_op::watch);
  EXPECT_EQ(rt.resource_version, 12u);
  ASSERT_TRUE(parse_route("PUT", path("drtpconnections/x/status"), "", rt, err));
  EXPECT_EQ(rt.op, api_op::put_status);
  EXPECT_FALSE(parse_route("GET", path("drtpservers/x/bootstrap"), "", rt, err));
  EXPECT_EQ(err.code, 404);
  EXPECT_FALSE(parse_route("GET", path("drtpservers/x/status/more"), "", rt, err));
  EXPECT_EQ(err.code, 404);
  EXPECT_FALSE(parse_route("GET", path("DRTPServer"), "", rt, err));
  EXPECT_EQ(err.code, 404);
}

TEST(watch_history, covers_what_it_keeps) {
  watch_history h(2);
  EXPECT_FALSE(h.covers(0));
  h.start(10);
  h.append(11, "a\n");
  h.append(12, "b\n");
  h.append(13, "c\n");
  EXPECT_FALSE(h.covers(10));
  EXPECT_TRUE(h.covers(11));
  std::string out;
  EXPECT_TRUE(h.since(11, 100, out));
  EXPECT_EQ(out, "b\nc\n");
  out.clear();
  EXPECT_FALSE(h.since(11, 3, out));
}

// -- through the HTTP server and client ----------------------------------------------

namespace {

struct http_side {
  std::vector<http::response> responses;
  std::vector<std::string> errors;
  std::vector<std::string> lines;
  std::vector<http_watch_ended> ended;
};

caf::behavior http_user(caf::event_based_actor* self, caf::actor client,
                        std::shared_ptr<http_side> log) {
  return {
    [=](http_fetch& f) {
      self->request(client, caf::infinite, std::move(f))
        .then([=](http::response& r) { log->responses.push_back(std::move(r)); },
              [=](caf::error& e) { log->errors.push_back(describe_http_error(e)); });
    },
    [=](const std::string& target) { self->send(client, http_watch{target, self, 1}); },
    [=](http_watch_line& l) { log->lines.push_back(std::move(l.line)); },
    [=](http_watch_ended& e) { log->ended.push_back(std::move(e)); },
  };
}

} // namespace

TEST_F(registry_test, a_pop_registers_and_watches_through_http_over_tls) {
  r.d.net().add_host("control");
  r.d.net().add_host("pop1");
  start();
  http_server_params sp;
  sp.e = r.make_env("control", 2);
  sp.host = "control";
  sp.port = 8443;
  sp.tls = true;
  sp.handler = registry;
  auto server = spawn_http_server(r.d.sys(), sp);
  r.d.run_for(10'000);

  http_client_params cp;
  cp.e = r.make_env("pop1", 3);
  cp.host = "control";
  cp.port = 8443;
  cp.tls = std::make_shared<net::tls_client_config>();
  auto crypto = r.crypto;
  auto seed = pop_key.seed;
  // The POP signs each link's own channel binding.
  cp.authorization = [crypto, seed](const std::string& binding) {
    return auth_header(*crypto, kind_pop, "pop1", seed, binding);
  };
  auto client = spawn_http_client(r.d.sys(), cp);
  auto log = std::make_shared<http_side>();
  auto user = r.d.sys().spawn(http_user, client, log);

  caf::anon_send(user, http_fetch{"POST", path("drtpservers"),
                                  {{"Content-Type", "application/json"}},
                                  server_json("pop1", "eu")});
  ASSERT_TRUE(r.d.run_until([&] { return log->responses.size() == 1; }, step_us));
  ASSERT_EQ(log->responses[0].status, 201) << log->responses[0].body;
  auto rv = rv_of(json::parse(log->responses[0].body));

  caf::anon_send(user, path("drtpservers") + "?watch=1&resourceVersion=" + rv);
  r.d.run_for(100'000);
  caf::anon_send(user, http_fetch{"PUT", path("drtpservers/pop1/status"),
                                  {{"Content-Type", "application/json"}},
                                  server_status_json("pop1", 30, 2)});
  ASSERT_TRUE(r.d.run_until(
    [&] { return !log->lines.empty() && log->responses.size() == 2; }, step_us));
  ASSERT_EQ(log->responses.size(), 2u);
  EXPECT_EQ(log->responses[1].status, 200) << log->responses[1].body;
  auto line = json::parse(log->lines[0]);
  EXPECT_EQ(line["type"], "MODIFIED");
  EXPECT_EQ(line["object"]["status"]["tunnels"], 2);
  EXPECT_EQ(line["object"]["status"]["ready"], true);
  // Sign-in was checked once per link: the POP's two links (fetches, watch).
  EXPECT_EQ(r.trace_count("control refused"), 0u);
  EXPECT_TRUE(log->errors.empty());
  caf::anon_send_exit(user, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(client, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(server, caf::exit_reason::user_shutdown);
}

namespace {

std::string gateway_json(const std::string& name, const std::string& service, bool is_public,
                         uint16_t port = 0, std::vector<std::string> cidrs = {}) {
  json spec = {{"service", service}, {"type", is_public ? "public" : "private"}};
  if (port != 0)
    spec["port"] = port;
  if (!cidrs.empty())
    spec["allowCIDRs"] = cidrs;
  json j = {{"apiVersion", "drtp.dev/v1"},
            {"kind", "Gateway"},
            {"metadata", {{"name", name}}},
            {"spec", spec}};
  return j.dump();
}

} // namespace

TEST_F(registry_test, gateways_validate_one_public_per_service_and_addresses_from_pops) {
  start();
  // Validation: one clear line naming the field.
  auto no_port = call("POST", path("gateways"), gateway_json("g", "joes-pg", true));
  EXPECT_EQ(no_port.status, 400);
  EXPECT_NE(body(no_port)["message"].get<std::string>().find("spec.port"), std::string::npos);
  auto private_port = call("POST", path("gateways"), gateway_json("g", "joes-pg", false, 80));
  EXPECT_EQ(private_port.status, 400);
  auto bad_cidr =
    call("POST", path("gateways"), gateway_json("g", "joes-pg", true, 8080, {"10.0.0.0/33"}));
  EXPECT_EQ(bad_cidr.status, 400);
  EXPECT_NE(body(bad_cidr)["message"].get<std::string>().find("spec.allowCIDRs[0]"),
            std::string::npos);
  auto unknown = json::parse(gateway_json("g", "joes-pg", true, 8080));
  unknown["spec"]["colour"] = "red";
  auto refused = call("POST", path("gateways"), unknown.dump());
  EXPECT_EQ(refused.status, 400);
  EXPECT_NE(body(refused)["message"].get<std::string>().find("spec.colour"), std::string::npos);

  ASSERT_EQ(call("POST", path("drtpconnections"), connection_json("joes-pg", svc_key)).status, 201);
  register_pop("pop-a", "eu", 30);
  register_pop("pop-b", "us", 30);
  auto created = call("POST", path("gateways"),
                      gateway_json("pg-public", "joes-pg", true, 15432, {"10.0.0.0/8", "::1"}));
  ASSERT_EQ(created.status, 201) << created.body;
  EXPECT_EQ(body(created)["status"]["addresses"].size(), 0u); // no agent yet
  // A second public gateway for the service: 409 naming the first.
  auto second = call("POST", path("gateways"), gateway_json("pg-other", "joes-pg", true, 15433));
  EXPECT_EQ(second.status, 409);
  EXPECT_NE(body(second)["message"].get<std::string>().find("pg-public"), std::string::npos);
  // A private one beside it is fine; so is replacing the public one itself.
  ASSERT_EQ(call("POST", path("gateways"), gateway_json("pg-private", "joes-pg", false)).status,
            201);
  ASSERT_EQ(call("PUT", path("gateways/pg-public"),
                 gateway_json("pg-public", "joes-pg", true, 15434))
              .status,
            200);
  // The private one cannot become a second public one.
  EXPECT_EQ(call("PUT", path("gateways/pg-private"),
                 gateway_json("pg-private", "joes-pg", true, 15435))
              .status,
            409);

  // The agent reports tunnels on both POPs: the addresses follow.
  auto me = signed_by(kind_service, "joes-pg", svc_key);
  json st = {{"status", {{"agents", {{{"id", "agent-1"}, {"pops", {"pop-a", "pop-b"}}}}}}}};
  ASSERT_EQ(as(me, "PUT", path("drtpconnections/joes-pg/status"), st.dump()).status, 200);
  auto got = body(call("GET", path("gateways/pg-public")));
  ASSERT_EQ(got["status"]["addresses"].size(), 2u) << got.dump();
  EXPECT_EQ(got["status"]["addresses"][0]["pop"], "pop-a");
  EXPECT_EQ(got["status"]["addresses"][0]["address"], "pop-a.example");
  EXPECT_EQ(got["status"]["addresses"][0]["port"], 15434);
  // A POP whose lease runs out leaves the list.
  r.d.run_for(1'000'000);
  auto pa = signed_by(kind_pop, "pop-a", pop_key);
  ASSERT_EQ(as(pa, "PUT", path("drtpservers/pop-a/status"), server_status_json("pop-a", 600)).status,
            200);
  r.d.run_for(31'000'000);
  auto list = body(call("GET", path("gateways")));
  ASSERT_EQ(list["kind"], "GatewayList");
  ASSERT_EQ(list["items"].size(), 2u);
  auto& pub = list["items"][1]["metadata"]["name"] == "pg-public" ? list["items"][1]
                                                                  : list["items"][0];
  ASSERT_EQ(pub["status"]["addresses"].size(), 1u) << pub.dump();
  EXPECT_EQ(pub["status"]["addresses"][0]["pop"], "pop-a");

  // POPs read and watch gateways; agents and principals do not.
  EXPECT_EQ(as(pa, "GET", path("gateways")).status, 200);
  EXPECT_EQ(as(me, "GET", path("gateways")).status, 403);
  EXPECT_EQ(call("PUT", path("gateways/pg-public/status"), "{}").status, 404);

  request_spec s;
  s.path = path("gateways");
  s.query = "watch=1";
  s.authz = pa;
  s.serial = 60;
  auto w = send(s, true);
  ASSERT_TRUE(w->streaming);
  ASSERT_EQ(call("DELETE", path("gateways/pg-private")).status, 200);
  ASSERT_EQ(call("POST", path("gateways"), gateway_json("pg-other", "joes-pg", false)).status, 201);
  r.d.run_for(100'000);
  auto lines = lines_of(w->stream);
  ASSERT_EQ(lines.size(), 2u) << w->stream;
  EXPECT_EQ(lines[0]["type"], "DELETED");
  EXPECT_EQ(lines[1]["type"], "ADDED");
  EXPECT_EQ(lines[1]["object"]["spec"]["type"], "private");
}

// -- enrollment (issue 15): the CA, certificates, DRTP-Cert, revocation --

namespace {

constexpr int64_t sim_epoch_s = 1767225600; // 2026-01-01, the simulator's

struct cert_registry_test : registry_test {
  std::string agent_seed = std::string(net::seed_bytes, '\x07');

  void start_with_ca(uint32_t lifetime_s = 120) {
    ca_seed = std::string(net::seed_bytes, '\x09');
    ca_pem = r.crypto->make_ca_certificate(ca_seed, "drtp-control CA", sim_epoch_s - 86400,
                                           int64_t{10} * 365 * 86400);
    ASSERT_FALSE(ca_pem.empty());
    cert_lifetime_s = lifetime_s;
    start();
  }

  std::string csr_body(const std::string& subject = "whatever") {
    return json{{"csr", r.crypto->make_csr(agent_seed, subject)}}.dump();
  }

  std::string by_cert(const std::string& cert, const std::string& kind, const std::string& name,
                      const std::string& binding = std::string(32, 'b')) {
    return cert_auth_header(*r.crypto, cert, kind, name, agent_seed, binding);
  }

  /// A certificate for service joes-pg, asked for with its secret.
  json enroll_service() {
    EXPECT_EQ(call("POST", path("drtpconnections"), connection_json("joes-pg", svc_key)).status,
              201);
    auto resp = as(signed_by(kind_service, "joes-pg", svc_key), "POST",
                   path("drtpconnections/joes-pg/certificate"), csr_body());
    EXPECT_EQ(resp.status, 200) << resp.body;
    return body(resp);
  }

  void revoke(const std::string& field, const json& value) {
    auto obj = body(call("GET", path("drtpconnections/joes-pg")));
    obj["spec"][field] = value;
    auto put = call("PUT", path("drtpconnections/joes-pg"), obj.dump());
    ASSERT_EQ(put.status, 200) << put.body;
  }
};

} // namespace

TEST_F(cert_registry_test, ca_endpoint) {
  start_with_ca();
  auto resp = call("GET", path("ca"), "", "-"); // "-": no valid credentials needed
  ASSERT_EQ(resp.status, 200) << resp.body;
  EXPECT_EQ(body(resp)["certificate"], ca_pem);
  EXPECT_EQ(call("POST", path("ca"), "{}").status, 405);
}

TEST_F(registry_test, no_ca_no_enrollment) {
  start();
  EXPECT_EQ(call("GET", path("ca")).status, 503);
  ASSERT_EQ(call("POST", path("drtpconnections"), connection_json("joes-pg", svc_key)).status,
            201);
  EXPECT_EQ(as(signed_by(kind_service, "joes-pg", svc_key), "POST",
               path("drtpconnections/joes-pg/certificate"), "{\"csr\":\"x\"}")
              .status,
            503);
}

TEST_F(cert_registry_test, issue_then_renew_by_certificate) {
  start_with_ca();
  auto got = enroll_service();
  std::string cert = got["certificate"];
  EXPECT_EQ(got["ca"], ca_pem);
  auto info = r.crypto->verify_certificate(cert, ca_pem, sim_epoch_s + 1);
  EXPECT_EQ(info.error, "");
  EXPECT_EQ(info.subject, "service/joes-pg"); // the CA's, not the CSR's "whatever"
  EXPECT_EQ(info.serial, got["serial"]);
  EXPECT_EQ(info.not_after_s - info.not_before_s, 120 + 300);
  std::printf("issued %s serial %s notBefore %s notAfter %s\n", info.subject.c_str(),
              info.serial.c_str(), got["notBefore"].get<std::string>().c_str(),
              got["notAfter"].get<std::string>().c_str());

  // Renewal: signed in by the certificate.
  auto renewed = as(by_cert(cert, "service", "joes-pg"), "POST",
                    path("drtpconnections/joes-pg/certificate"), csr_body());
  ASSERT_EQ(renewed.status, 200) << renewed.body;
  EXPECT_NE(body(renewed)["serial"], got["serial"]);
  // The certificate signs in for the rest of the service's API too.
  EXPECT_EQ(as(by_cert(cert, "service", "joes-pg"), "GET", path("drtpconnections/joes-pg"))
              .status,
            200);
  // ... but not for another service's certificate.
  ASSERT_EQ(call("POST", path("drtpconnections"), connection_json("other", sam_key)).status, 201);
  EXPECT_EQ(as(by_cert(cert, "service", "joes-pg"), "POST",
               path("drtpconnections/other/certificate"), csr_body())
              .status,
            403);
  // A signature for another link, or by another key, does not sign in.
  EXPECT_EQ(as(by_cert(cert, "service", "joes-pg", std::string(32, 'x')), "GET",
               path("drtpconnections/joes-pg"))
              .status,
            401);
  EXPECT_EQ(as(cert_auth_header(*r.crypto, cert, "service", "joes-pg",
                                std::string(net::seed_bytes, '\x08'), std::string(32, 'b')),
               "GET", path("drtpconnections/joes-pg"))
              .status,
            401);
  // Garbage certificates and bodies.
  EXPECT_EQ(as(by_cert("not a cert", "service", "joes-pg"), "GET", path("drtpconnections/joes-pg"))
              .status,
            401);
  EXPECT_EQ(as("DRTP-Cert !!! 00", "GET", path("drtpconnections/joes-pg")).status, 401);
  auto me = signed_by(kind_service, "joes-pg", svc_key);
  EXPECT_EQ(as(me, "POST", path("drtpconnections/joes-pg/certificate"), "{}").status, 400);
  EXPECT_EQ(as(me, "POST", path("drtpconnections/joes-pg/certificate"), "{\"csr\":\"junk\"}")
              .status,
            400);
  EXPECT_EQ(as(me, "POST", path("drtpconnections/joes-pg/certificate"),
               std::string(30000, '{'))
              .status,
            400);
  EXPECT_EQ(as(me, "GET", path("drtpconnections/joes-pg/certificate")).status, 405);
}

TEST_F(cert_registry_test, principal_certificate) {
  start_with_ca();
  json p = {{"apiVersion", "drtp.dev/v1"},
            {"kind", "Principal"},
            {"metadata", {{"name", "sam"}}},
            {"spec", {{"publicKey", public_key_text(sam_key.public_key)}, {"groups", {"dev"}}}}};
  ASSERT_EQ(call("POST", path("principals"), p.dump()).status, 201);
  auto resp = as(signed_by(kind_principal, "sam", sam_key), "POST",
                 path("principals/sam/certificate"), csr_body());
  ASSERT_EQ(resp.status, 200) << resp.body;
  std::string cert = body(resp)["certificate"];
  EXPECT_EQ(r.crypto->verify_certificate(cert, ca_pem, sim_epoch_s + 1).subject, "principal/sam");
  EXPECT_EQ(as(by_cert(cert, "principal", "sam"), "POST", path("principals/sam/certificate"),
               csr_body())
              .status,
            200);
  // A principal's certificate is no service's.
  EXPECT_EQ(as(by_cert(cert, "principal", "sam"), "POST",
               path("drtpconnections/joes-pg/certificate"), csr_body())
              .status,
            403);
  // A service may not ask for a principal's certificate.
  enroll_service();
  EXPECT_EQ(as(signed_by(kind_service, "joes-pg", svc_key), "POST",
               path("principals/sam/certificate"), csr_body())
              .status,
            403);
  // Revoked principals get none and sign in with none.
  p["spec"]["revoked"] = true;
  p["metadata"].erase("resourceVersion");
  ASSERT_EQ(call("PUT", path("principals/sam"), p.dump()).status, 200);
  EXPECT_EQ(as(by_cert(cert, "principal", "sam"), "GET", path("drtpservers")).status, 401);
}

TEST_F(cert_registry_test, revoked_serial) {
  start_with_ca();
  auto got = enroll_service();
  std::string cert = got["certificate"];
  auto renewed = body(as(by_cert(cert, "service", "joes-pg"), "POST",
                         path("drtpconnections/joes-pg/certificate"), csr_body()));
  revoke("revokedSerials", json::array({got["serial"]}));
  auto before = r.trace_count("control refused");
  request_spec s;
  s.method = "POST";
  s.path = path("drtpconnections/joes-pg/certificate");
  s.body = csr_body();
  s.authz = by_cert(cert, "service", "joes-pg");
  s.serial = next_serial++;
  auto out = send(s);
  EXPECT_EQ(out->resp.status, 401) << out->resp.body;
  EXPECT_EQ(r.trace_count("control refused"), before + 1);
  // The other certificate still renews.
  EXPECT_EQ(as(by_cert(renewed["certificate"], "service", "joes-pg"), "POST",
               path("drtpconnections/joes-pg/certificate"), csr_body())
              .status,
            200);
  // Malformed revocations are refused.
  auto obj = body(call("GET", path("drtpconnections/joes-pg")));
  obj["spec"]["revokedSerials"] = json::array({"00AB"});
  EXPECT_EQ(call("PUT", path("drtpconnections/joes-pg"), obj.dump()).status, 400);
  obj["spec"]["revokedSerials"] = json::array();
  obj["spec"]["revokedBefore"] = "yesterday";
  EXPECT_EQ(call("PUT", path("drtpconnections/joes-pg"), obj.dump()).status, 400);
}

TEST_F(cert_registry_test, revoked_before) {
  start_with_ca();
  auto got = enroll_service();
  std::string cert = got["certificate"];
  EXPECT_EQ(as(by_cert(cert, "service", "joes-pg"), "GET", path("drtpconnections/joes-pg"))
              .status,
            200);
  r.d.run_for(1'000'000);
  // Every certificate issued before now; the secret still signs in.
  revoke("revokedBefore", rfc3339((sim_epoch_s + 3600) * 1000));
  EXPECT_EQ(as(by_cert(cert, "service", "joes-pg"), "GET", path("drtpconnections/joes-pg"))
              .status,
            401);
  EXPECT_EQ(as(signed_by(kind_service, "joes-pg", svc_key), "GET",
               path("drtpconnections/joes-pg"))
              .status,
            200);
  // Deleting the service revokes them all.
  auto fresh = body(as(signed_by(kind_service, "joes-pg", svc_key), "POST",
                       path("drtpconnections/joes-pg/certificate"), csr_body()));
  EXPECT_EQ(call("DELETE", path("drtpconnections/joes-pg")).status, 200);
  EXPECT_EQ(as(by_cert(fresh["certificate"], "service", "joes-pg"), "GET",
               path("drtpservers"))
              .status,
            401);
}

TEST_F(cert_registry_test, expired_in_virtual_time) {
  start_with_ca(120);
  auto got = enroll_service();
  std::string cert = got["certificate"];
  // One link keeps its sign-in while the certificate is good, not after.
  request_spec s;
  s.path = path("drtpconnections/joes-pg");
  s.authz = by_cert(cert, "service", "joes-pg");
  s.serial = 7777;
  EXPECT_EQ(send(s)->resp.status, 200);
  r.d.run_for(uint64_t{200} * 1'000'000);
  auto late = send(s);
  EXPECT_EQ(late->resp.status, 401) << late->resp.body;
  EXPECT_NE(late->resp.body.find("expired"), std::string::npos) << late->resp.body;
  EXPECT_EQ(as(by_cert(cert, "service", "joes-pg"), "POST",
               path("drtpconnections/joes-pg/certificate"), csr_body())
              .status,
            401);
}

TEST_F(cert_registry_test, wrong_subject_or_ca) {
  start_with_ca();
  enroll_service();
  // A certificate from another CA, with the right subject.
  auto other_seed = std::string(net::seed_bytes, '\x0a');
  auto other_ca = r.crypto->make_ca_certificate(other_seed, "drtp-control CA",
                                                sim_epoch_s - 86400, 86400 * 10);
  auto forged = r.crypto->issue_certificate(other_seed, other_ca,
                                            r.crypto->make_csr(agent_seed, "x"),
                                            "service/joes-pg", "abc", sim_epoch_s - 60,
                                            sim_epoch_s + 86400);
  ASSERT_FALSE(forged.empty());
  EXPECT_EQ(as(by_cert(forged, "service", "joes-pg"), "GET", path("drtpconnections/joes-pg"))
              .status,
            401);
  // A certificate of our CA whose subject is no service's or principal's.
  auto odd = r.crypto->issue_certificate(ca_seed, ca_pem, r.crypto->make_csr(agent_seed, "x"),
                                         "pop/pop1", "abd", sim_epoch_s - 60,
                                         sim_epoch_s + 86400);
  EXPECT_EQ(as(by_cert(odd, "pop", "pop1"), "GET", path("drtpservers")).status, 401);
  // Signed for a name other than the subject's.
  auto got = body(as(signed_by(kind_service, "joes-pg", svc_key), "POST",
                     path("drtpconnections/joes-pg/certificate"), csr_body()));
  EXPECT_EQ(as(by_cert(got["certificate"], "service", "other"), "GET", path("drtpservers"))
              .status,
            401);
}
