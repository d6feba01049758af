#pragma once
// The cryptographic primitives an actor may use, handed in through its env
// like entropy: actors/ never links OpenSSL. The real network and the
// simulator both use the OpenSSL implementation (net/openssl_crypto.hpp);
// a unit test may hand in its own.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace drtp::net {

// -- login keys: Ed25519 pairs derived from a secret with scrypt --------------
// A login proof is an Ed25519 signature; a POP keeps only the public half,
// so what it stores (a config, a backup, a core dump) cannot log in.

constexpr size_t seed_bytes = 32;       // an Ed25519 private key
constexpr size_t public_key_bytes = 32; // an Ed25519 public key
constexpr size_t signature_bytes = 64;  // an Ed25519 signature

/// scrypt's cost: N = 2^15, r = 8, p = 1 needs 128 * r * N = 32 MiB and tens
/// of milliseconds per guess; typed secrets are stretched by it.
constexpr uint64_t scrypt_n = uint64_t{1} << 15;
constexpr uint32_t scrypt_r = 8;
constexpr uint32_t scrypt_p = 1;
/// OpenSSL refuses scrypt above its memory limit: 32 MiB plus scrypt's own
/// buffers, with room to spare.
constexpr uint64_t scrypt_maxmem_bytes = uint64_t{64} << 20;

struct login_key {
  std::string seed;       // seed_bytes: the private half, never stored by a POP
  std::string public_key; // public_key_bytes
};

class crypto {
public:
  virtual ~crypto();
  /// HMAC-SHA256(key, message): 32 raw bytes.
  virtual std::string hmac_sha256(const std::string& key,
                                  const std::string& message) = 0;
  /// The key pair of `secret`: seed = scrypt(secret, salt) with the costs
  /// above, public key = Ed25519's of that seed. Slow on purpose: once per
  /// process and secret.
  virtual login_key derive_login_key(const std::string& secret,
                                     const std::string& salt) = 0;
  /// Ed25519 signature (signature_bytes) of `message` by `seed`'s key.
  virtual std::string sign(const std::string& seed, const std::string& message) = 0;
  /// Whether `signature` is `public_key`'s Ed25519 signature of `message`;
  /// false for malformed keys or signatures, never a throw.
  virtual bool verify(const std::string& public_key, const std::string& message,
                      const std::string& signature) = 0;

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

  // -- X.509: enrolled agents' and principals' short-lived certificates --
  // Keys are Ed25519 (a 32-byte seed the caller draws from its entropy);
  // times are Unix seconds the caller reads from its own clock, so the
  // simulator's virtual time decides validity. The defaults refuse (a
  // unit test's crypto need not do X.509); OpenSSL's does it all.
  /// The private key of `seed` as PKCS#8 PEM (for a TLS client identity).
  virtual std::string private_key_pem(const std::string& seed);
  /// A certificate request (PEM) for `subject` (its CN), signed by seed's
  /// key; empty on failure.
  virtual std::string make_csr(const std::string& seed, const std::string& subject);
  /// A self-signed CA certificate (PEM), CN `name`, valid [now_s, now_s +
  /// lifetime_s]; empty on failure.
  virtual std::string make_ca_certificate(const std::string& seed, const std::string& name,
                                          int64_t now_s, int64_t lifetime_s);
  struct certificate_info {
    std::string error;      // empty: good; else one line saying why not
    std::string subject;    // CN, e.g. "service/joes-pg"
    std::string serial;     // lowercase hex, no leading zeros (net::canonical_serial)
    std::string public_key; // the subject's Ed25519 public key, 32 bytes
    int64_t not_before_s = 0;
    int64_t not_after_s = 0;
  };
  /// A CSR's subject and public key, once its self-signature checks.
  virtual certificate_info read_csr(const std::string& csr_pem);
  /// A certificate for the CSR's key with `subject` (the CA decides it,
  /// not the CSR), `serial` (hex), valid [not_before_s, not_after_s],
  /// signed by the CA (ca_seed, ca_cert_pem); empty on failure (a CSR that
  /// does not check, a key that is not Ed25519).
  virtual std::string issue_certificate(const std::string& ca_seed,
                                        const std::string& ca_cert_pem,
                                        const std::string& csr_pem,
                                        const std::string& subject,
                                        const std::string& serial,
                                        int64_t not_before_s, int64_t not_after_s);
  /// Whether `cert_pem` is signed by `ca_cert_pem` and valid at now_s
  /// (error says why not: "expired", "not yet valid", "not signed by the
  /// CA", "malformed"); the fields are filled whenever it parses.
  virtual certificate_info verify_certificate(const std::string& cert_pem,
                                              const std::string& ca_cert_pem, int64_t now_s);
};

constexpr size_t x25519_key_bytes = 32;

/// The largest certificate, CSR or key PEM the X.509 calls read (ours are
/// under 1 KiB); longer input is refused as malformed, unparsed.
constexpr size_t pem_bytes_max = 16 * 1024;
/// The longest certificate subject (CN) the X.509 calls write or accept.
constexpr size_t cert_subject_bytes_max = 256;
/// The longest serial, in hex digits (X.509 allows 20 bytes).
constexpr size_t cert_serial_hex_max = 40;

/// A serial as verify_certificate writes it: lowercase hex without leading
/// zeros ("0" for zero); empty when `hex` is not hex or longer than
/// cert_serial_hex_max. Compare revocation lists through it.
std::string canonical_serial(const std::string& hex);

/// Constant-time comparison of two secrets or MACs: the time taken depends on
/// the sizes only, never on where the bytes differ. false when sizes differ.
bool equal_ct(const std::string& a, const std::string& b) noexcept;

} // namespace drtp::net
