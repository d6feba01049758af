#pragma once
// Authentication of a tunnel: hello -> challenge -> proof -> accept/reject.
// The proof is HMAC-SHA256, keyed by the service key, over a transcript of the
// hello and challenge payloads as sent. The secret never crosses the wire.
// The POP may store only the key (SHA-256 of the secret with a label, see
// net/openssl_crypto.hpp), so a leaked POP config does not reveal the secret
// that operators type.

#include <cstddef>
#include <string>

#include "net/seam/chunk.hpp"
#include "net/seam/crypto.hpp"

namespace drtp::net {

constexpr size_t key_bytes = 32;

/// The transcript a proof covers:
/// label || len(hello) || hello || len(challenge) || challenge (u32 lengths).
std::string proof_transcript(const chunk& hello_payload,
                             const chunk& challenge_payload);

/// HMAC-SHA256(key, proof_transcript(hello, challenge)).
std::string make_proof(crypto& c, const std::string& key,
                       const chunk& hello_payload, const chunk& challenge_payload);

} // namespace drtp::net
