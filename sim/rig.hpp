#pragma once
// What the simulated tests share, so that each says only what it is about:
// the driver, an env per host (seeded entropy, the real crypto), the config
// of a service and a principal from their secrets (the POP gets only the
// public keys), an agent's parameters, a visitor, and the trace printed
// when DRTP_SIM_TRACE is set.

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "actors/agent.hpp"
#include "actors/env.hpp"
#include "actors/http_client.hpp"
#include "actors/pop_server.hpp"
#include "sim/apps.hpp"
#include "sim/driver.hpp"

namespace drtp::sim {

/// What one HTTP request answered (error: why it failed, one line).
struct fetch_result {
  bool done = false;
  http::response resp;
  std::string error;
};

/// What an agent_follower's agent holds: the POPs of its up tunnels, and
/// how many tunnels in all (done false: no answer in time, or no agent).
struct tunnels_seen {
  bool done = false;
  std::set<std::string> up;
  size_t all = 0;
};

struct rig {
  explicit rig(uint64_t seed);
  ~rig(); // prints the trace first when DRTP_SIM_TRACE is set
  rig(const rig&) = delete;
  rig& operator=(const rig&) = delete;

  /// The env of an actor on `host`; `salt` tells its entropy from others'.
  env make_env(const std::string& host, uint64_t salt);

  /// A service as a POP config holds it: the public key of `secret`.
  static service_config service(const std::string& name, const std::string& secret,
                                uint16_t public_port);
  /// A principal as a POP config holds it.
  static principal_config principal(const std::string& name, const std::string& secret);

  /// An agent on `host` for `service`, signing with `secret`'s key, its
  /// local service at host:local_port, dialing `pops`.
  agent_params agent(const std::string& host, const std::string& service,
                     const std::string& secret, std::vector<pop_endpoint> pops,
                     uint16_t local_port, uint64_t salt);

  /// A visitor from host `from` to `pop`:`port` with `bytes` of `kind`
  /// (echo by default; `rounds` of them for request_response).
  std::shared_ptr<visitor_result> visit(const std::string& from, const std::string& pop,
                                        uint16_t port, uint64_t bytes, uint64_t seed,
                                        uint8_t key, workload_kind kind = workload_kind::echo,
                                        uint32_t rounds = 1);
  /// The same, with the visitor actor (a test that ends the visit itself).
  struct visit_handle {
    caf::actor actor;
    std::shared_ptr<visitor_result> result;
  };
  visit_handle start_visit(const std::string& from, const std::string& pop, uint16_t port,
                           uint64_t bytes, uint64_t seed, uint8_t key,
                           workload_kind kind = workload_kind::echo, uint32_t rounds = 1);

  /// One request through the http_client `client`, run in virtual time
  /// until it is answered or `timeout_us` passed (then done is false).
  std::shared_ptr<fetch_result> fetch(caf::actor client, http_fetch f, uint64_t timeout_us);

  /// Asks an agent_follower for its agent, the agent for its tunnels, in
  /// virtual time (at most `timeout_us`).
  tunnels_seen follower_tunnels(caf::actor follower, uint64_t timeout_us);

  /// How many trace lines so far contain `needle`.
  size_t trace_count(const std::string& needle) const;
  bool trace_has(const std::string& needle) const {
    return trace_count(needle) > 0;
  }

  driver d;
  std::shared_ptr<net::crypto> crypto;

private:
  /// Each host's metrics (make_env hands every actor of a host the same).
  std::map<std::string, std::shared_ptr<net::metrics>> stats_;
  std::map<std::string, std::shared_ptr<net::session_table>> sessions_;
};

} // namespace drtp::sim
