#pragma once
// How a caller signs in to the control plane (docs/control-plane.md, "Who
// may do what"). Operators send a bearer token, which the control plane
// keeps only as its SHA-256. POPs, agents and principals sign the TLS
// channel binding of their link with their login key (the scrypt-derived
// Ed25519 key of net/seam/crypto.hpp): the control plane keeps only the
// public keys, and a header taken from one link is worthless on another.

#include <cstdint>
#include <string>
#include <vector>

#include "net/seam/crypto.hpp"

namespace drtp::control {

/// Caller kinds that sign (the operator's bearer token has no kind).
constexpr const char* kind_pop = "pop";
constexpr const char* kind_service = "service";
constexpr const char* kind_principal = "principal";

/// The bytes a caller signs: "drtp-control-auth-v1\n" kind "\n" name "\n"
/// channel_binding.
std::string auth_message(const std::string& kind, const std::string& name,
                         const std::string& channel_binding);

/// The Authorization header's value: "DRTP-Ed25519 KIND/NAME HEXSIG".
std::string auth_header(net::crypto& c, const std::string& kind, const std::string& name,
                        const std::string& seed, const std::string& channel_binding);

/// The Authorization value of a certificate sign-in (issue 15):
/// "DRTP-Cert BASE64(cert_pem) HEXSIG", SIG the certificate key's (seed's)
/// signature of auth_message(kind, name, channel_binding), where
/// kind/name is the certificate's subject ("service/joes-pg").
std::string cert_auth_header(net::crypto& c, const std::string& cert_pem,
                             const std::string& kind, const std::string& name,
                             const std::string& seed, const std::string& channel_binding);

/// A DRTP-Cert header is refused past this (a certificate of ours is ~550
/// bytes of PEM, ~750 in base64).
constexpr size_t cert_header_bytes_max = 4096;

struct auth_claim {
  bool bearer = false;   // "Bearer TOKEN"
  bool cert = false;     // "DRTP-Cert": cert_pem and signature; kind/name empty
  std::string cert_pem;  // cert: the certificate, still unchecked
  std::string token;     // bearer: the token
  std::string kind;      // signature: "pop", "service", "principal"
  std::string name;
  std::string signature; // raw, net::signature_bytes
};

/// false for anything that is not one of the three forms (bounded: a header
/// over 1 KiB is refused, a DRTP-Cert one over cert_header_bytes_max).
bool parse_auth_header(const std::string& value, auth_claim& out);

/// Whether `claim` (a signature claim) is `public_key`'s signature for this
/// link. `public_key` is raw (net::public_key_bytes; parse_public_key turns
/// a resource's "ed25519:HEX" into it); false for a bearer claim.
bool check_signature(net::crypto& c, const auth_claim& claim, const std::string& public_key,
                     const std::string& channel_binding);

/// A certificate subject "service/NAME" or "principal/NAME" split; false
/// for any other.
bool split_subject(const std::string& subject, std::string& kind, std::string& name);

/// Whether a certificate (its serial and notBefore, as verify_certificate
/// reads them) is revoked by a spec's revokedSerials / revokedBefore.
bool cert_revoked(const net::crypto::certificate_info& info,
                  const std::vector<std::string>& revoked_serials,
                  int64_t revoked_before_unix_ms);

/// Standard base64 (with padding), for the DRTP-Cert header.
std::string base64_encode(const std::string& bytes);
/// false for anything but standard padded base64.
bool base64_decode(const std::string& text, std::string& bytes);

/// A public key as resources and configs write it: "ed25519:" and hex.
std::string public_key_text(const std::string& public_key);
/// false unless `text` is "ed25519:" and the hex of public_key_bytes.
bool parse_public_key(const std::string& text, std::string& public_key);

/// The scrypt salt of the POP fleet's login key: every POP of a fleet holds
/// the same pops.secret, and the control plane its public key.
std::string pop_fleet_salt();

/// The digest of an admin token that the control plane's config keeps
/// (admin_token_sha256: "sha256:" and hex of it): HMAC-SHA256 keyed with
/// "drtp-admin-token-v1". Compared with net::equal_ct.
std::string admin_token_digest(net::crypto& c, const std::string& token);

} // namespace drtp::control
