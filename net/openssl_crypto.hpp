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

/// The login key pair of `secret` (crypto::derive_login_key without a
/// crypto object): the binaries call it once at startup, the POP at load.
login_key derive_login_key(const std::string& secret, const std::string& salt);

/// Only the public key of `secret`'s login key: what a POP keeps. The secret
/// and the private seed are wiped before it returns.
std::string derive_public_key(std::string secret, const std::string& salt);

/// Overwrites `s` with zeros in a way the compiler keeps (OPENSSL_cleanse),
/// then empties it: for secrets a process is done with.
void wipe(std::string& s) noexcept;

} // namespace drtp::net
