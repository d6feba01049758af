// Property (issue 15): a gateway's rules changing over time, in the
// simulator. Two POPs serve "db" (Joe's agent holds a tunnel to each); public
// visitors come from IPv4 and IPv6 sources, and three principals (sam, olga,
// eve) use the patch panel from their own addresses. Each case is a random
// sequence of rules: allow_cidr (a random set of IPv4 and IPv6 blocks, often
// empty), the allow list (names and orgs), each principal's org, and
// end_open_sessions. Each change reaches the two POPs at different times.
//
// Invariants, judged by a model written apart from net/wire/cidr (libc
// parses the addresses, the test compares bits):
// - no visitor or principal outside the rules a POP holds reaches the
//   service through it once the change reached that POP (the service's host
//   sees every connection the agent opens: none of theirs), and every one
//   inside is admitted and served (public visitors at once; principals 1 s
//   after the change, the time their client takes to log in again);
// - a session open across a change is never cut while the new rules still
//   allow it (or refuse it without end_open_sessions), and is ended when
//   they refuse it with end_open_sessions.
// CI runs 60 cases; RC_PARAMS="max_success=1000" runs more.

#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include <arpa/inet.h>

#include <cstdio>
#include <cstring>
#include <map>
#include <set>

#include "actors/agent.hpp"
#include "actors/pop_server.hpp"
#include "caf/all.hpp"
#include "net/wire/handshake.hpp"
#include "sim/apps.hpp"
#include "sim/rig.hpp"
#include "sim/scenario.hpp"

using namespace drtp;

namespace {

constexpr uint16_t tunnel_port = 7000;
constexpr uint16_t public_port = 8000;
constexpr uint16_t service_port = 5432;
constexpr uint16_t panel_port = 6000;
constexpr uint8_t service_key = 0x5a;
/// A stayer: request-response rounds of 64 bytes, some 10 s of them, longer
/// than its phase (small, so that no bulk data queues the short visits
/// behind it in the tunnel).
constexpr uint64_t stayer_round_bytes = 64;
constexpr uint32_t stayer_rounds = 2000;

const char* const pop_names[] = {"pop1", "pop2"};
const char* const sources[] = {"10.0.0.1",   "10.0.1.9",      "10.200.3.4",  "192.168.7.7",
                               "fd00::1",    "fd00:0:0:1::2", "2001:db8::9", "::ffff:10.0.1.3"};
constexpr size_t source_count = sizeof(sources) / sizeof(sources[0]);
const char* const blocks[] = {"10.0.0.0/8", "10.0.0.0/16", "10.0.1.0/24", "10.200.3.4",
                              "192.168.0.0/16", "0.0.0.0/0", "fd00::/8", "fd00::/64",
                              "2001:db8::/32", "::/0"};
constexpr int block_count = sizeof(blocks) / sizeof(blocks[0]);

struct person {
  const char* name;
  const char* secret;
  const char* host;
};
const person people[] = {{"sam", "sam's secret", "10.0.0.5"},
                         {"olga", "olga's secret", "192.168.7.8"},
                         {"eve", "eve's secret", "fd00::7"}};
constexpr int people_count = 3;
const char* const allow_entries[] = {"sam", "olga", "eve", "org:acme", "org:globex"};
constexpr int allow_entry_count = 5;
const char* const orgs[] = {"", "acme", "globex"};

// -- the model ----------------------------------------------------------------

/// Address bytes by libc: IPv4 as 4 bytes, IPv4-mapped IPv6 as its IPv4.
bool parse_address(const std::string& text, bool& v6, unsigned char (&out)[16]) {
  std::memset(out, 0, sizeof out);
  if (inet_pton(AF_INET, text.c_str(), out) == 1) {
    v6 = false;
    return true;
  }
  if (inet_pton(AF_INET6, text.c_str(), out) != 1)
    return false;
  static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  v6 = std::memcmp(out, mapped, 12) != 0;
  if (!v6)
    std::memmove(out, out + 12, 4);
  return true;
}

bool in_block(const std::string& block, const std::string& address) {
  auto slash = block.find('/');
  bool bv6 = false;
  bool av6 = false;
  unsigned char b[16];
  unsigned char a[16];
  if (!parse_address(block.substr(0, slash), bv6, b) || !parse_address(address, av6, a))
    return false;
  if (bv6 != av6)
    return false;
  unsigned prefix = slash == std::string::npos ? (bv6 ? 128u : 32u)
                                               : static_cast<unsigned>(std::stoi(block.substr(slash + 1)));
  for (unsigned bit = 0; bit < prefix; ++bit)
    if (((a[bit / 8] >> (7 - bit % 8)) & 1) != ((b[bit / 8] >> (7 - bit % 8)) & 1))
      return false;
  return true;
}

struct rules {
  std::vector<int> cidrs;   ///< indices into blocks; empty: any source
  uint32_t allow_mask = 0;  ///< bits into allow_entries
  int org[people_count] = {0, 0, 0};
  bool end_open = false;
};

bool source_ok(const rules& r, const std::string& address) {
  if (r.cidrs.empty())
    return true;
  for (int i : r.cidrs)
    if (in_block(blocks[i], address))
      return true;
  return false;
}

bool principal_ok(const rules& r, int who) {
  bool listed = (r.allow_mask >> who) & 1;
  auto org = r.org[who];
  if (org != 0)
    listed = listed || ((r.allow_mask >> (allow_entry_count - 3 + org)) & 1);
  return listed && source_ok(r, people[who].host);
}

void showValue(const rules& r, std::ostream& os) {
  os << "{allow_cidr [";
  for (int i : r.cidrs)
    os << " " << blocks[i];
  os << " ], allow [";
  for (int i = 0; i < allow_entry_count; ++i)
    if ((r.allow_mask >> i) & 1)
      os << " " << allow_entries[i];
  os << " ], orgs [";
  for (int i = 0; i < people_count; ++i)
    os << " " << people[i].name << ":" << orgs[r.org[i]];
  os << " ], end_open_sessions " << r.end_open << "}";
}

struct phase {
  rules next;
  int first_pop = 0;       ///< which POP the change reaches first
  uint32_t delay_ms = 0;   ///< until it reaches the other
  size_t stayer_source = 0;
  int stayer_pop = 0;
  int stayer_person = 0;
};

void showValue(const phase& p, std::ostream& os) {
  os << "{";
  showValue(p.next, os);
  os << ", first_pop " << p.first_pop << ", delay_ms " << p.delay_ms << ", stayer "
     << sources[p.stayer_source] << " via " << pop_names[p.stayer_pop] << " and "
     << people[p.stayer_person].name << "}";
}

rc::Gen<rules> gen_rules() {
  return rc::gen::build<rules>(
    rc::gen::set(&rules::cidrs,
                 rc::gen::resize(3, rc::gen::container<std::vector<int>>(
                                      rc::gen::inRange(0, block_count)))),
    rc::gen::set(&rules::allow_mask, rc::gen::inRange<uint32_t>(0, 1u << allow_entry_count)),
    rc::gen::set(&rules::end_open, rc::gen::arbitrary<bool>()));
}

// -- the world ----------------------------------------------------------------

struct judged_visit {
  std::shared_ptr<sim::visitor_result> r;
  uint64_t id;      ///< its download size: how the service's host tells it
  bool expect_ok;
  std::string what;
};

struct stayer {
  caf::actor a;
  std::shared_ptr<sim::visitor_result> r;
  std::string what;
  uint64_t bytes_at_change = 0;
  bool open_at_change = false;
};

struct gateways : sim::rig {
  explicit gateways(uint64_t seed) : rig(seed) {
    auto& w = d.net();
    sim::link_params link;
    link.latency_us = 1000;
    link.jitter_us = 300;
    link.bandwidth_bytes_per_s = 20'000'000;
    w.set_default_link(link);
    for (auto* p : pop_names)
      w.add_host(p);
    w.add_host("joe");
    w.add_host("svc");
    // Joe's agent and his service share a LAN: a stayer's download must not
    // queue the short visits behind it on their one simulated wire.
    sim::link_params lan;
    lan.latency_us = 100;
    lan.bandwidth_bytes_per_s = 1'000'000'000;
    w.set_link("joe", "svc", lan);
    for (auto* s : sources)
      w.add_host(s);
    for (auto& p : people)
      w.add_host(p.host);
    sim::spawn_app_service(d.sys(), w.io("svc"), service_port, service_key);
    // Every connection the agent opens to the service: its 9-byte header
    // names the download, so the test knows who reached the service.
    w.set_tap([this](const std::string& host, uint64_t conn, const std::string& bytes) {
      if (host != "svc")
        return;
      auto& h = heads[conn];
      if (h.size() >= 9)
        return;
      h.append(bytes.substr(0, 9 - h.size()));
      if (h.size() == 9 && h[0] == 'D') {
        uint64_t v = 0;
        for (int i = 1; i < 9; ++i)
          v = v << 8 | static_cast<unsigned char>(h[i]);
        reached.insert(v);
      }
    });
  }

  pop_reconfigure config_of(const rules& r) const {
    pop_reconfigure rc;
    auto sc = service("db", "db secret", public_port);
    sc.gateway = "db-gw";
    sc.end_open_sessions = r.end_open;
    for (int i : r.cidrs)
      sc.allow_cidr.push_back(blocks[i]);
    for (int i = 0; i < allow_entry_count; ++i)
      if ((r.allow_mask >> i) & 1)
        sc.allow.push_back(allow_entries[i]);
    rc.services.push_back(sc);
    for (int i = 0; i < people_count; ++i) {
      auto pc = principal(people[i].name, people[i].secret);
      pc.org = orgs[r.org[i]];
      rc.principals.push_back(pc);
    }
    return rc;
  }

  void start(const rules& initial) {
    auto rc = config_of(initial);
    std::vector<pop_endpoint> eps;
    for (int i = 0; i < 2; ++i) {
      pop_params pp;
      pp.e = make_env(pop_names[i], 1 + i);
      pp.tunnel_port = tunnel_port;
      pp.services = rc.services;
      pp.principals = rc.principals;
      pops[i] = spawn_pop_server(d.sys(), std::move(pp));
      d.net().register_actor(pop_names[i], pops[i]);
      eps.push_back({pop_names[i], pop_names[i], tunnel_port, i == 0 ? "eu" : "us"});
    }
    auto ap = agent("joe", "db", "db secret", eps, service_port, 10);
    ap.local_host = "svc";
    d.net().register_actor("joe", spawn_agent(d.sys(), std::move(ap)));
    for (int i = 0; i < people_count; ++i) {
      auto cp = agent(people[i].host, "db", "db secret", eps, 0, 20 + i);
      cp.agent_id = people[i].name;
      cp.signing_key =
        sim::cached_login_key(people[i].secret, net::principal_salt(people[i].name)).seed;
      cp.client = true;
      cp.listen_host = people[i].host;
      cp.listen_port = panel_port;
      // A client under a control plane: refusals are retried, promptly, so
      // that a principal allowed again is back within the 1 s the test gives.
      cp.stop_when_every_pop_rejects = false;
      cp.reject_set_aside_ms = 200;
      cp.backoff_initial_ms = 50;
      cp.backoff_max_ms = 300;
      cp.set_aside_ms = 300;
      cp.resume_timeout_ms = 2000;
      d.net().register_actor(people[i].host, spawn_agent(d.sys(), std::move(cp)));
    }
  }

  size_t count_reloads(int pop) const {
    size_t n = 0;
    std::string who = std::string(" ") + pop_names[pop] + " pop#";
    for (auto& l : d.trace_lines())
      n += l.find(who) != std::string::npos && l.find("config reloaded") != std::string::npos;
    return n;
  }

  /// Sends the change to `pop` and runs until it applied it.
  bool change(int pop, const rules& r) {
    auto before = count_reloads(pop);
    caf::anon_send(pops[pop], config_of(r));
    return d.run_until([&] { return count_reloads(pop) > before; }, 1'000'000);
  }

  /// A short visit whose outcome the model predicts.
  void expect(const std::string& from, const std::string& to, uint16_t port, bool ok,
              std::string what) {
    auto id = 1000 + 7 * ++visits_made;
    visits.push_back({start_visit(from, to, port, id, 0, service_key, sim::workload_kind::download)
                        .result,
                      id, ok, std::move(what)});
  }

  void public_visits(int pop, const rules& r, const std::string& when) {
    for (auto* s : sources)
      expect(s, pop_names[pop], public_port, source_ok(r, s),
             std::string("visitor ") + s + " via " + pop_names[pop] + " " + when);
  }

  void panel_visits(const rules& r, bool allowed) {
    for (int i = 0; i < people_count; ++i)
      if (principal_ok(r, i) == allowed)
        expect(people[i].host, people[i].host, panel_port, allowed,
               std::string("principal ") + people[i].name);
  }

  /// Every failed expectation, one line each.
  std::vector<std::string> judge() {
    std::vector<std::string> bad;
    for (auto& v : visits) {
      bool panel = v.what.rfind("principal", 0) == 0;
      ++(panel ? (v.expect_ok ? principals_admitted : principals_refused)
               : (v.expect_ok ? visitors_admitted : visitors_refused));
      bool got_in = reached.count(v.id) > 0;
      if (!v.r->done)
        bad.push_back(v.what + ": still running");
      else if (v.expect_ok && !v.r->ok)
        bad.push_back(v.what + ": refused though allowed (" + v.r->error + ")");
      else if (!v.expect_ok && (v.r->ok || got_in))
        bad.push_back(v.what + ": reached the service though outside the rules");
      else if (v.expect_ok && !got_in)
        bad.push_back(v.what + ": served, yet the service never saw it");
    }
    visits.clear();
    return bad;
  }

  bool visits_done() const {
    for (auto& v : visits)
      if (!v.r->done)
        return false;
    return true;
  }

  caf::actor pops[2];
  std::map<uint64_t, std::string> heads;
  std::set<uint64_t> reached;
  std::vector<judged_visit> visits;
  uint64_t visits_made = 0;
  // What a case exercised, for its classification.
  size_t visitors_admitted = 0;
  size_t visitors_refused = 0;
  size_t principals_admitted = 0;
  size_t principals_refused = 0;
  size_t stayers_cut = 0;
  size_t stayers_kept_refused = 0;
};

/// Both POPs have a tunnel from Joe's agent.
bool agent_up(gateways& g) {
  return g.d.run_until(
    [&] {
      size_t n = 0;
      for (auto& l : g.d.trace_lines())
        n += l.find("tunnel up with agent joe") != std::string::npos;
      return n >= 2;
    },
    5'000'000);
}

/// The stayers of a phase: long sessions open across the change, from a
/// source and a principal the rules in force allow.
std::vector<stayer> start_stayers(gateways& g, const rules& cur, const phase& p) {
  std::vector<stayer> out;
  auto src = sources[p.stayer_source];
  if (source_ok(cur, src)) {
    auto v = g.start_visit(src, pop_names[p.stayer_pop], public_port, stayer_round_bytes, 1,
                           service_key, sim::workload_kind::request_response, stayer_rounds);
    out.push_back({v.actor, v.result, std::string("open session of ") + src});
  }
  auto& who = people[p.stayer_person];
  if (principal_ok(cur, p.stayer_person)) {
    auto v = g.start_visit(who.host, who.host, panel_port, stayer_round_bytes, 2, service_key,
                           sim::workload_kind::request_response, stayer_rounds);
    out.push_back({v.actor, v.result, std::string("open session of principal ") + who.name});
  }
  return out;
}

/// Whether the rules after the change still admit the stayer's owner.
bool stayer_allowed(const stayer& s, const rules& next, const phase& p) {
  if (s.what.find("principal") != std::string::npos)
    return principal_ok(next, p.stayer_person);
  return source_ok(next, sources[p.stayer_source]);
}

} // namespace

RC_GTEST_PROP(gateway, rules_over_time_admit_exactly_the_allowed, ()) {
  auto initial = *gen_rules();
  auto phases = *rc::gen::resize(
    5, rc::gen::nonEmpty(rc::gen::container<std::vector<phase>>(rc::gen::build<phase>(
         rc::gen::set(&phase::next, gen_rules()),
         rc::gen::set(&phase::first_pop, rc::gen::inRange(0, 2)),
         rc::gen::set(&phase::delay_ms, rc::gen::inRange<uint32_t>(0, 800)),
         rc::gen::set(&phase::stayer_source, rc::gen::inRange<size_t>(0, source_count)),
         rc::gen::set(&phase::stayer_pop, rc::gen::inRange(0, 2)),
         rc::gen::set(&phase::stayer_person, rc::gen::inRange(0, people_count))))));
  // Orgs move between changes too: each phase's are drawn on their own.
  for (auto* r : [&] {
         std::vector<rules*> all{&initial};
         for (auto& p : phases)
           all.push_back(&p.next);
         return all;
       }())
    for (auto& o : r->org)
      o = *rc::gen::inRange(0, 3);
  auto seed = *rc::gen::inRange<uint64_t>(0, 1'000'000);

  gateways g{seed};
  g.start(initial);
  RC_ASSERT(agent_up(g));
  // The clients the initial rules allow log in.
  g.d.run_for(1'000'000);
  rules cur = initial;
  std::vector<std::string> bad;
  for (size_t k = 0; k < phases.size() && bad.empty(); ++k) {
    auto& p = phases[k];
    auto& next = p.next;
    auto stayers = start_stayers(g, cur, p);
    g.d.run_for(300'000);
    for (auto& s : stayers)
      if (s.r->done || s.r->bytes_back == 0)
        bad.push_back(s.what + ": not flowing before the change (" + s.r->error + ")");
    int first = p.first_pop;
    int second = 1 - first;
    auto snapshot = [&](int pop) {
      for (auto& s : stayers) {
        bool carried_here = s.what.find("principal") != std::string::npos || p.stayer_pop == pop;
        if (carried_here) {
          s.open_at_change = !s.r->done;
          s.bytes_at_change = s.r->bytes_back;
        }
      }
    };
    if (!g.change(first, next))
      bad.push_back(std::string(pop_names[first]) + " never applied the change");
    snapshot(first);
    g.public_visits(first, next, "after the change");
    if (p.delay_ms >= 100) // the other POP still holds the rules of before
      g.public_visits(second, cur, "before the change reached it");
    g.d.run_for(uint64_t{p.delay_ms} * 1000);
    if (!g.change(second, next))
      bad.push_back(std::string(pop_names[second]) + " never applied the change");
    snapshot(second);
    g.public_visits(second, next, "after the change");
    g.panel_visits(next, false);
    g.d.run_for(1'000'000);
    g.panel_visits(next, true);
    if (!g.d.run_until([&] { return g.visits_done(); }, 20'000'000))
      bad.push_back("visits still running 20 s after the change");
    for (auto& line : g.judge())
      bad.push_back(line);
    for (auto& s : stayers) {
      bool allowed = stayer_allowed(s, next, p);
      if (!allowed)
        ++(next.end_open ? g.stayers_cut : g.stayers_kept_refused);
      if (!allowed && next.end_open) {
        if (s.open_at_change && !(s.r->done && !s.r->ok))
          bad.push_back(s.what + ": not ended though the new rules refuse it");
      } else if (s.r->done) {
        bad.push_back(s.what + ": cut though " + (allowed ? "still allowed" : "kept open")
                      + " (" + s.r->error + ")");
      } else if (s.r->bytes_back <= s.bytes_at_change) {
        bad.push_back(s.what + ": stalled since the change");
      }
      caf::anon_send_exit(s.a, caf::exit_reason::user_shutdown);
    }
    g.d.run_for(500'000);
    cur = next;
    if (!bad.empty())
      RC_LOG() << "phase " << k << ": " << rc::toString(p) << "\n";
  }
  for (auto& line : bad)
    RC_LOG() << line << "\n";
  RC_CLASSIFY(initial.cidrs.empty(), "starts open to any source");
  RC_CLASSIFY(g.visitors_refused > 0, "a visitor refused by its source");
  RC_CLASSIFY(g.principals_refused > 0, "a principal refused");
  RC_CLASSIFY(g.principals_admitted > 0, "a principal admitted");
  RC_CLASSIFY(g.stayers_cut > 0, "an open session ended by end_open_sessions");
  RC_CLASSIFY(g.stayers_kept_refused > 0, "an open session refused by new rules kept");
  RC_ASSERT(bad.empty());
}
