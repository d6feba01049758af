#pragma once
// The control plane API's rules as plain functions, no actor and no I/O
// (docs/control-plane.md, "The API" and "Who may do what"): which request
// a method and path are, the error object every failure is, who may do
// what, and the order in which an agent is handed its POPs. The registry
// (control/registry) applies them; tests call them directly.

#include <cstdint>
#include <string>
#include <vector>

#include "control/resource.hpp"
#include "net/wire/http.hpp"

namespace drtp::control {

enum class api_op : uint8_t {
  healthz,
  list,
  watch,
  get,
  create,
  replace,
  remove,
  get_status,
  put_status,
  bootstrap,
  /// POST {name}/certificate on a DRTPConnection or Principal (issue 15).
  certificate,
};

/// One request as the registry acts on it.
struct api_route {
  api_op op = api_op::healthz;
  kind k = kind::server;
  std::string name; // empty for list, watch, create
  /// watch: changes after this; remove: the condition. 0 when absent.
  uint64_t resource_version = 0;
  bool has_resource_version = false;
  std::string region; // bootstrap: the agent's region, may be empty
};

/// A failure as the API answers it: {"kind": "Status", "status": "Failure",
/// "code", "reason", "message"}.
struct api_error {
  int code = 500;
  std::string reason;  // "NotFound", "Conflict", ...
  std::string message; // one line
};

api_error bad_request(std::string message);
api_error unauthorized(std::string message);
api_error forbidden(std::string message);
api_error not_found(std::string message);
api_error method_not_allowed(std::string message);
api_error conflict(std::string message);
api_error already_exists(std::string message);
api_error gone(std::string message);
api_error too_many_requests(std::string message);
api_error unavailable(std::string message);

/// The Status object of `e` (JSON text).
std::string status_json(const api_error& e);
/// A JSON string literal (net/wire/http).
using http::json_quote;

/// Longest region name an agent may ask for (a DNS label's 63, with room).
constexpr size_t region_bytes_max = 63;

/// Which request `method` on `path` (percent-decoded, no query) with
/// `query` is. false with `err` set (404 unknown path or kind, 405 wrong
/// method, 400 malformed name or query).
bool parse_route(const std::string& method, const std::string& path, const std::string& query,
                 api_route& out, api_error& err);

enum class caller_kind : uint8_t { admin, pop, service, principal };

/// Who signed in.
struct caller {
  caller_kind kind = caller_kind::admin;
  std::string name;                // empty for the admin
  std::vector<std::string> groups; // a principal's
  /// "admin", "pop/NAME", "service/NAME", "principal/NAME" (for audits and
  /// per-caller limits).
  std::string label() const;
};

/// Whether `c` may make request `r` at all. For writes whose name comes in
/// the body (create), may_write_name checks it once the body is read; a
/// principal reading a DRTPConnection is checked on the object too
/// (allowed_on).
bool may(const caller& c, const api_route& r);
/// Whether `c` may write the object `name` of kind `k` (a POP: its own
/// DRTPServer only).
bool may_write_name(const caller& c, kind k, const std::string& name);
/// Whether principal `c` is on the service's allow list (by name or by one
/// of its groups as "group:NAME").
bool allowed_on(const caller& c, const connection_spec& spec);

/// Whether a POP is ready at `now_unix_ms`: its lease is fresh and it is not
/// draining (spec.draining, the operator's, or status.draining, the POP's).
bool server_ready(const server& s, int64_t now_unix_ms);

/// The POPs an agent dials, from the ready ones: one in `region` first (if
/// any), then one per other distinct region (by region name), then the
/// rest. Within a region the least loaded (status.tunnels) first, then by
/// name, so agents spread over a region's POPs.
std::vector<server> bootstrap_order(std::vector<server> ready, const std::string& region);

} // namespace drtp::control
