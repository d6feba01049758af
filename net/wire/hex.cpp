#include "net/wire/hex.hpp"

namespace drtp::net {

std::string to_hex(const std::string& raw) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  out.reserve(raw.size() * 2);
  for (unsigned char c : raw) {
    out.push_back(digits[c >> 4]);
    out.push_back(digits[c & 0x0f]);
  }
  return out;
}

bool from_hex(const std::string& hex, std::string& raw) {
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9')
      return c - '0';
    if (c >= 'a' && c <= 'f')
      return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
      return c - 'A' + 10;
    return -1;
  };
  std::string out;
  out.reserve(hex.size() / 2);
  int high = -1; // pending high nibble, -1 when none
  for (char c : hex) {
    if (c == ':')
      continue;
    int v = nibble(c);
    if (v < 0)
      return false;
    if (high < 0) {
      high = v;
    } else {
      out.push_back(static_cast<char>((high << 4) | v));
      high = -1;
    }
  }
  if (high >= 0)
    return false; // odd number of digits
  raw = std::move(out);
  return true;
}

} // namespace drtp::net
