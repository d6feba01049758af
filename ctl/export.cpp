#include "ctl/export.hpp"

#include <algorithm>
#include <arpa/inet.h>
#include <cctype>
#include <map>
#include <optional>
#include <set>

#include <nlohmann/json.hpp>

#include "ctl/client.hpp"
#include "ctl/yaml_doc.hpp"

namespace drtp::ctl {

namespace {

using ojson = nlohmann::ordered_json;

// -- the one table of the registry's fields --------------------------------------

/// One field of a kind's schema: its OpenAPI type, its bounds, and an
/// example value the registry's parser accepts (null: left out of the
/// example, e.g. verify.ca, since pin and ca exclude each other).
struct field {
  std::string name;
  std::string type; // string, integer, boolean, object, array
  std::string description;
  ojson example;
  std::vector<field> fields; // object: its properties; array of objects: the item's
  std::string item_type;     // array: string or object
  bool required = false;
  std::optional<int64_t> minimum, maximum, max_length, max_items;
  std::vector<std::string> one_of; // enum
  std::string format;              // date-time

  field&& req() && {
    required = true;
    return std::move(*this);
  }
  field&& max(int64_t lo, int64_t hi) && {
    minimum = lo;
    maximum = hi;
    return std::move(*this);
  }
  field&& len(int64_t n) && {
    max_length = n;
    return std::move(*this);
  }
  field&& items(int64_t n) && {
    max_items = n;
    return std::move(*this);
  }
  field&& values(std::vector<std::string> v) && {
    one_of = std::move(v);
    return std::move(*this);
  }
  field&& time() && {
    format = "date-time";
    return std::move(*this);
  }
};

field str(std::string name, std::string description, ojson example) {
  field f;
  f.name = std::move(name);
  f.type = "string";
  f.description = std::move(description);
  f.example = std::move(example);
  return f;
}
field integer(std::string name, std::string description, ojson example) {
  auto f = str(std::move(name), std::move(description), std::move(example));
  f.type = "integer";
  return f;
}
field boolean(std::string name, std::string description, ojson example) {
  auto f = str(std::move(name), std::move(description), std::move(example));
  f.type = "boolean";
  return f;
}
field object(std::string name, std::string description, std::vector<field> fields) {
  field f;
  f.name = std::move(name);
  f.type = "object";
  f.description = std::move(description);
  f.fields = std::move(fields);
  return f;
}
field strings(std::string name, std::string description, ojson example) {
  auto f = str(std::move(name), std::move(description), std::move(example));
  f.type = "array";
  f.item_type = "string";
  return f;
}
field objects(std::string name, std::string description, std::vector<field> fields) {
  auto f = object(std::move(name), std::move(description), std::move(fields));
  f.type = "array";
  f.item_type = "object";
  return f;
}

struct kind_table {
  std::string kind, plural, singular;
  std::vector<std::string> short_names;
  std::string description;
  std::vector<field> spec;
  std::vector<field> status; // empty: the kind has no status (refused by the registry)
};

const std::string key_example = "ed25519:" + std::string(64, 'a');
const std::string dns_label = "a DNS label (a-z, 0-9, '-', at most 63)";

// Bounds as control/resource.cpp enforces them (host 253 bytes, +8 for
// ":port" and brackets; lists as its *_max constants).
kind_table server_table() {
  return {"DRTPServer",
   "drtpservers",
   "drtpserver",
   {"drtpsrv"},
   "A POP: where agents dial their tunnels and visitors connect.",
   {
     str("region", "The POP's region, " + dns_label + ".", "eu-west").req().len(63),
     str("tunnelAddress", "host:port (or [v6]:port) where agents dial.", "127.0.0.1:7000")
       .req()
       .len(261),
     str("publicAddress", "The address or DNS name visitors use.", "edge-1.example.net").len(253),
     object("verify", "How an agent verifies the POP: exactly one of pin and ca.",
            {str("pin", "sha256: and 64 hex digits of the POP's certificate.",
                 "sha256:" + std::string(64, 'b'))
               .len(80),
             str("ca", "A CA bundle (PEM) that signed the POP's certificate.", nullptr)
               .len(65536)})
       .req(),
     object("capacity", "What the POP takes.",
            {integer("tunnels", "Tunnels at most (0: unstated).", 100).max(0, 4294967295)}),
     boolean("draining", "The operator's drain: no new tunnels.", false),
   },
   {
     object("lease", "The POP's lease, renewed every third of its duration.",
            {str("renewTime", "RFC 3339.", "2026-12-02T18:03:08.123Z").time(),
             integer("durationSeconds", "", 15).max(0, 86400)}),
     boolean("ready", "Computed on read: the lease is fresh and the POP not draining.", true),
     boolean("draining", "The POP's own word that it has started a drain.", false),
     integer("tunnels", "Tunnels held.", 3).max(0, 4294967295),
     strings("services", "The services it holds a tunnel for.", ojson::array({"web"}))
       .items(100000),
   }};
}

kind_table connection_table() {
  return {"DRTPConnection",
   "drtpconnections",
   "drtpconnection",
   {"drtpconn"},
   "A service behind an agent (drtp serve), reachable through the POPs.",
   {
     str("protocol", "The service's transport.", "tcp").values({"tcp"}),
     str("local", "host:port where the agent finds the service.", "127.0.0.1:5432")
       .req()
       .len(261),
     integer("publicPort", "0 or absent: private (patch panel only).", 15432).max(0, 65535),
     str("publicKey", "ed25519:HEX, the verifier of the service's secret (never the secret).",
         key_example)
       .req()
       .len(80),
     str("org", "The service's org, " + dns_label + ".", "acme").len(63),
     strings("allow", "Principals, or group:NAME, allowed on the patch panel.",
             ojson::array({"sam", "group:ops"}))
       .items(1024),
     integer("tunnels", "Tunnels the agent keeps (K).", 2).max(1, 3),
     strings("revokedSerials", "Enrollment: serials of its certificates that no longer log in (lowercase hex).",
           ojson::array({"a03"}))
       .items(1024),
     str("revokedBefore", "Enrollment: every certificate issued (notBefore) earlier is revoked.",
         "2026-12-02T18:03:08.123Z")
       .time(),
   },
   {
     objects("agents", "The agents serving it.",
             {str("id", "", "agent-1").req().len(256),
              str("address", "As the control plane saw it.", "192.0.2.7:40000").len(261),
              strings("pops", "POPs it holds tunnels to.", ojson::array({"edge-1"})).items(64),
              str("lastSeen", "", "2026-12-02T18:03:08.123Z").time()})
       .items(64),
     strings("pops", "The POPs holding its tunnels.", ojson::array({"edge-1"})).items(64),
     str("lastSeen", "", "2026-12-02T18:03:08.123Z").time(),
   }};
}

kind_table principal_table() {
  return {"Principal",
   "principals",
   "principal",
   {},
   "Who may use the patch panel (drtp connect).",
   {
     str("publicKey", "ed25519:HEX, the verifier of the principal's secret.", key_example)
       .req()
       .len(80),
     str("org", "The org it belongs to, " + dns_label + ".", "acme").len(63),
     strings("groups", "Groups, for allow entries group:NAME.", ojson::array({"ops"}))
       .items(256),
     boolean("revoked", "A revoked principal is refused everywhere.", false),
     strings("revokedSerials", "Enrollment: serials of its certificates that no longer log in (lowercase hex).",
           ojson::array({"a03"}))
       .items(1024),
     str("revokedBefore", "Enrollment: every certificate issued (notBefore) earlier is revoked.",
         "2026-12-02T18:03:08.123Z")
       .time(),
   },
   {}};
}

kind_table org_table() {
  return {"Org",
   "orgs",
   "org",
   {},
   "An organisation: principals belong to one, gateways allow it as a whole.",
   {str("displayName", "", "Acme Inc.").len(256)},
   {}};
}

kind_table gateway_table() {
  return {"Gateway",
   "gateways",
   "gateway",
   {"drtpgw"},
   "Who may reach a service: its external port, source CIDRs, orgs and principals.",
   {
     str("service", "The DRTPConnection it exposes.", "web").req().len(63),
     str("type", "public: an external port on every POP holding a tunnel; private: patch "
                 "panel only.",
         "public")
       .req()
       .values({"public", "private"}),
     integer("port", "public: the external port (replaces the DRTPConnection's publicPort).",
             18080)
       .max(1, 65535),
     strings("allowCIDRs", "Allowed source CIDRs, IPv4 and IPv6; empty: any source.",
             ojson::array({"10.0.0.0/8", "2001:db8::/32"}))
       .items(1024),
     strings("allowOrgs", "Orgs whose principals may use the patch panel.",
             ojson::array({"acme"}))
       .items(1024),
     strings("allowPrincipals", "Principals or group:NAME; private gateways deny by default.",
             ojson::array({"sam"}))
       .items(1024),
     boolean("endOpenSessions", "A change that takes access away also ends open sessions.",
             false),
   },
   {
     objects("addresses", "Computed on read: where the gateway is reachable.",
             {str("pop", "", "edge-1").len(63),
              str("address", "The POP's publicAddress.", "edge-1.example.net").len(253),
              integer("port", "", 18080).max(1, 65535)})
       .items(64),
   }};
}

const std::vector<kind_table>& tables() {
  static const std::vector<kind_table> t = {server_table(), connection_table(), principal_table(),
                                            org_table(), gateway_table()};
  return t;
}

const kind_table& table_of(const std::string& kind) {
  for (auto& t : tables())
    if (t.kind == kind)
      return t;
  throw failure("no CRD for kind " + kind);
}

ojson schema_of(const field& f);

/// The properties and required list of an object's fields.
void object_schema(ojson& s, const std::vector<field>& fields) {
  auto& props = s["properties"] = ojson::object();
  ojson required = ojson::array();
  for (auto& f : fields) {
    props[f.name] = schema_of(f);
    if (f.required)
      required.push_back(f.name);
  }
  if (!required.empty())
    s["required"] = required;
}

ojson schema_of(const field& f) {
  ojson s = ojson::object();
  s["type"] = f.type;
  if (!f.description.empty())
    s["description"] = f.description;
  if (f.type == "object")
    object_schema(s, f.fields);
  if (f.type == "array") {
    ojson item = ojson::object();
    item["type"] = f.item_type;
    if (f.item_type == "object")
      object_schema(item, f.fields);
    s["items"] = item;
    if (f.max_items)
      s["maxItems"] = *f.max_items;
  }
  if (f.minimum)
    s["minimum"] = *f.minimum;
  if (f.maximum)
    s["maximum"] = *f.maximum;
  if (f.max_length)
    s["maxLength"] = *f.max_length;
  if (!f.one_of.empty())
    s["enum"] = f.one_of;
  if (!f.format.empty())
    s["format"] = f.format;
  return s;
}

ojson crd(const kind_table& t) {
  ojson names = ojson::object();
  names["kind"] = t.kind;
  names["listKind"] = t.kind + "List";
  names["plural"] = t.plural;
  names["singular"] = t.singular;
  if (!t.short_names.empty())
    names["shortNames"] = t.short_names;
  names["categories"] = ojson::array({"drtp"});

  ojson spec_schema = ojson::object();
  spec_schema["type"] = "object";
  object_schema(spec_schema, t.spec);
  ojson root = ojson::object();
  root["type"] = "object";
  root["description"] = t.description;
  root["required"] = ojson::array({"spec"});
  auto& props = root["properties"] = ojson::object();
  props["apiVersion"] = ojson{{"type", "string"}};
  props["kind"] = ojson{{"type", "string"}};
  props["metadata"] = ojson{{"type", "object"}};
  props["spec"] = spec_schema;
  if (!t.status.empty()) {
    ojson status_schema = ojson::object();
    status_schema["type"] = "object";
    object_schema(status_schema, t.status);
    props["status"] = status_schema;
  }

  ojson version = ojson::object();
  version["name"] = "v1";
  version["served"] = true;
  version["storage"] = true;
  // Only kinds with a status have the subresource: the registry refuses a
  // status on a Principal or an Org.
  if (!t.status.empty())
    version["subresources"] = ojson{{"status", ojson::object()}};
  version["schema"] = ojson{{"openAPIV3Schema", root}};

  ojson j = ojson::object();
  j["apiVersion"] = "apiextensions.k8s.io/v1";
  j["kind"] = "CustomResourceDefinition";
  j["metadata"] = ojson{{"name", t.plural + ".drtp.dev"}};
  auto& s = j["spec"] = ojson::object();
  s["group"] = "drtp.dev";
  s["names"] = names;
  // Cluster: the registry has one flat name space per kind (store key
  // /drtp/v1/<plural>/<name>); POPs, agents and Gateways name objects
  // without a namespace.
  s["scope"] = "Cluster";
  s["versions"] = ojson::array({version});
  return j;
}

void collect_paths(const std::vector<field>& fields, const std::string& prefix,
                   std::vector<std::string>& out) {
  for (auto& f : fields) {
    auto p = prefix + f.name;
    if (f.type == "object")
      collect_paths(f.fields, p + ".", out);
    else if (f.type == "array" && f.item_type == "object")
      collect_paths(f.fields, p + "[].", out);
    else if (f.type == "array")
      out.push_back(p + "[]");
    else
      out.push_back(p);
  }
}

ojson example_of(const std::vector<field>& fields) {
  ojson j = ojson::object();
  for (auto& f : fields) {
    if (f.type == "object")
      j[f.name] = example_of(f.fields);
    else if (f.type == "array" && f.item_type == "object")
      j[f.name] = ojson::array({example_of(f.fields)});
    else if (!f.example.is_null())
      j[f.name] = f.example;
  }
  return j;
}

// -- the Gateway API objects ---------------------------------------------------------

constexpr size_t endpoints_per_slice_max = 1000; // Kubernetes' own bound

ojson parse_object(const std::string& text, const std::string& what) {
  auto j = ojson::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object())
    throw failure(what + ": the control plane's answer is not a JSON object");
  return j;
}

std::string text_at(const ojson& j, const char* pointer) {
  auto p = ojson::json_pointer(pointer);
  return j.contains(p) && j.at(p).is_string() ? j.at(p).get<std::string>() : "";
}

int64_t number_at(const ojson& j, const char* pointer) {
  auto p = ojson::json_pointer(pointer);
  return j.contains(p) && j.at(p).is_number_integer() ? j.at(p).get<int64_t>() : 0;
}

bool flag_at(const ojson& j, const char* pointer) {
  auto p = ojson::json_pointer(pointer);
  return j.contains(p) && j.at(p).is_boolean() && j.at(p).get<bool>();
}

ojson metadata(const std::string& name, const std::string& gateway, const gateway_export_options& o,
               ojson labels = ojson::object()) {
  ojson m = ojson::object();
  m["name"] = name;
  if (!o.ns.empty())
    m["namespace"] = o.ns;
  labels["app.kubernetes.io/managed-by"] = "drtpctl";
  labels["drtp.dev/gateway"] = gateway;
  m["labels"] = labels;
  return m;
}

ojson k8s_object(const char* api, const char* kind, ojson meta) {
  ojson j = ojson::object();
  j["apiVersion"] = api;
  j["kind"] = kind;
  j["metadata"] = std::move(meta);
  return j;
}

std::string strip_brackets(std::string a) {
  if (a.size() >= 2 && a.front() == '[' && a.back() == ']')
    return a.substr(1, a.size() - 2);
  return a;
}

/// A DNS-1123 subdomain, as an FQDN endpoint must be.
bool dns_subdomain(const std::string& s) {
  if (s.empty() || s.size() > 253)
    return false;
  size_t start = 0;
  while (start <= s.size()) {
    auto dot = s.find('.', start);
    auto label = s.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-'
        || !std::all_of(label.begin(), label.end(), [](char c) {
             return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
           }))
      return false;
    if (dot == std::string::npos)
      break;
    start = dot + 1;
  }
  return true;
}

/// Per POP name: ready (the registry's computed status.ready), draining,
/// region.
struct pop_state {
  bool ready = false;
  bool draining = false;
  std::string region;
};

std::map<std::string, pop_state> pops_of(const std::string& servers_json) {
  auto list = parse_object(servers_json, "drtpservers");
  std::map<std::string, pop_state> out;
  auto items = list.find("items");
  if (items == list.end() || !items->is_array())
    throw failure("drtpservers: the control plane's answer has no items");
  for (auto& s : *items) {
    if (!s.is_object())
      continue;
    auto& p = out[text_at(s, "/metadata/name")];
    p.ready = flag_at(s, "/status/ready");
    p.draining = flag_at(s, "/spec/draining") || flag_at(s, "/status/draining");
    p.region = text_at(s, "/spec/region");
  }
  return out;
}

} // namespace

std::vector<std::string> crd_kinds() {
  std::vector<std::string> out;
  for (auto& t : tables())
    out.push_back(t.kind);
  return out;
}

std::string export_crds() {
  std::string out;
  for (auto& t : tables()) {
    if (!out.empty())
      out += "---\n";
    out += json_to_yaml(crd(t).dump());
  }
  return out;
}

std::vector<std::string> crd_field_paths(const std::string& kind) {
  auto& t = table_of(kind);
  std::vector<std::string> out;
  collect_paths(t.spec, "spec.", out);
  collect_paths(t.status, "status.", out);
  return out;
}

std::string crd_example(const std::string& kind) {
  auto& t = table_of(kind);
  ojson j = ojson::object();
  j["apiVersion"] = "drtp.dev/v1";
  j["kind"] = t.kind;
  j["metadata"] = ojson{{"name", "x"}};
  j["spec"] = example_of(t.spec);
  if (!t.status.empty())
    j["status"] = example_of(t.status);
  return j.dump();
}

std::string gateway_service(const std::string& gateway_json) {
  auto service = text_at(parse_object(gateway_json, "gateway"), "/spec/service");
  if (!control::valid_name(service))
    throw failure("gateway: the control plane's answer has no spec.service");
  return service;
}

std::string address_type(const std::string& address) {
  auto a = strip_brackets(address);
  unsigned char buf[16];
  if (::inet_pton(AF_INET, a.c_str(), buf) == 1)
    return "IPv4";
  if (::inet_pton(AF_INET6, a.c_str(), buf) == 1)
    return "IPv6";
  std::string lower = a;
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (!lower.empty() && lower.back() == '.')
    lower.pop_back();
  return dns_subdomain(lower) ? "FQDN" : "";
}

/// The POPs' addresses of a gateway, one endpoint each, grouped by family.
struct gateway_endpoints {
  std::map<std::string, ojson> slices; // addressType -> endpoints
  ojson gateway_addresses = ojson::array();
};

static gateway_endpoints endpoints_of(const ojson& gw, const std::string& name,
                                      std::map<std::string, pop_state>& pops) {
  gateway_endpoints out;
  auto& slices = out.slices;
  std::set<std::string> seen;
  auto& gateway_addresses = out.gateway_addresses;
  auto addresses = gw.find("status") != gw.end() && gw["status"].is_object()
                       && gw["status"].contains("addresses") && gw["status"]["addresses"].is_array()
                     ? gw["status"]["addresses"]
                     : ojson::array();
  for (auto& a : addresses) {
    if (!a.is_object())
      continue;
    auto address = strip_brackets(text_at(a, "/address"));
    auto type = address_type(address);
    if (type.empty())
      throw failure("gateway/" + name + ": status.addresses: '" + address
                    + "' is neither an IP address nor a DNS name");
    if (type == "FQDN")
      std::transform(address.begin(), address.end(), address.begin(),
                     [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (!seen.insert(address).second)
      continue;
    auto pop = text_at(a, "/pop");
    auto state = pops.count(pop) ? pops[pop] : pop_state{};
    ojson e = ojson::object();
    e["addresses"] = ojson::array({address});
    e["conditions"] = ojson{{"ready", state.ready && !state.draining},
                            {"serving", state.ready && !state.draining},
                            {"terminating", state.draining}};
    if (!state.region.empty())
      e["zone"] = state.region;
    auto& endpoints = slices[type];
    if (endpoints.size() >= endpoints_per_slice_max)
      throw failure("gateway/" + name + ": more than "
                    + std::to_string(endpoints_per_slice_max) + " " + type + " addresses");
    endpoints.push_back(e);
    gateway_addresses.push_back(
      ojson{{"type", type == "FQDN" ? "Hostname" : "IPAddress"}, {"value", address}});
  }
  if (slices.empty())
    slices["IPv4"] = ojson::array(); // no POP holds a tunnel: an empty slice says so
  return out;
}

std::string export_gateway(const std::string& gateway_json, const std::string& connection_json,
                           const std::string& servers_json, const gateway_export_options& o) {
  auto gw = parse_object(gateway_json, "gateway");
  auto conn = parse_object(connection_json, "drtpconnection");
  auto pops = pops_of(servers_json);
  auto name = text_at(gw, "/metadata/name");
  auto service = text_at(gw, "/spec/service");
  if (name.empty() || service.empty())
    throw failure("gateway: the control plane's answer has no metadata.name or spec.service");
  if (text_at(gw, "/spec/type") == "private")
    throw failure("gateway/" + name
                  + " is private (patch panel only): it has no external port to export");
  auto port = number_at(gw, "/spec/port");
  if (port < 1 || port > 65535)
    throw failure("gateway/" + name + ": spec.port is not a port (1-65535)");
  bool udp = text_at(conn, "/spec/protocol") == "udp";
  std::string protocol = udp ? "UDP" : "TCP";
  std::string port_name = udp ? "udp" : "tcp";
  std::string listener = port_name + "-" + std::to_string(port);

  auto ends = endpoints_of(gw, name, pops);
  auto& slices = ends.slices;
  auto& gateway_addresses = ends.gateway_addresses;

  std::vector<ojson> docs;
  auto g = k8s_object("gateway.networking.k8s.io/v1", "Gateway", metadata(name, name, o));
  auto& gspec = g["spec"] = ojson::object();
  gspec["gatewayClassName"] = o.gateway_class;
  gspec["listeners"] = ojson::array(
    {ojson{{"name", listener},
           {"port", port},
           {"protocol", protocol},
           {"allowedRoutes",
            ojson{{"kinds", ojson::array({ojson{{"kind", udp ? "UDPRoute" : "TCPRoute"}}})}}}}});
  if (!gateway_addresses.empty())
    gspec["addresses"] = gateway_addresses;
  docs.push_back(g);

  auto r = k8s_object("gateway.networking.k8s.io/v1alpha2", udp ? "UDPRoute" : "TCPRoute",
                      metadata(name, name, o));
  auto& rspec = r["spec"] = ojson::object();
  ojson parent = ojson::object();
  parent["group"] = "gateway.networking.k8s.io";
  parent["kind"] = "Gateway";
  parent["name"] = name;
  parent["sectionName"] = listener;
  rspec["parentRefs"] = ojson::array({parent});
  rspec["rules"] = ojson::array(
    {ojson{{"backendRefs", ojson::array({ojson{{"name", service}, {"port", port}}})}}});
  docs.push_back(r);

  // The route's backendRef must resolve to a Service; without a selector,
  // Kubernetes leaves its EndpointSlices to whoever labels them with its
  // name (here: us).
  auto svc = k8s_object("v1", "Service", metadata(service, name, o));
  auto& sspec = svc["spec"] = ojson::object();
  sspec["ports"] = ojson::array({ojson{
    {"name", port_name}, {"protocol", protocol}, {"port", port}, {"targetPort", port}}});
  docs.push_back(svc);

  for (auto& [type, endpoints] : slices) {
    std::string family = type;
    std::transform(family.begin(), family.end(), family.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    ojson labels = ojson::object();
    labels["kubernetes.io/service-name"] = service;
    labels["endpointslice.kubernetes.io/managed-by"] = "drtpctl.drtp.dev";
    auto s = k8s_object("discovery.k8s.io/v1", "EndpointSlice",
                        metadata(service + "-drtp-" + family, name, o, labels));
    s["addressType"] = type;
    s["endpoints"] = endpoints;
    s["ports"] =
      ojson::array({ojson{{"name", port_name}, {"port", port}, {"protocol", protocol}}});
    docs.push_back(s);
  }

  std::string out = "# drtpctl export gateway " + name + ": the Gateway API objects for the POPs "
                    "that hold service " + service + "'s tunnels now; run it again to follow them\n";
  for (size_t i = 0; i < docs.size(); ++i) {
    if (i != 0)
      out += "---\n";
    out += json_to_yaml(docs[i].dump());
  }
  return out;
}

} // namespace drtp::ctl
