#pragma once
// CIDR blocks for a gateway's allow_cidr (issue 15): which source addresses
// may reach a service. Pure text in, answer out: no sockets, no resolver (the
// wire format depends on nothing above it), so the POP's config, the control
// plane's Gateway translation and the simulator all share one parser.
//
// Rules (strict on purpose: an allow list is a security boundary, a typo
// must be an error, never a silently wider or narrower rule):
// - IPv4 is a dotted quad of four decimal parts 0..255 without leading zeros
//   ("10.0.0.0/8"); IPv6 is RFC 4291 text with at most one "::" and an
//   optional dotted-quad tail ("2001:db8::/32", "::ffff:10.0.0.0/104").
// - A bare address is a host block: /32 for IPv4, /128 for IPv6.
// - Host bits set ("10.0.0.1/8") are REFUSED with an error that names the
//   block meant ("10.0.0.0/8"), never silently masked.
// - IPv4-mapped IPv6 (::ffff:a.b.c.d) is IPv4: as a source it matches IPv4
//   blocks, and a mapped block with prefix >= 96 is the IPv4 block
//   (prefix - 96). A dual-stack listener reports IPv4 visitors either way.
// - No zone ids ("%eth0") in blocks; a source's zone id is ignored. A source
//   may be written in brackets ("[::1]").

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace drtp::net {

/// Longest text parse_cidr and cidr_contains look at; longer is malformed.
constexpr size_t cidr_text_bytes_max = 64;
/// Most blocks in one cidr_set (one gateway's allow_cidr).
constexpr size_t cidr_set_entries_max = 1024;

struct cidr {
  bool v6 = false;                  ///< false: IPv4 (bytes[0..3] used)
  std::array<uint8_t, 16> bytes{};  ///< network address, host bits zero
  unsigned prefix = 0;              ///< 0..32 (IPv4) or 0..128 (IPv6)
};

/// Parses "ADDR/PREFIX" or a bare "ADDR". On failure returns false and, when
/// error is non-null, sets a one-line reason quoting the text (bounded).
bool parse_cidr(const std::string& text, cidr& out, std::string* error);

/// Canonical text ("10.0.0.0/8", "2001:db8::/32"), for logs and answers.
std::string to_string(const cidr& block);

/// True when address (a literal IPv4/IPv6 address, as accepted::peer_host
/// gives it) lies in block. An unparseable address is in no block.
bool cidr_contains(const cidr& block, const std::string& address);

/// One gateway's allow list. Empty admits anyone (no allow_cidr configured).
struct cidr_set {
  std::vector<cidr> entries;

  bool empty() const { return entries.empty(); }
  /// Empty set: true. Else true when some entry contains address.
  bool contains(const std::string& address) const;
};

/// Parses every entry (at most cidr_set_entries_max). On failure returns
/// false, out unchanged, error naming the bad entry.
bool parse_cidr_set(const std::vector<std::string>& texts, cidr_set& out,
                    std::string* error);

} // namespace drtp::net
