#pragma once
// Authentication of a tunnel: hello -> challenge -> proof -> accept/reject.
// The proof is an Ed25519 signature, by the login key pair derived from the
// secret (scrypt, see net/seam/crypto.hpp), over a transcript of the TLS
// channel binding and of the hello and challenge payloads as sent. The
// secret never crosses the wire, and the POP stores only the public key:
// what a POP holds (config, backup, core dump) cannot produce a proof. The
// channel binding (a TLS exporter of the tunnel's own connection) ties a
// proof to one TLS connection, so a POP that relays a login it received to
// another POP gets a proof the other POP refuses.

#include <cstddef>
#include <string>

#include "net/seam/chunk.hpp"
#include "net/seam/crypto.hpp"

namespace drtp::net {

/// The exporter label (RFC 8446 section 7.5) and length of a tunnel's channel
/// binding; both ends of a TLS connection export the same bytes, no other
/// connection does.
constexpr const char* channel_binding_label = "EXPORTER-drtp-channel-binding-v1";
constexpr size_t channel_binding_bytes = 32;

/// The scrypt salt of a login key: a fixed label, the kind and the name, so
/// one secret gives distinct keys for distinct services and principals, and
/// no table of guesses serves two names.
std::string service_salt(const std::string& service);
std::string principal_salt(const std::string& principal);

/// The transcript a proof covers: label || len(channel_binding) ||
/// channel_binding || len(hello) || hello || len(challenge) || challenge
/// (u32 lengths).
std::string proof_transcript(const std::string& channel_binding, const chunk& hello_payload,
                             const chunk& challenge_payload);

/// Ed25519 signature by `seed` of proof_transcript(...).
std::string make_proof(crypto& c, const std::string& seed,
                       const std::string& channel_binding, const chunk& hello_payload,
                       const chunk& challenge_payload);

/// Whether `proof` is `public_key`'s signature of proof_transcript(...).
bool check_proof(crypto& c, const std::string& public_key, const std::string& proof,
                 const std::string& channel_binding, const chunk& hello_payload,
                 const chunk& challenge_payload);

/// What a renewal's signature covers (net/wire/control.hpp renew_msg):
/// label || len(channel_binding) || channel_binding || len(cert) || cert.
std::string renew_message(const std::string& channel_binding, const std::string& cert_pem);

} // namespace drtp::net
