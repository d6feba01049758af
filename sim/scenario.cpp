#include "sim/scenario.hpp"

#include <algorithm>
#include <cstdio>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "actors/agent.hpp"
#include "actors/http_client.hpp"
#include "actors/http_server.hpp"
#include "actors/messages.hpp"
#include "actors/pop_server.hpp"
#include "caf/all.hpp"
#include "control/agent_follower.hpp"
#include "control/auth.hpp"
#include "control/memory_store.hpp"
#include "control/pop_follower.hpp"
#include "control/registry.hpp"
#include "control/resource.hpp"
#include "net/openssl_crypto.hpp"
#include "net/wire/handshake.hpp"
#include "net/seam/assert.hpp"
#include "sim/driver.hpp"
#include "sim/invariants.hpp"

namespace drtp::sim {

net::login_key cached_login_key(const std::string& secret, const std::string& salt) {
  // A scenario starts POPs, agents and clients by the dozen and a property
  // test runs hundreds of scenarios over the same few secrets: scrypt (tens
  // of ms each) once per pair. Bounded: past the limit it starts afresh.
  static std::mutex mtx;
  static std::map<std::pair<std::string, std::string>, net::login_key> cache;
  constexpr size_t cache_entries_max = 4096;
  std::lock_guard<std::mutex> guard{mtx};
  auto k = std::make_pair(secret, salt);
  auto i = cache.find(k);
  if (i != cache.end())
    return i->second;
  if (cache.size() >= cache_entries_max)
    cache.clear();
  return cache.emplace(k, net::derive_login_key(secret, salt)).first->second;
}

namespace {

constexpr uint16_t tunnel_port = 7000;
constexpr uint16_t control_port = 8443;
constexpr uint16_t service_port_base = 5000;
/// The operator's token and the POP fleet's secret, with a control plane.
constexpr const char* admin_token = "drtp-sim-admin-token-0123456789abcdef";
constexpr const char* fleet_secret = "drtp-sim fleet secret";
constexpr const char* visitors_host = "visitors";
/// Probes at the end get this long to get through.
constexpr uint64_t probe_us = 10'000'000;

class runner {
public:
  runner(const scenario_spec& s, uint64_t seed, const run_options& opts)
    : s_(s), seed_(seed), opts_(opts), d_(seed), rng_(seed ^ 0xC0FFEEull) {
  }

  ~runner() {
    // Actor handles must not outlive the actor system inside d_; the
    // observers are idle, so nothing else would ever stop them.
    for (auto& o : observers_)
      caf::anon_send_exit(o, caf::exit_reason::kill);
    observers_.clear();
    pops_.clear();
    for (auto& a : {registry_, server_, store_})
      if (a)
        caf::anon_send_exit(a, caf::exit_reason::kill);
    registry_ = server_ = store_ = nullptr;
    d_.run_for(1);
  }

  scenario_report run();

private:
  // -- the phases of a run ---------------------------------------------------------

  void build_world();
  void run_plan();
  void run_to(uint64_t t);
  void settle(uint64_t last_fault_us);
  size_t start_probes();
  void await_probes(size_t first_probe);
  void check_leftovers();
  std::vector<std::string> stray_connections();
  std::map<std::string, uint64_t> pop_streams();
  scenario_report report(size_t first_probe);

  // -- the oracle: what the POPs and agents report ------------------------------

  caf::actor observer_for_pop(const std::string& pop) {
    auto self = this;
    auto a = d_.sys().spawn([self, pop](caf::event_based_actor*) -> caf::behavior {
      return {
        [self, pop](pop_status& st) { self->on_pop_status(pop, std::move(st)); },
        [](const pop_ready&) {},
        [](const pop_failed&) {},
        [](const pop_drained&) {},
      };
    });
    observers_.push_back(a);
    return a;
  }

  caf::actor observer_for_agent(const std::string& agent) {
    auto self = this;
    auto a = d_.sys().spawn([self, agent](caf::event_based_actor*) -> caf::behavior {
      return {
        [self, agent](const agent_event& ev) {
          self->on_agent_event(agent, ev);
        },
      };
    });
    observers_.push_back(a);
    return a;
  }

  void on_pop_status(const std::string& pop, pop_status st) {
    check_pop_status(view_, pop, st, violations_);
    view_.status[pop] = std::move(st);
    sample();
  }

  void on_agent_event(const std::string& agent, const agent_event& ev) {
    auto& prev = view_.agent_up[agent];
    if (ev.tunnels_up < prev)
      rec_.drops.push_back({d_.now_us(), agent});
    prev = ev.tunnels_up;
  }

  /// Records whether every agent is at target and every service reachable.
  void sample() {
    rec_.timeline.push_back(view_.sample(s_, d_.now_us()));
  }
  // -- actions ---------------------------------------------------------------------

  env make_env(const std::string& host) {
    env e;
    e.io = d_.net().io(host);
    e.trace = d_.trace();
    e.rng = net::make_seeded_entropy(seed_ * 7919 + ++salt_);
    e.crypto = net::make_openssl_crypto();
    e.host = host;
    e.limits = s_.limits;
    e.clock = clock_of(host); // survives restarts: the skew belongs to the machine
    return e;
  }

  /// The clock of `host`, made on first use.
  const std::shared_ptr<net::host_clock>& clock_of(const std::string& host) {
    auto& c = clocks_[host];
    if (!c)
      c = std::make_shared<net::host_clock>();
    return c;
  }

  static uint8_t key_of(size_t service_index) {
    return static_cast<uint8_t>(0x11 + 0x22 * service_index);
  }

  static net::login_key service_key(const std::string& secret,
                                          const std::string& service) {
    return cached_login_key(secret, net::service_salt(service));
  }

  void start_pop(const pop_spec& p) {
    pop_params pp;
    pp.e = make_env(p.name);
    pp.tunnel_port = tunnel_port;
    pp.drain_grace_ms = s_.drain_grace_ms;
    for (auto& svc : s_.services) {
      service_config sc;
      sc.name = svc.name;
      sc.public_key = service_key(svc.secret, svc.name).public_key;
      sc.public_port = svc.public_port;
      sc.is_public = svc.is_public;
      sc.allow = svc.allow;
      pp.services.push_back(std::move(sc));
    }
    for (auto& pr : s_.principals) {
      principal_config pc;
      pc.name = pr.name;
      pc.public_key = cached_login_key(pr.secret, net::principal_salt(pr.name)).public_key;
      pc.groups = pr.groups;
      pc.revoked = pr.revoked;
      pp.principals.push_back(std::move(pc));
    }
    pp.observer = observer_for_pop(p.name);
    control::pop_follower_params fp;
    if (p.control)
      follow_control(p, pp, fp);
    auto a = spawn_pop_server(d_.sys(), std::move(pp));
    d_.net().register_actor(p.name, a);
    if (p.control) {
      fp.pop = a;
      d_.net().register_actor(p.name, control::spawn_pop_follower(d_.sys(), std::move(fp)));
    }
    pops_[p.name] = a;
    view_.pop_alive[p.name] = true;
    view_.status.erase(p.name);
    sample();
  }

  /// What agents and patch-panel clients share: the failover controller.
  agent_params controller_params(const std::string& host,
                                 const std::vector<std::string>& pops,
                                 uint32_t tunnels, const std::string& service) {
    agent_params ap;
    ap.e = make_env(host);
    for (auto& p : s_.pops)
      if (pops.empty() || std::find(pops.begin(), pops.end(), p.name) != pops.end())
        ap.pops.push_back(pop_endpoint{p.name, p.name, tunnel_port, p.region});
    ap.tunnels_target = tunnels;
    ap.tls = std::make_shared<net::tls_client_config>(); // the sim is trusted
    ap.service = service;
    return ap;
  }

  void start_agent(const agent_spec& a) {
    auto si = service_index(s_, a.service);
    auto& svc = s_.services[si];
    auto app = spawn_app_service(d_.sys(), d_.net().io(a.name),
                                 static_cast<uint16_t>(service_port_base + si),
                                 key_of(si));
    d_.net().register_actor(a.name, app);
    auto ap = controller_params(a.name, a.pops, a.tunnels, a.service);
    ap.agent_id = a.name;
    ap.signing_key = service_key(a.secret.empty() ? svc.secret : a.secret, svc.name).seed;
    ap.local_host = a.name;
    ap.local_port = static_cast<uint16_t>(service_port_base + si);
    ap.resume_timeout_ms = s_.resume_timeout_ms;
    ap.observer = observer_for_agent(a.name);
    if (a.control) {
      start_agent_follower(a, std::move(ap));
      return;
    }
    auto agent = spawn_agent(d_.sys(), std::move(ap));
    d_.net().register_actor(a.name, agent);
  }

  // -- the control plane ---------------------------------------------------------------

  bool has_control() const {
    return !s_.control.name.empty();
  }

  std::string ops_host() const {
    return s_.control.name + "-ops";
  }

  static const net::login_key& fleet_key() {
    static const auto k = cached_login_key(fleet_secret, control::pop_fleet_salt());
    return k;
  }

  /// The registry and its server on the store, which outlives them.
  void start_control() {
    control::registry_params p;
    p.e = make_env(s_.control.name);
    p.store = store_;
    p.admin_token_digest = control::admin_token_digest(*p.e.crypto, admin_token);
    p.pop_public_key = fleet_key().public_key;
    registry_ = control::spawn_registry(d_.sys(), std::move(p));
    http_server_params sp;
    sp.e = make_env(s_.control.name);
    sp.host = s_.control.name;
    sp.port = control_port;
    sp.tls = true;
    sp.handler = registry_;
    server_ = spawn_http_server(d_.sys(), sp);
    d_.net().register_actor(s_.control.name, registry_);
    d_.net().register_actor(s_.control.name, server_);
  }

  http_client_params control_client(const std::string& host) {
    http_client_params cp;
    cp.e = make_env(host);
    cp.host = s_.control.name;
    cp.port = control_port;
    cp.tls = std::make_shared<net::tls_client_config>(); // the sim is trusted
    return cp;
  }

  /// One request of the operator's (drtpctl) through a fresh client; its
  /// answer goes to the trace.
  void api(const std::string& method, const std::string& rest, std::string body) {
    auto cp = control_client(ops_host());
    cp.authorization = [](const std::string&) { return std::string("Bearer ") + admin_token; };
    auto client = spawn_http_client(d_.sys(), std::move(cp));
    http_fetch f{method, std::string(control::api_base) + "/" + rest, {}, std::move(body)};
    if (!f.body.empty())
      f.headers.emplace_back("Content-Type", "application/json");
    auto trace = d_.trace();
    auto host = ops_host();
    auto what = method + " " + rest;
    d_.sys().spawn([=](caf::event_based_actor* self) {
      auto done = [=](const std::string& answer) {
        trace->emit(host, "operator", what + ": " + answer);
        self->send_exit(client, caf::exit_reason::user_shutdown);
      };
      self->request(client, std::chrono::seconds(30), f)
        .then([=](http::response& r) { done("HTTP " + std::to_string(r.status)); },
              [=](caf::error& e) { done(describe_http_error(e)); });
    });
  }

  void create_service(const service_spec& svc) {
    nlohmann::json j = {
      {"apiVersion", "drtp.dev/v1"},
      {"kind", "DRTPConnection"},
      {"metadata", {{"name", svc.name}}},
      {"spec",
       {{"protocol", "tcp"},
        {"local", "localhost:" + std::to_string(service_port_base)}, // agents say theirs
        {"publicPort", svc.public_port},
        {"publicKey", control::public_key_text(service_key(svc.secret, svc.name).public_key)}}}};
    api("PUT", "drtpconnections/" + svc.name, j.dump());
    view_.unregistered.erase(svc.name);
  }

  void delete_service(const std::string& name) {
    api("DELETE", "drtpconnections/" + name, "");
    view_.unregistered.insert(name);
  }

  /// A POP of the control plane's: its follower, and its pop_server's
  /// services from what the follower last knew (kept across crashes).
  void follow_control(const pop_spec& p, pop_params& pp, control::pop_follower_params& fp) {
    fp.e = make_env(p.name);
    fp.http = control_client(p.name);
    fp.fleet_seed = fleet_key().seed;
    fp.name = p.name;
    fp.spec.region = p.region;
    fp.spec.tunnel_host = p.name;
    fp.spec.tunnel_port = tunnel_port;
    fp.spec.public_address = p.name;
    fp.spec.pin = "sha256:" + std::string(64, 'a');
    fp.spec.capacity_tunnels = 1000;
    fp.public_host = p.name;
    fp.static_principals = pp.principals;
    auto snap = snapshot_of(p.name);
    fp.snapshot = *snap;
    fp.persist = [snap](const std::string& text) { *snap = text; };
    std::string err;
    auto initial = control::pop_follower_initial_config(fp, err);
    pp.services = std::move(initial.services);
    pp.principals = std::move(initial.principals);
  }

  /// `drtp serve --control`: the follower spawns the agent from `ap`.
  void start_agent_follower(const agent_spec& a, agent_params ap) {
    auto cp = control_client(a.name);
    auto crypto = cp.e.crypto;
    auto seed = ap.signing_key;
    auto service = ap.service;
    cp.authorization = [crypto, seed, service](const std::string& binding) {
      return control::auth_header(*crypto, control::kind_service, service, seed, binding);
    };
    auto http = spawn_http_client(d_.sys(), std::move(cp));
    d_.net().register_actor(a.name, http);
    control::agent_follower_params fp;
    fp.e = make_env(a.name);
    fp.http = http;
    ap.pops.clear();
    fp.agent = std::move(ap);
    auto snap = snapshot_of("agent " + a.name);
    fp.snapshot = *snap;
    fp.save_snapshot = [snap](const std::string& text) { *snap = text; };
    fp.status_interval_ms = 5000;
    auto f = control::spawn_agent_follower(d_.sys(), std::move(fp));
    d_.net().register_actor(a.name, f);
  }

  std::shared_ptr<std::string> snapshot_of(const std::string& who) {
    auto& p = snapshots_[who];
    if (!p)
      p = std::make_shared<std::string>();
    return p;
  }

  void start_client(const client_spec& c) {
    auto ap = controller_params(c.name, c.pops, c.tunnels, c.service);
    ap.agent_id = c.principal;
    auto pr = principal_of(s_, c);
    ap.signing_key = cached_login_key(!c.secret.empty() ? c.secret
                                                        : (pr ? pr->secret : "unknown"),
                                      net::principal_salt(c.principal))
                       .seed;
    ap.client = true;
    ap.listen_host = c.name;
    ap.listen_port = c.listen_port;
    ap.resume_timeout_ms = s_.resume_timeout_ms;
    ap.observer = observer_for_agent(c.name);
    auto a = spawn_agent(d_.sys(), std::move(ap));
    d_.net().register_actor(c.name, a);
  }

  void start_visit(const workload_spec& w, uint32_t i, bool probe = false,
                   const std::string& forced_pop = "") {
    auto si = service_index(s_, w.service);
    visit_record v;
    v.probe = probe;
    std::vector<std::string> serving;
    for (auto& p : s_.pops)
      if (view_.serves(s_, p.name, w.service))
        serving.push_back(p.name);
    if (!w.via.empty()) {
      auto c = client_named(s_, w.via);
      DRTP_ASSERT(c != nullptr, "a validated workload goes via a known client");
      v.via = w.via;
      v.pop = "(patch panel)";
      v.serving = authorized(s_, *c) && w.service == c->service;
      visitor_params vp;
      vp.io = d_.net().io(c->name);
      vp.host = c->name;
      vp.port = c->listen_port;
      vp.kind = w.kind;
      vp.bytes = w.bytes;
      vp.rounds = w.rounds;
      vp.seed = seed_ * 1'000'003 + rec_.visits.size();
      vp.key = key_of(si);
      vp.connect_timeout_ms = 5000;
      vp.result = std::make_shared<visitor_result>();
      vp.now_us = [this] { return d_.now_us(); };
      v.result = vp.result;
      rec_.visits.push_back(v);
      spawn_visitor(d_.sys(), std::move(vp));
      return;
    }
    if (!forced_pop.empty())
      v.pop = forced_pop;
    else if (!w.pop.empty())
      v.pop = w.pop;
    else if (!serving.empty())
      v.pop = serving[rng_() % serving.size()];
    else
      v.pop = s_.pops[rng_() % s_.pops.size()].name;
    v.serving = view_.serves(s_, v.pop, w.service);
    visitor_params vp;
    if (forced_pop.empty() && w.pop.empty())
      for (auto& p : serving)
        if (p != v.pop)
          vp.fallback_hosts.push_back(p);
    vp.io = d_.net().io(visitors_host);
    vp.host = v.pop;
    vp.port = s_.services[si].public_port;
    vp.kind = w.kind;
    vp.bytes = w.bytes;
    vp.rounds = w.rounds;
    vp.seed = seed_ * 1'000'003 + rec_.visits.size();
    vp.key = key_of(si);
    vp.result = std::make_shared<visitor_result>();
    vp.now_us = [this] { return d_.now_us(); };
    v.result = vp.result;
    rec_.visits.push_back(v);
    (void) i;
    spawn_visitor(d_.sys(), std::move(vp));
  }

  uint64_t slack_us() const {
    // Time to notice a dead peer and route around it.
    return uint64_t{s_.limits.heartbeat_interval_ms}
             * (s_.limits.heartbeat_misses_max + 2) * 1000
           + 2'000'000;
  }

  /// Applies the fault at index `index` of the scenario now and records it;
  /// each kind returns when its effect ends (UINT64_MAX: when healed).
  void apply(const fault_spec& f, size_t index) {
    auto now = d_.now_us();
    uint64_t end_of_effect = UINT64_MAX;
    switch (f.kind) {
      case fault_kind::crash:
      case fault_kind::crash_silent:
        end_of_effect = apply_crash(f);
        break;
      case fault_kind::restart:
        end_of_effect = apply_restart(f);
        break;
      case fault_kind::drain:
        if (pops_.count(f.a))
          caf::anon_send(pops_[f.a], drain_atom::value);
        view_.pop_alive[f.a] = false;
        end_of_effect = effect_end(f);
        break;
      case fault_kind::partition:
        end_of_effect = apply_partition(f);
        break;
      case fault_kind::heal:
        heal(f.a, f.b);
        end_of_effect = now;
        break;
      case fault_kind::clock_skew:
        end_of_effect = apply_clock_skew(f);
        break;
      case fault_kind::latency_spike:
      case fault_kind::loss_burst:
        end_of_effect = apply_link_fault(f);
        break;
      case fault_kind::create_service:
        create_service(s_.services[service_index(s_, f.a)]);
        end_of_effect = now;
        break;
      case fault_kind::delete_service:
        delete_service(f.a);
        end_of_effect = now;
        break;
    }
    record_fault(f, index, now, end_of_effect);
    sample();
  }

  uint64_t effect_end(const fault_spec& f) const {
    return f.duration_us > 0 ? d_.now_us() + f.duration_us : UINT64_MAX;
  }

  uint64_t apply_crash(const fault_spec& f) {
    d_.net().crash(f.a, f.kind == fault_kind::crash ? crash_mode::reset
                                                    : crash_mode::silent);
    if (view_.pop_alive.count(f.a))
      view_.pop_alive[f.a] = false;
    return effect_end(f);
  }

  /// A crashed host comes back with what ran on it; a drained POP starts anew.
  uint64_t apply_restart(const fault_spec& f) {
    auto& w = d_.net();
    bool crashed = !w.is_up(f.a);
    if (crashed)
      w.restart(f.a);
    if (crashed && f.a == s_.control.name)
      start_control();
    for (auto& p : s_.pops)
      if (p.name == f.a && !view_.pop_alive[p.name]) // crashed or drained
        start_pop(p);
    for (auto& a : s_.agents)
      if (a.name == f.a && crashed)
        start_agent(a);
    for (auto& c : s_.clients)
      if (c.name == f.a && crashed)
        start_client(c);
    return d_.now_us();
  }

  uint64_t apply_partition(const fault_spec& f) {
    d_.net().partition(f.a, f.b, f.both_ways);
    view_.cut.insert({f.a, f.b});
    if (f.both_ways)
      view_.cut.insert({f.b, f.a});
    if (f.duration_us > 0)
      later_.push_back({d_.now_us() + f.duration_us, [this, f] { heal(f.a, f.b); }});
    return effect_end(f);
  }

  uint64_t apply_clock_skew(const fault_spec& f) {
    clock_of(f.a)->set_rate(d_.sys().clock().now(), f.rate);
    if (f.duration_us > 0)
      later_.push_back({d_.now_us() + f.duration_us, [this, host = f.a] {
                          clock_of(host)->set_rate(d_.sys().clock().now(), 1.0);
                        }});
    return effect_end(f);
  }

  /// A latency spike or loss burst on one link, restored after its duration
  /// (a second if none is given).
  uint64_t apply_link_fault(const fault_spec& f) {
    link_params p = s_.default_link;
    for (auto& l : s_.links)
      if ((l.a == f.a && l.b == f.b) || (l.a == f.b && l.b == f.a))
        p = l.p;
    auto spiked = p;
    if (f.kind == fault_kind::latency_spike)
      spiked.latency_us = f.latency_us;
    else
      spiked.loss = f.loss;
    d_.net().set_link(f.a, f.b, spiked);
    auto restore_at = d_.now_us() + (f.duration_us > 0 ? f.duration_us : 1'000'000);
    later_.push_back({restore_at, [this, f, p] { d_.net().set_link(f.a, f.b, p); }});
    return restore_at;
  }

  void record_fault(const fault_spec& f, size_t index, uint64_t now,
                    uint64_t end_of_effect) {
    fault_record rec;
    rec.at_us = now;
    rec.kind = f.kind;
    rec.host = f.a;
    // A heal or restart ends earlier faults' windows at the same time.
    rec.window = {now, end_of_effect == UINT64_MAX ? UINT64_MAX
                                                   : end_of_effect + slack_us()};
    rec.outcome.what = std::string(to_string(f.kind)) + " " + f.a
                       + (f.b.empty() ? "" : (f.both_ways ? " <-> " : " -> ") + f.b)
                       + " at " + secs(now);
    rec_.faults.push_back(std::move(rec));
    DRTP_ASSERT(rec_.faults.size() == index + 1,
                "faults are applied once each, in the order of the scenario");
  }

  void heal(const std::string& a, const std::string& b) {
    d_.net().heal(a, b);
    view_.cut.erase({a, b});
    view_.cut.erase({b, a});
    // Faults that were waiting for this heal end now (plus slack).
    for (auto& f : rec_.faults)
      if (f.window.to_us == UINT64_MAX)
        f.window.to_us = d_.now_us() + slack_us();
    sample();
  }

  const scenario_spec& s_;
  uint64_t seed_;
  run_options opts_;
  driver d_;
  std::mt19937_64 rng_;
  uint64_t salt_ = 0;
  std::vector<caf::actor> observers_;
  std::map<std::string, caf::actor> pops_;
  std::map<std::string, std::shared_ptr<net::host_clock>> clocks_;
  world_view view_;
  run_record rec_;
  std::vector<std::pair<uint64_t, std::function<void()>>> later_;
  violations violations_;
  caf::actor store_, registry_, server_; // the control plane, if any
  /// What each control-plane follower last saved (the POP's registry.json,
  /// the agent's state dir): it survives their crashes.
  std::map<std::string, std::shared_ptr<std::string>> snapshots_;
};

void runner::build_world() {
  auto& w = d_.net();
  w.set_default_link(s_.default_link);
  for (auto& p : s_.pops) {
    w.add_host(p.name);
    view_.pop_alive[p.name] = false;
  }
  for (auto& a : s_.agents) {
    w.add_host(a.name);
    auto& svc = s_.services[service_index(s_, a.service)];
    if (!a.secret.empty() && a.secret != svc.secret)
      view_.bad_agents.insert(a.name);
  }
  for (auto& a : s_.agents)
    rec_.agent_hosts.insert(a.name);
  for (auto& c : s_.clients)
    w.add_host(c.name);
  w.add_host(visitors_host);
  if (has_control()) {
    w.add_host(s_.control.name);
    w.add_host(ops_host());
  }
  for (auto& l : s_.links)
    w.set_link(l.a, l.b, l.p);
  if (has_control()) {
    store_ = control::spawn_memory_store(d_.sys(), control::memory_store_params{});
    start_control();
    for (auto& svc : s_.services)
      if (svc.registered)
        create_service(svc);
      else
        view_.unregistered.insert(svc.name);
    d_.run_for(500'000); // the services are in the registry before anyone asks
  }
  for (auto& p : s_.pops)
    start_pop(p);
  for (auto& a : s_.agents)
    start_agent(a);
  for (auto& c : s_.clients)
    start_client(c);
}

/// One timeline of actions, faults and visitor starts in time order, run up
/// to the scenario's duration.
void runner::run_plan() {
  struct action {
    uint64_t t;
    int order; // faults before visits at the same instant
    std::function<void()> run;
  };
  std::vector<action> plan;
  for (size_t i = 0; i < s_.faults.size(); ++i)
    plan.push_back({s_.faults[i].at_us, 0, [this, i] { apply(s_.faults[i], i); }});
  for (auto& wl : s_.workload)
    for (uint32_t i = 0; i < wl.count; ++i)
      plan.push_back({wl.start_us + i * wl.spacing_us, 1,
                      [this, &wl, i] { start_visit(wl, i); }});
  std::stable_sort(plan.begin(), plan.end(), [](const action& a, const action& b) {
    return a.t != b.t ? a.t < b.t : a.order < b.order;
  });
  for (auto& a : plan) {
    if (a.t > s_.duration_us)
      break;
    run_to(a.t);
    a.run();
  }
}

/// Runs the world to `t`; deferred restores (end of a spike, timed heals)
/// interleave with the plan.
void runner::run_to(uint64_t t) {
  for (;;) {
    auto next = std::min_element(later_.begin(), later_.end(),
                                 [](auto& a, auto& b) { return a.first < b.first; });
    if (next == later_.end() || next->first > t)
      break;
    if (next->first > d_.now_us())
      d_.run_for(next->first - d_.now_us());
    auto fn = std::move(next->second);
    later_.erase(next);
    fn();
  }
  if (t > d_.now_us())
    d_.run_for(t - d_.now_us());
}

/// Lets the workload finish and the system heal before the liveness checks.
void runner::settle(uint64_t last_fault_us) {
  auto settle_until = std::max(last_fault_us + s_.quiet_us, d_.now_us() + 1'000'000);
  run_to(std::min(settle_until, std::max(s_.duration_us, last_fault_us + s_.quiet_us)));
  auto all_done = [&] {
    return std::all_of(rec_.visits.begin(), rec_.visits.end(),
                       [](const visit_record& v) { return v.result->done; });
  };
  d_.run_until(all_done, s_.duration_us > d_.now_us() ? s_.duration_us - d_.now_us()
                                                      : 1'000'000);
  run_to(d_.now_us()); // flush deferred restores that are due
}

/// Probes of liveness: every service through every POP that holds a tunnel
/// for it and that visitors can reach, and through every authorized
/// patch-panel client that is up. Returns the index of the first.
size_t runner::start_probes() {
  size_t first_probe = rec_.visits.size();
  for (auto& svc : s_.services)
    for (auto& p : s_.pops)
      if (view_.serves(s_, p.name, svc.name) && !view_.cut.count({visitors_host, p.name})
          && !view_.cut.count({p.name, visitors_host})) {
        workload_spec probe;
        probe.service = svc.name;
        probe.bytes = 4096;
        start_visit(probe, 0, true, p.name);
      }
  // A service the registry no longer has answers through no POP.
  for (auto& name : view_.unregistered)
    for (auto& p : s_.pops)
      if (view_.pop_alive[p.name] && !view_.cut.count({visitors_host, p.name})
          && !view_.cut.count({p.name, visitors_host})) {
        workload_spec probe;
        probe.service = name;
        probe.bytes = 4096;
        start_visit(probe, 0, true, p.name);
        rec_.visits.back().must_fail = true;
      }
  for (auto& c : s_.clients)
    if (authorized(s_, c) && d_.net().is_up(c.name)) {
      workload_spec probe;
      probe.service = c.service;
      probe.bytes = 4096;
      probe.via = c.name;
      start_visit(probe, 0, true);
    }
  return first_probe;
}

void runner::await_probes(size_t first_probe) {
  d_.run_until([&] {
    for (size_t i = first_probe; i < rec_.visits.size(); ++i)
      if (!rec_.visits[i].result->done)
        return false;
    return true;
  }, probe_us);
  // Let the far ends of the last sessions finish their goodbyes too, so the
  // run ends with no session half done.
  d_.run_for(1'000'000);
}

/// Once every visitor is done, no POP, agent or client holds a session,
/// resumable session, splice or socket for one: the far ends get their
/// goodbyes, and a session left without a path its resume timeout.
void runner::check_leftovers() {
  bool all_done = std::all_of(rec_.visits.begin(), rec_.visits.end(),
                              [](const visit_record& v) { return v.result->done; });
  if (!all_done)
    return; // a hang, reported as such by check_sessions
  auto clean = [&] { return d_.census().empty() && stray_connections().empty(); };
  d_.run_until(clean, uint64_t{s_.resume_timeout_ms} * 1000 + slack_us());
  for (auto& [host, kinds] : d_.census())
    for (auto& [kind, n] : kinds)
      violations_.add("leftover: " + host + " holds " + std::to_string(n) + " " + kind
                      + "(s) " + secs(d_.now_us()) + " into the run, with every "
                      + "visitor done");
  for (auto& c : stray_connections())
    violations_.add("leftover: connection " + c + " open with every visitor done");
  for (auto& [pop, streams] : pop_streams())
    if (streams > 0)
      violations_.add("leftover: " + pop + " lists " + std::to_string(streams)
                      + " stream(s) on its agents' tunnels with every visitor done");
}

/// Open connections that are neither tunnels nor the control plane's (its
/// followers watch it for good).
std::vector<std::string> runner::stray_connections() {
  auto all = d_.net().open_connections_off_port(tunnel_port);
  if (!has_control())
    return all;
  auto port = ":" + std::to_string(control_port);
  std::vector<std::string> out;
  for (auto& c : all)
    if (c.find(port + " ") == std::string::npos && c.substr(c.size() - port.size()) != port)
      out.push_back(c);
  return out;
}

/// What each live POP's status report says its agents' tunnels carry.
std::map<std::string, uint64_t> runner::pop_streams() {
  auto out = std::make_shared<std::map<std::string, uint64_t>>();
  for (auto& [name, pop] : pops_) {
    if (!d_.net().is_up(name))
      continue;
    d_.sys().spawn([out, name = name, pop = pop](caf::event_based_actor* self) {
      self->request(pop, std::chrono::seconds(1), status_atom::value, report_atom::value)
        .then(
          [out, name](const std::string& report) {
            // "service db: 2 tunnel(s), 0 stream(s), agents [...]"
            uint64_t n = 0;
            for (auto at = report.find(" stream(s)"); at != std::string::npos;
                 at = report.find(" stream(s)", at + 1)) {
              auto from = report.rfind(' ', at - 1);
              n += std::stoull(report.substr(from + 1, at - from - 1));
            }
            (*out)[name] = n;
          },
          [](const caf::error&) {});
    });
  }
  d_.run_for(100'000);
  return *out;
}

/// Safety over every session, what each fault cost, the expectations.
scenario_report runner::report(size_t first_probe) {
  scenario_report rep;
  rep.name = s_.name;
  rep.seed = seed_;
  check_sessions(s_, rec_, first_probe, rep, violations_);
  rep.faults = fault_outcomes(rec_);
  rep.expectations = check_expectations(s_, rec_, rep);
  rep.violations = violations_.list();
  rep.trace_hash = d_.trace_hash();
  rep.steps = d_.steps();
  rep.virtual_us = d_.now_us();
  if (opts_.keep_trace)
    rep.trace = d_.trace_lines();
  return rep;
}

scenario_report runner::run() {
  build_world();
  run_plan();
  uint64_t last_fault_us = 0;
  for (auto& f : s_.faults)
    last_fault_us = std::max(last_fault_us, f.at_us + f.duration_us);
  settle(last_fault_us);
  // Liveness: every agent at min(K, reachable POPs), every service reachable.
  sample();
  check_agents(s_, view_, violations_);
  auto first_probe = start_probes();
  await_probes(first_probe);
  check_probes(rec_, first_probe, violations_);
  check_leftovers();
  return report(first_probe);
}

} // namespace

const char* to_string(fault_kind k) noexcept {
  switch (k) {
    case fault_kind::crash: return "crash";
    case fault_kind::crash_silent: return "crash-silent";
    case fault_kind::restart: return "restart";
    case fault_kind::drain: return "drain";
    case fault_kind::partition: return "partition";
    case fault_kind::heal: return "heal";
    case fault_kind::latency_spike: return "latency-spike";
    case fault_kind::loss_burst: return "loss-burst";
    case fault_kind::clock_skew: return "clock-skew";
    case fault_kind::create_service: return "create-service";
    case fault_kind::delete_service: return "delete-service";
  }
  return "?";
}

bool scenario_report::ok() const {
  if (!violations.empty())
    return false;
  for (auto& e : expectations)
    if (!e.ok)
      return false;
  return true;
}

namespace {

/// The names a scenario defines, collected as validate() checks them.
struct names {
  std::set<std::string> hosts{visitors_host};
  std::set<std::string> pops;
  std::set<std::string> services;
};

std::string validate_pops_and_services(const scenario_spec& s, names& n) {
  if (s.pops.empty())
    return "a scenario needs at least one POP";
  if (s.services.empty())
    return "a scenario needs at least one service";
  for (auto& p : s.pops) {
    if (p.name.empty() || !n.hosts.insert(p.name).second)
      return "POP name '" + p.name + "' is empty or used twice";
    n.pops.insert(p.name);
  }
  std::set<uint16_t> ports;
  for (auto& svc : s.services) {
    if (svc.name.empty() || !n.services.insert(svc.name).second)
      return "service name '" + svc.name + "' is empty or used twice";
    if (svc.public_port == tunnel_port || !ports.insert(svc.public_port).second)
      return "service '" + svc.name + "' has a public port that is taken";
  }
  return "";
}

/// Agents and patch-panel clients are both failover controllers on a host.
std::string validate_controller(names& n, const std::string& kind,
                                const std::string& name, const std::string& service,
                                uint32_t tunnels,
                                const std::vector<std::string>& pop_names) {
  if (name.empty() || !n.hosts.insert(name).second)
    return kind + " name '" + name + "' is empty or used twice";
  if (!n.services.count(service))
    return kind + " '" + name + "' names unknown service '" + service + "'";
  if (tunnels < 1 || tunnels > tunnels_target_max)
    return kind + " '" + name + "': tunnels must be 1-3";
  for (auto& p : pop_names)
    if (!n.pops.count(p))
      return kind + " '" + name + "' names unknown POP '" + p + "'";
  return "";
}

std::string validate_hosts(const scenario_spec& s, names& n) {
  for (auto& a : s.agents)
    if (auto err = validate_controller(n, "agent", a.name, a.service, a.tunnels, a.pops);
        !err.empty())
      return err;
  std::set<std::string> principals;
  for (auto& p : s.principals)
    if (p.name.empty() || !principals.insert(p.name).second)
      return "principal name '" + p.name + "' is empty or used twice";
  for (auto& c : s.clients)
    if (auto err = validate_controller(n, "client", c.name, c.service, c.tunnels, c.pops);
        !err.empty())
      return err;
  for (auto& l : s.links)
    if (!n.hosts.count(l.a) || !n.hosts.count(l.b))
      return "link " + l.a + " - " + l.b + " names an unknown host";
  return "";
}

std::string validate_workload(const scenario_spec& s, const names& n) {
  for (auto& w : s.workload) {
    if (!n.services.count(w.service))
      return "workload for unknown service '" + w.service + "'";
    if (!w.pop.empty() && !n.pops.count(w.pop))
      return "workload names unknown POP '" + w.pop + "'";
    if (!w.via.empty() && client_named(s, w.via) == nullptr)
      return "workload goes via unknown client '" + w.via + "'";
    if (w.count > 100000)
      return "workload count above 100000";
  }
  return "";
}

/// The control plane's host, and who may follow it.
std::string validate_control(const scenario_spec& s, names& n) {
  bool control = !s.control.name.empty();
  if (control && !n.hosts.insert(s.control.name).second)
    return "control plane name '" + s.control.name + "' is used twice";
  if (control && !n.hosts.insert(s.control.name + "-ops").second)
    return "host name '" + s.control.name + "-ops' is the control plane operator's";
  for (auto& p : s.pops)
    if (p.control && !control)
      return "POP '" + p.name + "' follows the control plane, but there is none ('control')";
  for (auto& a : s.agents)
    if (a.control && !control)
      return "agent '" + a.name + "' follows the control plane, but there is none ('control')";
  for (auto& svc : s.services)
    if (control && (!svc.is_public || !svc.allow.empty()))
      return "service '" + svc.name + "': with a control plane, services are public "
             "(the registry's principals are not in the simulator yet)";
  return "";
}

std::string validate_faults(const scenario_spec& s, const names& n) {
  for (auto& f : s.faults) {
    if (f.kind == fault_kind::create_service || f.kind == fault_kind::delete_service) {
      if (s.control.name.empty())
        return std::string(to_string(f.kind)) + " needs a control plane ('control')";
      if (!n.services.count(f.a))
        return std::string(to_string(f.kind)) + " names unknown service '" + f.a + "'";
      continue;
    }
    if (!n.hosts.count(f.a))
      return std::string(to_string(f.kind)) + " names unknown host '" + f.a + "'";
    bool pair = f.kind == fault_kind::partition || f.kind == fault_kind::heal
                || f.kind == fault_kind::latency_spike
                || f.kind == fault_kind::loss_burst;
    if (pair && !n.hosts.count(f.b))
      return std::string(to_string(f.kind)) + " needs a second host, got '" + f.b + "'";
    if (f.kind == fault_kind::drain && !n.pops.count(f.a))
      return "drain names '" + f.a + "', which is not a POP";
    if (f.kind == fault_kind::clock_skew && (f.rate < 0.5 || f.rate > 2.0))
      return "clock skew rate must be between 0.5 and 2";
  }
  for (auto& e : s.expectations)
    if (e.kind != expectation_kind::sessions_failed_max && e.fault >= s.faults.size())
      return "an expectation refers to fault " + std::to_string(e.fault)
             + ", but there are only " + std::to_string(s.faults.size());
  return "";
}

} // namespace

std::string validate(const scenario_spec& s) {
  names n;
  if (auto err = validate_pops_and_services(s, n); !err.empty())
    return err;
  if (auto err = validate_hosts(s, n); !err.empty())
    return err;
  if (auto err = validate_control(s, n); !err.empty())
    return err;
  if (auto err = validate_workload(s, n); !err.empty())
    return err;
  return validate_faults(s, n);
}

scenario_report run_scenario(const scenario_spec& s, uint64_t seed,
                             const run_options& opts) {
  runner r{s, seed, opts};
  return r.run();
}

std::string summarize(const scenario_report& r) {
  std::ostringstream out;
  out << "scenario " << r.name << ", seed " << r.seed << ": "
      << (r.ok() ? "PASS" : "FAIL") << "\n";
  out << "  sessions: " << r.sessions_ok << " ok, " << r.sessions_failed
      << " failed (" << r.sessions_excused << " during faults) of " << r.sessions
      << "; " << r.bytes_sent << " bytes sent, " << r.bytes_back << " back\n";
  if (r.patch_sessions > 0)
    out << "  patch panel: " << r.patch_sessions_ok << " of " << r.patch_sessions
        << " sessions ok\n";
  for (auto& f : r.faults) {
    out << "  fault: " << f.what;
    if (f.detected_us >= 0)
      out << "; detected after " << secs(static_cast<uint64_t>(f.detected_us));
    if (f.restored_us >= 0)
      out << "; tunnels at target after " << secs(static_cast<uint64_t>(f.restored_us));
    out << "\n";
  }
  for (auto& f : r.failed_examples)
    out << "  failed: " << f << "\n";
  for (auto& e : r.expectations)
    out << "  expect " << e.what << ": " << (e.ok ? "ok" : "FAILED") << " ("
        << e.detail << ")\n";
  for (auto& v : r.violations)
    out << "  VIOLATION " << v << "\n";
  char hash[32];
  std::snprintf(hash, sizeof(hash), "%016llx",
                static_cast<unsigned long long>(r.trace_hash));
  out << "  virtual time " << secs(r.virtual_us) << ", " << r.steps
      << " steps, trace hash " << hash << "\n";
  return out.str();
}

} // namespace drtp::sim
