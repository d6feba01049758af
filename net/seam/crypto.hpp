#pragma once
// The cryptographic primitives an actor may use, handed in through its env
// like entropy: actors/ never links OpenSSL. The real network and the
// simulator both use the OpenSSL implementation (net/openssl_crypto.hpp);
// a unit test may hand in its own.

#include <cstddef>
#include <memory>
#include <string>

namespace drtp::net {

class crypto {
public:
  virtual ~crypto();
  /// HMAC-SHA256(key, message): 32 raw bytes.
  virtual std::string hmac_sha256(const std::string& key,
                                  const std::string& message) = 0;

  // -- X25519: the patch panel's end-to-end session key (actors/rsession) --
  // The two ends of a resumable session agree on a key that the POPs which
  // relay the public halves cannot derive. The private key is 32 bytes the
  // caller draws from its entropy (deterministic in the simulator).
  /// The public half (32 bytes) of a 32-byte X25519 private key.
  virtual std::string x25519_public(const std::string& private_key) = 0;
  /// The shared secret (32 bytes), or empty when the peer's public key is
  /// not one (wrong size, or a low-order point that gives all zeros).
  virtual std::string x25519_shared(const std::string& private_key,
                                    const std::string& peer_public) = 0;
};

constexpr size_t x25519_key_bytes = 32;

/// Constant-time comparison of two secrets or MACs: the time taken depends on
/// the sizes only, never on where the bytes differ. false when sizes differ.
bool equal_ct(const std::string& a, const std::string& b) noexcept;

} // namespace drtp::net
