#pragma once
// drtpctl's link to the control plane: one https_client actor (actors/
// http_client) on the real network (net/runtime), driven synchronously,
// one request at a time. The token travels only in the Authorization
// header; nothing here prints it.

#include <memory>
#include <optional>
#include <string>

#include "cli/error.hpp"
#include "control/resource.hpp"

namespace drtp::ctl {

/// An API or network failure: one line, exit status 1 (a cli::error is a
/// usage error, exit status 2).
struct failure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct connection_options {
  std::string url;        // https://HOST[:PORT]
  std::string pin;        // "sha256:HEX", or empty
  std::string ca_file;    // or a CA bundle (PEM)
  std::string token;      // the admin token (never printed)
  int verbosity = 0;      // -v: the network's traces on stderr
};

/// From the flags, else DRTP_CONTROL, DRTP_CONTROL_PIN, DRTP_TOKEN_FILE
/// (else DRTP_TOKEN). Throws cli::error naming what is missing.
connection_options resolve_options(const std::optional<std::string>& url,
                                   const std::optional<std::string>& pin,
                                   const std::optional<std::string>& ca,
                                   const std::optional<std::string>& token_file, int verbosity);

struct reply {
  int status = 0;
  std::string body;
};

class client {
public:
  /// Throws cli::error for a malformed URL or pin (nothing is dialed yet).
  explicit client(connection_options o);
  ~client();
  client(const client&) = delete;
  client& operator=(const client&) = delete;

  /// One request; any HTTP status is a reply. Throws failure when the
  /// control plane cannot be reached or does not answer. A 401 is turned
  /// into a failure here too (every command's answer would be the same).
  reply fetch(const std::string& method, const std::string& target,
              const std::string& body = "");

  /// The control plane's URL, as given.
  const std::string& url() const;
  /// Its pin ("sha256:HEX"), empty when verified by --ca.
  const std::string& pin() const;

  /// Stops the network (the process is about to exit).
  void stop();

private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

/// /apis/drtp.dev/v1/PLURAL[/NAME].
std::string api_path(control::kind k, const std::string& name = "");

/// The one line of an API error: the Status object's message, else the
/// start of the body.
std::string error_message(const reply& r);

} // namespace drtp::ctl
