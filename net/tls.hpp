#pragma once
// TLS identities and fingerprints (OpenSSL 3). Tunnel links use TLS 1.3;
// public listeners and local services use plain TCP.

#include <cstddef>
#include <string>

// to_hex and from_hex, which fingerprints are written in, live in the wire
// format now: net/tls users keep getting them from here.
#include "net/wire/hex.hpp"

struct ssl_st; // OpenSSL's SSL

namespace drtp::net {

/// A certificate and its private key, both PEM.
struct tls_identity {
  std::string cert_pem;
  std::string key_pem;
};

/// A fresh self-signed certificate (EC P-256, valid 1 year) for development
/// mode. Throws std::runtime_error on failure.
tls_identity make_self_signed(const std::string& common_name);

/// Reads PEM files. Throws std::runtime_error naming the file that failed.
tls_identity load_identity(const std::string& cert_file,
                           const std::string& key_file);

/// Makes `ssl` (a client connection, before its handshake) present this
/// certificate and key (PEM) when the server asks. Empty on success, else
/// one line saying what is wrong (never the key's bytes).
std::string use_client_identity(ssl_st* ssl, const std::string& cert_pem,
                                const std::string& key_pem);

/// The certificate the peer presented (PEM), empty if none or if its PEM
/// exceeds `pem_bytes_max`.
std::string peer_certificate_pem(ssl_st* ssl, size_t pem_bytes_max);

/// SHA-256 of the certificate's DER encoding, 32 raw bytes.
std::string fingerprint_sha256(const std::string& cert_pem);

} // namespace drtp::net
