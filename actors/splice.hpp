#pragma once
// The patch panel's splice, at a POP: one stream on a client's tunnel joined
// to one stream on an agent's tunnel. Frames pass straight through, and so
// does flow-control credit, so the POP holds no bytes beyond those in
// flight. Either leg's loss resets the other; the end-to-end session above
// (actors/rsession) then resumes through another POP.

#include <cstdint>

#include "actors/env.hpp"
#include "caf/fwd.hpp"
#include "net/seam/io.hpp"

namespace drtp {

struct splice_leg {
  caf::actor tunnel;
  net::conn_id conn = 0;
  uint32_t sid = 0;
};

class stream_slot;

/// Who the splice joins, for the metrics' labels and /debug/sessions.
struct splice_names {
  std::string service;
  std::string session_id; // the patch-panel session's (net::session_id_bytes)
  std::string principal;  // the client's
  std::string agent;      // the agent's id
};

/// `admitted`: the principal's place in the POP's limits, let go with the
/// splice.
caf::actor spawn_splice(caf::actor_system& sys, env e, splice_leg client,
                        splice_leg agent, splice_names names,
                        std::shared_ptr<stream_slot> admitted = nullptr);

} // namespace drtp
