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
};

/// Constant-time comparison of two secrets or MACs: the time taken depends on
/// the sizes only, never on where the bytes differ. false when sizes differ.
bool equal_ct(const std::string& a, const std::string& b) noexcept;

} // namespace drtp::net
