#include "net/wire/cidr.hpp"

#include <cstdio>

namespace drtp::net {

namespace {

// What an error message quotes of hostile text: bounded, printable only.
std::string quoted(const std::string& text) {
  std::string out = "'";
  for (size_t i = 0; i < text.size() && i < cidr_text_bytes_max; ++i) {
    char c = text[i];
    out.push_back(c >= 0x20 && c < 0x7f ? c : '?');
  }
  if (text.size() > cidr_text_bytes_max)
    out += "...";
  return out + "'";
}

bool is_digit(char c) { return c >= '0' && c <= '9'; }

int hex_value(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

// Strict dotted quad: four decimal parts 0..255, no leading zeros (a leading
// zero reads as octal to inet_aton; refusing it keeps one meaning).
bool parse_v4(const std::string& s, uint8_t* out) {
  size_t pos = 0;
  for (int part = 0; part < 4; ++part) {
    if (part > 0) {
      if (pos >= s.size() || s[pos] != '.')
        return false;
      ++pos;
    }
    size_t start = pos;
    unsigned value = 0;
    while (pos < s.size() && is_digit(s[pos]) && pos - start < 3) {
      value = value * 10 + static_cast<unsigned>(s[pos] - '0');
      ++pos;
    }
    size_t len = pos - start;
    if (len == 0 || value > 255 || (len > 1 && s[start] == '0'))
      return false;
    if (pos < s.size() && is_digit(s[pos]))
      return false;
    out[part] = static_cast<uint8_t>(value);
  }
  return pos == s.size();
}

// RFC 4291 section 2.2 text: 8 groups of 1..4 hex digits, at most one "::",
// optionally the last 32 bits as a dotted quad.
bool parse_v6(const std::string& s, uint8_t* out) {
  uint16_t groups[8] = {};
  int count = 0;     // groups written
  int gap = -1;      // index where "::" sits, -1 when none
  size_t pos = 0;
  if (s.size() < 2)
    return false;
  if (s[0] == ':') {
    if (s[1] != ':')
      return false;
    gap = 0;
    pos = 2;
  }
  while (pos < s.size()) {
    if (count >= 8)
      return false;
    // A dotted-quad tail: needs room for two groups.
    size_t next_colon = s.find(':', pos);
    std::string token = s.substr(pos, next_colon == std::string::npos
                                          ? std::string::npos
                                          : next_colon - pos);
    if (token.find('.') != std::string::npos) {
      if (next_colon != std::string::npos || count > 6)
        return false;
      uint8_t v4[4];
      if (!parse_v4(token, v4))
        return false;
      groups[count++] = static_cast<uint16_t>(v4[0] << 8 | v4[1]);
      groups[count++] = static_cast<uint16_t>(v4[2] << 8 | v4[3]);
      pos = s.size();
      break;
    }
    if (token.empty() || token.size() > 4)
      return false;
    unsigned value = 0;
    for (char c : token) {
      int h = hex_value(c);
      if (h < 0)
        return false;
      value = value << 4 | static_cast<unsigned>(h);
    }
    groups[count++] = static_cast<uint16_t>(value);
    pos += token.size();
    if (pos == s.size())
      break;
    // pos is at ':'
    ++pos;
    if (pos < s.size() && s[pos] == ':') {
      if (gap >= 0)
        return false;
      gap = count;
      ++pos;
    } else if (pos == s.size()) {
      return false; // trailing single ':'
    }
  }
  if (gap < 0 && count != 8)
    return false;
  if (gap >= 0 && count > 7)
    return false; // "::" must stand for at least one group
  uint16_t full[8] = {};
  if (gap < 0) {
    for (int i = 0; i < 8; ++i)
      full[i] = groups[i];
  } else {
    for (int i = 0; i < gap; ++i)
      full[i] = groups[i];
    int tail = count - gap;
    for (int i = 0; i < tail; ++i)
      full[8 - tail + i] = groups[gap + i];
  }
  for (int i = 0; i < 8; ++i) {
    out[2 * i] = static_cast<uint8_t>(full[i] >> 8);
    out[2 * i + 1] = static_cast<uint8_t>(full[i] & 0xff);
  }
  return true;
}

bool is_v4_mapped(const uint8_t* b) {
  for (int i = 0; i < 10; ++i)
    if (b[i] != 0)
      return false;
  return b[10] == 0xff && b[11] == 0xff;
}

// An address literal into (v6, bytes), IPv4-mapped folded to IPv4.
bool parse_address(const std::string& text, bool& v6,
                   std::array<uint8_t, 16>& bytes) {
  if (text.empty() || text.size() > cidr_text_bytes_max)
    return false;
  bytes.fill(0);
  if (text.find(':') == std::string::npos) {
    v6 = false;
    return parse_v4(text, bytes.data());
  }
  if (!parse_v6(text, bytes.data()))
    return false;
  v6 = true;
  if (is_v4_mapped(bytes.data())) {
    v6 = false;
    std::array<uint8_t, 16> v4{};
    for (int i = 0; i < 4; ++i)
      v4[i] = bytes[12 + i];
    bytes = v4;
  }
  return true;
}

bool prefix_equal(const uint8_t* a, const uint8_t* b, unsigned prefix) {
  unsigned whole = prefix / 8;
  for (unsigned i = 0; i < whole; ++i)
    if (a[i] != b[i])
      return false;
  unsigned rest = prefix % 8;
  if (rest == 0)
    return true;
  auto mask = static_cast<uint8_t>(0xff << (8 - rest));
  return (a[whole] & mask) == (b[whole] & mask);
}

void mask_bytes(uint8_t* b, unsigned prefix, unsigned width_bytes) {
  for (unsigned i = 0; i < width_bytes; ++i) {
    unsigned bit = i * 8;
    if (bit >= prefix)
      b[i] = 0;
    else if (prefix - bit < 8)
      b[i] &= static_cast<uint8_t>(0xff << (8 - (prefix - bit)));
  }
}

} // namespace

bool parse_cidr(const std::string& text, cidr& out, std::string* error) {
  auto fail = [&](const std::string& why) {
    if (error)
      *error = "bad CIDR " + quoted(text) + ": " + why;
    return false;
  };
  if (text.empty())
    return fail("empty");
  if (text.size() > cidr_text_bytes_max)
    return fail("longer than " + std::to_string(cidr_text_bytes_max) + " bytes");
  auto slash = text.find('/');
  std::string addr = text.substr(0, slash);
  if (addr.find('%') != std::string::npos)
    return fail("zone ids are not allowed in a CIDR block");
  cidr block;
  bool mapped_text = false;
  if (addr.find(':') == std::string::npos) {
    if (!parse_v4(addr, block.bytes.data()))
      return fail("not an IPv4 address (want a.b.c.d, each 0..255, no leading zeros)");
    block.v6 = false;
  } else {
    if (!parse_v6(addr, block.bytes.data()))
      return fail("not an IPv6 address");
    block.v6 = true;
    mapped_text = is_v4_mapped(block.bytes.data());
  }
  unsigned width = block.v6 ? 128 : 32;
  unsigned prefix = width;
  if (slash != std::string::npos) {
    std::string p = text.substr(slash + 1);
    if (p.empty() || p.size() > 3 || (p.size() > 1 && p[0] == '0'))
      return fail("prefix length must be a number 0.." + std::to_string(width));
    prefix = 0;
    for (char c : p) {
      if (!is_digit(c))
        return fail("prefix length must be a number 0.." + std::to_string(width));
      prefix = prefix * 10 + static_cast<unsigned>(c - '0');
    }
    if (prefix > width)
      return fail("prefix length must be a number 0.." + std::to_string(width));
  }
  block.prefix = prefix;
  cidr masked = block;
  mask_bytes(masked.bytes.data(), prefix, width / 8);
  if (masked.bytes != block.bytes)
    return fail("host bits set (did you mean " + to_string(masked) + "?)");
  // ::ffff:a.b.c.d/N with N >= 96 is the IPv4 block a.b.c.d/(N-96): sources
  // fold the same way, so the two spellings mean one rule.
  if (mapped_text && prefix >= 96) {
    cidr v4;
    v4.v6 = false;
    for (int i = 0; i < 4; ++i)
      v4.bytes[i] = block.bytes[12 + i];
    v4.prefix = prefix - 96;
    block = v4;
  }
  out = block;
  return true;
}

std::string to_string(const cidr& block) {
  char buf[64];
  if (!block.v6) {
    std::snprintf(buf, sizeof buf, "%u.%u.%u.%u/%u", block.bytes[0],
                  block.bytes[1], block.bytes[2], block.bytes[3], block.prefix);
    return buf;
  }
  // RFC 5952: lowercase, longest run (>= 2) of zero groups as "::".
  uint16_t g[8];
  for (int i = 0; i < 8; ++i)
    g[i] = static_cast<uint16_t>(block.bytes[2 * i] << 8 | block.bytes[2 * i + 1]);
  int best = -1, best_len = 0;
  for (int i = 0; i < 8;) {
    if (g[i] != 0) {
      ++i;
      continue;
    }
    int j = i;
    while (j < 8 && g[j] == 0)
      ++j;
    if (j - i > best_len && j - i >= 2) {
      best = i;
      best_len = j - i;
    }
    i = j;
  }
  std::string out;
  for (int i = 0; i < 8; ++i) {
    if (i == best) {
      out += "::";
      i += best_len - 1;
      continue;
    }
    if (!out.empty() && out.back() != ':')
      out += ":";
    std::snprintf(buf, sizeof buf, "%x", g[i]);
    out += buf;
  }
  return out + "/" + std::to_string(block.prefix);
}

bool cidr_contains(const cidr& block, const std::string& address) {
  std::string a = address;
  if (a.size() > cidr_text_bytes_max + 2)
    return false;
  if (a.size() >= 2 && a.front() == '[' && a.back() == ']')
    a = a.substr(1, a.size() - 2);
  auto zone = a.find('%');
  if (zone != std::string::npos)
    a.resize(zone);
  bool v6 = false;
  std::array<uint8_t, 16> bytes{};
  if (!parse_address(a, v6, bytes))
    return false;
  if (v6 != block.v6)
    return false;
  return prefix_equal(bytes.data(), block.bytes.data(), block.prefix);
}

bool cidr_set::contains(const std::string& address) const {
  if (entries.empty())
    return true;
  for (const auto& e : entries)
    if (cidr_contains(e, address))
      return true;
  return false;
}

bool parse_cidr_set(const std::vector<std::string>& texts, cidr_set& out,
                    std::string* error) {
  if (texts.size() > cidr_set_entries_max) {
    if (error)
      *error = "more than " + std::to_string(cidr_set_entries_max) +
               " CIDR blocks";
    return false;
  }
  cidr_set parsed;
  parsed.entries.reserve(texts.size());
  for (const auto& t : texts) {
    cidr c;
    if (!parse_cidr(t, c, error))
      return false;
    parsed.entries.push_back(c);
  }
  out = std::move(parsed);
  return true;
}

} // namespace drtp::net
