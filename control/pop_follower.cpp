#include "control/pop_follower.hpp"

#include <algorithm>
#include <map>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "actors/messages.hpp"
#include "caf/all.hpp"
#include "control/auth.hpp"
#include "net/seam/assert.hpp"

namespace drtp::control {

namespace {

using json = nlohmann::json;
using std::chrono::milliseconds;

using renew_atom = caf::atom_constant<caf::atom("renew")>;
using apply_atom = caf::atom_constant<caf::atom("apply")>;
using retry_atom = caf::atom_constant<caf::atom("retry")>;

constexpr const char* snapshot_format = "drtp-pop-registry-v1";
/// drtpconnections, principals, gateways.
constexpr uint64_t watched_kinds = 3;

// -- translation ----------------------------------------------------------------------

bool same(const service_config& a, const service_config& b) {
  return a.name == b.name && a.public_key == b.public_key && a.is_public == b.is_public
         && a.public_host == b.public_host && a.public_port == b.public_port
         && a.allow == b.allow && a.allow_cidr == b.allow_cidr && a.gateway == b.gateway
         && a.end_open_sessions == b.end_open_sessions && a.revoked_serials == b.revoked_serials
         && a.revoked_before_unix_s == b.revoked_before_unix_s;
}
bool same(const principal_config& a, const principal_config& b) {
  return a.name == b.name && a.public_key == b.public_key && a.groups == b.groups
         && a.org == b.org && a.revoked == b.revoked && a.revoked_serials == b.revoked_serials
         && a.revoked_before_unix_s == b.revoked_before_unix_s;
}
template <class T>
bool same(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](auto& x, auto& y) {
           return same(x, y);
         });
}

/// What the registry says, as the POP holds it (dynamic part only).
struct registry_view {
  /// From the DRTPConnections alone (or, from a snapshot, as applied).
  std::map<std::string, service_config> services;
  std::map<std::string, principal_config> principals;
  std::map<std::string, gateway_spec> gateways; // by gateway name
  std::string client_ca_pem; // GET /ca's; empty: the control plane has none
};

/// A service's allow list holds at most this many entries, however many
/// gateways add to it (a DRTPConnection's own is at most 1024).
constexpr size_t allow_entries_max = 4096;

void add_unique(std::vector<std::string>& xs, const std::string& x) {
  if (xs.size() < allow_entries_max && std::find(xs.begin(), xs.end(), x) == xs.end())
    xs.push_back(x);
}

/// A service with its gateways (docs/control-plane.md, "Gateways"): the
/// public one's port and allowCIDRs (the first by name, should two race
/// past the registry's check); without one, the private ones' CIDRs when
/// every one of them restricts sources (one that admits any source admits
/// any); allow gains every gateway's principals and orgs ("org:NAME");
/// open sessions end if any gateway says so.
void apply_gateways(service_config& sc,
                    const std::vector<std::pair<std::string, const gateway_spec*>>& gws) {
  const std::pair<std::string, const gateway_spec*>* pub = nullptr;
  for (auto& g : gws)
    if (g.second->is_public && !pub)
      pub = &g;
  for (auto& [name, g] : gws) {
    for (auto& p : g->allow_principals)
      add_unique(sc.allow, p);
    for (auto& o : g->allow_orgs)
      add_unique(sc.allow, "org:" + o);
    sc.end_open_sessions = sc.end_open_sessions || g->end_open_sessions;
  }
  if (pub) {
    sc.is_public = true;
    sc.public_port = pub->second->port;
    sc.allow_cidr = pub->second->allow_cidrs;
    sc.gateway = pub->first;
    return;
  }
  sc.gateway = gws.front().first;
  bool every_restricts = std::all_of(gws.begin(), gws.end(), [](auto& g) {
    return !g.second->allow_cidrs.empty();
  });
  if (every_restricts)
    for (auto& [name, g] : gws)
      for (auto& c : g->allow_cidrs)
        add_unique(sc.allow_cidr, c);
}

/// The services as the POP gets them: each with its gateways applied (a
/// gateway whose service is unknown does nothing).
std::map<std::string, service_config> effective_services(const registry_view& v) {
  auto out = v.services;
  std::map<std::string, std::vector<std::pair<std::string, const gateway_spec*>>> by_service;
  for (auto& [name, g] : v.gateways)
    if (out.count(g.service))
      by_service[g.service].emplace_back(name, &g);
  for (auto& [svc, gws] : by_service)
    apply_gateways(out[svc], gws);
  return out;
}

bool to_service(const connection& c, const std::string& public_host, service_config& out) {
  out = service_config{};
  out.name = c.meta.name;
  if (!parse_public_key(c.spec.public_key, out.public_key))
    return false;
  out.is_public = c.spec.public_port > 0;
  out.public_host = public_host;
  out.public_port = c.spec.public_port;
  out.allow = c.spec.allow;
  out.revoked_serials = c.spec.revoked_serials;
  out.revoked_before_unix_s = c.spec.revoked_before_unix_ms / 1000;
  return true;
}

bool to_principal(const principal& p, principal_config& out) {
  out = principal_config{};
  out.name = p.meta.name;
  out.groups = p.spec.groups;
  out.org = p.spec.org;
  out.revoked_serials = p.spec.revoked_serials;
  out.revoked_before_unix_s = p.spec.revoked_before_unix_ms / 1000;
  return !p.spec.revoked && parse_public_key(p.spec.public_key, out.public_key);
}

/// Static first (they win over a registry object of the same name), then
/// the registry's in name order.
pop_reconfigure merge(const pop_follower_params& p, const registry_view& v) {
  pop_reconfigure out;
  out.client_ca_pem = v.client_ca_pem;
  out.services = p.static_services;
  out.principals = p.static_principals;
  auto has = [](auto& xs, const std::string& name) {
    return std::any_of(xs.begin(), xs.end(), [&](auto& x) { return x.name == name; });
  };
  for (auto& [name, s] : effective_services(v))
    if (!has(p.static_services, name))
      out.services.push_back(s);
  for (auto& [name, pr] : v.principals)
    if (!has(p.static_principals, name))
      out.principals.push_back(pr);
  return out;
}

// -- the snapshot -----------------------------------------------------------------------

/// The services as applied (gateways folded in: allowCidr, gateway and
/// endOpenSessions are additive keys, so older snapshots still load).
std::string snapshot_of(const std::string& pop, const registry_view& v) {
  json services = json::array();
  for (auto& [name, s] : effective_services(v)) {
    json e = {{"name", name},
              {"publicKey", public_key_text(s.public_key)},
              {"publicPort", s.is_public ? s.public_port : 0},
              {"allow", s.allow},
              {"revokedSerials", s.revoked_serials},
              {"revokedBefore", s.revoked_before_unix_s}};
    if (!s.allow_cidr.empty())
      e["allowCidr"] = s.allow_cidr;
    if (!s.gateway.empty())
      e["gateway"] = s.gateway;
    if (s.end_open_sessions)
      e["endOpenSessions"] = true;
    services.push_back(std::move(e));
  }
  json principals = json::array();
  for (auto& [name, pr] : v.principals) {
    json e = {{"name", name},
              {"publicKey", public_key_text(pr.public_key)},
              {"groups", pr.groups},
              {"revokedSerials", pr.revoked_serials},
              {"revokedBefore", pr.revoked_before_unix_s}};
    if (!pr.org.empty())
      e["org"] = pr.org;
    principals.push_back(std::move(e));
  }
  json j = {{"format", snapshot_format},
            {"pop", pop},
            {"services", services},
            {"principals", principals},
            {"ca", v.client_ca_pem}};
  return j.dump(1) + "\n";
}

std::vector<std::string> strings_of(const json& j, const char* what) {
  std::vector<std::string> out;
  if (!j.is_array())
    throw std::runtime_error(std::string(what) + ": expected a list");
  for (auto& x : j)
    out.push_back(x.get<std::string>());
  return out;
}

/// A snapshot entry's revocations (absent in older snapshots).
void revocations_of(const json& s, std::vector<std::string>& serials, int64_t& before_s) {
  if (s.contains("revokedSerials"))
    serials = strings_of(s.at("revokedSerials"), "revokedSerials");
  if (serials.size() > revoked_serials_max)
    throw std::runtime_error("revokedSerials: too many");
  before_s = s.value("revokedBefore", int64_t{0});
}

bool parse_snapshot(const std::string& text, const pop_follower_params& p, registry_view& out,
                    std::string& error) {
  out = {};
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    error = "snapshot: not a JSON object";
    return false;
  }
  try {
    if (j.value("format", "") != snapshot_format) {
      error = std::string("snapshot: format is not ") + snapshot_format;
      return false;
    }
    for (auto& s : j.at("services")) {
      if (out.services.size() >= p.limits.objects_per_kind_max)
        break;
      service_config sc;
      sc.name = s.at("name").get<std::string>();
      auto port = s.at("publicPort").get<uint32_t>();
      if (!valid_name(sc.name) || port > 65535
          || !parse_public_key(s.at("publicKey").get<std::string>(), sc.public_key))
        throw std::runtime_error("service '" + sc.name + "' is malformed");
      sc.is_public = port > 0;
      sc.public_host = p.public_host;
      sc.public_port = static_cast<uint16_t>(port);
      sc.allow = strings_of(s.at("allow"), "allow");
      if (s.contains("allowCidr")) {
        sc.allow_cidr = strings_of(s.at("allowCidr"), "allowCidr");
        for (auto& c : sc.allow_cidr)
          if (!valid_cidr(c))
            throw std::runtime_error("service '" + sc.name + "': allowCidr is malformed");
      }
      sc.gateway = s.value("gateway", "");
      sc.end_open_sessions = s.value("endOpenSessions", false);
      revocations_of(s, sc.revoked_serials, sc.revoked_before_unix_s);
      out.services[sc.name] = std::move(sc);
    }
    for (auto& s : j.at("principals")) {
      if (out.principals.size() >= p.limits.objects_per_kind_max)
        break;
      principal_config pc;
      pc.name = s.at("name").get<std::string>();
      if (!valid_name(pc.name)
          || !parse_public_key(s.at("publicKey").get<std::string>(), pc.public_key))
        throw std::runtime_error("principal '" + pc.name + "' is malformed");
      pc.groups = strings_of(s.at("groups"), "groups");
      pc.org = s.value("org", "");
      revocations_of(s, pc.revoked_serials, pc.revoked_before_unix_s);
      out.principals[pc.name] = std::move(pc);
    }
    // Additive keys (issue 15): a snapshot of an older POP has none.
    if (j.contains("ca") && j["ca"].is_string() && j["ca"].get_ref<const std::string&>().size() <= net::pem_bytes_max)
      out.client_ca_pem = j["ca"].get<std::string>();
  } catch (const std::exception& e) {
    error = std::string("snapshot: ") + e.what();
    out = {};
    return false;
  }
  return true;
}

// -- what the API answers -------------------------------------------------------------

/// A list's items (each an object's JSON) and its resourceVersion.
bool parse_list(const std::string& body, std::vector<std::string>& items, uint64_t& rv,
                std::string& error) {
  json j = json::parse(body, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("items") || !j["items"].is_array()) {
    error = "list: not a list object";
    return false;
  }
  try {
    rv = std::stoull(j.at("metadata").at("resourceVersion").get<std::string>());
  } catch (const std::exception&) {
    error = "list: no metadata.resourceVersion";
    return false;
  }
  for (auto& it : j["items"])
    items.push_back(it.dump());
  return true;
}

struct watch_event {
  std::string type;
  std::string object; // JSON
  uint64_t rv = 0;
  int code = 0; // ERROR's
};

bool parse_watch_line(const std::string& line, watch_event& out) {
  json j = json::parse(line, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("type") || !j["type"].is_string()
      || !j.contains("object") || !j["object"].is_object())
    return false;
  out.type = j["type"].get<std::string>();
  auto& o = j["object"];
  if (out.type == "ERROR") {
    out.code = o.value("code", 0);
    return true;
  }
  try {
    out.rv = std::stoull(o.at("metadata").at("resourceVersion").get<std::string>());
  } catch (const std::exception&) {
    return false;
  }
  out.object = o.dump();
  return true;
}

std::string status_message(const http::response& r) {
  json j = json::parse(r.body, nullptr, false);
  std::string m;
  if (j.is_object() && j.contains("message") && j["message"].is_string())
    m = j["message"].get<std::string>();
  else
    m = r.body.substr(0, 120);
  return "HTTP " + std::to_string(r.status) + (m.empty() ? "" : ": " + m);
}

/// The duration the registry granted in a status PUT's answer (0: unknown).
uint32_t granted_lease_s(const std::string& body) {
  server s;
  std::string err;
  if (!parse_server(body, s, err))
    return 0;
  return s.status.lease_duration_s;
}

// -- the actor --------------------------------------------------------------------------

class pop_follower_actor final : public caf::event_based_actor {
public:
  pop_follower_actor(caf::actor_config& cfg, pop_follower_params p)
    : caf::event_based_actor(cfg), p_(std::move(p)) {
    DRTP_ASSERT(p_.limits.backoff_initial_ms > 0
                  && p_.limits.backoff_initial_ms <= p_.limits.backoff_max_ms,
                "a backoff starts above zero and below its max");
  }

  const char* name() const override {
    return "drtp.pop_follower";
  }

  caf::behavior make_behavior() override {
    std::string err;
    if (!p_.snapshot.empty() && !parse_snapshot(p_.snapshot, p_, known_, err))
      trace(err + "; starting from the static config");
    applied_ = merge(p_, known_);
    auto hp = p_.http;
    if (!hp.e.io)
      hp.e = p_.e;
    hp.name = "pop-follower-http";
    // A list of objects_per_kind_max services is one body, far over the
    // HTTP default: the list's own bound applies to it.
    hp.limits.body_bytes_max = std::max<size_t>(hp.limits.body_bytes_max,
                                                p_.limits.list_bytes_max);
    auto crypto = p_.e.crypto;
    auto seed = p_.fleet_seed;
    auto me = p_.name;
    hp.authorization = [crypto, seed, me](const std::string& binding) {
      return auth_header(*crypto, kind_pop, me, seed, binding);
    };
    client_ = spawn_http_client(system(), std::move(hp));
    link_to(client_);
    backoff_ms_ = p_.limits.backoff_initial_ms;
    // A drain asks us first, so that agents stop being sent here.
    send(p_.pop, pop_drain_watch{caf::actor_cast<caf::actor>(this)});
    register_server();
    return {
      [this](drain_atom) -> caf::result<std::string> { return on_drain(); },
      [this](renew_atom, uint64_t gen) {
        if (gen == renew_gen_)
          renew();
      },
      [this](retry_atom, uint64_t gen) {
        if (gen != attempt_gen_)
          return;
        if (registered_)
          sync();
        else
          register_server();
      },
      [this](apply_atom) {
        apply_pending_ = false;
        apply();
      },
      [this](pop_follower_static& s) -> caf::result<std::string> {
        p_.static_services = std::move(s.services);
        p_.static_principals = std::move(s.principals);
        if (!s.pin.empty() && s.pin != p_.spec.pin) {
          p_.spec.pin = std::move(s.pin);
          trace("new certificate pin; updating DRTPServer " + p_.name);
          // Registered again (then listed again): a failure on the way
          // retries the registration, not only the lists.
          if (registered_) {
            registered_ = false;
            register_server();
          }
        }
        // Sent even unchanged: the pop_server tries public ports it could
        // not bind again (a reload is how the operator says "try again").
        auto rp = make_response_promise();
        apply([rp](const std::string& answer) mutable { rp.deliver(answer); }, true);
        return rp;
      },
      [this](http_watch_line& l) { on_line(l); },
      [this](http_watch_ended& e) {
        if (e.tag / watched_kinds != watch_gen_ || !watching_)
          return;
        failed("watch of " + std::string(plural(e.tag)) + " ended: "
               + (e.status ? "HTTP " + std::to_string(e.status) + " " : "") + e.what);
      },
    };
  }

  void on_exit() override {
    if (client_)
      send_exit(client_, caf::exit_reason::user_shutdown);
    client_ = nullptr;
    p_.pop = nullptr;
    p_.observer = nullptr;
    p_.persist = nullptr;
  }

private:
  // -- registration and lease -------------------------------------------------------

  std::string path(const std::string& rest) const {
    return std::string(api_base) + "/" + rest;
  }

  void fetch(std::string method, const std::string& target, std::string body,
             std::function<void(http::response&)> ok, std::function<void(const std::string&)> bad,
             uint32_t timeout_ms = 0) {
    http::header_list h;
    if (!body.empty())
      h.emplace_back("Content-Type", "application/json");
    request(client_, milliseconds(timeout_ms ? timeout_ms : p_.limits.fetch_timeout_ms),
            http_fetch{std::move(method), target, std::move(h), std::move(body)})
      .then([ok](http::response& r) { ok(r); },
            [bad](caf::error& e) { bad(describe_http_error(e)); });
  }

  /// Our DRTPServer as we mean it: our spec with the registry's `draining`.
  std::string server_body(bool draining, uint64_t rv) const {
    server s;
    s.meta.name = p_.name;
    s.meta.resource_version = rv;
    s.spec = p_.spec;
    s.spec.draining = draining;
    return to_json(s);
  }

  void register_server() {
    auto gen = attempt_gen_;
    fetch("GET", path("drtpservers/" + p_.name), "",
          [this, gen](http::response& r) {
            if (gen != attempt_gen_)
              return;
            if (r.status == 404)
              return write_server("POST", path("drtpservers"), server_body(false, 0), gen);
            if (r.status != 200)
              return failed("reading DRTPServer " + p_.name + ": " + status_message(r));
            server cur;
            std::string err;
            if (!parse_server(r.body, cur, err))
              return failed("reading DRTPServer " + p_.name + ": " + err);
            auto want = p_.spec;
            want.draining = cur.spec.draining;
            if (to_json(server{{p_.name}, want, {}}) == to_json(server{{p_.name}, cur.spec, {}}))
              return renew();
            write_server("PUT", path("drtpservers/" + p_.name),
                         server_body(cur.spec.draining, cur.meta.resource_version), gen);
          },
          [this, gen](const std::string& what) {
            if (gen == attempt_gen_)
              failed("reading DRTPServer " + p_.name + ": " + what);
          });
  }

  void write_server(const char* method, const std::string& target, std::string body,
                    uint64_t gen) {
    fetch(method, target, std::move(body),
          [this, gen](http::response& r) {
            if (gen != attempt_gen_)
              return;
            if (r.status == 200 || r.status == 201)
              return renew();
            failed("writing DRTPServer " + p_.name + ": " + status_message(r));
          },
          [this, gen](const std::string& what) {
            if (gen == attempt_gen_)
              failed("writing DRTPServer " + p_.name + ": " + what);
          });
  }

  /// The status PUT: what the POP holds; the registry stamps renewTime.
  void renew() {
    ++renew_gen_;
    request(p_.pop, milliseconds(1000), status_atom::value)
      .then([this](pop_status& st) { put_status(&st); },
            [this](caf::error&) { put_status(nullptr); });
  }

  void put_status(const pop_status* st) {
    server s;
    s.meta.name = p_.name;
    s.status.lease_renew_unix_ms = p_.e.clock->unix_ms(clock());
    s.status.lease_duration_s = p_.limits.lease_duration_s;
    s.status.draining = draining_ || (st && st->draining);
    s.status.ready = !s.status.draining;
    if (st)
      for (auto& [svc, agents] : st->agents) {
        s.status.tunnels += static_cast<uint32_t>(agents.size());
        if (!agents.empty() && s.status.services.size() < p_.limits.objects_per_kind_max)
          s.status.services.push_back(svc);
      }
    send_status(std::move(s));
  }

  void send_status(server s) {
    auto gen = renew_gen_;
    fetch("PUT", path("drtpservers/" + p_.name + "/status"), to_json(s),
          [this, gen](http::response& r) {
            if (r.status == 404) {
              // The operator deleted our DRTPServer: write it again.
              trace("DRTPServer " + p_.name + " is gone from the registry; registering again");
              registered_ = false;
              return failed("renewing the lease: " + status_message(r));
            }
            if (r.status != 200) {
              trace("renewing the lease: " + status_message(r));
              return schedule_renew(gen, lease_s_);
            }
            if (auto g = granted_lease_s(r.body); g > 0)
              lease_s_ = g;
            schedule_renew(gen, lease_s_);
            if (!registered_) {
              registered_ = true;
              tell(pop_follower_event::registered,
                   "DRTPServer " + p_.name + " registered, lease "
                     + std::to_string(lease_s_) + " s");
              sync();
            }
          },
          [this, gen](const std::string& what) {
            trace("renewing the lease: " + what);
            if (!registered_) {
              if (gen == renew_gen_)
                failed("renewing the lease: " + what);
              return;
            }
            schedule_renew(gen, lease_s_);
          });
  }

  /// The POP starts to drain: one status PUT that says so (the registry
  /// then counts it not ready, and bootstraps leave it out), bounded by
  /// drain_status_timeout_ms; the renewals after it say so too. The
  /// answer is one line, whatever happened: a drain never waits longer.
  caf::result<std::string> on_drain() {
    draining_ = true;
    server s;
    s.meta.name = p_.name;
    s.status.lease_duration_s = p_.limits.lease_duration_s;
    s.status.draining = true;
    auto rp = make_response_promise<std::string>();
    auto what = "DRTPServer " + p_.name;
    fetch("PUT", path("drtpservers/" + p_.name + "/status"), to_json(s),
          [this, rp, what](http::response& r) mutable {
            auto line = r.status == 200
                          ? what + " marked draining in the registry"
                          : what + " not marked draining: " + status_message(r);
            trace(line);
            rp.deliver(line);
          },
          [this, rp, what](const std::string& why) mutable {
            auto line = what + " not marked draining: " + why;
            trace(line);
            rp.deliver(line);
          },
          p_.limits.drain_status_timeout_ms);
    return rp;
  }

  /// The next renewal in a third of the lease, +-10 %.
  void schedule_renew(uint64_t gen, uint32_t lease_s) {
    if (gen != renew_gen_)
      return;
    uint64_t third = std::max<uint64_t>(1000, uint64_t{lease_s} * 1000 / 3);
    auto spread = third / 5; // +-10 %
    auto d = third - third / 10 + (spread ? p_.e.rng->uniform(spread) : 0);
    delayed_send(this, p_.e.clock->real_delay(milliseconds(d)), renew_atom::value, gen);
  }

  // -- lists and watches ---------------------------------------------------------------

  /// What the follower lists and watches, by index (a watch's tag is
  /// watch_gen_ * watched_kinds + index).
  static const char* plural(uint64_t tag) {
    switch (tag % watched_kinds) {
      case 0: return "drtpconnections";
      case 1: return "principals";
      default: return "gateways";
    }
  }

  void sync() {
    stop_watches();
    auto gen = attempt_gen_;
    auto fresh = std::make_shared<registry_view>();
    fetch_ca(gen, fresh);
  }

  /// GET /ca, then the lists. A control plane without a CA (503, or 404
  /// from one older than issue 15) means no certificate login.
  void fetch_ca(uint64_t gen, std::shared_ptr<registry_view> fresh) {
    fetch("GET", path("ca"), "",
          [this, gen, fresh](http::response& r) {
            if (gen != attempt_gen_)
              return;
            if (r.status == 200) {
              json j = json::parse(r.body, nullptr, false);
              if (!j.is_object() || !j.contains("certificate") || !j["certificate"].is_string()
                  || j["certificate"].get_ref<const std::string&>().size() > net::pem_bytes_max)
                return failed("reading the CA: not {\"certificate\": PEM}");
              fresh->client_ca_pem = j["certificate"].get<std::string>();
            } else if (r.status != 503 && r.status != 404) {
              return failed("reading the CA: " + status_message(r));
            }
            list(0, gen, fresh);
          },
          [this, gen](const std::string& what) {
            if (gen == attempt_gen_)
              failed("reading the CA: " + what);
          });
  }

  void list(uint64_t which, uint64_t gen, std::shared_ptr<registry_view> fresh) {
    fetch("GET", path(plural(which)), "",
          [this, which, gen, fresh](http::response& r) {
            if (gen != attempt_gen_)
              return;
            if (r.status != 200)
              return failed(std::string("listing ") + plural(which) + ": " + status_message(r));
            std::vector<std::string> items;
            std::string err;
            uint64_t rv = 0;
            if (!parse_list(r.body, items, rv, err))
              return failed(std::string("listing ") + plural(which) + ": " + err);
            rv_[which] = rv;
            for (auto& it : items)
              upsert(which, it, *fresh);
            if (which + 1 < watched_kinds)
              return list(which + 1, gen, fresh);
            known_ = std::move(*fresh);
            apply();
            tell(pop_follower_event::synced,
                 std::to_string(known_.services.size()) + " service(s), "
                   + std::to_string(known_.principals.size()) + " principal(s), "
                   + std::to_string(known_.gateways.size()) + " gateway(s) at resourceVersion "
                   + std::to_string(rv_[0]) + "/" + std::to_string(rv_[1]) + "/"
                   + std::to_string(rv_[2]));
            start_watches();
          },
          [this, which, gen](const std::string& what) {
            if (gen == attempt_gen_)
              failed(std::string("listing ") + plural(which) + ": " + what);
          });
  }

  void start_watches() {
    ++watch_gen_;
    watching_ = true;
    for (uint64_t which = 0; which < watched_kinds; ++which)
      send(client_, http_watch{path(plural(which)) + "?watch=1&resourceVersion="
                                 + std::to_string(rv_[which]),
                               this, watch_gen_ * watched_kinds + which});
  }

  void stop_watches() {
    if (!watching_)
      return;
    watching_ = false;
    for (uint64_t which = 0; which < watched_kinds; ++which)
      send(client_, http_unwatch{watch_gen_ * watched_kinds + which});
  }

  /// One object of a list or a watch into `v`; false if it is malformed
  /// (said once per object name) or over the bound.
  void upsert(uint64_t which, const std::string& obj, registry_view& v) {
    std::string err;
    if (which == 0) {
      connection c;
      service_config sc;
      if (!parse_connection(obj, c, err) || !to_service(c, p_.public_host, sc)) {
        v.services.erase(c.meta.name);
        return trace("ignored DRTPConnection '" + c.meta.name + "': "
                     + (err.empty() ? "no usable publicKey" : err));
      }
      if (!v.services.count(sc.name) && v.services.size() >= p_.limits.objects_per_kind_max)
        return trace("ignored DRTPConnection '" + sc.name + "': over "
                     + std::to_string(p_.limits.objects_per_kind_max) + " services");
      v.services[sc.name] = std::move(sc);
    } else if (which == 2) {
      gateway g;
      if (!parse_gateway(obj, g, err)) {
        v.gateways.erase(g.meta.name);
        return trace("ignored Gateway '" + g.meta.name + "': " + err);
      }
      if (!v.gateways.count(g.meta.name) && v.gateways.size() >= p_.limits.objects_per_kind_max)
        return trace("ignored Gateway '" + g.meta.name + "': over "
                     + std::to_string(p_.limits.objects_per_kind_max) + " gateways");
      v.gateways[g.meta.name] = std::move(g.spec);
    } else {
      principal pr;
      principal_config pc;
      if (!parse_principal(obj, pr, err)) {
        return trace("ignored Principal: " + err);
      }
      if (!to_principal(pr, pc)) {
        v.principals.erase(pr.meta.name); // revoked (or no key): dropped
        return;
      }
      if (!v.principals.count(pc.name) && v.principals.size() >= p_.limits.objects_per_kind_max)
        return trace("ignored Principal '" + pc.name + "': over "
                     + std::to_string(p_.limits.objects_per_kind_max) + " principals");
      v.principals[pc.name] = std::move(pc);
    }
  }

  void erase(uint64_t which, const std::string& obj) {
    std::string err;
    if (which == 0) {
      connection c;
      parse_connection(obj, c, err);
      known_.services.erase(c.meta.name);
    } else if (which == 2) {
      gateway g;
      parse_gateway(obj, g, err);
      known_.gateways.erase(g.meta.name);
    } else {
      principal pr;
      parse_principal(obj, pr, err);
      known_.principals.erase(pr.meta.name);
    }
  }

  void on_line(const http_watch_line& l) {
    if (l.tag / watched_kinds != watch_gen_ || !watching_)
      return;
    auto which = l.tag % watched_kinds;
    watch_event ev;
    if (!parse_watch_line(l.line, ev))
      return failed(std::string("watch of ") + plural(which) + ": a malformed line");
    if (ev.type == "ERROR")
      return failed(std::string("watch of ") + plural(which) + ": ERROR "
                    + std::to_string(ev.code) + " (listing again)");
    backoff_ms_ = p_.limits.backoff_initial_ms; // the watch is live
    rv_[which] = std::max(rv_[which], ev.rv);
    if (ev.type == "BOOKMARK")
      return;
    if (ev.type == "ADDED" || ev.type == "MODIFIED")
      upsert(which, ev.object, known_);
    else if (ev.type == "DELETED")
      erase(which, ev.object);
    else
      return;
    if (!apply_pending_) {
      apply_pending_ = true;
      delayed_send(this, p_.e.clock->real_delay(milliseconds(p_.limits.debounce_ms)),
                   apply_atom::value);
    }
  }

  // -- applying ------------------------------------------------------------------------

  static std::string diff(const pop_reconfigure& from, const pop_reconfigure& to) {
    std::string out;
    auto note = [&](char sign, const char* what, const std::string& name) {
      out += (out.empty() ? "" : ", ") + std::string(1, sign) + what + " " + name;
    };
    // By name through an index: 10 000 services searched linearly for each
    // other made one change cost a POP about a second (bench_control).
    auto walk = [&](auto& a, auto& b, const char* what) {
      std::unordered_map<std::string, size_t> in_a, in_b;
      for (size_t i = 0; i < a.size(); ++i)
        in_a.emplace(a[i].name, i);
      for (size_t i = 0; i < b.size(); ++i)
        in_b.emplace(b[i].name, i);
      for (auto& x : b) {
        auto it = in_a.find(x.name);
        if (it == in_a.end())
          note('+', what, x.name);
        else if (!same(a[it->second], x))
          note('~', what, x.name);
      }
      for (auto& x : a)
        if (!in_b.count(x.name))
          note('-', what, x.name);
    };
    walk(from.services, to.services, "svc");
    walk(from.principals, to.principals, "principal");
    if (from.client_ca_pem != to.client_ca_pem)
      out += to.client_ca_pem.empty() ? " -ca" : " ~ca";
    return out;
  }

  /// Sends the merged configuration if it changed (or `force`); false if
  /// nothing was sent. `done` (may be empty) gets the pop_server's answer.
  bool apply(std::function<void(const std::string&)> done = {}, bool force = false) {
    auto next = merge(p_, known_);
    bool changed = !same(next.services, applied_.services)
                   || !same(next.principals, applied_.principals)
                   || next.client_ca_pem != applied_.client_ca_pem;
    if (!changed && !force)
      return false;
    if (changed) {
      auto what = diff(applied_, next);
      applied_ = next;
      if (p_.persist)
        p_.persist(snapshot_of(p_.name, known_));
      trace("applied: " + what);
    }
    request(p_.pop, milliseconds(5000), std::move(next))
      .then([this, done, changed](const std::string& answer) {
              if (changed)
                tell(pop_follower_event::applied, answer);
              if (done)
                done(answer);
            },
            [this, done](caf::error&) {
              trace("the POP did not answer a reconfigure");
              if (done)
                done("the POP did not answer the reconfigure");
            });
    return true;
  }

  // -- failures ------------------------------------------------------------------------

  void failed(const std::string& what) {
    stop_watches();
    ++attempt_gen_;
    tell(pop_follower_event::offline, what + "; serving what it last knew, again in "
                                        + std::to_string(backoff_ms_) + " ms or so");
    auto quarter = backoff_ms_ / 4;
    auto d = backoff_ms_ - quarter + (quarter ? p_.e.rng->uniform(2 * quarter) : 0);
    delayed_send(this, p_.e.clock->real_delay(milliseconds(d)), retry_atom::value,
                 attempt_gen_);
    backoff_ms_ = std::min(p_.limits.backoff_max_ms, backoff_ms_ * 2);
  }

  void tell(pop_follower_event::kind_t k, const std::string& what) {
    trace(what);
    if (p_.observer)
      send(p_.observer, pop_follower_event{k, what});
  }

  void trace(const std::string& what) {
    p_.e.trace->emit(p_.e.host, "pop-follower", what);
  }

  pop_follower_params p_;
  caf::actor client_;
  registry_view known_;
  pop_reconfigure applied_;
  uint64_t rv_[watched_kinds] = {0, 0, 0};
  bool registered_ = false;
  bool draining_ = false; // the POP drains: every status says so
  bool watching_ = false;
  bool apply_pending_ = false;
  uint64_t attempt_gen_ = 0; // a failure ends an attempt's callbacks
  uint64_t watch_gen_ = 0;
  uint64_t renew_gen_ = 0;
  uint32_t lease_s_ = 30;
  uint32_t backoff_ms_ = 0;
};

} // namespace

pop_reconfigure pop_follower_initial_config(const pop_follower_params& p, std::string& error) {
  registry_view v;
  if (!p.snapshot.empty())
    parse_snapshot(p.snapshot, p, v, error);
  return merge(p, v);
}

caf::actor spawn_pop_follower(caf::actor_system& sys, pop_follower_params p) {
  return sys.spawn<pop_follower_actor>(std::move(p));
}

} // namespace drtp::control
