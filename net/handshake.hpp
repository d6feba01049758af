#pragma once
// Authentication of a tunnel: hello -> challenge -> proof -> accept/reject.
// The proof is HMAC-SHA256, keyed by the service key, over a transcript of the
// hello and challenge payloads as sent. The secret never crosses the wire.
// The POP may store only the key (SHA-256 of the secret with a label), so a
// leaked POP config does not reveal the secret that operators type.

#include <cstdint>
#include <memory>
#include <string>

#include "net/chunk.hpp"

namespace drtp::net {

constexpr size_t key_bytes = 32;

/// The HMAC key for a service: SHA-256("drtp-service-key-v1" || secret).
std::string derive_key(const std::string& secret);

/// HMAC-SHA256(key, label || len(hello) || hello || len(challenge) || challenge).
std::string make_proof(const std::string& key, const chunk& hello_payload,
                       const chunk& challenge_payload);

/// Constant-time comparison; false when sizes differ.
bool equal_ct(const std::string& a, const std::string& b) noexcept;

/// Randomness handed to actors: real runs use the OS generator, the simulator
/// a seeded one so that runs replay.
class entropy {
public:
  virtual ~entropy();
  virtual std::string bytes(size_t n) = 0;
  virtual uint64_t next_u64() = 0;
  /// Uniform in [0, bound) (bound > 0).
  uint64_t uniform(uint64_t bound);
};

std::shared_ptr<entropy> make_system_entropy();
std::shared_ptr<entropy> make_seeded_entropy(uint64_t seed);

} // namespace drtp::net
