#pragma once
// The seam's crypto and entropy on OpenSSL's libcrypto, for the real
// binaries and the simulator alike (only the seed of the randomness differs).

#include <memory>
#include <string>

#include "net/seam/crypto.hpp"
#include "net/seam/entropy.hpp"

namespace drtp::net {

std::shared_ptr<crypto> make_openssl_crypto();

/// The OS generator (RAND_bytes).
std::shared_ptr<entropy> make_system_entropy();

/// The HMAC key for a service: SHA-256("drtp-service-key-v1" || secret).
std::string derive_key(const std::string& secret);

} // namespace drtp::net
