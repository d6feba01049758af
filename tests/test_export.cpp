// drtpctl export (issue 15), the pure functions: the CRDs parsed back with
// drtpctl's own YAML reader and checked for what apiextensions.k8s.io/v1
// requires; the one field table checked against the registry's parser and
// writer (control/resource) both ways; the Gateway API objects of a gateway
// checked for the fields the Gateway API and discovery.k8s.io/v1 require.
// No Kubernetes API server is at hand: these are checks of the shape.

#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "control/resource.hpp"
#include "ctl/client.hpp"
#include "ctl/export.hpp"
#include "ctl/yaml_doc.hpp"

using json = nlohmann::json;
using namespace drtp;

namespace {

/// Every document of `yaml`, as JSON, parsed by drtpctl's YAML reader.
std::vector<json> documents(const std::string& yaml) {
  std::vector<json> out;
  for (auto& d : ctl::load_documents(yaml)) {
    EXPECT_EQ(d.error, "") << "document " << d.index;
    out.push_back(json::parse(d.json));
  }
  return out;
}

/// Leaf paths of a JSON value, array items as "[]" (as crd_field_paths).
void leaves(const json& j, const std::string& path, std::set<std::string>& out) {
  if (j.is_object()) {
    for (auto& [k, v] : j.items())
      leaves(v, path.empty() ? k : path + "." + k, out);
  } else if (j.is_array()) {
    bool objects = false;
    for (auto& v : j)
      if (v.is_object()) {
        objects = true;
        leaves(v, path + "[]", out);
      }
    if (!objects)
      out.insert(path + "[]");
  } else {
    out.insert(path);
  }
}

/// What the registry writes, for objects with every optional field set.
std::string written(const std::string& kind) {
  const std::string key = "ed25519:" + std::string(64, 'a');
  if (kind == "DRTPServer") {
    control::server s;
    s.meta.name = "x";
    s.spec = {"eu", "h", 1, "p", "sha256:" + std::string(64, 'a'), "", 4, true};
    s.status = {1, 15, true, true, 3, {"web"}};
    auto with_pin = control::to_json(s);
    s.spec.pin = "";
    s.spec.ca_pem = "-----BEGIN CERTIFICATE-----\n";
    // Both forms of verify: merge the ca one's spec.verify.ca in.
    auto a = json::parse(with_pin);
    a["spec"]["verify"]["ca"] = json::parse(control::to_json(s))["spec"]["verify"]["ca"];
    return a.dump();
  }
  if (kind == "DRTPConnection") {
    control::connection c;
    c.meta.name = "x";
    c.spec = {"tcp", "h", 1, 2, key, "acme", {"sam"}, 2};
    c.status.agents = {{"a", "h:1", {"p"}, 5}};
    c.status.pops = {"p"};
    c.status.last_seen_unix_ms = 5;
    return control::to_json(c);
  }
  if (kind == "Principal") {
    control::principal p;
    p.meta.name = "x";
    p.spec = {key, "acme", {"ops"}, true};
    return control::to_json(p);
  }
  control::org o;
  o.meta.name = "x";
  o.spec.display_name = "Acme";
  return control::to_json(o);
}

bool parses(const std::string& kind, const std::string& text, std::string& error) {
  if (kind == "DRTPServer") {
    control::server x;
    return control::parse_server(text, x, error);
  }
  if (kind == "DRTPConnection") {
    control::connection x;
    return control::parse_connection(text, x, error);
  }
  if (kind == "Principal") {
    control::principal x;
    return control::parse_principal(text, x, error);
  }
  control::org x;
  return control::parse_org(text, x, error);
}

const json& at(const json& j, const char* pointer) {
  return j.at(json::json_pointer(pointer));
}

} // namespace

TEST(export_crds, one_crd_per_kind_with_what_apiextensions_v1_requires) {
  auto docs = documents(ctl::export_crds());
  ASSERT_EQ(docs.size(), 5u);
  std::set<std::string> names;
  for (auto& d : docs) {
    EXPECT_EQ(d["apiVersion"], "apiextensions.k8s.io/v1");
    EXPECT_EQ(d["kind"], "CustomResourceDefinition");
    auto plural = at(d, "/spec/names/plural").get<std::string>();
    EXPECT_EQ(d["metadata"]["name"], plural + ".drtp.dev");
    names.insert(d["metadata"]["name"].get<std::string>());
    EXPECT_EQ(at(d, "/spec/group"), "drtp.dev");
    EXPECT_EQ(at(d, "/spec/scope"), "Cluster");
    EXPECT_TRUE(at(d, "/spec/names/kind").is_string());
    EXPECT_TRUE(at(d, "/spec/names/singular").is_string());
    auto& versions = at(d, "/spec/versions");
    ASSERT_EQ(versions.size(), 1u);
    auto& v = versions[0];
    EXPECT_EQ(v["name"], "v1");
    EXPECT_EQ(v["served"], true);
    EXPECT_EQ(v["storage"], true);
    auto& schema = at(v, "/schema/openAPIV3Schema");
    EXPECT_EQ(schema["type"], "object");
    EXPECT_EQ(at(schema, "/properties/spec/type"), "object");
    EXPECT_FALSE(at(schema, "/properties/spec/properties").empty());
    bool has_status = schema["properties"].contains("status");
    EXPECT_EQ(has_status, v.contains("subresources") && v["subresources"].contains("status"))
      << plural;
    // Structural: every property has a type (the API server refuses others).
    std::function<void(const json&, const std::string&)> typed = [&](const json& s,
                                                                      const std::string& p) {
      EXPECT_TRUE(s.contains("type")) << plural << " " << p;
      if (s.contains("properties"))
        for (auto& [k, sub] : s["properties"].items())
          typed(sub, p + "." + k);
      if (s.contains("items"))
        typed(s["items"], p + "[]");
    };
    typed(schema, "");
  }
  EXPECT_EQ(names, (std::set<std::string>{"drtpservers.drtp.dev", "drtpconnections.drtp.dev",
                                          "principals.drtp.dev", "orgs.drtp.dev",
                                          "gateways.drtp.dev"}));
  // Kinds with a status have the subresource.
  for (auto& d : docs) {
    auto kind = at(d, "/spec/names/kind").get<std::string>();
    bool sub = at(d, "/spec/versions/0").contains("subresources");
    EXPECT_EQ(sub, kind == "DRTPServer" || kind == "DRTPConnection" || kind == "Gateway") << kind;
  }
}

TEST(export_crds, the_table_matches_the_registry_both_ways) {
  for (auto kind : {"DRTPServer", "DRTPConnection", "Principal", "Org"}) {
    // Every field of the table is one the registry accepts...
    std::string error;
    EXPECT_TRUE(parses(kind, ctl::crd_example(kind), error)) << kind << ": " << error;
    // ...and every field the registry writes is in the table (an API server
    // prunes a field its schema lacks).
    auto paths = ctl::crd_field_paths(kind);
    std::set<std::string> table(paths.begin(), paths.end());
    std::set<std::string> out;
    auto j = json::parse(written(kind));
    for (auto part : {"spec", "status"})
      if (j.contains(part))
        leaves(j[part], part, out);
    for (auto& p : out)
      EXPECT_TRUE(table.count(p)) << kind << ": the registry writes " << p
                                  << ", the CRD table lacks it";
  }
}

namespace {

std::string gateway(const std::string& type, const std::string& addresses) {
  return R"({"apiVersion":"drtp.dev/v1","kind":"Gateway","metadata":{"name":"web-gw"},
    "spec":{"service":"web","type":")" + type + R"(","port":18080},
    "status":{"addresses":[)" + addresses + "]}}";
}

std::string connection(const std::string& protocol) {
  return R"({"apiVersion":"drtp.dev/v1","kind":"DRTPConnection","metadata":{"name":"web"},
    "spec":{"protocol":")" + protocol + R"(","local":"127.0.0.1:80","publicKey":"k"}})";
}

const std::string servers = R"({"kind":"DRTPServerList","items":[
  {"metadata":{"name":"eu"},"spec":{"region":"eu-west"},"status":{"ready":true}},
  {"metadata":{"name":"us"},"spec":{"region":"us-east","draining":true},"status":{"ready":false}},
  {"metadata":{"name":"ap"},"spec":{"region":"ap-south"},"status":{"ready":true}}]})";

const std::string mixed = R"({"pop":"eu","address":"192.0.2.10","port":18080},
  {"pop":"us","address":"[2001:db8::1]","port":18080},
  {"pop":"ap","address":"Edge-AP.example.net","port":18080},
  {"pop":"gone","address":"192.0.2.11","port":18080})";

std::vector<json> of_kind(const std::vector<json>& docs, const std::string& kind) {
  std::vector<json> out;
  for (auto& d : docs)
    if (d["kind"] == kind)
      out.push_back(d);
  return out;
}

} // namespace

TEST(export_gateway, gateway_route_service_and_one_slice_per_family) {
  ctl::gateway_export_options o;
  o.ns = "joe";
  auto yaml = ctl::export_gateway(gateway("public", mixed), connection("tcp"), servers, o);
  std::printf("%s", yaml.c_str());
  auto docs = documents(yaml);
  ASSERT_EQ(docs.size(), 6u); // Gateway, TCPRoute, Service, 3 EndpointSlices

  auto g = of_kind(docs, "Gateway");
  ASSERT_EQ(g.size(), 1u);
  EXPECT_EQ(g[0]["apiVersion"], "gateway.networking.k8s.io/v1");
  EXPECT_EQ(at(g[0], "/metadata/name"), "web-gw");
  EXPECT_EQ(at(g[0], "/metadata/namespace"), "joe");
  EXPECT_EQ(at(g[0], "/spec/gatewayClassName"), "drtp");
  auto& listeners = at(g[0], "/spec/listeners");
  ASSERT_EQ(listeners.size(), 1u);
  EXPECT_EQ(listeners[0]["name"], "tcp-18080");
  EXPECT_EQ(listeners[0]["port"], 18080);
  EXPECT_EQ(listeners[0]["protocol"], "TCP");
  EXPECT_EQ(at(g[0], "/spec/addresses").size(), 4u);

  auto r = of_kind(docs, "TCPRoute");
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0]["apiVersion"], "gateway.networking.k8s.io/v1alpha2");
  auto& parents = at(r[0], "/spec/parentRefs");
  ASSERT_EQ(parents.size(), 1u);
  EXPECT_EQ(parents[0]["name"], "web-gw");
  EXPECT_EQ(parents[0]["sectionName"], "tcp-18080");
  auto& rules = at(r[0], "/spec/rules");
  ASSERT_EQ(rules.size(), 1u);
  ASSERT_EQ(rules[0]["backendRefs"].size(), 1u);
  EXPECT_EQ(rules[0]["backendRefs"][0]["name"], "web");
  EXPECT_EQ(rules[0]["backendRefs"][0]["port"], 18080);

  auto svc = of_kind(docs, "Service");
  ASSERT_EQ(svc.size(), 1u);
  EXPECT_EQ(svc[0]["apiVersion"], "v1");
  EXPECT_EQ(at(svc[0], "/metadata/name"), "web");
  EXPECT_FALSE(svc[0]["spec"].contains("selector")); // its slices are ours
  EXPECT_EQ(at(svc[0], "/spec/ports/0/port"), 18080);
  EXPECT_EQ(at(svc[0], "/spec/ports/0/name"), "tcp");

  auto slices = of_kind(docs, "EndpointSlice");
  ASSERT_EQ(slices.size(), 3u);
  std::map<std::string, json> by_type;
  for (auto& s : slices) {
    EXPECT_EQ(s["apiVersion"], "discovery.k8s.io/v1");
    EXPECT_EQ(at(s, "/metadata/labels/kubernetes.io~1service-name"), "web");
    ASSERT_EQ(s["ports"].size(), 1u);
    EXPECT_EQ(s["ports"][0]["name"], "tcp"); // the Service's port name
    EXPECT_EQ(s["ports"][0]["port"], 18080);
    EXPECT_EQ(s["ports"][0]["protocol"], "TCP");
    for (auto& e : s["endpoints"]) {
      EXPECT_EQ(e["addresses"].size(), 1u);
      EXPECT_TRUE(e["conditions"]["ready"].is_boolean());
    }
    by_type[s["addressType"].get<std::string>()] = s;
  }
  ASSERT_EQ(by_type.size(), 3u);
  auto& v4 = by_type["IPv4"]["endpoints"];
  ASSERT_EQ(v4.size(), 2u);
  EXPECT_EQ(v4[0]["addresses"][0], "192.0.2.10");
  EXPECT_EQ(v4[0]["conditions"]["ready"], true);
  EXPECT_EQ(v4[0]["zone"], "eu-west");
  EXPECT_EQ(v4[1]["addresses"][0], "192.0.2.11");
  EXPECT_EQ(v4[1]["conditions"]["ready"], false); // a POP the registry no longer lists
  auto& v6 = by_type["IPv6"]["endpoints"];
  ASSERT_EQ(v6.size(), 1u);
  EXPECT_EQ(v6[0]["addresses"][0], "2001:db8::1");
  EXPECT_EQ(v6[0]["conditions"]["ready"], false); // draining
  EXPECT_EQ(v6[0]["conditions"]["terminating"], true);
  auto& fqdn = by_type["FQDN"]["endpoints"];
  ASSERT_EQ(fqdn.size(), 1u);
  EXPECT_EQ(fqdn[0]["addresses"][0], "edge-ap.example.net");
}

TEST(export_gateway, udp_gives_a_udproute_and_udp_ports) {
  auto docs = documents(ctl::export_gateway(
    gateway("public", R"({"pop":"eu","address":"192.0.2.10","port":18080})"),
    connection("udp"), servers, {}));
  ASSERT_EQ(docs.size(), 4u);
  EXPECT_EQ(of_kind(docs, "TCPRoute").size(), 0u);
  auto r = of_kind(docs, "UDPRoute");
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0]["apiVersion"], "gateway.networking.k8s.io/v1alpha2");
  EXPECT_EQ(at(of_kind(docs, "Gateway")[0], "/spec/listeners/0/protocol"), "UDP");
  EXPECT_EQ(at(of_kind(docs, "Gateway")[0], "/spec/listeners/0/allowedRoutes/kinds/0/kind"),
            "UDPRoute");
  EXPECT_EQ(at(of_kind(docs, "EndpointSlice")[0], "/ports/0/protocol"), "UDP");
  EXPECT_FALSE(at(of_kind(docs, "Gateway")[0], "/metadata").contains("namespace"));
}

TEST(export_gateway, no_pop_holds_a_tunnel_an_empty_slice) {
  auto docs = documents(ctl::export_gateway(gateway("public", ""), connection("tcp"), servers, {}));
  auto slices = of_kind(docs, "EndpointSlice");
  ASSERT_EQ(slices.size(), 1u);
  EXPECT_EQ(slices[0]["addressType"], "IPv4");
  EXPECT_TRUE(slices[0]["endpoints"].empty());
  EXPECT_FALSE(of_kind(docs, "Gateway")[0]["spec"].contains("addresses"));
}

TEST(export_gateway, refusals_are_one_line) {
  auto fails = [](const std::string& gw, const std::string& conn, const std::string& list) {
    try {
      ctl::export_gateway(gw, conn, list, {});
    } catch (const ctl::failure& e) {
      std::string what = e.what();
      EXPECT_EQ(what.find('\n'), std::string::npos);
      return what;
    }
    return std::string("no failure");
  };
  EXPECT_NE(fails(gateway("private", ""), connection("tcp"), servers).find("is private"),
            std::string::npos);
  EXPECT_NE(fails("[1]", connection("tcp"), servers).find("not a JSON object"), std::string::npos);
  EXPECT_NE(fails(gateway("public", R"({"pop":"eu","address":"bad address!"})"),
                  connection("tcp"), servers)
              .find("neither an IP address nor a DNS name"),
            std::string::npos);
  EXPECT_NE(fails(gateway("public", ""), connection("tcp"), "{}").find("no items"),
            std::string::npos);
}

TEST(export_gateway, address_types) {
  EXPECT_EQ(ctl::address_type("127.0.0.1"), "IPv4");
  EXPECT_EQ(ctl::address_type("::1"), "IPv6");
  EXPECT_EQ(ctl::address_type("[::1]"), "IPv6");
  EXPECT_EQ(ctl::address_type("pop-eu.example.net"), "FQDN");
  EXPECT_EQ(ctl::address_type("pop-eu.example.net."), "FQDN");
  EXPECT_EQ(ctl::address_type("-bad.example"), "");
  EXPECT_EQ(ctl::address_type(""), "");
  EXPECT_EQ(ctl::address_type("1.2.3.4:80"), "");
}
