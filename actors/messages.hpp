#pragma once
// Messages between the actors of actors/ (never over the wire; the wire
// format lives in net/wire/).

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "caf/actor.hpp"
#include "caf/allowed_unsafe_message_type.hpp"
#include "caf/atom.hpp"
#include "net/seam/chunk.hpp"
#include "net/wire/control.hpp"
#include "net/seam/io.hpp"

namespace drtp {

class stream_slot;

using heartbeat_atom = caf::atom_constant<caf::atom("heartbeat")>;
using hs_timeout_atom = caf::atom_constant<caf::atom("hstimeout")>;
using reconnect_atom = caf::atom_constant<caf::atom("reconnect")>;
using delayed_atom = caf::atom_constant<caf::atom("delayed")>;
using status_atom = caf::atom_constant<caf::atom("status")>;
/// POP: stop taking visitors, goaway to agents, exit once sessions end.
/// Agent-side tunnel: close once no stream is left.
using drain_atom = caf::atom_constant<caf::atom("drain")>;
using grace_atom = caf::atom_constant<caf::atom("grace")>;
using best_tunnel_atom = caf::atom_constant<caf::atom("besttunnel")>;
using lookup_atom = caf::atom_constant<caf::atom("lookup")>;
using resume_atom = caf::atom_constant<caf::atom("resume")>;
using report_atom = caf::atom_constant<caf::atom("report")>;
/// A resumable session asks its agent which POP a tunnel (by address)
/// leads to: answered with the POP's name, empty if unknown.
using path_info_atom = caf::atom_constant<caf::atom("pathinfo")>;
/// Admission (actors/admission): a POP tunnel asks its server for a
/// challenge (answered with delayed_atom, or overlimit_atom); the server
/// ends a handshake that lost its slot with evict_atom.
using attempt_atom = caf::atom_constant<caf::atom("attempt")>;
using overlimit_atom = caf::atom_constant<caf::atom("overlimit")>;
using evict_atom = caf::atom_constant<caf::atom("evict")>;
/// POP server -> an up tunnel: its service is gone from the configuration
/// (a reload, the registry): goaway to the agent, then the link closes.
using service_gone_atom = caf::atom_constant<caf::atom("svcgone")>;

// -- session <-> tunnel: one stream -------------------------------------------
// A session sends these to its tunnel to go to the peer; the tunnel sends the
// same types to the session for what came from the peer.

struct stream_data {
  uint32_t sid = 0;
  net::chunk data;
};

struct stream_fin {
  uint32_t sid = 0;
};

struct stream_rst {
  uint32_t sid = 0;
  uint32_t code = 0;
};

/// The receiver of a stream consumed `bytes`: the sender may send that much more.
struct stream_window {
  uint32_t sid = 0;
  uint32_t bytes = 0;
};

/// A session is finished with its stream.
struct stream_done {
  uint32_t sid = 0;
};

/// The peer broke the stream's protocol in a way only its owner can see
/// (credit above the window): the tunnel ends with a protocol error.
struct stream_violation {
  uint32_t sid = 0;
  std::string what;
};

// -- POP server -> tunnel --------------------------------------------------------

/// Carry this accepted visitor connection over a new stream.
struct attach_visitor {
  net::conn_id conn = 0;
  std::string peer;
  /// The visitor's place in the POP's limits, held by its session.
  std::shared_ptr<stream_slot> admitted;
};

// -- tunnel -> its parent (POP server or agent) ----------------------------------

struct tunnel_up {
  caf::actor tunnel;
  std::string service;
  std::string agent_id; // a client's principal
  std::string peer;
  bool client = false;  // a patch-panel client, not an agent
  /// The public key its proof was checked with: the server compares it with
  /// its config of now, which a reload may have changed meanwhile.
  std::string public_key;
  /// Logged in by this client certificate (PEM), checked again on every
  /// reload; empty: by secret.
  std::string cert_pem;
};

/// POP: an up tunnel that logged in by certificate moved to a renewed one
/// (checked already); the server checks this one on later reloads.
struct tunnel_cert_renewed {
  std::string cert_pem;
};

/// Agent side: a renewed certificate for an up tunnel to announce in band
/// (net::renew_msg), signed by the new key (`seed`); a tunnel not up yet
/// sends it once up, when it logged in by an older certificate.
struct tunnel_renew {
  std::string cert_pem;
  std::string seed;
};

/// Agent side: the latest round-trip time of the tunnel's link.
struct tunnel_rtt {
  uint32_t rtt_us = 0;
};

// -- the patch panel ---------------------------------------------------------------

/// POP: a client opened a stream for its service; splice it to an agent.
struct client_stream {
  caf::actor tunnel;
  net::conn_id conn = 0;
  uint32_t sid = 0;
  net::open_msg open;
  std::string service;
};

/// POP server -> agent tunnel: open a stream to the agent and splice it.
struct attach_splice {
  caf::actor client_tunnel;
  net::conn_id client_conn = 0;
  uint32_t client_sid = 0;
  net::open_msg open;
  /// The principal's place in the POP's limits, held by the splice.
  std::shared_ptr<stream_slot> admitted;
};

/// Who owns a stream that was opened before its owner existed; a null owner
/// refuses the stream (reset with `code`).
struct set_owner {
  uint32_t sid = 0;
  caf::actor owner;
  uint32_t code = 0;
};

/// Client side: open a stream on this tunnel; answered with stream_opened.
struct open_stream_req {
  net::open_msg open;
};

struct stream_opened {
  caf::actor tunnel;
  net::conn_id conn = 0; // the tunnel's link, for direct writes
  uint32_t sid = 0;
};

/// Agent side: a resumable session exists under this id.
struct register_session {
  std::string id;
  caf::actor session;
};

/// Agent side: the session may continue on a new stream, once the stream
/// proves it comes from the session's client end (actors/rsession).
struct attach_stream {
  caf::actor tunnel;
  net::conn_id conn = 0;
  uint32_t sid = 0;
  std::string principal; // who opened the stream, as the POP vouches
};

/// The handshake failed for good: retrying with the same secret is pointless.
struct tunnel_rejected {
  uint16_t code = 0;
  std::string message;
};

/// The tunnel could not be set up or went down (it quits right after).
struct tunnel_failed {
  std::string what;
};

/// Agent side: the POP sent goaway; open no new work here.
struct tunnel_draining {
  std::string why;
};

/// POP side: how many streams the tunnel carries now (for load balancing).
struct tunnel_load {
  uint32_t streams = 0;
};

/// POP side: the authentication of `peer_host` failed (for rate limiting).
struct auth_failed {
  std::string peer_host;
  std::string service;
};

// -- to an observer (CLI, tests) -------------------------------------------------

struct pop_ready {
  uint16_t tunnel_port = 0;
  std::map<std::string, uint16_t> public_ports; // service -> bound port
};

struct pop_failed {
  std::string what;
};

/// The drain finished (all sessions ended, or the grace period ran out).
struct pop_drained {
  uint32_t sessions_cut = 0;
};

/// Agent news: up, down, retrying, or fatal (then the agent has stopped).
struct agent_event {
  // note: a line from the control plane's follower (control/agent_follower)
  enum kind_t : uint8_t { up, down, retrying, fatal, listening, note } kind = up;
  std::string what;
  uint32_t tunnels_up = 0;
};

/// POP news for observers: which agents hold tunnels for which service.
struct pop_status {
  std::map<std::string, std::vector<std::string>> agents; // service -> ids
  bool draining = false;
};

} // namespace drtp

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(drtp::stream_data)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(drtp::stream_fin)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(drtp::stream_rst)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(drtp::stream_window)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(drtp::stream_done)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(drtp::stream_violation)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(drtp::attach_visitor)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(drtp::tunnel_up)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(drtp::tunnel_cert_renewed)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(drtp::tunnel_renew)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(drtp::tunnel_rejected)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(drtp::tunnel_failed)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(drtp::auth_failed)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(drtp::tunnel_draining)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(drtp::tunnel_load)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(drtp::pop_drained)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(drtp::pop_status)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(drtp::tunnel_rtt)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(drtp::client_stream)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(drtp::attach_splice)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(drtp::set_owner)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(drtp::open_stream_req)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(drtp::stream_opened)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(drtp::register_session)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(drtp::attach_stream)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(drtp::pop_ready)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(drtp::pop_failed)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(drtp::agent_event)
