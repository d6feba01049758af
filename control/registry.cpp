#include "control/registry.hpp"

#include <algorithm>
#include <cstdlib>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <type_traits>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "actors/http_server.hpp"
#include "caf/all.hpp"
#include "control/api_rules.hpp"
#include "control/auth.hpp"
#include "control/resource.hpp"
#include "control/store.hpp"
#include "control/watch_history.hpp"
#include "net/seam/assert.hpp"
#include "net/wire/hex.hpp"

namespace drtp::control {

namespace {

using bookmark_atom = caf::atom_constant<caf::atom("rbookmark")>;
using rewatch_atom = caf::atom_constant<caf::atom("rrewatch")>;
using ms = std::chrono::milliseconds;

constexpr kind all_kinds[] = {kind::server, kind::connection, kind::principal, kind::org,
                              kind::gateway};
constexpr size_t kinds_count = sizeof(all_kinds) / sizeof(all_kinds[0]);
/// A lost store watch is tried again after this.
constexpr uint32_t rewatch_delay_ms = 1000;
/// A Gateway lists at most this many addresses (one per POP).
constexpr size_t gateway_addresses_max = 64;

size_t index_of(kind k) {
  return static_cast<size_t>(k);
}

// -- the kinds, generically ----------------------------------------------------

bool parse_obj(const std::string& j, server& o, std::string& e) {
  return parse_server(j, o, e);
}
bool parse_obj(const std::string& j, connection& o, std::string& e) {
  return parse_connection(j, o, e);
}
bool parse_obj(const std::string& j, principal& o, std::string& e) {
  return parse_principal(j, o, e);
}
bool parse_obj(const std::string& j, org& o, std::string& e) {
  return parse_org(j, o, e);
}
bool parse_obj(const std::string& j, gateway& o, std::string& e) {
  return parse_gateway(j, o, e);
}

template <class T>
constexpr bool has_status = std::is_same_v<T, server> || std::is_same_v<T, connection>;

/// Calls f(T{}) with the struct of kind k.
template <class F>
void with_kind(kind k, F&& f) {
  switch (k) {
    case kind::server: f(server{}); return;
    case kind::connection: f(connection{}); return;
    case kind::principal: f(principal{}); return;
    case kind::org: f(org{}); return;
    case kind::gateway: f(gateway{}); return;
  }
}

/// What a Gateway's addresses are computed from: which POPs hold a tunnel
/// for each service (its DRTPConnection's status.pops) and the public
/// address of each ready POP.
struct address_book {
  std::unordered_map<std::string, std::vector<std::string>> pops_of;
  std::unordered_map<std::string, std::string> ready_address;
};
using book_ptr = std::shared_ptr<const address_book>;

/// Where the gateway is reachable: the ready POPs that hold a tunnel for
/// its service, with their publicAddress (their name when they have none)
/// and the gateway's port (none for a private one), in POP name order.
void compute_addresses(gateway& g, const address_book& b) {
  g.status.addresses.clear();
  auto i = b.pops_of.find(g.spec.service);
  if (i == b.pops_of.end())
    return;
  auto pops = i->second;
  std::sort(pops.begin(), pops.end());
  pops.erase(std::unique(pops.begin(), pops.end()), pops.end());
  for (const auto& pop : pops) {
    auto a = b.ready_address.find(pop);
    if (a == b.ready_address.end())
      continue;
    if (g.status.addresses.size() >= gateway_addresses_max)
      break;
    g.status.addresses.push_back({pop, a->second.empty() ? pop : a->second, g.spec.port});
  }
}

/// The object as the API shows it: its resourceVersion is the record's
/// mod_revision, a POP's readiness is computed now, a Gateway's addresses
/// from `book` (none without one: watch lines).
template <class T>
std::optional<std::string> render_as(const store_record& r, int64_t now_unix_ms,
                                     const address_book* book) {
  T o;
  std::string err;
  if (!parse_obj(r.value, o, err))
    return std::nullopt;
  o.meta.resource_version = r.mod_revision;
  if constexpr (std::is_same_v<T, server>)
    o.status.ready = server_ready(o, now_unix_ms);
  if constexpr (std::is_same_v<T, gateway>) {
    o.status = gateway_status{};
    if (book)
      compute_addresses(o, *book);
  }
  return to_json(o);
}

std::optional<std::string> render(kind k, const store_record& r, int64_t now_unix_ms,
                                  const address_book* book = nullptr) {
  std::optional<std::string> out;
  with_kind(k, [&](auto tag) { out = render_as<decltype(tag)>(r, now_unix_ms, book); });
  return out;
}

/// What the store keeps: the object without its resourceVersion (that is
/// the record's mod_revision) and without what is computed on read.
template <class T>
std::string stored_json(T o) {
  o.meta.resource_version = 0;
  if constexpr (std::is_same_v<T, server>)
    o.status.ready = false;
  if constexpr (std::is_same_v<T, gateway>)
    o.status = gateway_status{};
  return to_json(o);
}

bool valid_agent_id(const std::string& id, size_t bytes_max) {
  if (id.empty() || id.size() > bytes_max)
    return false;
  return std::all_of(id.begin(), id.end(), [](char c) { return c > 0x20 && c < 0x7f; });
}

http::response json_response(int status, std::string body) {
  http::response r;
  r.status = status;
  r.headers.emplace_back("Content-Type", "application/json");
  r.body = std::move(body);
  return r;
}

std::string watch_line(const char* type, const std::string& object) {
  return std::string("{\"type\":\"") + type + "\",\"object\":" + object + "}\n";
}

std::string deleted_object(kind k, const store_record& r) {
  auto name = r.key.substr(store_prefix(k).size());
  return std::string("{\"apiVersion\":\"") + api_version + "\",\"kind\":\"" + kind_name(k)
         + "\",\"metadata\":{\"name\":" + json_quote(name) + ",\"resourceVersion\":\""
         + std::to_string(r.mod_revision) + "\"}}";
}

std::string bookmark_line(kind k, uint64_t revision) {
  return watch_line("BOOKMARK", std::string("{\"apiVersion\":\"") + api_version
                                    + "\",\"kind\":\"" + kind_name(k)
                                    + "\",\"metadata\":{\"resourceVersion\":\""
                                    + std::to_string(revision) + "\"}}");
}

std::string error_line(const api_error& e) {
  return watch_line("ERROR", status_json(e));
}

/// The bootstrap answer: the service's spec without its verifier, and how
/// to reach and verify each POP.
std::string bootstrap_json(const connection& svc, const std::vector<server>& pops) {
  using nlohmann::json;
  auto s = json::parse(to_json(svc), nullptr, false);
  json spec = s.is_object() && s.contains("spec") ? s["spec"] : json::object();
  spec.erase("publicKey");
  json out;
  out["service"] = spec;
  out["pops"] = json::array();
  for (const auto& p : pops) {
    auto j = json::parse(to_json(p), nullptr, false);
    json e;
    e["name"] = p.meta.name;
    if (j.is_object() && j.contains("spec"))
      for (const char* key : {"region", "tunnelAddress", "publicAddress", "verify"})
        if (j["spec"].contains(key))
          e[key] = j["spec"][key];
    out["pops"].push_back(std::move(e));
  }
  return out.dump();
}

// -- the actor ---------------------------------------------------------------------

struct call_state {
  http_call call;
  caf::response_promise rp;
  api_route route;
  caller who;
  bool signed_in = false;
  uint32_t attempts = 0; // status merges that lost a race
};
using call_ptr = std::shared_ptr<call_state>;

struct link_identity {
  std::string authorization; // the header value it was verified with
  caller who;
  int64_t not_after_s = 0; // a certificate sign-in: good until then; 0: a key's
};

struct watcher {
  caf::actor conn;
  kind k = kind::server;
  std::string who;
  uint64_t sent = 0; // the client has every change up to here
};

struct kind_watch {
  explicit kind_watch(size_t lines_max) : history(lines_max) {}
  watch_history history;
  uint64_t tag = 0; // of the store watch in force; 0: none
};

class registry_actor : public caf::event_based_actor {
public:
  registry_actor(caf::actor_config& cfg, registry_params p)
    : caf::event_based_actor(cfg), p_(std::move(p)), refusals_(p_.limits.refusals) {
    DRTP_ASSERT(p_.store != nullptr, "a registry has a store");
    DRTP_ASSERT(p_.limits.links_cached_max > 0 && p_.limits.agents_per_service_max > 0,
                "registry limits are positive");
    for (size_t i = 0; i < kinds_count; ++i)
      kinds_.emplace_back(p_.limits.history_changes_max);
  }

  caf::behavior make_behavior() override {
    set_down_handler([this](caf::down_msg& dm) { on_conn_down(dm.source); });
    for (auto k : all_kinds)
      start_store_watch(k);
    schedule_bookmark();
    return {
      [this](http_call& c) {
        auto st = std::make_shared<call_state>();
        st->call = std::move(c);
        st->rp = make_response_promise();
        on_call(st);
      },
      [this](store_event& ev) { on_store_event(ev); },
      [this](store_compacted& ev) { on_store_watch_ended(ev.tag, "compacted"); },
      [this](store_watch_lost& ev) { on_store_watch_ended(ev.tag, ev.what); },
      [this](http_stream_gone& ev) { forget_watcher(ev.conn_serial); },
      [this](bookmark_atom) {
        bookmark_all();
        schedule_bookmark();
      },
      [this](rewatch_atom, size_t i) { start_store_watch(all_kinds[i]); },
    };
  }

private:
  int64_t now_unix_ms() {
    return p_.e.clock->unix_ms(clock());
  }

  caf::actor_clock::time_point now() {
    return p_.e.clock->now(clock());
  }

  caf::duration store_timeout() {
    return caf::duration{p_.e.clock->real_delay(ms(p_.limits.store_timeout_ms))};
  }

  /// A store request for call `c`: `f` gets the answer; no answer is 503.
  template <class Req, class F>
  void ask(const call_ptr& c, Req req, F f) {
    request(p_.store, store_timeout(), std::move(req))
      .then(std::move(f), [this, c](caf::error&) {
        fail(c, unavailable("the registry's store does not answer"));
      });
  }

  // -- answers --------------------------------------------------------------------

  void answer(const call_ptr& c, int status, std::string body) {
    c->rp.deliver(json_response(status, std::move(body)));
  }

  void fail(const call_ptr& c, const api_error& e) {
    answer(c, e.code, status_json(e));
  }

  /// A refused request: the audit line, a token off its source's bucket,
  /// the error.
  void refuse(const call_ptr& c, const api_error& e, const std::string& reason) {
    const auto& req = c->call.req;
    std::string who = c->signed_in ? c->who.label() : "anonymous";
    p_.e.trace->audit(p_.e.host,
                      "control refused " + net::escape_for_log(c->call.peer_host) + " "
                        + net::escape_for_log(who) + " " + net::escape_for_log(req.method)
                        + " " + net::escape_for_log(req.path) + ": " + reason,
                      c->signed_in);
    refusals_.take(c->call.peer_host, now());
    fail(c, e);
  }

  // -- sign-in --------------------------------------------------------------------

  void on_call(const call_ptr& c) {
    const auto& req = c->call.req;
    if (req.path == "/healthz" && (req.method == "GET" || req.method == "HEAD")) {
      http::response r;
      r.headers.emplace_back("Content-Type", "text/plain");
      r.body = "ok\n";
      c->rp.deliver(std::move(r));
      return;
    }
    const auto* authz = req.header("Authorization");
    auto cached = links_.find(c->call.conn_serial);
    if (req.path == std::string(api_base) + "/ca") {
      do_ca(c);
      return;
    }
    if (authz != nullptr && cached != links_.end()
        && net::equal_ct(cached->second.authorization, *authz)
        && (cached->second.not_after_s == 0
            || now_unix_ms() / 1000 < cached->second.not_after_s)) {
      signed_in(c, cached->second.who, *authz);
      return;
    }
    if (!refusals_.has_token(c->call.peer_host, now())) {
      // No token taken: the bucket is empty already.
      p_.e.trace->audit(p_.e.host,
                        "control refused " + net::escape_for_log(c->call.peer_host)
                          + " anonymous " + net::escape_for_log(req.method) + " "
                          + net::escape_for_log(req.path) + ": too many refusals",
                        false);
      fail(c, too_many_requests("too many refused requests from this address; wait"));
      return;
    }
    if (authz == nullptr) {
      refuse(c, unauthorized("sign in: Authorization: Bearer TOKEN or DRTP-Ed25519"),
             "no credentials");
      return;
    }
    auth_claim claim;
    if (!parse_auth_header(*authz, claim)) {
      refuse(c, unauthorized("Authorization: not Bearer TOKEN or DRTP-Ed25519 KIND/NAME SIG"),
             "malformed credentials");
      return;
    }
    if (claim.bearer)
      sign_in_bearer(c, claim, *authz);
    else if (claim.cert)
      sign_in_cert(c, std::move(claim), *authz);
    else
      sign_in_signed(c, std::move(claim), *authz);
  }

  void sign_in_bearer(const call_ptr& c, const auth_claim& claim, const std::string& authz) {
    if (p_.admin_token_digest.empty()
        || !net::equal_ct(admin_token_digest(*p_.e.crypto, claim.token), p_.admin_token_digest)) {
      refuse(c, unauthorized("wrong token"), "wrong admin token");
      return;
    }
    signed_in(c, caller{caller_kind::admin, "", {}}, authz);
  }

  void sign_in_signed(const call_ptr& c, auth_claim claim, const std::string& authz) {
    auto claimed = claim.kind + "/" + claim.name;
    if (c->call.channel_binding.empty()) {
      refuse(c, unauthorized("signed sign-in needs a TLS link"),
             "signature on a link without TLS (" + net::escape_for_log(claimed) + ")");
      return;
    }
    if (!valid_name(claim.name)) {
      refuse(c, unauthorized("sign-in name: not a DNS label"), "malformed name");
      return;
    }
    if (claim.kind == kind_pop) {
      verify_claim(c, claim, p_.pop_public_key, caller{caller_kind::pop, claim.name, {}}, authz);
      return;
    }
    bool service = claim.kind == kind_service;
    if (!service && claim.kind != kind_principal) {
      refuse(c, unauthorized("sign-in kind: pop, service or principal"), "unknown kind");
      return;
    }
    auto k = service ? kind::connection : kind::principal;
    ask(c, store_get{store_key(k, claim.name)}, [=](store_get_result& r) {
      std::string pk;
      caller who{service ? caller_kind::service : caller_kind::principal, claim.name, {}};
      if (r.found && !verifier_of(r.record.value, service, pk, who)) {
        refuse(c, unauthorized("wrong credentials"),
               net::escape_for_log(claimed) + " has no usable key or is revoked");
        return;
      }
      if (!r.found) {
        refuse(c, unauthorized("wrong credentials"),
               "no such " + std::string(service ? "service " : "principal ")
                 + net::escape_for_log(claim.name));
        return;
      }
      verify_claim(c, claim, pk, std::move(who), authz);
    });
  }

  /// The raw public key a stored DRTPConnection or Principal verifies with;
  /// a principal's groups go into `who`. false: none, or revoked.
  bool verifier_of(const std::string& value, bool service, std::string& pk, caller& who) {
    std::string err;
    if (service) {
      connection x;
      return parse_connection(value, x, err) && parse_public_key(x.spec.public_key, pk);
    }
    principal x;
    if (!parse_principal(value, x, err) || x.spec.revoked)
      return false;
    who.groups = x.spec.groups;
    return parse_public_key(x.spec.public_key, pk);
  }

  void verify_claim(const call_ptr& c, const auth_claim& claim, const std::string& pk,
                    caller who, const std::string& authz) {
    if (pk.empty() || !check_signature(*p_.e.crypto, claim, pk, c->call.channel_binding)) {
      refuse(c, unauthorized("wrong credentials"),
             "bad signature for " + net::escape_for_log(claim.kind + "/" + claim.name));
      return;
    }
    remember_link(c->call.conn_serial, who, authz);
    signed_in(c, std::move(who), authz);
  }

  // -- certificates (issue 15) -----------------------------------------------------

  /// GET /apis/drtp.dev/v1/ca: public, no sign-in.
  void do_ca(const call_ptr& c) {
    if (c->call.req.method != "GET") {
      fail(c, method_not_allowed(c->call.req.method + " on ca: use GET"));
      return;
    }
    if (p_.ca_cert_pem.empty()) {
      fail(c, unavailable("this control plane has no CA"));
      return;
    }
    answer(c, 200, "{\"certificate\":" + json_quote(p_.ca_cert_pem) + "}");
  }

  /// DRTP-Cert: the certificate checks against our CA at our time, its key
  /// signed this link, its subject names a service or principal that
  /// exists and has not revoked it.
  void sign_in_cert(const call_ptr& c, auth_claim claim, const std::string& authz) {
    if (c->call.channel_binding.empty()) {
      refuse(c, unauthorized("signed sign-in needs a TLS link"),
             "certificate on a link without TLS");
      return;
    }
    if (p_.ca_cert_pem.empty()) {
      refuse(c, unauthorized("this control plane has no CA"), "certificate without a CA");
      return;
    }
    auto now_s = now_unix_ms() / 1000;
    auto info = p_.e.crypto->verify_certificate(claim.cert_pem, p_.ca_cert_pem, now_s);
    auto subject = net::escape_for_log(info.subject);
    if (!info.error.empty()) {
      refuse(c, unauthorized("certificate: " + info.error),
             "certificate " + subject + " serial " + info.serial + ": " + info.error);
      return;
    }
    std::string k;
    std::string name;
    if (!split_subject(info.subject, k, name)) {
      refuse(c, unauthorized("certificate: not a service's or principal's"),
             "certificate subject " + subject);
      return;
    }
    if (!p_.e.crypto->verify(info.public_key, auth_message(k, name, c->call.channel_binding),
                             claim.signature)) {
      refuse(c, unauthorized("wrong credentials"), "bad signature for certificate " + subject);
      return;
    }
    bool service = k == kind_service;
    auto sk = service ? kind::connection : kind::principal;
    ask(c, store_get{store_key(sk, name)}, [=](store_get_result& r) {
      caller who{service ? caller_kind::service : caller_kind::principal, name, {}};
      if (!r.found || !cert_good_for(r.record.value, service, info, who)) {
        refuse(c, unauthorized("certificate: revoked"),
               "certificate " + subject + " serial " + info.serial
                 + (r.found ? " is revoked" : ": no such object"));
        return;
      }
      remember_link(c->call.conn_serial, who, authz);
      links_[c->call.conn_serial].not_after_s = info.not_after_s;
      signed_in(c, std::move(who), authz);
    });
  }

  /// Whether the stored object still accepts this certificate (its
  /// revocations; a revoked principal accepts none); a principal's groups
  /// go into `who`.
  bool cert_good_for(const std::string& value, bool service,
                     const net::crypto::certificate_info& info, caller& who) {
    std::string err;
    if (service) {
      connection x;
      return parse_connection(value, x, err)
             && !cert_revoked(info, x.spec.revoked_serials, x.spec.revoked_before_unix_ms);
    }
    principal x;
    if (!parse_principal(value, x, err) || x.spec.revoked
        || cert_revoked(info, x.spec.revoked_serials, x.spec.revoked_before_unix_ms))
      return false;
    who.groups = x.spec.groups;
    return true;
  }

  /// A serial in canonical form (net::canonical_serial): 16 random bytes,
  /// the first in [0x10, 0x7f] so that it is positive and has no leading
  /// zero digit.
  std::string new_serial() {
    auto b = p_.e.rng->bytes(16);
    b[0] = static_cast<char>((static_cast<unsigned char>(b[0]) & 0x6f) | 0x10);
    return net::to_hex(b);
  }

  /// POST .../{name}/certificate {"csr": PEM}: the signed-in service or
  /// principal (may() checked the name) gets a certificate for the CSR's
  /// key; the subject is ours, not the CSR's.
  void do_certificate(const call_ptr& c) {
    using nlohmann::json;
    if (p_.ca_seed.empty() || p_.ca_cert_pem.empty()) {
      fail(c, unavailable("this control plane has no CA"));
      return;
    }
    const auto& body = c->call.req.body;
    if (body.size() > p_.limits.csr_body_bytes_max) {
      fail(c, bad_request("body: longer than " + std::to_string(p_.limits.csr_body_bytes_max)
                          + " bytes"));
      return;
    }
    auto j = json_depth(body) <= 4 ? json::parse(body, nullptr, false) : json{};
    if (!j.is_object() || !j.contains("csr") || !j["csr"].is_string()) {
      fail(c, bad_request("body: expected {\"csr\": PEM}"));
      return;
    }
    auto csr = j["csr"].get<std::string>();
    auto req = p_.e.crypto->read_csr(csr);
    if (!req.error.empty()) {
      fail(c, bad_request("csr: " + req.error));
      return;
    }
    bool service = c->route.k == kind::connection;
    auto name = c->route.name;
    ask(c, store_get{store_key(c->route.k, name)}, [=](store_get_result& r) {
      std::string err;
      principal x;
      if (!r.found
          || (!service && (!parse_principal(r.record.value, x, err) || x.spec.revoked))) {
        refuse(c, not_found(std::string(kind_name(c->route.k)) + " " + name + " not found"),
               "certificate for a missing or revoked " + net::escape_for_log(name));
        return;
      }
      auto subject = std::string(service ? kind_service : kind_principal) + "/" + name;
      auto now_s = now_unix_ms() / 1000;
      int64_t not_before = now_s - p_.limits.cert_backdate_s;
      int64_t not_after = now_s + p_.cert_lifetime_s;
      auto serial = new_serial();
      auto cert = p_.e.crypto->issue_certificate(p_.ca_seed, p_.ca_cert_pem, csr, subject,
                                                 serial, not_before, not_after);
      if (cert.empty()) {
        fail(c, unavailable("the CA could not sign this request"));
        return;
      }
      p_.e.trace->audit(p_.e.host,
                        "control issued certificate " + serial + " to " + subject + " for "
                          + net::escape_for_log(c->who.label()),
                        true);
      answer(c, 200,
             "{\"certificate\":" + json_quote(cert) + ",\"serial\":\"" + serial
               + "\",\"notBefore\":\"" + rfc3339(not_before * 1000)
               + "\",\"notAfter\":\"" + rfc3339(not_after * 1000)
               + "\",\"ca\":" + json_quote(p_.ca_cert_pem) + "}");
    });
  }

  void remember_link(uint64_t serial, const caller& who, const std::string& authz) {
    if (links_.count(serial) == 0) {
      // link_order_ may name links already forgotten; it bounds links_.
      while (link_order_.size() >= p_.limits.links_cached_max) {
        links_.erase(link_order_.front());
        link_order_.pop_front();
      }
      link_order_.push_back(serial);
    }
    links_[serial] = link_identity{authz, who};
    DRTP_ASSERT(links_.size() <= p_.limits.links_cached_max, "the link cache is bounded");
  }

  void signed_in(const call_ptr& c, caller who, const std::string& authz) {
    c->who = std::move(who);
    c->signed_in = true;
    if (c->who.kind == caller_kind::admin)
      remember_link(c->call.conn_serial, c->who, authz);
    api_error err;
    const auto& req = c->call.req;
    if (!parse_route(req.method, req.path, req.query, c->route, err)) {
      fail(c, err);
      return;
    }
    if (!may(c->who, c->route)) {
      refuse(c, forbidden(c->who.label() + " may not do this"), "forbidden");
      return;
    }
    dispatch(c);
  }

  // -- requests -------------------------------------------------------------------

  void dispatch(const call_ptr& c) {
    auto k = c->route.k;
    switch (c->route.op) {
      case api_op::healthz: answer(c, 200, "{}"); return;
      case api_op::list: do_list(c); return;
      case api_op::watch: do_watch(c); return;
      case api_op::get:
      case api_op::get_status: do_get(c); return;
      case api_op::remove: do_remove(c); return;
      case api_op::bootstrap: do_bootstrap(c); return;
      case api_op::certificate: do_certificate(c); return;
      case api_op::create:
        with_kind(k, [&](auto tag) { do_create<decltype(tag)>(c); });
        return;
      case api_op::replace:
        with_kind(k, [&](auto tag) { do_replace<decltype(tag)>(c); });
        return;
      case api_op::put_status:
        with_kind(k, [&](auto tag) { do_put_status<decltype(tag)>(c); });
        return;
    }
  }

  /// For a Gateway answer: what its addresses are computed from (the
  /// DRTPConnections' status.pops, the ready DRTPServers), read now; f
  /// gets null for the other kinds.
  template <class F>
  void with_book(const call_ptr& c, kind k, F f) {
    if (k != kind::gateway) {
      f(book_ptr{});
      return;
    }
    ask(c, store_list{store_prefix(kind::server), 0}, [=](store_list_result& servers) {
      auto book = std::make_shared<address_book>();
      auto now = now_unix_ms();
      for (const auto& rec : servers.records) {
        server s;
        std::string e;
        if (parse_server(rec.value, s, e) && server_ready(s, now))
          book->ready_address[s.meta.name] = s.spec.public_address;
      }
      ask(c, store_list{store_prefix(kind::connection), 0}, [=](store_list_result& conns) {
        for (const auto& rec : conns.records) {
          connection x;
          std::string e;
          if (parse_connection(rec.value, x, e) && !x.status.pops.empty())
            book->pops_of[x.meta.name] = std::move(x.status.pops);
        }
        f(book_ptr{book});
      });
    });
  }

  void do_list(const call_ptr& c) {
    auto k = c->route.k;
    with_book(c, k, [=](book_ptr book) { list_with(c, book); });
  }

  void list_with(const call_ptr& c, book_ptr book) {
    auto k = c->route.k;
    ask(c, store_list{store_prefix(k), 0}, [=](store_list_result& r) {
      auto now = now_unix_ms();
      std::string items;
      for (const auto& rec : r.records) {
        auto obj = render(k, rec, now, book.get());
        if (!obj)
          continue; // not ours to show: a value this version cannot read
        if (!items.empty())
          items += ',';
        items += *obj;
      }
      answer(c, 200,
             std::string("{\"apiVersion\":\"") + api_version + "\",\"kind\":\"" + kind_name(k)
               + "List\",\"metadata\":{\"resourceVersion\":\"" + std::to_string(r.revision)
               + "\"},\"items\":[" + items + "]}");
    });
  }

  void do_get(const call_ptr& c) {
    with_book(c, c->route.k, [=](book_ptr book) { get_with(c, book); });
  }

  void get_with(const call_ptr& c, book_ptr book) {
    auto k = c->route.k;
    ask(c, store_get{store_key(k, c->route.name)}, [=](store_get_result& r) {
      bool principal = c->who.kind == caller_kind::principal;
      if (!r.found) {
        if (principal)
          refuse(c, forbidden("not allowed on this service"), "not on the allow list");
        else
          fail(c, not_found(std::string(kind_name(k)) + " " + c->route.name + " not found"));
        return;
      }
      if (principal && !principal_allowed(c, r.record.value)) {
        refuse(c, forbidden("not allowed on this service"), "not on the allow list");
        return;
      }
      auto obj = render(k, r.record, now_unix_ms(), book.get());
      if (!obj) {
        fail(c, unavailable("the stored object cannot be read"));
        return;
      }
      answer(c, 200, *obj);
    });
  }

  bool principal_allowed(const call_ptr& c, const std::string& value) {
    connection x;
    std::string err;
    return parse_connection(value, x, err) && allowed_on(c->who, x.spec);
  }

  void do_remove(const call_ptr& c) {
    auto k = c->route.k;
    int64_t expected = c->route.has_resource_version && c->route.resource_version > 0
                         ? static_cast<int64_t>(c->route.resource_version)
                         : any_revision;
    ask(c, store_delete{store_key(k, c->route.name), expected}, [=](store_delete_result& r) {
      if (r.ok) {
        auto obj = render(k, r.previous, now_unix_ms());
        answer(c, 200, obj ? *obj : deleted_object(k, r.previous));
      } else if (r.existed) {
        fail(c, conflict(std::string(kind_name(k)) + " " + c->route.name
                         + " has changed since resourceVersion "
                         + std::to_string(c->route.resource_version)));
      } else {
        fail(c, not_found(std::string(kind_name(k)) + " " + c->route.name + " not found"));
      }
    });
  }

  void do_bootstrap(const call_ptr& c) {
    auto name = c->route.name;
    ask(c, store_get{store_key(kind::connection, name)}, [=](store_get_result& r) {
      connection svc;
      std::string err;
      if (!r.found) {
        fail(c, not_found("DRTPConnection " + name + " not found"));
        return;
      }
      if (!parse_connection(r.record.value, svc, err)) {
        fail(c, unavailable("the stored object cannot be read"));
        return;
      }
      ask(c, store_list{store_prefix(kind::server), 0}, [=](store_list_result& l) {
        auto now = now_unix_ms();
        std::vector<server> ready;
        for (const auto& rec : l.records) {
          server s;
          std::string e;
          if (parse_server(rec.value, s, e) && server_ready(s, now))
            ready.push_back(std::move(s));
        }
        answer(c, 200, bootstrap_json(svc, bootstrap_order(std::move(ready), c->route.region)));
      });
    });
  }

  // -- writes -----------------------------------------------------------------------

  std::string new_uid() {
    auto h = net::to_hex(p_.e.rng->bytes(16));
    return h.substr(0, 8) + "-" + h.substr(8, 4) + "-" + h.substr(12, 4) + "-"
           + h.substr(16, 4) + "-" + h.substr(20);
  }

  /// The body as an object of kind T whose name is the path's (if any);
  /// false: answered (400, 403).
  template <class T>
  bool read_body(const call_ptr& c, T& obj) {
    std::string err;
    if (!parse_obj(c->call.req.body, obj, err)) {
      fail(c, bad_request(err));
      return false;
    }
    if (!c->route.name.empty() && obj.meta.name.empty())
      obj.meta.name = c->route.name;
    if (!c->route.name.empty() && obj.meta.name != c->route.name) {
      fail(c, bad_request("metadata.name: " + obj.meta.name + " is not the path's "
                          + c->route.name));
      return false;
    }
    if (!valid_name(obj.meta.name)) {
      fail(c, bad_request("metadata.name: not a DNS label"));
      return false;
    }
    if (!may_write_name(c->who, c->route.k, obj.meta.name)) {
      refuse(c, forbidden(c->who.label() + " may not write " + obj.meta.name), "forbidden");
      return false;
    }
    return true;
  }

  /// Writes `obj` (expected: store_put's condition); answers with the
  /// object as written, or `on_conflict`.
  template <class T>
  void write(const call_ptr& c, T obj, int64_t expected, int ok_status, api_error on_conflict,
             std::function<void()> retry = nullptr) {
    auto k = c->route.k;
    auto key = store_key(k, obj.meta.name);
    ask(c, store_put{key, stored_json(std::move(obj)), expected},
        [=](store_put_result& r) {
          if (!r.ok) {
            if (retry && c->attempts++ < p_.limits.merge_retries_max)
              retry();
            else
              fail(c, on_conflict);
            return;
          }
          with_book(c, k, [=](book_ptr book) {
            auto out = render(k, r.record, now_unix_ms(), book.get());
            if (!out)
              fail(c, unavailable("the object as written cannot be read back"));
            else
              answer(c, ok_status, *out);
          });
        });
  }

  /// At most one public Gateway per service: `go` runs unless another
  /// public one names the same service (then 409 naming it). Two creates
  /// racing may both pass (the check and the write are two requests); the
  /// follower then takes the first by name.
  template <class T>
  void check_unique(const call_ptr& c, const T& obj, std::function<void()> go) {
    if constexpr (!std::is_same_v<T, gateway>) {
      go();
    } else {
      if (!obj.spec.is_public) {
        go();
        return;
      }
      auto name = obj.meta.name;
      auto service = obj.spec.service;
      ask(c, store_list{store_prefix(kind::gateway), 0}, [=](store_list_result& r) {
        for (const auto& rec : r.records) {
          gateway g;
          std::string e;
          if (parse_gateway(rec.value, g, e) && g.meta.name != name && g.spec.is_public
              && g.spec.service == service) {
            fail(c, conflict("service " + service + " already has a public Gateway, "
                             + g.meta.name + " (at most one; change or delete it)"));
            return;
          }
        }
        go();
      });
    }
  }

  template <class T>
  void do_create(const call_ptr& c) {
    T obj;
    if (!read_body(c, obj))
      return;
    obj.meta.resource_version = 0;
    obj.meta.creation_timestamp = rfc3339(now_unix_ms());
    obj.meta.uid = new_uid();
    if constexpr (has_status<T>)
      obj.status = decltype(obj.status){}; // status only through /status
    auto name = obj.meta.name;
    auto held = std::make_shared<T>(std::move(obj));
    check_unique(c, *held, [=] {
      write(c, std::move(*held), 0, 201,
            already_exists(std::string(kind_name(c->route.k)) + " " + name + " already exists"));
    });
  }

  template <class T>
  void do_replace(const call_ptr& c) {
    T obj;
    if (!read_body(c, obj))
      return;
    auto held = std::make_shared<T>(std::move(obj));
    check_unique(c, *held, [=] { replace_checked<T>(c, std::move(*held)); });
  }

  template <class T>
  void replace_checked(const call_ptr& c, T obj) {
    auto wanted = obj.meta.resource_version;
    ask(c, store_get{store_key(c->route.k, obj.meta.name)}, [=](store_get_result& r) mutable {
      auto what = std::string(kind_name(c->route.k)) + " " + obj.meta.name;
      if (wanted != 0 && (!r.found || r.record.mod_revision != wanted)) {
        fail(c, conflict(what + " is not at resourceVersion " + std::to_string(wanted)
                         + " (read it again)"));
        return;
      }
      T old;
      std::string err;
      if (r.found && parse_obj(r.record.value, old, err)) {
        obj.meta.creation_timestamp = old.meta.creation_timestamp;
        obj.meta.uid = old.meta.uid;
        if constexpr (has_status<T>)
          obj.status = old.status;
      } else {
        obj.meta.creation_timestamp = rfc3339(now_unix_ms());
        obj.meta.uid = new_uid();
        if constexpr (has_status<T>)
          obj.status = decltype(obj.status){};
      }
      int64_t expected = r.found ? static_cast<int64_t>(r.record.mod_revision) : 0;
      write(c, std::move(obj), expected, r.found ? 200 : 201,
            conflict(what + " changed meanwhile (read it again)"));
    });
  }

  template <class T>
  void do_put_status(const call_ptr& c) {
    if constexpr (!has_status<T>) {
      fail(c, not_found(std::string(kind_name(c->route.k)) + " has no status"));
    } else {
      status_body b;
      if (read_status_body(c, b))
        merge_status<T>(c, std::make_shared<status_body>(std::move(b)));
    }
  }

  /// What a status PUT says: the status (JSON) and the resourceVersion it
  /// is conditional on (0: none). The rest of the body is not read: the
  /// spec is written through the object, not here.
  struct status_body {
    std::string status_json;
    uint64_t resource_version = 0;
  };

  bool read_status_body(const call_ptr& c, status_body& out) {
    using nlohmann::json;
    auto bad = [&](const std::string& m) {
      fail(c, bad_request(m));
      return false;
    };
    json j;
    try {
      j = json::parse(c->call.req.body);
    } catch (const json::parse_error& e) {
      return bad("body: malformed JSON at byte " + std::to_string(e.byte));
    }
    if (!j.is_object())
      return bad("body: not a JSON object");
    if (j.contains("kind") && j["kind"] != kind_name(c->route.k))
      return bad(std::string("kind: expected ") + kind_name(c->route.k));
    if (j.contains("metadata") && j["metadata"].is_object()) {
      const auto& m = j["metadata"];
      if (m.contains("name") && m["name"] != c->route.name)
        return bad("metadata.name: not the path's " + c->route.name);
      if (m.contains("resourceVersion")) {
        const auto& rv = m["resourceVersion"];
        std::string text = rv.is_string() ? rv.get<std::string>() : "";
        char* end = nullptr;
        out.resource_version = std::strtoull(text.c_str(), &end, 10);
        if (text.empty() || text.size() > 19 || *end != '\0')
          return bad("metadata.resourceVersion: expected a decimal number in a string");
      }
    }
    out.status_json = j.contains("status") ? j["status"].dump() : "{}";
    return true;
  }

  /// The stored object with `status` (JSON) in place of its own, validated
  /// as a whole; false with err set.
  template <class T>
  bool with_status(const T& old, const std::string& status, T& out, std::string& err) {
    using nlohmann::json;
    auto whole = json::parse(to_json(old), nullptr, false);
    if (!whole.is_object()) {
      err = "the stored object cannot be read";
      return false;
    }
    whole["status"] = json::parse(status, nullptr, false);
    return parse_obj(whole.dump(), out, err);
  }

  /// Reads the object, puts the body's status on it as the caller may,
  /// writes it back conditionally; a race lost by a merge without a
  /// resourceVersion is tried again.
  template <class T>
  void merge_status(const call_ptr& c, std::shared_ptr<status_body> b) {
    auto name = c->route.name;
    ask(c, store_get{store_key(c->route.k, name)}, [=](store_get_result& r) {
      auto what = std::string(kind_name(c->route.k)) + " " + name;
      if (!r.found) {
        fail(c, not_found(what + " not found"));
        return;
      }
      if (b->resource_version != 0 && r.record.mod_revision != b->resource_version) {
        fail(c, conflict(what + " is not at resourceVersion "
                         + std::to_string(b->resource_version)));
        return;
      }
      T obj;
      T said;
      std::string err;
      if (!parse_obj(r.record.value, obj, err)) {
        fail(c, unavailable("the stored object cannot be read"));
        return;
      }
      if (!with_status(obj, b->status_json, said, err) || !stamp_status(c, obj, said.status, err)) {
        fail(c, bad_request(err));
        return;
      }
      std::function<void()> retry;
      if (b->resource_version == 0)
        retry = [this, c, b] { merge_status<T>(c, b); };
      write(c, std::move(obj), static_cast<int64_t>(r.record.mod_revision), 200,
            conflict(what + " changed meanwhile (read it again)"), retry);
    });
  }

  /// A POP's status: what it says, with the lease renewed now by this
  /// clock.
  bool stamp_status(const call_ptr& c, server& obj, const server_status& s, std::string& err) {
    obj.status = s;
    obj.status.ready = false; // computed on read
    obj.status.lease_renew_unix_ms = now_unix_ms();
    auto d = s.lease_duration_s == 0 ? p_.lease_duration_s : s.lease_duration_s;
    obj.status.lease_duration_s = std::min(d, p_.limits.lease_duration_s_max);
    return true;
  }

  /// A service's status: the operator replaces it; the service's agent
  /// merges its own entry, with the address it was seen from.
  bool stamp_status(const call_ptr& c, connection& obj, const connection_status& s,
                    std::string& err) {
    auto now = now_unix_ms();
    if (c->who.kind == caller_kind::admin) {
      obj.status = s;
      return true;
    }
    if (s.agents.size() != 1) {
      err = "status.agents: an agent reports exactly one entry, its own";
      return false;
    }
    auto mine = s.agents.front();
    if (!valid_agent_id(mine.id, p_.limits.agent_id_bytes_max)) {
      err = "status.agents[0].id: printable, 1 to "
            + std::to_string(p_.limits.agent_id_bytes_max) + " bytes";
      return false;
    }
    mine.address = c->call.peer_host;
    mine.last_seen_unix_ms = now;
    merge_agent(obj.status, std::move(mine));
    obj.status.last_seen_unix_ms = now;
    return true;
  }

  void merge_agent(connection_status& st, agent_report mine) {
    auto& agents = st.agents;
    auto same = std::find_if(agents.begin(), agents.end(),
                             [&](const agent_report& a) { return a.id == mine.id; });
    if (same != agents.end()) {
      *same = std::move(mine);
    } else {
      while (agents.size() >= p_.limits.agents_per_service_max) {
        auto stalest = std::min_element(agents.begin(), agents.end(),
                                        [](const agent_report& a, const agent_report& b) {
                                          return a.last_seen_unix_ms < b.last_seen_unix_ms;
                                        });
        agents.erase(stalest);
      }
      agents.push_back(std::move(mine));
    }
    std::vector<std::string> pops;
    for (const auto& a : agents)
      pops.insert(pops.end(), a.pops.begin(), a.pops.end());
    std::sort(pops.begin(), pops.end());
    pops.erase(std::unique(pops.begin(), pops.end()), pops.end());
    st.pops = std::move(pops);
    DRTP_ASSERT(agents.size() <= p_.limits.agents_per_service_max,
                "a service lists a bounded number of agents");
  }

  // -- watches ----------------------------------------------------------------------

  void do_watch(const call_ptr& c) {
    auto k = c->route.k;
    auto& h = kinds_[index_of(k)].history;
    auto who = c->who.label();
    if (watchers_.size() >= p_.limits.watchers_max
        || watchers_per_caller_[who] >= p_.limits.watchers_per_caller_max) {
      fail(c, too_many_requests("too many watches open (for " + who + ")"));
      return;
    }
    if (!h.started()) {
      fail(c, unavailable("watches of this kind are restarting; list and watch again"));
      return;
    }
    auto after = c->route.has_resource_version ? c->route.resource_version : h.position();
    std::string backlog;
    bool covered = h.covers(after)
                   && h.since(after, p_.limits.watcher_queue_bytes_max, backlog);
    http_stream_begin begin;
    begin.headers.emplace_back("Content-Type", "application/json");
    c->rp.deliver(begin);
    auto& conn = c->call.conn;
    if (!covered) {
      end_watch(conn, gone("resourceVersion " + std::to_string(after)
                           + " is too old; list again"));
      return;
    }
    if (!backlog.empty())
      send(conn, http_stream_chunk{std::move(backlog)});
    watcher w{conn, k, who, std::max(after, h.position())};
    watchers_[c->call.conn_serial] = w;
    ++watchers_per_caller_[who];
    monitor(conn);
    DRTP_ASSERT(watchers_.size() <= p_.limits.watchers_max, "watchers are bounded");
  }

  void end_watch(const caf::actor& conn, const api_error& e) {
    send(conn, http_stream_chunk{error_line(e)});
    send(conn, http_stream_end{});
  }

  void forget_watcher(uint64_t serial) {
    links_.erase(serial); // the link is gone; link_order_ entries age out
    auto i = watchers_.find(serial);
    if (i == watchers_.end())
      return;
    auto n = --watchers_per_caller_[i->second.who];
    if (n == 0)
      watchers_per_caller_.erase(i->second.who);
    demonitor(i->second.conn);
    watchers_.erase(i);
  }

  void on_conn_down(const caf::actor_addr& who) {
    std::vector<uint64_t> gone_serials;
    for (const auto& [serial, w] : watchers_)
      if (w.conn.address() == who)
        gone_serials.push_back(serial);
    for (auto s : gone_serials)
      forget_watcher(s);
  }

  void drop_watcher(uint64_t serial, const api_error& e) {
    auto i = watchers_.find(serial);
    if (i == watchers_.end())
      return;
    end_watch(i->second.conn, e);
    forget_watcher(serial);
  }

  void start_store_watch(kind k) {
    auto& kw = kinds_[index_of(k)];
    if (kw.tag != 0)
      send(p_.store, store_unwatch{kw.tag, caf::actor_cast<caf::actor>(this)});
    kw.tag = 0;
    auto tag = next_tag_++;
    auto prefix = store_prefix(k);
    // From the store's revision now: older changes are served by a list.
    request(p_.store, store_timeout(), store_get{prefix})
      .then(
        [=](store_get_result& r) {
          request(p_.store, store_timeout(), store_watch{prefix, r.revision, caf::actor_cast<caf::actor>(this), tag})
            .then([=](store_watch_started&) { watch_started(k, tag, r.revision); },
                  [=](caf::error&) { rewatch_later(k); });
        },
        [=](caf::error&) { rewatch_later(k); });
  }

  void watch_started(kind k, uint64_t tag, uint64_t after) {
    auto& kw = kinds_[index_of(k)];
    kw.tag = tag;
    kw.history.start(after);
    p_.e.trace->emit(p_.e.host, "registry",
                     std::string("watching ") + kind_plural(k) + " after "
                       + std::to_string(after));
  }

  void rewatch_later(kind k) {
    delayed_send(this, p_.e.clock->real_delay(ms(rewatch_delay_ms)), rewatch_atom::value,
                 index_of(k));
  }

  std::optional<kind> kind_of_tag(uint64_t tag) {
    for (auto k : all_kinds)
      if (tag != 0 && kinds_[index_of(k)].tag == tag)
        return k;
    return std::nullopt;
  }

  void on_store_event(store_event& ev) {
    auto k = kind_of_tag(ev.tag);
    if (!k)
      return; // a watch given up on
    auto& h = kinds_[index_of(*k)].history;
    auto now = now_unix_ms();
    for (const auto& ch : ev.changes) {
      if (ch.record.mod_revision <= h.position())
        continue; // already had it (a store may repeat the edge of a watch)
      std::string line;
      if (ch.type == store_event_type::del) {
        line = watch_line("DELETED", deleted_object(*k, ch.record));
      } else if (auto obj = render(*k, ch.record, now)) {
        line = watch_line(ch.created ? "ADDED" : "MODIFIED", *obj);
      } else {
        continue;
      }
      h.append(ch.record.mod_revision, std::move(line));
    }
    h.progress(ev.revision);
    fan_out(*k);
  }

  void fan_out(kind k) {
    auto& h = kinds_[index_of(k)].history;
    std::vector<uint64_t> behind;
    for (auto& [serial, w] : watchers_) {
      if (w.k != k || w.sent >= h.position())
        continue;
      std::string out;
      if (!h.covers(w.sent) || !h.since(w.sent, p_.limits.watcher_queue_bytes_max, out)) {
        behind.push_back(serial);
        continue;
      }
      if (!out.empty())
        send(w.conn, http_stream_chunk{std::move(out)});
      w.sent = h.position();
    }
    for (auto s : behind)
      drop_watcher(s, gone("this watch fell too far behind; list again"));
  }

  void on_store_watch_ended(uint64_t tag, const std::string& what) {
    auto k = kind_of_tag(tag);
    if (!k)
      return;
    auto& kw = kinds_[index_of(*k)];
    kw.tag = 0;
    kw.history.stop();
    p_.e.trace->emit(p_.e.host, "registry",
                     std::string("watch of ") + kind_plural(*k) + " ended ("
                       + net::escape_for_log(what) + "): its watchers list again");
    std::vector<uint64_t> mine;
    for (const auto& [serial, w] : watchers_)
      if (w.k == *k)
        mine.push_back(serial);
    for (auto s : mine)
      drop_watcher(s, gone("the registry's watch was reset; list again"));
    rewatch_later(*k);
  }

  void schedule_bookmark() {
    delayed_send(this, p_.e.clock->real_delay(ms(p_.limits.bookmark_interval_ms)),
                 bookmark_atom::value);
  }

  void bookmark_all() {
    for (auto& [serial, w] : watchers_) {
      auto rv = std::max(w.sent, kinds_[index_of(w.k)].history.position());
      send(w.conn, http_stream_chunk{bookmark_line(w.k, rv)});
    }
  }

  registry_params p_;
  refusal_buckets refusals_;
  std::unordered_map<uint64_t, link_identity> links_;
  std::deque<uint64_t> link_order_; // oldest first
  std::unordered_map<uint64_t, watcher> watchers_; // by conn_serial
  std::unordered_map<std::string, uint32_t> watchers_per_caller_;
  std::vector<kind_watch> kinds_;
  uint64_t next_tag_ = 1;
};

} // namespace

caf::actor spawn_registry(caf::actor_system& sys, registry_params p) {
  return sys.spawn<registry_actor>(std::move(p));
}

} // namespace drtp::control
