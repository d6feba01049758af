#pragma once
// TLS identities and fingerprints (OpenSSL 3). Tunnel links use TLS 1.3;
// public listeners and local services use plain TCP.

#include <string>

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

/// SHA-256 of the certificate's DER encoding, 32 raw bytes.
std::string fingerprint_sha256(const std::string& cert_pem);

/// "ab:cd:..." style is accepted on input; output is plain lowercase hex.
std::string to_hex(const std::string& raw);
/// Returns false on malformed input (odd length, non-hex characters).
/// Colons are ignored so "AB:CD" parses.
bool from_hex(const std::string& hex, std::string& raw);

} // namespace drtp::net
