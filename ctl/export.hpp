#pragma once
// drtpctl export: the registry in the Kubernetes shape (issue 15).
//
// `export crds`: CustomResourceDefinitions for the registry's kinds, made
// from ONE table of fields per kind (ctl/export.cpp; control/resource.cpp
// parses field by field in code, it has no table to generate from). The
// table is checked against the registry's own parser and writer in
// tests/test_export.cpp, so the two cannot drift apart unseen.
//
// `export gateway NAME`: the Gateway API objects for one DRTP Gateway, a
// pure function of the registry's JSON (the Gateway, its DRTPConnection,
// the DRTPServer list), so that re-running it reflects the POPs of now.

#include <string>
#include <vector>

namespace drtp::ctl {

/// Every CRD, one YAML document each, "---" between them.
std::string export_crds();

/// The kinds export_crds covers ("DRTPServer", "DRTPConnection",
/// "Principal", "Org", "Gateway").
std::vector<std::string> crd_kinds();

/// The leaf field paths of `kind`'s schema as the table lists them, array
/// items as "[]": "spec.verify.pin", "status.agents[].id", "spec.allow[]".
std::vector<std::string> crd_field_paths(const std::string& kind);

/// An object of `kind` (JSON, with apiVersion, kind, metadata.name "x")
/// holding every field of the table that has an example value: what the
/// registry's parser must accept.
std::string crd_example(const std::string& kind);

struct gateway_export_options {
  std::string gateway_class = "drtp"; // spec.gatewayClassName
  std::string ns;                     // metadata.namespace; empty: kubectl's current one
};

/// The Gateway API objects for a DRTP Gateway: Gateway, TCPRoute (UDPRoute
/// for a udp service), the Service they route to, and one EndpointSlice per
/// address family of the POPs in the gateway's status.addresses. Input is
/// the API's JSON: the Gateway object, its DRTPConnection, the DRTPServer
/// list (for each POP's readiness and region). Throws ctl::failure (one
/// line) for a private gateway or input that is not what the API returns.
std::string export_gateway(const std::string& gateway_json, const std::string& connection_json,
                           const std::string& servers_json, const gateway_export_options& o);

/// The spec.service of a Gateway object (the API's JSON); throws
/// ctl::failure when it has none.
std::string gateway_service(const std::string& gateway_json);

/// "IPv4", "IPv6" or "FQDN": the EndpointSlice addressType of an address
/// (brackets around IPv6 allowed); "" for what is none of them.
std::string address_type(const std::string& address);

} // namespace drtp::ctl
