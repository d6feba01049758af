#pragma once
// The scenario runner's oracle and its checks: what the POPs and agents
// report and what the faults did (the model the system is held to), what the
// run recorded, and the invariants checked against them after the run:
// integrity (no wrong byte), isolation (no tunnel or session for a wrong
// secret or an unauthorized principal), liveness (after the quiet period
// every agent holds min(K, reachable POPs) tunnels and every service answers
// through every POP and client that should serve it), no hang (no session
// left unfinished with no fault in its way), and what each fault cost.

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "actors/messages.hpp"
#include "sim/apps.hpp"
#include "sim/scenario.hpp"

namespace drtp::sim {

/// When a fault may excuse a failed session (its effect plus slack).
struct fault_window {
  uint64_t from_us = 0;
  uint64_t to_us = 0; // UINT64_MAX: until healed
};

struct fault_record {
  uint64_t at_us = 0;
  fault_kind kind = fault_kind::crash;
  std::string host; // the fault's first host
  fault_window window;
  fault_outcome outcome;
};

/// One visitor session of the workload, or a probe at the end.
struct visit_record {
  std::shared_ptr<visitor_result> result;
  std::string pop;
  std::string via;      // patch-panel client, or empty
  bool serving = false; // the POP served the service when the visit began
  bool probe = false;
  bool must_fail = false; // a probe of a service the registry deleted
};

struct timeline_point {
  uint64_t t = 0;
  bool targets = false;   // every agent at its target of tunnels
  bool reachable = false; // every service with an agent held by some POP
  size_t alive_pops = 0;
};

struct tunnel_drop {
  uint64_t t = 0;
  std::string agent;
};

/// What the POPs and agents report and what the faults did to the network.
struct world_view {
  std::map<std::string, bool> pop_alive;
  std::map<std::string, pop_status> status;
  std::map<std::string, uint32_t> agent_up; // tunnels the agent last reported
  std::set<std::string> bad_agents;         // with a wrong secret
  std::set<std::pair<std::string, std::string>> cut; // partitioned, a -> b
  /// With a control plane: services not in the registry now (deleted, or
  /// not created yet). Their agents are not held to K.
  std::set<std::string> unregistered;

  /// The POP holds a tunnel for the service (not whether it is public).
  bool holds(const std::string& pop, const std::string& service) const;
  /// The POP holds a tunnel for the service and the service is public.
  bool serves(const scenario_spec& s, const std::string& pop,
              const std::string& service) const;
  /// POPs an agent could hold a tunnel to right now.
  std::vector<std::string> reachable_pops(const scenario_spec& s,
                                          const agent_spec& a) const;
  bool agent_at_target(const scenario_spec& s, const agent_spec& a) const;
  /// Whether every agent is at target and every service reachable, now.
  timeline_point sample(const scenario_spec& s, uint64_t now_us) const;
};

/// What the run recorded for the checks at its end.
struct run_record {
  std::vector<visit_record> visits;
  std::vector<fault_record> faults;
  std::vector<timeline_point> timeline;
  std::vector<tunnel_drop> drops;
  std::set<std::string> agent_hosts;
};

/// Broken invariants, the first hundred.
class violations {
public:
  void add(const std::string& what);
  const std::vector<std::string>& list() const { return list_; }

private:
  std::vector<std::string> list_;
};

size_t service_index(const scenario_spec& s, const std::string& name);
const principal_spec* principal_of(const scenario_spec& s, const client_spec& c);
const client_spec* client_named(const scenario_spec& s, const std::string& name);
/// Whether the POPs should let this client reach its service.
bool authorized(const scenario_spec& s, const client_spec& c);

/// A failed session is excused when a fault was in its way.
bool excused(const run_record& r, const visit_record& v);

/// Isolation, as the POPs report it: no agent with a wrong secret holds a
/// tunnel.
void check_pop_status(const world_view& w, const std::string& pop,
                      const pop_status& st, violations& out);

/// Liveness after the quiet period: every agent at min(K, reachable POPs);
/// isolation: no agent with a wrong secret ever got a tunnel.
void check_agents(const scenario_spec& s, const world_view& w, violations& out);

/// Liveness: every probe (visits from `first_probe` on) got through.
void check_probes(const run_record& r, size_t first_probe, violations& out);

/// Integrity, isolation, no hang and no unexcused failure over the sessions
/// of the workload (visits before `first_probe`), tallied into `rep`.
void check_sessions(const scenario_spec& s, const run_record& r,
                    size_t first_probe, scenario_report& rep, violations& out);

/// What each fault cost: until an agent saw a tunnel go, until every agent
/// held its target again.
std::vector<fault_outcome> fault_outcomes(const run_record& r);

/// The scenario's expectations against the report and the timeline.
std::vector<check_result> check_expectations(const scenario_spec& s,
                                             const run_record& r,
                                             const scenario_report& rep);

/// "12.345 s"
std::string secs(uint64_t us);

} // namespace drtp::sim
