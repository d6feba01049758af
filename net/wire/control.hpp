#pragma once
// Control messages of the tunnel protocol, encoded with cereal's portable
// binary archive. Decoding never trusts a length from the wire: strings are
// bounded before anything is allocated, and any malformed payload decodes to
// `false` (the caller closes the tunnel with a protocol error).

#include <cstdint>
#include <string>

#include "net/seam/chunk.hpp"

namespace drtp::net {

/// 2: accept_msg lost window_bytes (each end takes the window from its own
/// limits). A hello of another version is refused as bad_version, so a peer
/// of another release hears why instead of failing on a malformed accept.
/// 3: the proof is an Ed25519 signature bound to the TLS channel.
constexpr uint16_t protocol_version = 3;
constexpr size_t name_bytes_max = 128;  // service names, agent ids
constexpr size_t nonce_bytes = 32;
constexpr size_t proof_bytes = 64; // an Ed25519 signature
constexpr size_t reason_bytes_max = 512;

enum class peer_role : uint8_t {
  agent = 0,  // drtp serve: carries a service
  client = 1, // drtp connect: a principal that wants to reach a service
};

/// On the wire, the role byte's high bit says `certificate`: version 3
/// stays, a secret login's hello is the same bytes as before, and a POP
/// that predates certificates refuses the other as a protocol error.
constexpr uint8_t role_certificate_bit = 0x80;

/// Dialer -> POP: who I am. An agent proves the service secret; a client
/// proves its principal's secret (agent_id is then the principal's name).
/// certificate: log in by the TLS client certificate of this link instead
/// (subject "service/SERVICE", a client's "principal/AGENT_ID"); the POP
/// answers accept or reject at once, no challenge, no proof.
struct hello_msg {
  uint16_t version = protocol_version;
  std::string service;
  std::string agent_id;
  uint8_t role = static_cast<uint8_t>(peer_role::agent);
  bool certificate = false;
};

/// POP -> agent: prove you know the service secret.
struct challenge_msg {
  std::string nonce; // nonce_bytes random bytes
};

/// Agent -> POP: HMAC-SHA256(key, transcript), see net/handshake.hpp.
struct proof_msg {
  std::string signature; // see net/wire/handshake.hpp
};

/// POP -> agent: the tunnel is up. The agent pings at the POP's interval.
/// (No window here: each end takes the per-stream window from its own
/// tunnel_limits, and the credit both count must agree byte for byte.)
struct accept_msg {
  std::string tunnel_id;
  uint32_t heartbeat_interval_ms = 800;
};

enum class reject_code : uint16_t {
  bad_version = 1,
  unknown_service = 2,
  bad_proof = 3,
  handshake_timeout = 4,
  draining = 5,
  protocol_error = 6,
  not_authorized = 7,   // the principal may not reach this service
  unknown_principal = 8,
  bad_certificate = 9, // the message says why (expired, revoked, ...)
};

const char* to_string(reject_code c) noexcept;

/// POP -> agent: no tunnel, and why.
struct reject_msg {
  uint16_t code = 0;
  std::string message;
};

constexpr size_t session_id_bytes = 16;

/// Opener -> peer: a new stream; `peer` describes the visitor, for logs.
/// Patch-panel streams are resumable: they carry the end-to-end session id,
/// and a resume names the agent that holds the session.
struct open_msg {
  std::string peer;
  bool resumable = false;
  bool resume = false;
  std::string session_id; // session_id_bytes when resumable
  std::string agent_id;   // resume: route to this agent; else empty
  std::string principal;  // who asked, for the audit log
};

/// Either side: I am going away; open no new streams here.
struct goaway_msg {
  uint16_t code = 0;
  std::string message;
};

/// The largest certificate a renew_msg carries (ours are under 1 KiB; the
/// frame's control payload is 4 KiB).
constexpr size_t renew_cert_bytes_max = 3 * 1024;

/// Agent -> POP on an up tunnel that logged in by certificate: the control
/// plane renewed it. `signature` is the new key's Ed25519 signature of
/// renew_message(channel binding, cert_pem): it proves the agent holds the
/// new key on this very TLS connection, as the handshake proved the old.
/// The POP checks the certificate as at login (CA, subject, revocations,
/// time) and from then on closes the tunnel at the new notAfter.
struct renew_msg {
  std::string cert_pem;
  std::string signature;
};

chunk encode(const hello_msg& x);
chunk encode(const challenge_msg& x);
chunk encode(const proof_msg& x);
chunk encode(const accept_msg& x);
chunk encode(const reject_msg& x);
chunk encode(const open_msg& x);
chunk encode(const goaway_msg& x);
chunk encode(const renew_msg& x);

bool decode(const chunk& in, hello_msg& x);
bool decode(const chunk& in, challenge_msg& x);
bool decode(const chunk& in, proof_msg& x);
bool decode(const chunk& in, accept_msg& x);
bool decode(const chunk& in, reject_msg& x);
bool decode(const chunk& in, open_msg& x);
bool decode(const chunk& in, goaway_msg& x);
bool decode(const chunk& in, renew_msg& x);

} // namespace drtp::net
