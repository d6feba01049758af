#pragma once
// The POP's end of a tunnel: adopts an accepted link, waits for the hello,
// asks its parent for a challenge (which may delay it, for a network that
// failed or tried often recently, or refuse it), challenges, checks the
// proof and accepts or rejects it, with an audit line for every decision on
// a patch-panel client. Once up it carries visitor streams to an agent,
// splices client streams to agents, and reports its load; drain_atom sends
// goaway and refuses new streams while the open ones run to their end.
//
//   awaiting_hello -> delaying_challenge -> awaiting_proof -> up -> draining
//   awaiting_hello -> up (a certificate login: the TLS handshake proved the
//   key, no challenge; closed at the certificate's notAfter)
//   awaiting_hello/proof -> rejected
//   every state -> dead

#include <cstdint>
#include <memory>
#include <string>

#include "actors/auth.hpp"
#include "actors/env.hpp"
#include "caf/fwd.hpp"
#include "net/seam/io.hpp"

namespace drtp {

struct pop_tunnel_params {
  env e;
  /// Told of tunnel_up / tunnel_load / client_stream / auth_failed.
  caf::actor parent;
  net::conn_id conn = 0; // the accepted link
  std::string peer_host;
  /// The link's (net::accepted): the proof must sign it.
  std::string channel_binding;
  /// The TLS client certificate of the link (net::accepted), unverified.
  std::string peer_cert_pem;
  /// Who may authenticate.
  std::shared_ptr<const auth_db> auth;
  /// A link that sent no hello within this is closed (the proof deadline,
  /// limits.handshake_timeout_ms, is longer).
  uint32_t hello_deadline_ms = 2000;
};

caf::actor spawn_pop_tunnel(caf::actor_system& sys, pop_tunnel_params p);

} // namespace drtp
