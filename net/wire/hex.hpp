#pragma once
// Hex, as keys, pins and signatures are written in configs, headers and
// the registry's resources. Here (not in net/tls) so that the control
// plane's seam-only code can use it.

#include <string>

namespace drtp::net {

/// Plain lowercase hex.
std::string to_hex(const std::string& raw);
/// Returns false on malformed input (odd length, non-hex characters).
/// Colons are ignored so "AB:CD" parses (certificate fingerprints).
bool from_hex(const std::string& hex, std::string& raw);

} // namespace drtp::net
