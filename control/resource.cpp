#include "control/resource.hpp"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <set>

#include <nlohmann/json.hpp>

#include "net/seam/crypto.hpp"
#include "net/wire/cidr.hpp"
#include "net/wire/civil_time.hpp"
#include "net/wire/hex.hpp"

namespace drtp::control {

namespace {

using json = nlohmann::json;
// Written objects keep the natural order (apiVersion, kind, metadata, ...).
using ojson = nlohmann::ordered_json;

// Bounds on what a resource may hold. The API caps a body at 1 MiB; these
// keep every field to what it is for, so a hostile body is refused with the
// field it abused rather than stored.
constexpr size_t resource_bytes_max = 1024 * 1024;
/// Resources nest 4 levels deep; deeper JSON is someone else's document.
constexpr int json_depth_max = 16;
constexpr size_t host_bytes_max = 253;      // a DNS name
constexpr size_t text_bytes_max = 256;      // display names, agent ids
constexpr size_t pem_bytes_max = 64 * 1024; // a CA bundle
constexpr size_t uid_bytes_max = 128;
constexpr size_t allow_max = 1024;
constexpr size_t groups_max = 256;
/// A POP holds tunnels for at most this many services (the registry's
/// target is 10 000).
constexpr size_t services_max = 100000;
constexpr size_t agents_max = 64;
constexpr size_t pops_max = 64;
constexpr uint32_t tunnels_per_service_max = 3;

// Years 0000-9999, the range RFC 3339 can write.
using net::days_from_civil;
using net::days_in_month;
constexpr int64_t unix_ms_min = net::civil_unix_ms_min;
constexpr int64_t unix_ms_max = net::civil_unix_ms_max;

bool is_hex(const std::string& s) {
  return std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isxdigit(c); });
}

/// "PREFIX:HEX" with `bytes` raw bytes of hex, nothing else.
bool prefixed_hex(const std::string& s, const std::string& prefix, size_t bytes) {
  return s.size() == prefix.size() + 2 * bytes && s.compare(0, prefix.size(), prefix) == 0
         && is_hex(s.substr(prefix.size()));
}

/// Printable ASCII without spaces: hosts, addresses, ids.
bool is_token(const std::string& s) {
  return std::all_of(s.begin(), s.end(), [](unsigned char c) { return c > 0x20 && c < 0x7f; });
}

/// No control characters (display names, PEM keeps its newlines).
bool is_text(const std::string& s, bool newlines) {
  return std::all_of(s.begin(), s.end(), [&](unsigned char c) {
    return c >= 0x20 ? c != 0x7f : newlines && (c == '\n' || c == '\r');
  });
}

/// "host:port" or "[v6]:port", port 1..65535.
bool parse_host_port(const std::string& s, std::string& host, uint16_t& port) {
  auto colon = s.rfind(':');
  if (colon == std::string::npos || colon + 1 == s.size() || s.size() - colon - 1 > 5)
    return false;
  auto h = s.substr(0, colon);
  auto p = s.substr(colon + 1);
  if (!std::all_of(p.begin(), p.end(), [](unsigned char c) { return std::isdigit(c); }))
    return false;
  auto value = std::stoul(p);
  if (value == 0 || value > 65535)
    return false;
  if (h.size() >= 2 && h.front() == '[' && h.back() == ']')
    h = h.substr(1, h.size() - 2);
  else if (h.find(':') != std::string::npos)
    return false; // an IPv6 address needs its brackets
  if (h.empty() || h.size() > host_bytes_max || !is_token(h) || h.find_first_of("[]/") != std::string::npos)
    return false;
  host = std::move(h);
  port = static_cast<uint16_t>(value);
  return true;
}

std::string host_port(const std::string& host, uint16_t port) {
  if (host.find(':') != std::string::npos)
    return "[" + host + "]:" + std::to_string(port);
  return host + ":" + std::to_string(port);
}

/// The fields of one JSON object, read by name, with its path for errors
/// ("spec.capacity"). Fields never read are unknown: finish() refuses them.
class fields {
public:
  fields(const json& j, std::string path, std::string& error)
    : j_(j), path_(std::move(path)), error_(error) {
  }

  /// Whether `j` is an object; else the error names `path`.
  static bool object(const json* j, const std::string& path, std::string& error) {
    if (j && j->is_object())
      return true;
    error = path + ": expected an object";
    return false;
  }

  std::string where(const std::string& key) const {
    return path_.empty() ? key : path_ + "." + key;
  }

  bool fail(const std::string& key, const std::string& what) {
    error_ = where(key) + ": " + what;
    return false;
  }

  /// The field, or null when absent (JSON null counts as absent).
  const json* take(const std::string& key) {
    seen_.insert(key);
    auto i = j_.find(key);
    return i == j_.end() || i->is_null() ? nullptr : &*i;
  }

  bool string(const std::string& key, std::string& out, size_t max, bool required) {
    auto v = take(key);
    if (!v)
      return !required || fail(key, "required");
    if (!v->is_string())
      return fail(key, "expected a string");
    out = v->get<std::string>();
    if (out.size() > max)
      return fail(key, "longer than " + std::to_string(max) + " bytes");
    return true;
  }

  template <class T>
  bool integer(const std::string& key, T& out, uint64_t max, bool required) {
    auto v = take(key);
    if (!v)
      return !required || fail(key, "required");
    // The parser keeps every integer that is not negative as unsigned.
    if (!v->is_number_unsigned() || v->get<uint64_t>() > max)
      return fail(key, "expected a whole number from 0 to " + std::to_string(max));
    out = static_cast<T>(v->get<uint64_t>());
    return true;
  }

  bool boolean(const std::string& key, bool& out) {
    auto v = take(key);
    if (!v)
      return true;
    if (!v->is_boolean())
      return fail(key, "expected true or false");
    out = v->get<bool>();
    return true;
  }

  /// A list of strings, each accepted by `ok` (which says what it expects).
  template <class Check>
  bool strings(const std::string& key, std::vector<std::string>& out, size_t count_max,
               const char* expected, Check ok) {
    auto v = take(key);
    if (!v)
      return true;
    if (!v->is_array())
      return fail(key, "expected a list");
    if (v->size() > count_max)
      return fail(key, "more than " + std::to_string(count_max) + " entries");
    for (size_t i = 0; i < v->size(); ++i) {
      auto& e = (*v)[i];
      if (!e.is_string() || !ok(e.get<std::string>()))
        return fail(key + "[" + std::to_string(i) + "]", std::string("expected ") + expected);
      out.push_back(e.get<std::string>());
    }
    return true;
  }

  bool time(const std::string& key, int64_t& unix_ms) {
    auto v = take(key);
    if (!v)
      return true;
    if (!v->is_string() || !parse_rfc3339(v->get<std::string>(), unix_ms))
      return fail(key, "expected an RFC 3339 time (2026-12-02T18:03:08.123Z)");
    return true;
  }

  /// Refuses the first field nobody read.
  bool finish() {
    for (auto& [key, value] : j_.items())
      if (!seen_.count(key))
        return fail(key, "unknown field");
    return true;
  }

private:
  const json& j_;
  std::string path_;
  std::string& error_;
  std::set<std::string> seen_;
};

bool valid_public_key(const std::string& s) {
  return prefixed_hex(s, "ed25519:", net::public_key_bytes);
}

bool valid_allow_entry(const std::string& s) {
  static const std::string group = "group:";
  if (s.compare(0, group.size(), group) == 0)
    return valid_name(s.substr(group.size()));
  return valid_name(s);
}

// -- reading -------------------------------------------------------------------

/// The text as a JSON object, bounded.
bool parse_document(const std::string& text, json& root, std::string& error) {
  if (text.size() > resource_bytes_max) {
    error = "object of " + std::to_string(text.size()) + " bytes, over "
            + std::to_string(resource_bytes_max);
    return false;
  }
  if (json_depth(text) > json_depth_max) {
    error = "JSON nested deeper than " + std::to_string(json_depth_max) + " levels";
    return false;
  }
  try {
    root = json::parse(text);
  } catch (const json::parse_error& e) {
    error = "malformed JSON at byte " + std::to_string(e.byte);
    return false;
  }
  if (!root.is_object()) {
    error = "expected a JSON object";
    return false;
  }
  return true;
}

bool parse_meta(const json* j, object_meta& out, std::string& error) {
  if (!fields::object(j, "metadata", error))
    return false;
  fields f(*j, "metadata", error);
  if (!f.string("name", out.name, 63, true))
    return false;
  if (!valid_name(out.name))
    return f.fail("name", "expected a DNS label (a-z, 0-9, '-', at most 63)");
  std::string version;
  if (!f.string("resourceVersion", version, 20, false))
    return false;
  if (!version.empty()) {
    if (!std::all_of(version.begin(), version.end(), [](unsigned char c) { return std::isdigit(c); })
        || (version.size() == 20 && version > "18446744073709551615"))
      return f.fail("resourceVersion", "expected a decimal number in a string");
    out.resource_version = std::stoull(version);
  }
  if (!f.string("creationTimestamp", out.creation_timestamp, 64, false))
    return false;
  int64_t unused = 0;
  if (!out.creation_timestamp.empty() && !parse_rfc3339(out.creation_timestamp, unused))
    return f.fail("creationTimestamp", "expected an RFC 3339 time");
  if (!f.string("uid", out.uid, uid_bytes_max, false))
    return false;
  if (!is_token(out.uid))
    return f.fail("uid", "expected printable characters without spaces");
  return f.finish();
}

/// apiVersion, kind and metadata of a `k`.
bool parse_header(fields& top, kind k, object_meta& meta, std::string& error) {
  std::string v;
  if (!top.string("apiVersion", v, 64, true))
    return false;
  if (v != api_version)
    return top.fail("apiVersion", std::string("expected ") + api_version);
  if (!top.string("kind", v, 64, true))
    return false;
  if (v != kind_name(k))
    return top.fail("kind", std::string("expected ") + kind_name(k));
  return parse_meta(top.take("metadata"), meta, error);
}

bool parse_verify(fields& spec, server_spec& out, std::string& error) {
  auto v = spec.take("verify");
  if (!v)
    return spec.fail("verify", "required ({pin: \"sha256:HEX\"} or {ca: PEM})");
  if (!fields::object(v, "spec.verify", error))
    return false;
  fields f(*v, "spec.verify", error);
  if (!f.string("pin", out.pin, 80, false) || !f.string("ca", out.ca_pem, pem_bytes_max, false))
    return false;
  if (out.pin.empty() == out.ca_pem.empty())
    return spec.fail("verify", "expected one of pin and ca");
  if (!out.pin.empty() && !prefixed_hex(out.pin, "sha256:", 32))
    return f.fail("pin", "expected sha256: and 64 hex digits");
  if (!out.ca_pem.empty()
      && (out.ca_pem.find("-----BEGIN CERTIFICATE-----") == std::string::npos
          || !is_text(out.ca_pem, true)))
    return f.fail("ca", "expected a PEM certificate");
  return f.finish();
}

bool parse_server_spec(const json* j, server_spec& out, std::string& error) {
  if (!fields::object(j, "spec", error))
    return false;
  fields f(*j, "spec", error);
  if (!f.string("region", out.region, 63, true))
    return false;
  if (!valid_name(out.region))
    return f.fail("region", "expected a DNS label (a-z, 0-9, '-', at most 63)");
  std::string address;
  if (!f.string("tunnelAddress", address, host_bytes_max + 8, true))
    return false;
  if (!parse_host_port(address, out.tunnel_host, out.tunnel_port))
    return f.fail("tunnelAddress", "expected host:port");
  if (!f.string("publicAddress", out.public_address, host_bytes_max, false))
    return false;
  if (!is_token(out.public_address))
    return f.fail("publicAddress", "expected an address or DNS name");
  if (!parse_verify(f, out, error))
    return false;
  if (auto cap = f.take("capacity")) {
    if (!fields::object(cap, "spec.capacity", error))
      return false;
    fields c(*cap, "spec.capacity", error);
    if (!c.integer("tunnels", out.capacity_tunnels, UINT32_MAX, false) || !c.finish())
      return false;
  }
  return f.boolean("draining", out.draining) && f.finish();
}

bool parse_server_status(const json* j, server_status& out, std::string& error) {
  if (!fields::object(j, "status", error))
    return false;
  fields f(*j, "status", error);
  if (auto lease = f.take("lease")) {
    if (!fields::object(lease, "status.lease", error))
      return false;
    fields l(*lease, "status.lease", error);
    if (!l.time("renewTime", out.lease_renew_unix_ms)
        || !l.integer("durationSeconds", out.lease_duration_s, 86400, false) || !l.finish())
      return false;
  }
  return f.boolean("ready", out.ready) && f.boolean("draining", out.draining)
         && f.integer("tunnels", out.tunnels, UINT32_MAX, false)
         && f.strings("services", out.services, services_max, "a service name", valid_name)
         && f.finish();
}

bool canonical_hex_serial(const std::string& s) {
  return !s.empty() && net::canonical_serial(s) == s;
}

/// revokedSerials and revokedBefore (issue 15), as DRTPConnection and
/// Principal specs both have them.
bool revocations(fields& f, std::vector<std::string>& serials, int64_t& before_unix_ms) {
  return f.strings("revokedSerials", serials, revoked_serials_max,
                   "a serial in lowercase hex without leading zeros", canonical_hex_serial)
         && f.time("revokedBefore", before_unix_ms);
}

bool parse_connection_spec(const json* j, connection_spec& out, std::string& error) {
  if (!fields::object(j, "spec", error))
    return false;
  fields f(*j, "spec", error);
  if (!f.string("protocol", out.protocol, 16, false))
    return false;
  if (out.protocol != "tcp")
    return f.fail("protocol", "expected tcp (udp is not supported yet)");
  std::string local;
  if (!f.string("local", local, host_bytes_max + 8, true))
    return false;
  if (!parse_host_port(local, out.local_host, out.local_port))
    return f.fail("local", "expected host:port");
  if (!f.integer("publicPort", out.public_port, 65535, false))
    return false;
  if (!f.string("publicKey", out.public_key, 80, true))
    return false;
  if (!valid_public_key(out.public_key))
    return f.fail("publicKey", "expected ed25519: and 64 hex digits");
  if (!f.string("org", out.org, 63, false))
    return false;
  if (!out.org.empty() && !valid_name(out.org))
    return f.fail("org", "expected a DNS label (a-z, 0-9, '-', at most 63)");
  if (!f.strings("allow", out.allow, allow_max, "a principal name or group:NAME",
                 valid_allow_entry))
    return false;
  if (!f.integer("tunnels", out.tunnels, tunnels_per_service_max, false))
    return false;
  if (out.tunnels == 0)
    return f.fail("tunnels", "expected 1 to " + std::to_string(tunnels_per_service_max));
  return revocations(f, out.revoked_serials, out.revoked_before_unix_ms) && f.finish();
}

bool parse_agent(const json& j, const std::string& path, agent_report& out, std::string& error) {
  if (!fields::object(&j, path, error))
    return false;
  fields f(j, path, error);
  if (!f.string("id", out.id, text_bytes_max, true) || !f.string("address", out.address, host_bytes_max + 8, false))
    return false;
  if (!is_token(out.id) || out.id.empty())
    return f.fail("id", "expected printable characters without spaces");
  if (!is_token(out.address))
    return f.fail("address", "expected host:port");
  return f.strings("pops", out.pops, pops_max, "a POP name", valid_name)
         && f.time("lastSeen", out.last_seen_unix_ms) && f.finish();
}

bool parse_connection_status(const json* j, connection_status& out, std::string& error) {
  if (!fields::object(j, "status", error))
    return false;
  fields f(*j, "status", error);
  if (auto agents = f.take("agents")) {
    if (!agents->is_array())
      return f.fail("agents", "expected a list");
    if (agents->size() > agents_max)
      return f.fail("agents", "more than " + std::to_string(agents_max) + " entries");
    for (size_t i = 0; i < agents->size(); ++i) {
      out.agents.emplace_back();
      if (!parse_agent((*agents)[i], "status.agents[" + std::to_string(i) + "]",
                       out.agents.back(), error))
        return false;
    }
  }
  return f.strings("pops", out.pops, pops_max, "a POP name", valid_name)
         && f.time("lastSeen", out.last_seen_unix_ms) && f.finish();
}

bool parse_principal_spec(const json* j, principal_spec& out, std::string& error) {
  if (!fields::object(j, "spec", error))
    return false;
  fields f(*j, "spec", error);
  if (!f.string("publicKey", out.public_key, 80, true))
    return false;
  if (!valid_public_key(out.public_key))
    return f.fail("publicKey", "expected ed25519: and 64 hex digits");
  if (!f.string("org", out.org, 63, false))
    return false;
  if (!out.org.empty() && !valid_name(out.org))
    return f.fail("org", "expected a DNS label (a-z, 0-9, '-', at most 63)");
  return f.strings("groups", out.groups, groups_max, "a group name", valid_name)
         && f.boolean("revoked", out.revoked)
         && revocations(f, out.revoked_serials, out.revoked_before_unix_ms) && f.finish();
}

bool parse_org_spec(const json* j, org_spec& out, std::string& error) {
  if (!fields::object(j, "spec", error))
    return false;
  fields f(*j, "spec", error);
  if (!f.string("displayName", out.display_name, text_bytes_max, false))
    return false;
  if (!is_text(out.display_name, false))
    return f.fail("displayName", "expected text without control characters");
  return f.finish();
}

bool valid_org_name(const std::string& s) {
  return valid_name(s);
}

bool parse_gateway_spec(const json* j, gateway_spec& out, std::string& error) {
  if (!fields::object(j, "spec", error))
    return false;
  fields f(*j, "spec", error);
  if (!f.string("service", out.service, 63, true))
    return false;
  if (!valid_name(out.service))
    return f.fail("service", "expected a DNS label (a-z, 0-9, '-', at most 63)");
  std::string type;
  if (!f.string("type", type, 16, true))
    return false;
  if (type != "public" && type != "private")
    return f.fail("type", "expected public or private");
  out.is_public = type == "public";
  if (!f.integer("port", out.port, 65535, false))
    return false;
  if (out.is_public && out.port == 0)
    return f.fail("port", "required for a public gateway (1 to 65535)");
  if (!out.is_public && out.port != 0)
    return f.fail("port", "a private gateway has no port");
  return f.strings("allowCIDRs", out.allow_cidrs, gateway_cidrs_max,
                   "a CIDR (10.0.0.0/8, 2001:db8::/32)", valid_cidr)
         && f.strings("allowOrgs", out.allow_orgs, gateway_orgs_max, "an org name",
                      valid_org_name)
         && f.strings("allowPrincipals", out.allow_principals, gateway_principals_max,
                      "a principal name or group:NAME", valid_allow_entry)
         && f.boolean("endOpenSessions", out.end_open_sessions) && f.finish();
}

bool parse_gateway_address(const json& j, const std::string& path, gateway_address& out,
                           std::string& error) {
  if (!fields::object(&j, path, error))
    return false;
  fields f(j, path, error);
  if (!f.string("pop", out.pop, 63, true) || !f.string("address", out.address, host_bytes_max, false)
      || !f.integer("port", out.port, 65535, false))
    return false;
  if (!valid_name(out.pop))
    return f.fail("pop", "expected a POP name");
  if (!is_token(out.address))
    return f.fail("address", "expected an address or DNS name");
  return f.finish();
}

bool parse_gateway_status(const json* j, gateway_status& out, std::string& error) {
  if (!fields::object(j, "status", error))
    return false;
  fields f(*j, "status", error);
  if (auto a = f.take("addresses")) {
    if (!a->is_array())
      return f.fail("addresses", "expected a list");
    if (a->size() > pops_max)
      return f.fail("addresses", "more than " + std::to_string(pops_max) + " entries");
    for (size_t i = 0; i < a->size(); ++i) {
      out.addresses.emplace_back();
      if (!parse_gateway_address((*a)[i], "status.addresses[" + std::to_string(i) + "]",
                                 out.addresses.back(), error))
        return false;
    }
  }
  return f.finish();
}

/// The common frame of every parse_*: the document, its header, spec
/// (required) and status (only for kinds that have one).
template <class Object, class SpecParser, class StatusParser>
bool parse_object(const std::string& text, kind k, Object& out, std::string& error,
                  SpecParser spec, StatusParser status) {
  out = Object{};
  json root;
  if (!parse_document(text, root, error))
    return false;
  fields top(root, "", error);
  if (!parse_header(top, k, out.meta, error))
    return false;
  auto s = top.take("spec");
  if (!s)
    return top.fail("spec", "required");
  if (!spec(s, out, error))
    return false;
  if (auto st = top.take("status"); st && !status(st, out, error))
    return false;
  return top.finish();
}

// -- writing -------------------------------------------------------------------

ojson meta_json(const object_meta& m) {
  ojson j = ojson::object();
  j["name"] = m.name;
  if (m.resource_version != 0)
    j["resourceVersion"] = std::to_string(m.resource_version);
  if (!m.creation_timestamp.empty())
    j["creationTimestamp"] = m.creation_timestamp;
  if (!m.uid.empty())
    j["uid"] = m.uid;
  return j;
}

ojson header_json(kind k, const object_meta& m) {
  ojson j = ojson::object();
  j["apiVersion"] = api_version;
  j["kind"] = kind_name(k);
  j["metadata"] = meta_json(m);
  return j;
}

ojson agent_json(const agent_report& a) {
  ojson j = ojson::object();
  j["id"] = a.id;
  if (!a.address.empty())
    j["address"] = a.address;
  j["pops"] = a.pops;
  if (a.last_seen_unix_ms != 0)
    j["lastSeen"] = rfc3339(a.last_seen_unix_ms);
  return j;
}

// -- time ------------------------------------------------------------------------


/// `n` digits at s[at], as a number; false if any is not a digit.
bool digits(const std::string& s, size_t at, size_t n, unsigned& out) {
  if (at + n > s.size())
    return false;
  out = 0;
  for (size_t i = at; i < at + n; ++i) {
    if (!std::isdigit(static_cast<unsigned char>(s[i])))
      return false;
    out = out * 10 + static_cast<unsigned>(s[i] - '0');
  }
  return true;
}

/// "+HH:MM", "-HH:MM", "Z" or "z" at s[at] to the end: the offset in ms.
bool parse_offset(const std::string& s, size_t at, int64_t& offset_ms) {
  if (at + 1 == s.size() && (s[at] == 'Z' || s[at] == 'z')) {
    offset_ms = 0;
    return true;
  }
  unsigned oh = 0;
  unsigned om = 0;
  if (at + 6 != s.size() || (s[at] != '+' && s[at] != '-') || !digits(s, at + 1, 2, oh)
      || s[at + 3] != ':' || !digits(s, at + 4, 2, om) || oh > 23 || om > 59)
    return false;
  offset_ms = (static_cast<int64_t>(oh) * 60 + om) * 60000;
  if (s[at] == '-')
    offset_ms = -offset_ms;
  return true;
}

} // namespace

int json_depth(const std::string& text) {
  int depth = 0;
  int deepest = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (in_string) {
      if (c == '\\')
        ++i;
      else if (c == '"')
        in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      deepest = std::max(deepest, ++depth);
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return deepest;
}


// -- kinds and names ---------------------------------------------------------------

const char* kind_name(kind k) {
  switch (k) {
    case kind::server:
      return "DRTPServer";
    case kind::connection:
      return "DRTPConnection";
    case kind::principal:
      return "Principal";
    case kind::org:
      return "Org";
    case kind::gateway:
      return "Gateway";
  }
  return "?";
}

const char* kind_plural(kind k) {
  switch (k) {
    case kind::server:
      return "drtpservers";
    case kind::connection:
      return "drtpconnections";
    case kind::principal:
      return "principals";
    case kind::org:
      return "orgs";
    case kind::gateway:
      return "gateways";
  }
  return "?";
}

std::optional<kind> parse_kind(const std::string& s) {
  std::string lower = s;
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  struct alias {
    const char* name;
    kind k;
  };
  static constexpr alias aliases[] = {
    {"server", kind::server},         {"servers", kind::server},
    {"service", kind::connection},    {"services", kind::connection},
    {"connection", kind::connection}, {"connections", kind::connection},
    {"principal", kind::principal},   {"org", kind::org},
    {"gateway", kind::gateway},       {"gw", kind::gateway},
  };
  for (auto k : {kind::server, kind::connection, kind::principal, kind::org, kind::gateway}) {
    std::string name = kind_name(k);
    std::transform(name.begin(), name.end(), name.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (lower == name || lower == kind_plural(k))
      return k;
  }
  for (auto& a : aliases)
    if (lower == a.name)
      return a.k;
  return std::nullopt;
}

std::string store_prefix(kind k) {
  return std::string("/drtp/v1/") + kind_plural(k) + "/";
}

std::string store_key(kind k, const std::string& name) {
  return store_prefix(k) + name;
}

bool valid_name(const std::string& name) {
  if (name.empty() || name.size() > 63 || name.front() == '-' || name.back() == '-')
    return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
  });
}

bool valid_cidr(const std::string& s) {
  // The POP's own parser (net/wire/cidr), so the registry stores nothing
  // a POP would refuse: host bits set ("10.0.0.1/8") are refused too.
  net::cidr block;
  return net::parse_cidr(s, block, nullptr);
}

// -- parsing -------------------------------------------------------------------------

bool parse_server(const std::string& text, server& out, std::string& error) {
  return parse_object(
    text, kind::server, out, error,
    [](const json* j, server& o, std::string& e) { return parse_server_spec(j, o.spec, e); },
    [](const json* j, server& o, std::string& e) { return parse_server_status(j, o.status, e); });
}

bool parse_connection(const std::string& text, connection& out, std::string& error) {
  return parse_object(
    text, kind::connection, out, error,
    [](const json* j, connection& o, std::string& e) {
      return parse_connection_spec(j, o.spec, e);
    },
    [](const json* j, connection& o, std::string& e) {
      return parse_connection_status(j, o.status, e);
    });
}

bool parse_principal(const std::string& text, principal& out, std::string& error) {
  return parse_object(
    text, kind::principal, out, error,
    [](const json* j, principal& o, std::string& e) {
      return parse_principal_spec(j, o.spec, e);
    },
    [](const json*, principal&, std::string& e) {
      e = "status: a Principal has no status";
      return false;
    });
}

bool parse_gateway(const std::string& text, gateway& out, std::string& error) {
  return parse_object(
    text, kind::gateway, out, error,
    [](const json* j, gateway& o, std::string& e) { return parse_gateway_spec(j, o.spec, e); },
    [](const json* j, gateway& o, std::string& e) { return parse_gateway_status(j, o.status, e); });
}

bool parse_org(const std::string& text, org& out, std::string& error) {
  return parse_object(
    text, kind::org, out, error,
    [](const json* j, org& o, std::string& e) { return parse_org_spec(j, o.spec, e); },
    [](const json*, org&, std::string& e) {
      e = "status: an Org has no status";
      return false;
    });
}

// -- writing --------------------------------------------------------------------------

std::string to_json(const server& x) {
  auto j = header_json(kind::server, x.meta);
  auto& spec = j["spec"] = ojson::object();
  spec["region"] = x.spec.region;
  spec["tunnelAddress"] = host_port(x.spec.tunnel_host, x.spec.tunnel_port);
  if (!x.spec.public_address.empty())
    spec["publicAddress"] = x.spec.public_address;
  spec["verify"] = x.spec.pin.empty() ? ojson{{"ca", x.spec.ca_pem}} : ojson{{"pin", x.spec.pin}};
  if (x.spec.capacity_tunnels != 0)
    spec["capacity"] = ojson{{"tunnels", x.spec.capacity_tunnels}};
  spec["draining"] = x.spec.draining;
  auto& status = j["status"] = ojson::object();
  if (x.status.lease_renew_unix_ms != 0 || x.status.lease_duration_s != 0)
    status["lease"] = ojson{{"renewTime", rfc3339(x.status.lease_renew_unix_ms)},
                            {"durationSeconds", x.status.lease_duration_s}};
  status["ready"] = x.status.ready;
  if (x.status.draining) // only then: a status without it stays as it was
    status["draining"] = true;
  status["tunnels"] = x.status.tunnels;
  status["services"] = x.status.services;
  return j.dump();
}

static void revocations_json(ojson& spec, const std::vector<std::string>& serials,
                      int64_t before_unix_ms) {
  if (!serials.empty())
    spec["revokedSerials"] = serials;
  if (before_unix_ms != 0)
    spec["revokedBefore"] = rfc3339(before_unix_ms);
}

std::string to_json(const connection& x) {
  auto j = header_json(kind::connection, x.meta);
  auto& spec = j["spec"] = ojson::object();
  spec["protocol"] = x.spec.protocol;
  spec["local"] = host_port(x.spec.local_host, x.spec.local_port);
  if (x.spec.public_port != 0)
    spec["publicPort"] = x.spec.public_port;
  spec["publicKey"] = x.spec.public_key;
  if (!x.spec.org.empty())
    spec["org"] = x.spec.org;
  spec["allow"] = x.spec.allow;
  spec["tunnels"] = x.spec.tunnels;
  revocations_json(spec, x.spec.revoked_serials, x.spec.revoked_before_unix_ms);
  auto& status = j["status"] = ojson::object();
  auto& agents = status["agents"] = ojson::array();
  for (auto& a : x.status.agents)
    agents.push_back(agent_json(a));
  status["pops"] = x.status.pops;
  if (x.status.last_seen_unix_ms != 0)
    status["lastSeen"] = rfc3339(x.status.last_seen_unix_ms);
  return j.dump();
}

std::string to_json(const principal& x) {
  auto j = header_json(kind::principal, x.meta);
  auto& spec = j["spec"] = ojson::object();
  spec["publicKey"] = x.spec.public_key;
  if (!x.spec.org.empty())
    spec["org"] = x.spec.org;
  spec["groups"] = x.spec.groups;
  spec["revoked"] = x.spec.revoked;
  revocations_json(spec, x.spec.revoked_serials, x.spec.revoked_before_unix_ms);
  return j.dump();
}

std::string to_json(const org& x) {
  auto j = header_json(kind::org, x.meta);
  j["spec"] = ojson{{"displayName", x.spec.display_name}};
  return j.dump();
}

std::string to_json(const gateway& x) {
  auto j = header_json(kind::gateway, x.meta);
  auto& spec = j["spec"] = ojson::object();
  spec["service"] = x.spec.service;
  spec["type"] = x.spec.is_public ? "public" : "private";
  if (x.spec.is_public)
    spec["port"] = x.spec.port;
  spec["allowCIDRs"] = x.spec.allow_cidrs;
  spec["allowOrgs"] = x.spec.allow_orgs;
  spec["allowPrincipals"] = x.spec.allow_principals;
  spec["endOpenSessions"] = x.spec.end_open_sessions;
  auto& addresses = j["status"]["addresses"] = ojson::array();
  for (auto& a : x.status.addresses) {
    ojson e = ojson::object();
    e["pop"] = a.pop;
    if (!a.address.empty())
      e["address"] = a.address;
    if (a.port != 0)
      e["port"] = a.port;
    addresses.push_back(std::move(e));
  }
  return j.dump();
}

// -- time ----------------------------------------------------------------------------


bool parse_rfc3339(const std::string& s, int64_t& unix_ms) {
  // YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM)
  unsigned year = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0;
  if (s.size() > 64 || !digits(s, 0, 4, year) || s.size() < 20 || s[4] != '-'
      || !digits(s, 5, 2, month) || s[7] != '-' || !digits(s, 8, 2, day)
      || (s[10] != 'T' && s[10] != 't') || !digits(s, 11, 2, hour) || s[13] != ':'
      || !digits(s, 14, 2, minute) || s[16] != ':' || !digits(s, 17, 2, second))
    return false;
  if (month < 1 || month > 12 || day < 1 || day > days_in_month(year, month) || hour > 23
      || minute > 59 || second > 59)
    return false;
  size_t at = 19;
  int64_t ms = 0;
  if (s[at] == '.') {
    size_t start = ++at;
    while (at < s.size() && std::isdigit(static_cast<unsigned char>(s[at])))
      ++at;
    if (at == start || at - start > 9)
      return false;
    // Milliseconds: the first three digits; finer ones are dropped.
    for (size_t i = start; i < start + 3; ++i)
      ms = ms * 10 + (i < at ? s[i] - '0' : 0);
  }
  int64_t offset_ms = 0;
  if (at >= s.size() || !parse_offset(s, at, offset_ms))
    return false;
  auto t = days_from_civil(year, month, day) * 86400000
           + ((static_cast<int64_t>(hour) * 60 + minute) * 60 + second) * 1000 + ms - offset_ms;
  if (t < unix_ms_min || t > unix_ms_max)
    return false;
  unix_ms = t;
  return true;
}

} // namespace drtp::control
