#pragma once
// The registry's resources (docs/control-plane.md): Kubernetes-shaped JSON
// objects, and the typed views the POP and agent followers use. JSON is
// parsed and written only in control/resource.cpp (nlohmann/json stays in
// a few translation units); everyone else holds these structs or the JSON
// text.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "net/wire/civil_time.hpp"

namespace drtp::control {

constexpr const char* api_version = "drtp.dev/v1";
constexpr const char* api_base = "/apis/drtp.dev/v1";

enum class kind : uint8_t { server, connection, principal, org, gateway };

/// "DRTPServer", "DRTPConnection", "Principal", "Org", "Gateway".
const char* kind_name(kind k);
/// "drtpservers", "drtpconnections", "principals", "orgs", "gateways".
const char* kind_plural(kind k);
/// From a plural, a kind name, or drtpctl's short forms ("server",
/// "service", "connection", "principal", "org", "gateway", "gw";
/// case-insensitive).
std::optional<kind> parse_kind(const std::string& s);

/// The store key of an object: /drtp/v1/<plural>/<name>.
std::string store_key(kind k, const std::string& name);
std::string store_prefix(kind k);

/// Whether `name` is a DNS label (lowercase, digits, '-', 1..63).
bool valid_name(const std::string& name);

struct object_meta {
  std::string name;
  uint64_t resource_version = 0; // the store's mod_revision; 0 = none
  std::string creation_timestamp; // RFC 3339
  std::string uid;
};

struct server_spec {
  std::string region;
  std::string tunnel_host;
  uint16_t tunnel_port = 0;
  std::string public_address;
  std::string pin;     // "sha256:HEX" or empty
  std::string ca_pem;  // or a CA; one of the two is required
  uint32_t capacity_tunnels = 0; // 0 = unstated
  bool draining = false;
};
struct server_status {
  int64_t lease_renew_unix_ms = 0;
  uint32_t lease_duration_s = 0;
  bool ready = false;
  /// The POP's own word that it is draining (its last status before it
  /// closes): not ready from then on, whatever its lease says. A restart's
  /// first status clears it. spec.draining is the operator's.
  bool draining = false;
  uint32_t tunnels = 0;
  std::vector<std::string> services;
};
struct server {
  object_meta meta;
  server_spec spec;
  server_status status;
};

struct agent_report {
  std::string id;
  std::string address; // as the control plane saw it
  std::vector<std::string> pops;
  int64_t last_seen_unix_ms = 0;
};
struct connection_spec {
  std::string protocol = "tcp";
  std::string local_host;
  uint16_t local_port = 0;
  uint16_t public_port = 0; // 0: private (patch panel only)
  std::string public_key;   // "ed25519:HEX"
  std::string org;
  std::vector<std::string> allow;
  uint32_t tunnels = 2;
  /// Certificates (issue 15) no longer good: serials (net::canonical_serial
  /// form, at most revoked_serials_max), and every one whose notBefore is
  /// earlier than revoked_before_unix_ms (0: none).
  std::vector<std::string> revoked_serials;
  int64_t revoked_before_unix_ms = 0;
};
struct connection_status {
  std::vector<agent_report> agents;
  std::vector<std::string> pops;
  int64_t last_seen_unix_ms = 0;
};
struct connection {
  object_meta meta;
  connection_spec spec;
  connection_status status;
};

struct principal_spec {
  std::string public_key;
  std::string org;
  std::vector<std::string> groups;
  bool revoked = false;
  std::vector<std::string> revoked_serials; // as connection_spec's
  int64_t revoked_before_unix_ms = 0;
};
struct principal {
  object_meta meta;
  principal_spec spec;
};

struct org_spec {
  std::string display_name;
};
struct org {
  object_meta meta;
  org_spec spec;
};

/// Gateways (issue 15): who may reach a service, and on which port.
struct gateway_spec {
  std::string service; // a DRTPConnection's name
  bool is_public = false; // type: public | private
  uint16_t port = 0;      // public: 1..65535; private: 0
  std::vector<std::string> allow_cidrs; // "10.0.0.0/8", "::1/128"; empty: any source
  std::vector<std::string> allow_orgs;
  std::vector<std::string> allow_principals; // names or "group:NAME"
  bool end_open_sessions = false;
};
struct gateway_address {
  std::string pop;
  std::string address; // the POP's publicAddress
  uint16_t port = 0;
};
/// Computed by the registry on read (never stored).
struct gateway_status {
  std::vector<gateway_address> addresses;
};
struct gateway {
  object_meta meta;
  gateway_spec spec;
  gateway_status status;
};

/// Bounds of a Gateway's lists.
constexpr size_t gateway_cidrs_max = 256;
constexpr size_t gateway_orgs_max = 256;
constexpr size_t gateway_principals_max = 256;

/// Whether `s` is a CIDR the POP can enforce ("10.0.0.0/8", "2001:db8::/32",
/// or a bare address).
bool valid_cidr(const std::string& s);
/// Serials one DRTPConnection or Principal may revoke by name.
constexpr size_t revoked_serials_max = 1024;

/// Parsing: false with `error` set to one line naming the field
/// ("spec.local: expected host:port") for anything malformed, unknown
/// fields included. The input is a JSON object of that kind.
/// The deepest nesting of arrays and objects in JSON text, counted without
/// parsing, so that no parser (nor printer) ever walks a hostile depth.
int json_depth(const std::string& text);

bool parse_server(const std::string& json, server& out, std::string& error);
bool parse_connection(const std::string& json, connection& out, std::string& error);
bool parse_principal(const std::string& json, principal& out, std::string& error);
bool parse_org(const std::string& json, org& out, std::string& error);
bool parse_gateway(const std::string& json, gateway& out, std::string& error);

/// Writing: the whole object (apiVersion, kind, metadata, spec, status).
std::string to_json(const server& x);
std::string to_json(const connection& x);
std::string to_json(const principal& x);
std::string to_json(const org& x);
std::string to_json(const gateway& x);

/// RFC 3339 in UTC with milliseconds ("2026-12-02T18:03:08.123Z").
/// RFC 3339 text of a time (net/wire/civil_time).
using net::rfc3339;
bool parse_rfc3339(const std::string& s, int64_t& unix_ms);

} // namespace drtp::control
