#pragma once
// How a binary names the control plane: `--control https://HOST[:PORT]`
// and how its certificate is verified (a pin, or a CA file and the host
// name). drtp-pop, drtp serve/connect and drtpctl all read it the same way,
// with the same one-line errors.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "net/seam/io.hpp"

namespace drtp::cli {

/// drtp-control's default port (its default `listen`).
constexpr uint16_t control_port_default = 7443;

/// `sha256:HEX` (the prefix may be left out) as a TLS config that trusts
/// exactly that certificate; cli::error naming `what` otherwise.
std::shared_ptr<net::tls_client_config> pinned_tls(const std::string& text,
                                                   const std::string& what);

struct control_endpoint {
  std::string url;
  std::string host;
  uint16_t port = control_port_default;
  std::shared_ptr<const net::tls_client_config> tls;
};

/// The flags' names, for the errors.
struct control_flags {
  const char* url = "--control";
  const char* pin = "--control-pin";
  const char* ca = "--control-ca";
};

/// Parses `url` (https://HOST[:PORT][/], IPv6 in brackets) and makes its TLS
/// config from exactly one of `pin` and `ca_file` (readable). Throws
/// cli::error with one line.
control_endpoint parse_control_endpoint(const std::string& url,
                                        const std::optional<std::string>& pin,
                                        const std::optional<std::string>& ca_file,
                                        const control_flags& flags = {});

} // namespace drtp::cli
