#include "sim/invariants.hpp"

#include <algorithm>
#include <cstdio>

#include "net/seam/assert.hpp"

namespace drtp::sim {

std::string secs(uint64_t us) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.3f s", us / 1e6);
  return buf;
}

// -- the oracle ------------------------------------------------------------------

bool world_view::holds(const std::string& pop, const std::string& service) const {
  if (!pop_alive.at(pop))
    return false;
  auto i = status.find(pop);
  if (i == status.end() || i->second.draining)
    return false;
  auto j = i->second.agents.find(service);
  return j != i->second.agents.end() && !j->second.empty();
}

bool world_view::serves(const scenario_spec& s, const std::string& pop,
                        const std::string& service) const {
  auto si = service_index(s, service);
  if (si >= s.services.size() || !s.services[si].is_public)
    return false;
  return holds(pop, service);
}

std::vector<std::string> world_view::reachable_pops(const scenario_spec& s,
                                                    const agent_spec& a) const {
  std::vector<std::string> out;
  for (auto& p : s.pops) {
    if (!a.pops.empty()
        && std::find(a.pops.begin(), a.pops.end(), p.name) == a.pops.end())
      continue;
    if (!pop_alive.at(p.name) || cut.count({a.name, p.name})
        || cut.count({p.name, a.name}))
      continue;
    out.push_back(p.name);
  }
  return out;
}

bool world_view::agent_at_target(const scenario_spec& s, const agent_spec& a) const {
  auto reachable = reachable_pops(s, a);
  auto want = std::min<size_t>(a.tunnels, reachable.size());
  size_t held = 0;
  for (auto& p : reachable) {
    auto i = status.find(p);
    if (i == status.end() || i->second.draining)
      continue;
    for (auto& [svc, ids] : i->second.agents)
      if (std::find(ids.begin(), ids.end(), a.name) != ids.end())
        ++held;
  }
  return held >= want;
}

timeline_point world_view::sample(const scenario_spec& s, uint64_t now_us) const {
  timeline_point pt;
  pt.t = now_us;
  pt.targets = true;
  for (auto& a : s.agents)
    if (!bad_agents.count(a.name) && !unregistered.count(a.service) && !agent_at_target(s, a))
      pt.targets = false;
  pt.reachable = true;
  for (auto& svc : s.services) {
    if (unregistered.count(svc.name))
      continue; // not in the registry: served by no POP, rightly
    bool any = false;
    for (auto& p : s.pops)
      any = any || holds(p.name, svc.name);
    bool has_agent = false;
    for (auto& a : s.agents)
      has_agent = has_agent || (a.service == svc.name && !bad_agents.count(a.name));
    if (has_agent && !any)
      pt.reachable = false;
  }
  for (auto& [name, up] : pop_alive)
    pt.alive_pops += up ? 1 : 0;
  DRTP_ASSERT(pt.alive_pops <= s.pops.size(), "no more POPs alive than the scenario has");
  return pt;
}

void violations::add(const std::string& what) {
  if (list_.size() < 100)
    list_.push_back(what);
}

// -- the scenario's names ------------------------------------------------------------

size_t service_index(const scenario_spec& s, const std::string& name) {
  for (size_t i = 0; i < s.services.size(); ++i)
    if (s.services[i].name == name)
      return i;
  return s.services.size();
}

const principal_spec* principal_of(const scenario_spec& s, const client_spec& c) {
  for (auto& p : s.principals)
    if (p.name == c.principal)
      return &p;
  return nullptr;
}

const client_spec* client_named(const scenario_spec& s, const std::string& name) {
  for (auto& c : s.clients)
    if (c.name == name)
      return &c;
  return nullptr;
}

bool authorized(const scenario_spec& s, const client_spec& c) {
  auto pr = principal_of(s, c);
  if (!pr || pr->revoked || (!c.secret.empty() && c.secret != pr->secret))
    return false;
  auto si = service_index(s, c.service);
  DRTP_ASSERT(si < s.services.size(), "a validated client names a known service");
  for (auto& a : s.services[si].allow) {
    if (a == pr->name)
      return true;
    for (auto& g : pr->groups)
      if (a == "group:" + g)
        return true;
  }
  return false;
}

// -- the checks ---------------------------------------------------------------------------

namespace {

/// A patch-panel session survives POP faults: only a crash of one of its
/// ends, or a time with no POP at all, may end it.
bool patch_session_excused(const run_record& r, const visit_record& v,
                           uint64_t from, uint64_t to) {
  for (auto& f : r.faults) {
    bool end_host = f.host == v.via || r.agent_hosts.count(f.host);
    if ((f.kind == fault_kind::crash || f.kind == fault_kind::crash_silent)
        && end_host && f.at_us <= to && f.window.to_us >= from)
      return true;
  }
  const timeline_point* at_start = nullptr;
  for (auto& p : r.timeline) {
    if (p.t <= from)
      at_start = &p; // the state when the session began
    else if (p.t <= to && p.alive_pops == 0)
      return true;
  }
  return at_start && at_start->alive_pops == 0;
}

} // namespace

bool excused(const run_record& r, const visit_record& v) {
  if (!v.serving)
    return true;
  auto from = v.result->started_us;
  auto to = v.result->done ? v.result->finished_us : UINT64_MAX;
  if (!v.via.empty())
    return patch_session_excused(r, v, from, to);
  for (auto& f : r.faults)
    if (from <= f.window.to_us && to >= f.window.from_us)
      return true;
  return false;
}

void check_pop_status(const world_view& w, const std::string& pop,
                      const pop_status& st, violations& out) {
  for (auto& [svc, ids] : st.agents)
    for (auto& id : ids)
      if (w.bad_agents.count(id))
        out.add("isolation: agent '" + id + "' with a wrong secret holds a "
                "tunnel for '" + svc + "' at " + pop);
}

void check_agents(const scenario_spec& s, const world_view& w, violations& out) {
  for (auto& a : s.agents) {
    if (w.bad_agents.count(a.name)) {
      auto up = w.agent_up.find(a.name);
      if (up != w.agent_up.end() && up->second > 0)
        out.add("isolation: agent '" + a.name + "' with a wrong secret got a tunnel");
      continue;
    }
    if (w.unregistered.count(a.service))
      continue;
    if (!w.agent_at_target(s, a))
      out.add("liveness: agent '" + a.name + "' holds fewer than min(K="
              + std::to_string(a.tunnels) + ", "
              + std::to_string(w.reachable_pops(s, a).size())
              + " reachable POPs) tunnels after the quiet period");
  }
}

void check_probes(const run_record& r, size_t first_probe, violations& out) {
  for (size_t i = first_probe; i < r.visits.size(); ++i) {
    auto& v = r.visits[i];
    DRTP_ASSERT(v.probe, "every visit after the first probe is a probe");
    if (v.must_fail) {
      if (v.result->ok || v.result->bytes_back > 0)
        out.add("isolation: a visitor reached deleted service at POP " + v.pop);
      continue;
    }
    if (!v.result->ok)
      out.add("liveness: service not reachable through "
              + (v.via.empty() ? "POP " + v.pop : "client " + v.via) + ": "
              + v.result->error);
  }
}

namespace {

/// A session that did not end well: an example, and a violation unless a
/// fault excuses it.
void check_failed_session(const run_record& r, size_t i, scenario_report& rep,
                          violations& out) {
  auto& v = r.visits[i];
  auto& res = *v.result;
  ++rep.sessions_failed;
  rep.sessions_unfinished += res.done ? 0 : 1;
  if (rep.failed_examples.size() < 5)
    rep.failed_examples.push_back("session " + std::to_string(i) + " via " + v.pop
                                  + " at " + secs(res.started_us) + ": "
                                  + (res.done ? res.error : "never finished"));
  if (excused(r, v)) {
    ++rep.sessions_excused;
  } else if (!res.done) {
    out.add("hang: session " + std::to_string(i) + " via " + v.pop
            + " never finished, with no fault in its way");
  } else if (!res.corrupt) {
    out.add("session " + std::to_string(i) + " via " + v.pop + " at "
            + secs(res.started_us) + " failed with no fault in its way: " + res.error);
  }
}

} // namespace

void check_sessions(const scenario_spec& s, const run_record& r,
                    size_t first_probe, scenario_report& rep, violations& out) {
  DRTP_ASSERT(first_probe <= r.visits.size(), "the probes follow the workload");
  for (size_t i = 0; i < first_probe; ++i) {
    auto& v = r.visits[i];
    auto& res = *v.result;
    DRTP_ASSERT(!v.probe, "the workload's sessions come before the probes");
    ++rep.sessions;
    rep.bytes_sent += res.bytes_sent;
    rep.bytes_back += res.bytes_back;
    if (res.corrupt)
      out.add("integrity: session " + std::to_string(i) + " via " + v.pop + ": "
              + res.error);
    if (!v.via.empty()) {
      auto c = client_named(s, v.via);
      DRTP_ASSERT(c != nullptr, "a patch-panel session goes via a known client");
      ++rep.patch_sessions;
      rep.patch_sessions_ok += res.ok ? 1 : 0;
      if (res.ok && !authorized(s, *c))
        out.add("isolation: client '" + v.via + "' reached service '" + c->service
                + "' without authorization");
    }
    if (res.ok)
      ++rep.sessions_ok;
    else
      check_failed_session(r, i, rep, out);
  }
  DRTP_ASSERT(rep.sessions == rep.sessions_ok + rep.sessions_failed,
              "every session of the workload is either ok or failed");
}

std::vector<fault_outcome> fault_outcomes(const run_record& r) {
  std::vector<fault_outcome> out;
  for (auto& f : r.faults) {
    auto o = f.outcome;
    bool breaks_tunnels = f.kind == fault_kind::crash
                          || f.kind == fault_kind::crash_silent
                          || f.kind == fault_kind::partition;
    for (auto& dr : r.drops)
      if (breaks_tunnels && dr.t >= f.at_us) {
        o.detected_us = static_cast<int64_t>(dr.t - f.at_us);
        break;
      }
    for (auto& p : r.timeline)
      if (p.t >= f.at_us && p.targets) {
        o.restored_us = static_cast<int64_t>(p.t - f.at_us);
        break;
      }
    out.push_back(o);
  }
  return out;
}

namespace {

/// tunnels_restored_within or reachable_within: how long after the fault
/// the timeline first showed it.
check_result check_recovery(const expectation_spec& e, const run_record& r) {
  check_result cr;
  bool tunnels = e.kind == expectation_kind::tunnels_restored_within;
  cr.what = std::string(tunnels ? "tunnels restored" : "reachable") + " within "
            + secs(e.value) + " of fault " + std::to_string(e.fault);
  if (e.fault >= r.faults.size()) {
    cr.detail = "no such fault happened";
    return cr;
  }
  auto t = r.faults[e.fault].at_us;
  int64_t took = -1;
  for (auto& p : r.timeline)
    if (p.t >= t && (tunnels ? p.targets : p.reachable)) {
      took = static_cast<int64_t>(p.t - t);
      break;
    }
  cr.ok = took >= 0 && static_cast<uint64_t>(took) <= e.value;
  cr.detail = took < 0 ? "never" : "took " + secs(static_cast<uint64_t>(took));
  return cr;
}

} // namespace

std::vector<check_result> check_expectations(const scenario_spec& s,
                                             const run_record& r,
                                             const scenario_report& rep) {
  std::vector<check_result> out;
  for (auto& e : s.expectations) {
    check_result cr;
    switch (e.kind) {
      case expectation_kind::sessions_failed_max:
        cr.what = "at most " + std::to_string(e.value) + " session(s) failed";
        cr.ok = rep.sessions_failed <= e.value;
        cr.detail = std::to_string(rep.sessions_failed) + " failed";
        break;
      case expectation_kind::tunnels_restored_within:
      case expectation_kind::reachable_within:
        cr = check_recovery(e, r);
        break;
    }
    out.push_back(cr);
  }
  return out;
}

} // namespace drtp::sim
