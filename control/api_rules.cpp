#include "control/api_rules.hpp"

#include <algorithm>
#include <map>
#include <set>

#include "net/wire/http.hpp"

namespace drtp::control {

namespace {

api_error make_error(int code, const char* reason, std::string message) {
  api_error e;
  e.code = code;
  e.reason = reason;
  e.message = std::move(message);
  return e;
}

/// The path after the base, split at '/'; empty segments are kept so that
/// "a//b" is not taken for "a/b".
std::vector<std::string> split_path(const std::string& rest) {
  std::vector<std::string> out;
  size_t start = 0;
  while (true) {
    auto slash = rest.find('/', start);
    out.push_back(rest.substr(start, slash - start));
    if (slash == std::string::npos)
      return out;
    start = slash + 1;
  }
}

/// A decimal resourceVersion: digits only, at most 19 of them (fits int64).
bool parse_version(const std::string& s, uint64_t& out) {
  if (s.empty() || s.size() > 19)
    return false;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9')
      return false;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  out = v;
  return true;
}

bool parse_version_param(const std::string& query, api_route& out, api_error& err) {
  bool found = false;
  auto rv = http::query_param(query, "resourceVersion", &found);
  if (!found)
    return true;
  if (!parse_version(rv, out.resource_version)) {
    err = bad_request("resourceVersion: expected a decimal number");
    return false;
  }
  out.has_resource_version = true;
  return true;
}

bool is_watch(const std::string& query) {
  bool found = false;
  auto w = http::query_param(query, "watch", &found);
  return found && (w == "1" || w == "true");
}

bool route_collection(const std::string& method, const std::string& query, api_route& out,
                      api_error& err) {
  if (method == "GET") {
    out.op = is_watch(query) ? api_op::watch : api_op::list;
    return out.op == api_op::list || parse_version_param(query, out, err);
  }
  if (method == "POST") {
    out.op = api_op::create;
    return true;
  }
  err = method_not_allowed(method + " on a collection: use GET or POST");
  return false;
}

bool route_item(const std::string& method, const std::string& query, api_route& out,
                api_error& err) {
  if (method == "GET") {
    out.op = api_op::get;
    return true;
  }
  if (method == "PUT") {
    out.op = api_op::replace;
    return true;
  }
  if (method == "DELETE") {
    out.op = api_op::remove;
    return parse_version_param(query, out, err);
  }
  err = method_not_allowed(method + " on an object: use GET, PUT or DELETE");
  return false;
}

bool route_sub(const std::string& method, const std::string& sub, const std::string& query,
               api_route& out, api_error& err) {
  if (sub == "status") {
    if (method != "GET" && method != "PUT") {
      err = method_not_allowed(method + " on status: use GET or PUT");
      return false;
    }
    out.op = method == "GET" ? api_op::get_status : api_op::put_status;
    return true;
  }
  if (sub == "bootstrap" && out.k == kind::connection) {
    if (method != "GET") {
      err = method_not_allowed(method + " on bootstrap: use GET");
      return false;
    }
    out.op = api_op::bootstrap;
    out.region = http::query_param(query, "region");
    if (out.region.size() > region_bytes_max) {
      err = bad_request("region: longer than 63 characters");
      return false;
    }
    return true;
  }
  if (sub == "certificate" && (out.k == kind::connection || out.k == kind::principal)) {
    if (method != "POST") {
      err = method_not_allowed(method + " on certificate: use POST");
      return false;
    }
    out.op = api_op::certificate;
    return true;
  }
  err = not_found("no such subresource: " + sub);
  return false;
}

bool has(const std::vector<std::string>& xs, const std::string& x) {
  return std::find(xs.begin(), xs.end(), x) != xs.end();
}

bool is_read(api_op op) {
  return op == api_op::list || op == api_op::watch || op == api_op::get
         || op == api_op::get_status;
}

bool pop_may(const caller& c, const api_route& r) {
  if (is_read(r.op))
    return true;
  if (r.k != kind::server)
    return false;
  if (r.op == api_op::create)
    return true; // the body's name is checked by may_write_name
  return (r.op == api_op::replace || r.op == api_op::put_status) && r.name == c.name;
}

bool service_may(const caller& c, const api_route& r) {
  if (r.k == kind::server)
    return is_read(r.op);
  if (r.k != kind::connection || r.name != c.name)
    return false;
  return r.op == api_op::get || r.op == api_op::get_status || r.op == api_op::bootstrap
         || r.op == api_op::put_status || r.op == api_op::certificate;
}

bool principal_may(const caller& c, const api_route& r) {
  if (r.k == kind::server)
    return is_read(r.op);
  if (r.op == api_op::certificate)
    return r.k == kind::principal && r.name == c.name;
  // Which services: the object's allow list says (allowed_on).
  return r.k == kind::connection && r.op == api_op::get;
}

} // namespace

api_error bad_request(std::string m) {
  return make_error(400, "BadRequest", std::move(m));
}
api_error unauthorized(std::string m) {
  return make_error(401, "Unauthorized", std::move(m));
}
api_error forbidden(std::string m) {
  return make_error(403, "Forbidden", std::move(m));
}
api_error not_found(std::string m) {
  return make_error(404, "NotFound", std::move(m));
}
api_error method_not_allowed(std::string m) {
  return make_error(405, "MethodNotAllowed", std::move(m));
}
api_error conflict(std::string m) {
  return make_error(409, "Conflict", std::move(m));
}
api_error already_exists(std::string m) {
  return make_error(409, "AlreadyExists", std::move(m));
}
api_error gone(std::string m) {
  return make_error(410, "Expired", std::move(m));
}
api_error too_many_requests(std::string m) {
  return make_error(429, "TooManyRequests", std::move(m));
}
api_error unavailable(std::string m) {
  return make_error(503, "ServiceUnavailable", std::move(m));
}

std::string status_json(const api_error& e) {
  return "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"status\":\"Failure\",\"code\":"
         + std::to_string(e.code) + ",\"reason\":" + json_quote(e.reason)
         + ",\"message\":" + json_quote(e.message) + "}";
}

bool parse_route(const std::string& method, const std::string& path, const std::string& query,
                 api_route& out, api_error& err) {
  out = api_route{};
  if (path == "/healthz") {
    out.op = api_op::healthz;
    if (method == "GET" || method == "HEAD")
      return true;
    err = method_not_allowed(method + " on /healthz: use GET");
    return false;
  }
  std::string base = std::string(api_base) + "/";
  if (path.compare(0, base.size(), base) != 0) {
    err = not_found("no such path (the API is under " + base + ")");
    return false;
  }
  auto parts = split_path(path.substr(base.size()));
  if (parts.size() > 3) {
    err = not_found("no such path");
    return false;
  }
  auto k = parse_kind(parts[0]);
  if (!k || parts[0] != kind_plural(*k)) {
    err = not_found("no such kind: " + parts[0]);
    return false;
  }
  out.k = *k;
  if (parts.size() == 1)
    return route_collection(method, query, out, err);
  out.name = parts[1];
  if (!valid_name(out.name)) {
    err = bad_request("name: not a DNS label ([a-z0-9]([-a-z0-9]*[a-z0-9])?, at most 63)");
    return false;
  }
  if (parts.size() == 2)
    return route_item(method, query, out, err);
  return route_sub(method, parts[2], query, out, err);
}

std::string caller::label() const {
  switch (kind) {
    case caller_kind::admin: return "admin";
    case caller_kind::pop: return "pop/" + name;
    case caller_kind::service: return "service/" + name;
    case caller_kind::principal: return "principal/" + name;
  }
  return "?";
}

bool may(const caller& c, const api_route& r) {
  if (r.op == api_op::healthz)
    return true;
  switch (c.kind) {
    case caller_kind::admin: return true;
    case caller_kind::pop: return pop_may(c, r);
    case caller_kind::service: return service_may(c, r);
    case caller_kind::principal: return principal_may(c, r);
  }
  return false;
}

bool may_write_name(const caller& c, kind k, const std::string& name) {
  if (c.kind == caller_kind::admin)
    return true;
  if (c.kind == caller_kind::pop)
    return k == kind::server && name == c.name;
  if (c.kind == caller_kind::service)
    return k == kind::connection && name == c.name;
  return false;
}

bool allowed_on(const caller& c, const connection_spec& spec) {
  if (c.kind != caller_kind::principal)
    return false;
  if (has(spec.allow, c.name))
    return true;
  for (const auto& g : c.groups)
    if (has(spec.allow, "group:" + g))
      return true;
  return false;
}

bool server_ready(const server& s, int64_t now_unix_ms) {
  if (s.spec.draining || s.status.draining || s.status.lease_renew_unix_ms <= 0)
    return false;
  auto expires = s.status.lease_renew_unix_ms + int64_t{s.status.lease_duration_s} * 1000;
  return now_unix_ms < expires;
}

std::vector<server> bootstrap_order(std::vector<server> ready, const std::string& region) {
  std::sort(ready.begin(), ready.end(), [](const server& a, const server& b) {
    if (a.status.tunnels != b.status.tunnels)
      return a.status.tunnels < b.status.tunnels;
    return a.meta.name < b.meta.name;
  });
  std::vector<server> out;
  std::vector<bool> taken(ready.size(), false);
  auto take_first_of = [&](const std::string& r) {
    for (size_t i = 0; i < ready.size(); ++i)
      if (!taken[i] && ready[i].spec.region == r) {
        taken[i] = true;
        out.push_back(ready[i]);
        return;
      }
  };
  if (!region.empty())
    take_first_of(region);
  std::set<std::string> regions;
  for (const auto& s : ready)
    if (s.spec.region != region || region.empty())
      regions.insert(s.spec.region);
  for (const auto& r : regions)
    take_first_of(r);
  for (size_t i = 0; i < ready.size(); ++i)
    if (!taken[i])
      out.push_back(ready[i]);
  return out;
}

} // namespace drtp::control
