#include "net/seam/crypto.hpp"

namespace drtp::net {

crypto::~crypto() = default;

// The defaults refuse: see crypto.hpp.
std::string crypto::private_key_pem(const std::string&) {
  return {};
}
std::string crypto::make_csr(const std::string&, const std::string&) {
  return {};
}
std::string crypto::make_ca_certificate(const std::string&, const std::string&, int64_t,
                                        int64_t) {
  return {};
}
crypto::certificate_info crypto::read_csr(const std::string&) {
  certificate_info out;
  out.error = "this crypto does no X.509";
  return out;
}
std::string crypto::issue_certificate(const std::string&, const std::string&,
                                      const std::string&, const std::string&,
                                      const std::string&, int64_t, int64_t) {
  return {};
}
crypto::certificate_info crypto::verify_certificate(const std::string&, const std::string&,
                                                    int64_t) {
  certificate_info out;
  out.error = "this crypto does no X.509";
  return out;
}

std::string canonical_serial(const std::string& hex) {
  if (hex.empty() || hex.size() > cert_serial_hex_max)
    return {};
  std::string out;
  out.reserve(hex.size());
  for (char c : hex) {
    if (c >= 'A' && c <= 'F')
      c = static_cast<char>(c - 'A' + 'a');
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
      return {};
    if (out.empty() && c == '0')
      continue;
    out.push_back(c);
  }
  return out.empty() ? std::string{"0"} : out;
}

bool equal_ct(const std::string& a, const std::string& b) noexcept {
  if (a.size() != b.size())
    return false;
  // Accumulate every difference; volatile keeps the compiler from stopping
  // at the first one.
  volatile unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i)
    diff = diff | static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

} // namespace drtp::net
