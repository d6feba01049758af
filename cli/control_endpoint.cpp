#include "cli/control_endpoint.hpp"

#include <cerrno>
#include <cstring>
#include <unistd.h>

#include "cli/args.hpp"
#include "cli/error.hpp"
#include "net/wire/hex.hpp"

namespace drtp::cli {

std::shared_ptr<net::tls_client_config> pinned_tls(const std::string& text,
                                                   const std::string& what) {
  auto tls = std::make_shared<net::tls_client_config>();
  auto hex = text.rfind("sha256:", 0) == 0 ? text.substr(7) : text;
  if (!net::from_hex(hex, tls->fingerprint_sha256) || tls->fingerprint_sha256.size() != 32)
    throw error(what + " must be sha256: and 64 hex digits");
  return tls;
}

control_endpoint parse_control_endpoint(const std::string& url,
                                        const std::optional<std::string>& pin,
                                        const std::optional<std::string>& ca_file,
                                        const control_flags& flags) {
  control_endpoint c;
  c.url = url;
  const std::string bad = std::string(flags.url) + " " + url + ": expected https://HOST[:PORT]";
  static const std::string scheme = "https://";
  if (url.compare(0, scheme.size(), scheme) != 0)
    throw error(bad + " (the control plane speaks only HTTPS)");
  auto rest = url.substr(scheme.size());
  while (!rest.empty() && rest.back() == '/')
    rest.pop_back();
  if (rest.empty() || rest.find('/') != std::string::npos)
    throw error(bad + " with no path");
  auto colon = rest.rfind(':');
  // "[::1]" has colons but no port; "[::1]:7443" and "h:7443" have one.
  bool has_port = colon != std::string::npos && rest.find(']', colon) == std::string::npos
                  && (rest.front() == '[' || rest.find(':') == colon);
  if (has_port) {
    parse_host_port(rest, flags.url, c.host, c.port);
  } else {
    c.host = rest;
    if (c.host.size() > 2 && c.host.front() == '[' && c.host.back() == ']')
      c.host = c.host.substr(1, c.host.size() - 2);
  }
  if (c.host.empty() || c.port == 0)
    throw error(bad);
  if (pin.has_value() == ca_file.has_value())
    throw error(std::string(flags.url) + " needs one of " + flags.pin + " sha256:HEX or "
                + flags.ca + " FILE (how the control plane's certificate is checked)");
  if (pin) {
    c.tls = pinned_tls(*pin, flags.pin);
    return c;
  }
  if (::access(ca_file->c_str(), R_OK) != 0)
    throw error(std::string("cannot read ") + flags.ca + " " + *ca_file + ": "
                + std::strerror(errno));
  auto tls = std::make_shared<net::tls_client_config>();
  tls->ca_file = *ca_file;
  tls->server_name = c.host;
  c.tls = std::move(tls);
  return c;
}

} // namespace drtp::cli
