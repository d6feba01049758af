#include "net/seam/crypto.hpp"

namespace drtp::net {

crypto::~crypto() = default;

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
