// Property (issue 14, "the data plane keeps working without the control
// plane"): the control plane's logic runs as actors over the seam, so the
// simulator runs all of it. Per seed, a world of
//   - "control": the registry and its http_server over a memory store (the
//     store is the disk: it survives a crash of the host, whose registry and
//     http_server are killed and spawned again on it),
//   - 3 or 4 POPs, each a pop_server and its pop_follower (its snapshot kept
//     in memory across crashes, as drtp-pop keeps registry.json),
//   - two `drtp serve`s (agent_follower + agent, K = 2) for two services
//     that are never deleted, and a plain agent (K = 2) beside each service
//     the schedule creates,
//   - visitors,
// and a random schedule, interleaved: services created, moved to another
// public port and deleted (with sessions in flight) through the API;
// control-plane crashes (reset or silent) and restarts; the control host
// cut off from every POP; partitions between the control plane and one
// POP (both ways, or one way in either direction); POP crashes and
// restarts. Then everything heals and is restarted, and a quiet period.
//
// Invariants, over the whole run:
//  (a) once a change has reached a POP (its pop_server answered a
//      reconfigure without the port, or was spawned without it), no visitor
//      that starts after that reaches the port there: it is refused or gets
//      nothing back. And a POP never serves a retired port again once it
//      dropped it (no resurrection from a stale snapshot or a stale watch).
//      Visitors never see a wrong byte (isolation).
//  (b) at the end, after healing, every agent holds K up tunnels, all on
//      POPs the registry says are ready, and every POP serves exactly the
//      registry's services.
//  (c) a change reaches every POP within `reach_bound_us` of the later of
//      the change and the moment the POP last became reachable (up, the
//      control plane up, no partition between them). The max is printed.
//
// Seeds: DRTP_CONTROL_SEEDS (default 30) runs seeds 1..N; one seed is run
// twice for the same trace. Each run is bounded in virtual time (~170 s).
// A failure names its seed; DRTP_CONTROL_SEED=S runs only seed S, and
// DRTP_SIM_TRACE=1 prints its trace.

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

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
#include "net/wire/handshake.hpp"
#include "sim/apps.hpp"
#include "sim/rig.hpp"
#include "sim/scenario.hpp"

using namespace drtp;
using namespace drtp::control;
using json = nlohmann::json;

namespace {

constexpr uint16_t control_port = 8443;
constexpr uint16_t tunnel_port = 7000;
constexpr uint16_t agent_local_port = 5432;
constexpr uint64_t sec = 1'000'000;
constexpr uint64_t faults_end_us = 90 * sec; // the schedule's events fall before this
constexpr uint64_t quiet_us = 60 * sec;      // then everything heals; liveness after this

/// The bound of (c). After the POP became reachable its follower may still
///  - sit on a watch that died silently (a control plane crashed without a
///    reset): http_client notices a watch silent for watch_idle_timeout_ms
///    by an activity count checked once per that period, so it takes up to
///    twice that (seed 222 of 400: 50.7 s, most of it this),
///  - or wait for a request sent into the outage: pop_follower's
///    fetch_timeout_ms,
///  - then back off: at most backoff_max_ms + 25 % jitter,
///  - then register, list and apply: a few round trips and debounce_ms.
/// The lease does not enter: a POP follows the registry whether or not its
/// lease is current. With the defaults: 60 + 10 + 12.5 + 0.05 s, plus 2 s
/// for the round trips and the pop_server: 84.55 s. Seeds 1-30 see at most
/// 30.5 s, seeds 1-400 50.7 s.
uint64_t reach_bound_us() {
  pop_follower_limits l;
  http_client_params h;
  return uint64_t{h.watch_idle_timeout_ms} * 2000 + uint64_t{l.fetch_timeout_ms} * 1000
         + uint64_t{l.backoff_max_ms} * 1250 + uint64_t{l.debounce_ms} * 1000 + 2 * sec;
}

/// A POP's public services as its pop_server has them: name -> port.
using port_map = std::map<std::string, uint16_t>;

port_map ports_of(const std::vector<service_config>& services) {
  port_map m;
  for (auto& s : services)
    if (s.is_public)
      m[s.name] = s.public_port;
  return m;
}

/// Every configuration one POP's pop_server had, across its incarnations:
/// when it was spawned with it or answered the reconfigure that gave it.
struct pop_history {
  std::vector<std::pair<uint64_t, port_map>> configs;
  /// (time, reachable) each time reachability changed.
  std::vector<std::pair<uint64_t, bool>> reach;
};

/// Stands between the follower and the pop_server: records each
/// configuration once the pop_server answered it.
caf::behavior pop_proxy(caf::event_based_actor* self, caf::actor pop,
                        std::shared_ptr<pop_history> log, std::function<uint64_t()> now) {
  self->link_to(pop);
  return {
    [=](pop_reconfigure& rc) {
      auto rp = self->make_response_promise();
      auto m = ports_of(rc.services);
      self->request(pop, caf::infinite, std::move(rc))
        .then(
          [=](std::string& answer) mutable {
            log->configs.emplace_back(now(), m);
            rp.deliver(answer);
          },
          [=](caf::error& e) mutable { rp.deliver(e); });
      return rp;
    },
    [=](pop_drain_watch& w) { self->send(pop, std::move(w)); },
    [=](status_atom a) {
      auto rp = self->make_response_promise();
      self->request(pop, caf::infinite, a)
        .then([=](pop_status& st) mutable { rp.deliver(st); },
              [=](caf::error& e) mutable { rp.deliver(e); });
      return rp;
    },
  };
}


/// A service as the operator sees it: the ports it had, in order (0:
/// deleted), each with when its request was sent.
struct service_model {
  std::string name;
  std::string secret;
  std::string local; // host:port of the service behind its agent
  uint8_t key = 0;
  std::vector<std::pair<uint64_t, uint16_t>> states;
  caf::actor agent; // a plain agent (created services); null for followed ones
  bool followed = false;
  uint16_t port() const {
    return states.empty() ? 0 : states.back().second;
  }
  bool live() const {
    return port() != 0;
  }
};

struct visit_record {
  std::string pop;
  uint16_t port = 0;
  uint64_t start_us = 0;
  std::shared_ptr<sim::visitor_result> r;
};

struct totals {
  uint64_t max_reach_us = 0;
  std::string max_reach_what;
  size_t changes = 0;
  size_t reaches = 0;
  size_t retired_visits = 0; // visits to a port its POP had dropped: all refused
  size_t visits = 0;
  size_t visits_ok = 0;
  size_t events = 0;
};

struct control_world : sim::rig {
  control_world(uint64_t seed, totals& t) : rig(seed), tot(t), rng(seed * 7919 + 1) {
    auto& w = d.net();
    sim::link_params link;
    link.latency_us = 2000;
    link.jitter_us = 1000;
    w.set_default_link(link);
    for (auto h : {"control", "ops", "visitors", "joe", "agent-a", "agent-b"})
      w.add_host(h);
    store = spawn_memory_store(d.sys(), memory_store_params{}); // the disk: survives
    start_control();
    auto n = 3 + pick(2);
    const char* regions[] = {"eu", "us", "ap", "eu"};
    for (size_t i = 0; i < n; ++i) {
      auto name = "pop" + std::to_string(i + 1);
      pop_names.push_back(name);
      region[name] = regions[i];
      hist[name] = std::make_shared<pop_history>();
      snapshots[name] = std::make_shared<std::string>();
      w.add_host(name);
      start_pop(name);
    }
  }

  ~control_world() {
    for (auto& f : followers)
      caf::anon_send_exit(f, caf::exit_reason::user_shutdown);
    for (auto& a : owned)
      caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
    for (auto& [n, s] : services)
      if (s.agent)
        caf::anon_send_exit(s.agent, caf::exit_reason::user_shutdown);
    for (auto& a : {registry, server, store})
      if (a)
        caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
    d.run_for(100'000);
  }

  uint64_t pick(uint64_t n) {
    return n ? rng() % n : 0;
  }

  // -- the parties -----------------------------------------------------------------------

  void start_control() {
    registry_params p;
    p.e = make_env("control", 10 + ++incarnation);
    p.store = store;
    p.admin_token_digest = admin_token_digest(*crypto, admin_token);
    p.pop_public_key = fleet.public_key;
    p.lease_duration_s = 30;
    registry = spawn_registry(d.sys(), std::move(p));
    http_server_params sp;
    sp.e = make_env("control", 10 + ++incarnation);
    sp.host = "control";
    sp.port = control_port;
    sp.tls = true;
    sp.handler = registry;
    server = spawn_http_server(d.sys(), sp);
    d.net().register_actor("control", registry);
    d.net().register_actor("control", server);
    control_up = true;
  }

  void start_pop(const std::string& name) {
    pop_follower_params fp;
    fp.e = make_env(name, 30 + ++incarnation);
    fp.http.host = "control";
    fp.http.port = control_port;
    fp.http.tls = std::make_shared<net::tls_client_config>();
    fp.fleet_seed = fleet.seed;
    fp.name = name;
    fp.spec.region = region[name];
    fp.spec.tunnel_host = name;
    fp.spec.tunnel_port = tunnel_port;
    fp.spec.public_address = name;
    fp.spec.pin = "sha256:" + std::string(64, 'a');
    fp.spec.capacity_tunnels = 100;
    fp.public_host = name;
    fp.snapshot = *snapshots[name];
    auto snap = snapshots[name];
    fp.persist = [snap](const std::string& s) { *snap = s; };
    std::string err;
    auto initial = pop_follower_initial_config(fp, err);
    EXPECT_EQ(err, "");
    pop_params pp;
    pp.e = make_env(name, 40 + incarnation);
    pp.tunnel_host = name;
    pp.tunnel_port = tunnel_port;
    pp.services = initial.services;
    pp.principals = initial.principals;
    auto log = hist[name];
    log->configs.emplace_back(d.now_us(), ports_of(initial.services));
    auto pop = spawn_pop_server(d.sys(), std::move(pp));
    d.net().register_actor(name, pop);
    auto proxy = d.sys().spawn(pop_proxy, pop, log, [this] { return d.now_us(); });
    d.net().register_actor(name, proxy);
    fp.pop = proxy;
    auto f = spawn_pop_follower(d.sys(), std::move(fp));
    d.net().register_actor(name, f);
    owned.insert(owned.end(), {pop, proxy, f});
    pop_up[name] = true;
  }

  /// `drtp serve --control ... --service NAME` on `host` (K from the service).
  void start_follower(const std::string& host, const std::string& name) {
    auto& s = services[name];
    http_client_params cp;
    cp.e = make_env(host, 700 + ++incarnation);
    cp.host = "control";
    cp.port = control_port;
    cp.tls = std::make_shared<net::tls_client_config>();
    auto c = crypto;
    auto seed = sim::cached_login_key(s.secret, net::service_salt(name)).seed;
    cp.authorization = [c, name, seed](const std::string& binding) {
      return auth_header(*c, kind_service, name, seed, binding);
    };
    auto http = spawn_http_client(d.sys(), cp);
    agent_follower_params fp;
    fp.e = make_env(host, 800 + ++incarnation);
    fp.http = http;
    fp.agent = agent(host, name, s.secret, {}, 0, 900 + ++incarnation);
    fp.agent.local_host.clear();
    fp.agent.tunnels_target = 0; // the service's
    fp.agent.agent_id = host;
    fp.region = "eu";
    fp.status_interval_ms = 5000;
    followers.push_back(spawn_agent_follower(d.sys(), std::move(fp)));
    owned.push_back(http);
  }

  /// One API request from a fresh operator client (no stale link after a
  /// crash of the control plane); retried a few times.
  std::shared_ptr<sim::fetch_result> op(const std::string& method, const std::string& rest,
                                        const std::string& body = "") {
    std::shared_ptr<sim::fetch_result> r;
    for (int attempt = 0; attempt < 3; ++attempt) {
      http_client_params cp;
      cp.e = make_env("ops", 2000 + ++incarnation);
      cp.host = "control";
      cp.port = control_port;
      cp.tls = std::make_shared<net::tls_client_config>();
      auto token = admin_token;
      cp.authorization = [token](const std::string&) { return "Bearer " + token; };
      auto ops = spawn_http_client(d.sys(), cp);
      http::header_list h;
      if (!body.empty())
        h.emplace_back("Content-Type", "application/json");
      r = fetch(ops, http_fetch{method, std::string(api_base) + "/" + rest, h, body}, 20 * sec);
      caf::anon_send_exit(ops, caf::exit_reason::user_shutdown);
      if (r->done && r->error.empty() && r->resp.status < 500)
        break;
    }
    return r;
  }

  std::string connection_json(const service_model& s, uint16_t port) const {
    json j = {{"apiVersion", "drtp.dev/v1"},
              {"kind", "DRTPConnection"},
              {"metadata", {{"name", s.name}}},
              {"spec",
               {{"protocol", "tcp"},
                {"local", s.local},
                {"publicPort", port},
                {"tunnels", 2},
                {"publicKey", public_key_text(sim::cached_login_key(
                                s.secret, net::service_salt(s.name)).public_key)}}}};
    return j.dump();
  }

  /// PUT the service with `port` (create or move); records the change.
  void put_service(service_model& s, uint16_t port) {
    auto t0 = d.now_us();
    auto r = op("PUT", "drtpconnections/" + s.name, connection_json(s, port));
    ASSERT_TRUE(r->resp.status == 200 || r->resp.status == 201)
      << "seed " << d.seed() << ": " << r->resp.status << " " << r->resp.body << r->error;
    s.states.emplace_back(t0, port);
    ++tot.changes;
  }

  void delete_service(service_model& s) {
    auto t0 = d.now_us();
    auto r = op("DELETE", "drtpconnections/" + s.name);
    ASSERT_TRUE(r->resp.status == 200 || r->resp.status == 404)
      << "seed " << d.seed() << ": " << r->resp.status << " " << r->resp.body << r->error;
    s.states.emplace_back(t0, 0);
    ++tot.changes;
  }

  uint16_t fresh_port() {
    return next_port++;
  }

  void visit(const std::string& pop, const service_model& s, uint16_t port, uint64_t bytes,
             sim::workload_kind kind = sim::workload_kind::echo, uint32_t rounds = 1) {
    auto r = rig::visit("visitors", pop, port, bytes, d.now_us(), s.key, kind, rounds);
    visits.push_back({pop, port, d.now_us(), r});
  }

  // -- reachability ----------------------------------------------------------------------

  bool reachable(const std::string& pop) const {
    return control_up && pop_up.at(pop) && !cut.count(pop);
  }

  /// Called after every event: notes each POP's reachability changes.
  void note_reach() {
    for (auto& p : pop_names) {
      auto& r = hist[p]->reach;
      bool now = reachable(p);
      if (r.empty() || r.back().second != now)
        r.emplace_back(d.now_us(), now);
    }
  }

  // -- the schedule ----------------------------------------------------------------------

  std::multimap<uint64_t, std::function<void()>> q;

  void at(uint64_t t, std::function<void()> fn) {
    q.emplace(t, std::move(fn));
  }

  service_model* pick_service(bool doomed_only) {
    std::vector<service_model*> live;
    for (auto& [n, s] : services)
      if (s.live() && (!doomed_only || !s.followed))
        live.push_back(&s);
    return live.empty() ? nullptr : live[pick(live.size())];
  }

  void ev_create() {
    if (!control_up)
      return; // the operator waits for the control plane
    auto name = "svc-" + std::to_string(++created);
    auto& s = services[name];
    s.name = name;
    s.secret = "secret of " + name;
    auto local = static_cast<uint16_t>(6000 + created);
    s.local = "joe:" + std::to_string(local);
    s.key = static_cast<uint8_t>(0x20 + created);
    sim::spawn_app_service(d.sys(), d.net().io("joe"), local, s.key);
    put_service(s, fresh_port());
    std::vector<pop_endpoint> eps;
    for (auto& p : pop_names)
      eps.push_back(pop_endpoint{p, p, tunnel_port, region[p]});
    auto ap = agent("joe", name, s.secret, eps, local, 3000 + created);
    ap.tunnels_target = 2;
    s.agent = spawn_agent(d.sys(), std::move(ap));
  }

  void ev_move() {
    if (!control_up)
      return;
    if (auto s = pick_service(false))
      put_service(*s, fresh_port());
  }

  /// Deletes a created service while sessions run through it; its agent
  /// goes 10 s later.
  void ev_delete() {
    auto s = pick_service(true);
    if (!s || !control_up)
      return;
    for (auto& p : pop_names)
      visit(p, *s, s->port(), 2000, sim::workload_kind::request_response, 40);
    d.run_for(300'000);
    delete_service(*s);
    auto agent = s->agent;
    at(d.now_us() + 10 * sec, [agent] { caf::anon_send_exit(agent, caf::exit_reason::user_shutdown); });
  }

  void ev_control_crash() {
    if (!control_up)
      return;
    d.net().crash("control", pick(2) ? sim::crash_mode::reset : sim::crash_mode::silent);
    control_up = false;
    at(d.now_us() + (2 + pick(40)) * sec, [this] {
      d.net().restart("control");
      start_control();
    });
  }

  void cut_off(const std::string& pop, int how, uint64_t for_us) {
    if (cut.count(pop))
      return;
    auto gen = ++cut_gen;
    cut[pop] = gen;
    if (how == 0)
      d.net().partition(pop, "control", true);
    else if (how == 1)
      d.net().partition(pop, "control", false); // the POP's requests are held
    else
      d.net().partition("control", pop, false); // the answers and watches are held
    at(d.now_us() + for_us, [this, pop, gen] { heal(pop, gen); });
  }

  void heal(const std::string& pop, uint64_t gen) {
    auto it = cut.find(pop);
    if (it == cut.end() || it->second != gen)
      return;
    d.net().heal(pop, "control");
    cut.erase(it);
  }

  void ev_isolate_control() {
    auto for_us = (2 + pick(40)) * sec;
    for (auto& p : pop_names)
      cut_off(p, 0, for_us);
  }

  void ev_partition() {
    auto& p = pop_names[pick(pop_names.size())];
    cut_off(p, static_cast<int>(pick(3)), (1 + pick(45)) * sec);
  }

  void ev_pop_crash() {
    auto& p = pop_names[pick(pop_names.size())];
    if (!pop_up[p])
      return;
    d.net().crash(p, pick(2) ? sim::crash_mode::reset : sim::crash_mode::silent);
    pop_up[p] = false;
    at(d.now_us() + (1 + pick(30)) * sec, [this, p] { restart_pop(p); });
  }

  void restart_pop(const std::string& p) {
    if (pop_up[p])
      return;
    d.net().restart(p);
    start_pop(p);
  }

  void ev_visits() {
    for (int i = 0; i < 3; ++i) {
      auto s = pick_service(false);
      if (s)
        visit(pop_names[pick(pop_names.size())], *s, s->port(), 3000);
    }
    // A port that was retired (its service deleted or moved).
    std::vector<std::pair<service_model*, uint16_t>> old;
    for (auto& [n, s] : services)
      for (auto& st : s.states)
        if (st.second && st.second != s.port())
          old.emplace_back(&s, st.second);
    if (!old.empty()) {
      auto& [s, port] = old[pick(old.size())];
      visit(pop_names[pick(pop_names.size())], *s, port, 3000);
    }
  }

  void make_schedule() {
    uint64_t t = 5 * sec;
    while (t < faults_end_us) {
      std::function<void()> fn;
      switch (pick(10)) {
        case 0: case 1: fn = [this] { ev_create(); }; break;
        case 2: fn = [this] { ev_move(); }; break;
        case 3: case 4: fn = [this] { ev_delete(); }; break;
        case 5: fn = [this] { ev_control_crash(); }; break;
        case 6: fn = [this] { ev_isolate_control(); }; break;
        case 7: fn = [this] { ev_partition(); }; break;
        default: fn = [this] { ev_pop_crash(); }; break;
      }
      at(t, std::move(fn));
      t += (1 + pick(6)) * sec;
    }
    for (uint64_t v = 6 * sec; v < faults_end_us + quiet_us; v += sec)
      at(v, [this] { ev_visits(); });
    at(faults_end_us, [this] { heal_everything(); });
  }

  void heal_everything() {
    if (!control_up) {
      d.net().restart("control");
      start_control();
    }
    for (auto it = cut.begin(); it != cut.end(); it = cut.erase(it))
      d.net().heal(it->first, "control");
    for (auto& p : pop_names)
      restart_pop(p);
  }

  /// Runs the schedule to its end, in virtual time.
  void run() {
    while (!q.empty()) {
      auto it = q.begin();
      auto t = it->first;
      auto fn = std::move(it->second);
      q.erase(it);
      if (d.now_us() < t)
        d.run_for(t - d.now_us());
      fn();
      ++tot.events;
      note_reach();
    }
    if (d.now_us() < faults_end_us + quiet_us)
      d.run_for(faults_end_us + quiet_us - d.now_us());
  }

  std::string admin_token = "admin-token-0123456789abcdef";
  net::login_key fleet = sim::cached_login_key("fleet-secret", pop_fleet_salt());
  totals& tot;
  std::mt19937_64 rng;
  caf::actor store, registry, server;
  std::vector<caf::actor> owned, followers;
  std::vector<std::string> pop_names;
  std::map<std::string, std::string> region;
  std::map<std::string, std::shared_ptr<pop_history>> hist;
  std::map<std::string, std::shared_ptr<std::string>> snapshots;
  std::map<std::string, bool> pop_up;
  std::map<std::string, uint64_t> cut; // POP -> the partition's generation
  uint64_t cut_gen = 0;
  bool control_up = false;
  std::map<std::string, service_model> services;
  std::vector<visit_record> visits;
  uint64_t incarnation = 0;
  uint64_t created = 0;
  uint16_t next_port = 8000;
};

// -- the invariants --------------------------------------------------------------------------

/// The latest configuration of `h` at or before `t`; null before the first.
const port_map* config_at(const pop_history& h, uint64_t t) {
  const port_map* m = nullptr;
  for (auto& [when, cfg] : h.configs) {
    if (when > t)
      break;
    m = &cfg;
  }
  return m;
}

bool serves_port(const port_map& m, uint16_t port) {
  return std::any_of(m.begin(), m.end(), [&](auto& kv) { return kv.second == port; });
}

/// (a): visitors to a retired port (its service deleted or moved) at a POP
/// that no longer served it when they started got nothing; nobody ever saw
/// a wrong byte.
void check_visits(control_world& w) {
  for (auto& v : w.visits) {
    ++w.tot.visits;
    if (v.r->ok)
      ++w.tot.visits_ok;
    EXPECT_FALSE(v.r->corrupt) << "seed " << w.d.seed() << ": a wrong byte via " << v.r->target;
    bool retired = false;
    for (auto& [n, s] : w.services)
      for (size_t j = 0; j + 1 < s.states.size(); ++j)
        retired = retired || (s.states[j].second == v.port && s.states[j + 1].first <= v.start_us);
    auto m = config_at(*w.hist[v.pop], v.start_us);
    if (!retired || !m || serves_port(*m, v.port))
      continue;
    ++w.tot.retired_visits;
    EXPECT_TRUE(!v.r->ok && v.r->bytes_back == 0)
      << "seed " << w.d.seed() << ": a visitor at " << v.start_us / 1e6 << " s reached port "
      << v.port << " on " << v.pop << ", which had dropped it (" << v.r->bytes_back
      << " bytes back)";
  }
}

/// (a): a POP that dropped a retired port never serves it again.
void check_no_resurrection(control_world& w) {
  for (auto& [n, s] : w.services)
    for (size_t j = 0; j + 1 < s.states.size(); ++j) {
      auto port = s.states[j].second;
      auto retired_us = s.states[j + 1].first;
      for (auto& p : w.pop_names) {
        bool dropped = false;
        for (auto& [when, cfg] : w.hist[p]->configs) {
          if (when < retired_us)
            continue;
          auto it = cfg.find(n);
          bool has = it != cfg.end() && it->second == port;
          EXPECT_FALSE(dropped && has) << "seed " << w.d.seed() << ": " << p << " serves "
                                       << n << " on " << port << " again at " << when / 1e6
                                       << " s";
          dropped = dropped || !has;
        }
      }
    }
}

/// Which of `s`'s states `cfg` (a config at time `when`) is in; -1: none yet.
int state_in(const service_model& s, const port_map& cfg, uint64_t when) {
  auto it = cfg.find(s.name);
  for (int j = static_cast<int>(s.states.size()) - 1; j >= 0; --j) {
    auto& [t0, port] = s.states[j];
    if (it != cfg.end() ? port == it->second : port == 0 && when >= t0)
      return j;
  }
  return -1;
}

/// When `p` last became reachable at or before `t`; false if it was not
/// reachable at `t`.
bool reachable_since(const pop_history& h, uint64_t t, uint64_t& since) {
  bool up = false;
  for (auto& [when, r] : h.reach) {
    if (when > t)
      break;
    up = r;
    since = when;
  }
  return up;
}

/// (c): every change reached every POP, within the bound of it becoming
/// reachable; the max observed goes to the totals. A change has reached a
/// POP at the first moment its configuration is in that state or a later
/// one: looked at when the change was made, at each later change of the
/// same service (a POP that never had a service has its deletion at once)
/// and at each configuration the POP had after it.
void check_reach(control_world& w) {
  for (auto& [n, s] : w.services)
    for (size_t j = 0; j < s.states.size(); ++j) {
      auto t0 = s.states[j].first;
      for (auto& p : w.pop_names) {
        auto& h = *w.hist[p];
        std::vector<uint64_t> when;
        for (size_t k = j; k < s.states.size(); ++k)
          when.push_back(s.states[k].first);
        for (auto& c : h.configs)
          if (c.first >= t0)
            when.push_back(c.first);
        std::sort(when.begin(), when.end());
        bool reached = false;
        for (auto t : when) {
          auto cfg = config_at(h, t);
          if (!cfg || state_in(s, *cfg, t) < static_cast<int>(j))
            continue;
          reached = true;
          ++w.tot.reaches;
          uint64_t since = 0;
          if (!reachable_since(h, t, since))
            break; // from its snapshot at a restart, offline
          auto took = t - std::max(t0, since);
          if (took > w.tot.max_reach_us) {
            w.tot.max_reach_us = took;
            w.tot.max_reach_what = "seed " + std::to_string(w.d.seed()) + ", " + n + " state "
                                   + std::to_string(j) + " at " + p;
          }
          EXPECT_LE(took, reach_bound_us())
            << "seed " << w.d.seed() << ": " << n << " (port " << s.states[j].second << ") took "
            << took / 1e6 << " s to reach " << p;
          break;
        }
        EXPECT_TRUE(reached) << "seed " << w.d.seed() << ": " << n << " state " << j
                             << " never reached " << p;
      }
    }
}

/// (b): each POP serves the registry's services; each agent holds K up
/// tunnels on ready POPs.
void check_converged(control_world& w) {
  port_map want;
  for (auto& [n, s] : w.services)
    if (s.live())
      want[n] = s.port();
  for (auto& p : w.pop_names) {
    auto& c = w.hist[p]->configs;
    EXPECT_TRUE(!c.empty() && c.back().second == want)
      << "seed " << w.d.seed() << ": " << p << " does not serve what the registry holds";
  }
  auto r = w.op("GET", "drtpservers");
  std::set<std::string> ready;
  auto j = json::parse(r->resp.body, nullptr, false);
  if (j.is_object() && j["items"].is_array())
    for (auto& it : j["items"])
      if (it["status"].value("ready", false))
        ready.insert(it["metadata"].value("name", ""));
  for (size_t i = 0; i < w.followers.size(); ++i) {
    sim::tunnels_seen seen;
    for (int tries = 0; tries < 300; ++tries) { // 60 s more at most
      seen = w.follower_tunnels(w.followers[i], 5 * sec);
      bool on_ready = std::includes(ready.begin(), ready.end(), seen.up.begin(), seen.up.end());
      if (seen.up.size() == 2 && seen.all == 2 && on_ready)
        break;
      w.d.run_for(200'000);
    }
    std::string got;
    for (auto& p : seen.up)
      got += p + " ";
    EXPECT_EQ(seen.up.size(), 2u) << "seed " << w.d.seed() << ": agent " << i << " up: " << got;
    EXPECT_EQ(seen.all, 2u) << "seed " << w.d.seed() << ": agent " << i;
    EXPECT_TRUE(std::includes(ready.begin(), ready.end(), seen.up.begin(), seen.up.end()))
      << "seed " << w.d.seed() << ": agent " << i << " holds a tunnel to a POP not ready: "
      << got;
  }
}

/// One seed's whole run; the trace's hash.
uint64_t run_seed(uint64_t seed, totals& t) {
  control_world w{seed, t};
  for (auto [name, host] : {std::pair{"echo-a", "agent-a"}, std::pair{"echo-b", "agent-b"}}) {
    auto& s = w.services[name];
    s.name = name;
    s.secret = std::string("secret of ") + name;
    s.local = std::string(host) + ":" + std::to_string(agent_local_port);
    s.key = name[5] == 'a' ? 0x5a : 0x5b;
    s.followed = true;
    sim::spawn_app_service(w.d.sys(), w.d.net().io(host), agent_local_port, s.key);
  }
  w.d.run_for(sec); // the POPs register
  w.note_reach();
  w.put_service(w.services["echo-a"], w.fresh_port());
  w.put_service(w.services["echo-b"], w.fresh_port());
  w.start_follower("agent-a", "echo-a");
  w.start_follower("agent-b", "echo-b");
  w.make_schedule();
  w.run();
  check_visits(w);
  check_no_resurrection(w);
  check_reach(w);
  check_converged(w);
  return w.d.trace_hash();
}

uint64_t env_or(const char* name, uint64_t dflt) {
  auto v = std::getenv(name);
  return v ? std::strtoull(v, nullptr, 10) : dflt;
}

} // namespace

TEST(property_control, changes_reach_pops_and_deleted_services_stay_gone) {
  totals t;
  uint64_t first = 1;
  uint64_t last = env_or("DRTP_CONTROL_SEEDS", 30);
  if (auto only = env_or("DRTP_CONTROL_SEED", 0)) {
    first = only;
    last = only;
  }
  for (uint64_t seed = first; seed <= last && !HasFailure(); ++seed)
    run_seed(seed, t);
  std::printf("seeds %llu..%llu: %zu events, %zu changes, %zu reached a POP; %zu visits "
              "(%zu ok), %zu to a port its POP had dropped (all refused)\n",
              static_cast<unsigned long long>(first), static_cast<unsigned long long>(last),
              t.events, t.changes, t.reaches, t.visits, t.visits_ok, t.retired_visits);
  std::printf("figure: change -> applied at a reachable POP, max %.3f s of sim time (%s); "
              "bound %.2f s\n",
              t.max_reach_us / 1e6, t.max_reach_what.c_str(), reach_bound_us() / 1e6);
}

TEST(property_control, same_seed_same_trace) {
  totals t;
  EXPECT_EQ(run_seed(3, t), run_seed(3, t));
}
