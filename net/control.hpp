#pragma once
// Control messages of the tunnel protocol, encoded with cereal's portable
// binary archive. Decoding never trusts a length from the wire: strings are
// bounded before anything is allocated, and any malformed payload decodes to
// `false` (the caller closes the tunnel with a protocol error).

#include <cstdint>
#include <string>

#include "net/chunk.hpp"

namespace drtp::net {

constexpr uint16_t protocol_version = 1;
constexpr size_t name_bytes_max = 128;  // service names, agent ids
constexpr size_t nonce_bytes = 32;
constexpr size_t mac_bytes = 32;
constexpr size_t reason_bytes_max = 512;

/// Agent -> POP: who I am.
struct hello_msg {
  uint16_t version = protocol_version;
  std::string service;
  std::string agent_id;
};

/// POP -> agent: prove you know the service secret.
struct challenge_msg {
  std::string nonce; // nonce_bytes random bytes
};

/// Agent -> POP: HMAC-SHA256(key, transcript), see net/handshake.hpp.
struct proof_msg {
  std::string mac;
};

/// POP -> agent: the tunnel is up.
struct accept_msg {
  std::string tunnel_id;
  uint32_t heartbeat_interval_ms = 800;
  uint32_t window_bytes = 256 * 1024;
};

enum class reject_code : uint16_t {
  bad_version = 1,
  unknown_service = 2,
  bad_proof = 3,
  handshake_timeout = 4,
  draining = 5,
  protocol_error = 6,
};

const char* to_string(reject_code c) noexcept;

/// POP -> agent: no tunnel, and why.
struct reject_msg {
  uint16_t code = 0;
  std::string message;
};

/// Opener -> peer: a new stream; `peer` describes the visitor, for logs.
struct open_msg {
  std::string peer;
};

/// Either side: I am going away; open no new streams here.
struct goaway_msg {
  uint16_t code = 0;
  std::string message;
};

chunk encode(const hello_msg& x);
chunk encode(const challenge_msg& x);
chunk encode(const proof_msg& x);
chunk encode(const accept_msg& x);
chunk encode(const reject_msg& x);
chunk encode(const open_msg& x);
chunk encode(const goaway_msg& x);

bool decode(const chunk& in, hello_msg& x);
bool decode(const chunk& in, challenge_msg& x);
bool decode(const chunk& in, proof_msg& x);
bool decode(const chunk& in, accept_msg& x);
bool decode(const chunk& in, reject_msg& x);
bool decode(const chunk& in, open_msg& x);
bool decode(const chunk& in, goaway_msg& x);

} // namespace drtp::net
