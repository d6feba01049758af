#pragma once
// A session splices one local connection (a visitor at the POP, the local
// service at the agent) to one stream of a tunnel, with credit-based flow
// control: it never sends the peer more than the peer's window, and it pauses
// reading its local socket while it has no credit. Buffering per session is
// bounded by the window plus one socket read.

#include <cstdint>
#include <memory>
#include <string>

#include "actors/env.hpp"
#include "caf/fwd.hpp"
#include "net/seam/io.hpp"

namespace drtp {

class stream_slot;

struct session_params {
  env e;
  caf::actor tunnel;
  /// The tunnel's link: data and FIN frames go straight to the io, in order,
  /// without a hop through the tunnel actor.
  net::conn_id tunnel_conn = 0;
  uint32_t sid = 0;
  /// For the metrics' labels.
  std::string service;
  /// The session's id at both ends ("tunnel#7/12": the POP's tunnel id and
  /// the stream) and, agent side, the POP it came through (net/seam/session_table).
  std::string id;
  std::string pop;
  /// POP side: the accepted visitor connection (adopted by the session).
  net::conn_id conn = 0;
  /// Agent side (conn == 0): the local service to connect to.
  std::string local_host;
  uint16_t local_port = 0;
  /// POP side: the visitor's place in the POP's limits, let go with the
  /// session.
  std::shared_ptr<stream_slot> admitted;
};

caf::actor spawn_session(caf::actor_system& sys, session_params p);

} // namespace drtp
