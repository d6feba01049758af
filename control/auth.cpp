#include "control/auth.hpp"

#include <algorithm>
#include <cctype>

#include "control/resource.hpp"
#include "net/wire/hex.hpp"

namespace drtp::control {

namespace {

/// A header longer than this is refused before it is looked at: the
/// longest honest one, a signature claim with a 63-byte name, is ~220.
constexpr size_t header_bytes_max = 1024;

constexpr const char* bearer_scheme = "Bearer";
constexpr const char* signature_scheme = "DRTP-Ed25519";
constexpr const char* cert_scheme = "DRTP-Cert";

constexpr const char* b64_digits =
  "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int b64_value(char c) {
  if (c >= 'A' && c <= 'Z')
    return c - 'A';
  if (c >= 'a' && c <= 'z')
    return c - 'a' + 26;
  if (c >= '0' && c <= '9')
    return c - '0' + 52;
  if (c == '+')
    return 62;
  if (c == '/')
    return 63;
  return -1;
}

bool hex_signature(const std::string& sig, std::string& raw) {
  // Exactly the hex of one signature: from_hex alone would skip colons.
  if (sig.size() != 2 * net::signature_bytes
      || !std::all_of(sig.begin(), sig.end(), [](unsigned char c) { return std::isxdigit(c); }))
    return false;
  return net::from_hex(sig, raw) && raw.size() == net::signature_bytes;
}

/// Case-insensitive, as HTTP auth schemes are.
bool scheme_is(const std::string& value, size_t length, const char* scheme) {
  std::string s(scheme);
  if (length != s.size())
    return false;
  return std::equal(s.begin(), s.end(), value.begin(), [](char a, char b) {
    auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; };
    return lower(a) == lower(b);
  });
}

/// Visible ASCII, no spaces: what a token or a claim may hold.
bool visible(const std::string& s) {
  return std::all_of(s.begin(), s.end(), [](unsigned char c) { return c > 0x20 && c < 0x7f; });
}

bool signer_kind(const std::string& k) {
  return k == kind_pop || k == kind_service || k == kind_principal;
}

/// "KIND/NAME HEXSIG" into the claim.
bool parse_signature_claim(const std::string& rest, auth_claim& out) {
  auto space = rest.find(' ');
  if (space == std::string::npos)
    return false;
  auto who = rest.substr(0, space);
  auto sig = rest.substr(space + 1);
  auto slash = who.find('/');
  if (slash == std::string::npos)
    return false;
  auto k = who.substr(0, slash);
  auto name = who.substr(slash + 1);
  // Exactly the hex of one signature: from_hex alone would skip colons.
  if (!signer_kind(k) || !valid_name(name) || sig.size() != 2 * net::signature_bytes
      || !std::all_of(sig.begin(), sig.end(), [](unsigned char c) { return std::isxdigit(c); }))
    return false;
  std::string raw;
  if (!net::from_hex(sig, raw) || raw.size() != net::signature_bytes)
    return false;
  out.bearer = false;
  out.kind = std::move(k);
  out.name = std::move(name);
  out.signature = std::move(raw);
  return true;
}

} // namespace

std::string auth_message(const std::string& kind, const std::string& name,
                         const std::string& channel_binding) {
  return "drtp-control-auth-v1\n" + kind + "\n" + name + "\n" + channel_binding;
}

std::string auth_header(net::crypto& c, const std::string& kind, const std::string& name,
                        const std::string& seed, const std::string& channel_binding) {
  auto sig = c.sign(seed, auth_message(kind, name, channel_binding));
  return std::string(signature_scheme) + " " + kind + "/" + name + " " + net::to_hex(sig);
}

bool parse_auth_header(const std::string& value, auth_claim& out) {
  out = auth_claim{};
  if (value.size() > cert_header_bytes_max)
    return false;
  auto space = value.find(' ');
  if (space == std::string::npos || space + 1 >= value.size())
    return false;
  auto rest = value.substr(space + 1);
  if (scheme_is(value, space, cert_scheme)) {
    auto sp = rest.find(' ');
    if (sp == std::string::npos)
      return false;
    auth_claim claim;
    claim.cert = true;
    if (!base64_decode(rest.substr(0, sp), claim.cert_pem) || claim.cert_pem.empty()
        || !hex_signature(rest.substr(sp + 1), claim.signature))
      return false;
    out = std::move(claim);
    return true;
  }
  if (value.size() > header_bytes_max)
    return false;
  if (scheme_is(value, space, bearer_scheme)) {
    if (!visible(rest))
      return false;
    out.bearer = true;
    out.token = std::move(rest);
    return true;
  }
  if (scheme_is(value, space, signature_scheme)) {
    auth_claim claim;
    if (!parse_signature_claim(rest, claim))
      return false;
    out = std::move(claim);
    return true;
  }
  return false;
}

bool check_signature(net::crypto& c, const auth_claim& claim, const std::string& public_key,
                     const std::string& channel_binding) {
  if (claim.bearer || claim.cert || claim.signature.size() != net::signature_bytes
      || public_key.size() != net::public_key_bytes || !signer_kind(claim.kind)
      || !valid_name(claim.name))
    return false;
  return c.verify(public_key, auth_message(claim.kind, claim.name, channel_binding),
                  claim.signature);
}

std::string cert_auth_header(net::crypto& c, const std::string& cert_pem,
                             const std::string& kind, const std::string& name,
                             const std::string& seed, const std::string& channel_binding) {
  auto sig = c.sign(seed, auth_message(kind, name, channel_binding));
  return std::string(cert_scheme) + " " + base64_encode(cert_pem) + " " + net::to_hex(sig);
}

bool split_subject(const std::string& subject, std::string& kind, std::string& name) {
  auto slash = subject.find('/');
  if (slash == std::string::npos)
    return false;
  kind = subject.substr(0, slash);
  name = subject.substr(slash + 1);
  return (kind == kind_service || kind == kind_principal) && valid_name(name);
}

bool cert_revoked(const net::crypto::certificate_info& info,
                  const std::vector<std::string>& revoked_serials,
                  int64_t revoked_before_unix_ms) {
  if (revoked_before_unix_ms != 0 && info.not_before_s * 1000 < revoked_before_unix_ms)
    return true;
  auto serial = net::canonical_serial(info.serial);
  return serial.empty()
         || std::find(revoked_serials.begin(), revoked_serials.end(), serial)
              != revoked_serials.end();
}

std::string base64_encode(const std::string& bytes) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    uint32_t v = (uint32_t{static_cast<unsigned char>(bytes[i])} << 16)
                 | (uint32_t{static_cast<unsigned char>(bytes[i + 1])} << 8)
                 | static_cast<unsigned char>(bytes[i + 2]);
    for (int s = 18; s >= 0; s -= 6)
      out.push_back(b64_digits[(v >> s) & 63]);
  }
  size_t left = bytes.size() - i;
  if (left > 0) {
    uint32_t v = uint32_t{static_cast<unsigned char>(bytes[i])} << 16;
    if (left == 2)
      v |= uint32_t{static_cast<unsigned char>(bytes[i + 1])} << 8;
    out.push_back(b64_digits[(v >> 18) & 63]);
    out.push_back(b64_digits[(v >> 12) & 63]);
    out.push_back(left == 2 ? b64_digits[(v >> 6) & 63] : '=');
    out.push_back('=');
  }
  return out;
}

bool base64_decode(const std::string& text, std::string& bytes) {
  bytes.clear();
  if (text.size() % 4 != 0)
    return false;
  for (size_t i = 0; i < text.size(); i += 4) {
    bool last = i + 4 == text.size();
    int pad = 0;
    uint32_t v = 0;
    for (size_t k = 0; k < 4; ++k) {
      char ch = text[i + k];
      int d = b64_value(ch);
      if (ch == '=' && last && k >= 2 && (k == 3 || text[i + 3] == '=')) {
        ++pad;
        d = 0;
      } else if (d < 0 || pad > 0) {
        return false;
      }
      v = (v << 6) | static_cast<uint32_t>(d);
    }
    bytes.push_back(static_cast<char>((v >> 16) & 0xff));
    if (pad < 2)
      bytes.push_back(static_cast<char>((v >> 8) & 0xff));
    if (pad < 1)
      bytes.push_back(static_cast<char>(v & 0xff));
  }
  return true;
}

std::string pop_fleet_salt() {
  // The shape of net::service_salt and net::principal_salt (a label, then
  // NUL-separated kind and name) with a kind of its own and no name: one
  // key for the whole fleet, distinct from any service's or principal's.
  std::string out = "drtp-login-key-v1";
  out.push_back('\0');
  out += "pop-fleet";
  out.push_back('\0');
  return out;
}

std::string admin_token_digest(net::crypto& c, const std::string& token) {
  return "sha256:" + net::to_hex(c.hmac_sha256("drtp-admin-token-v1", token));
}

std::string public_key_text(const std::string& public_key) {
  return "ed25519:" + net::to_hex(public_key);
}

bool parse_public_key(const std::string& text, std::string& public_key) {
  static const std::string prefix = "ed25519:";
  auto hex = text.compare(0, prefix.size(), prefix) == 0 ? text.substr(prefix.size()) : "";
  if (hex.size() != 2 * net::public_key_bytes
      || !std::all_of(hex.begin(), hex.end(), [](unsigned char c) { return std::isxdigit(c); }))
    return false;
  return net::from_hex(hex, public_key);
}

} // namespace drtp::control
