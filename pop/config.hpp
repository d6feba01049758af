#pragma once
// drtp-pop's configuration file (YAML):
//
//   listen: 0.0.0.0:7000          # where agents dial in (TLS)
//   idle_timeout_s: 7200          # close sessions idle this long; 0: never
//   tls:                          # omit with --dev
//     cert: /etc/drtp/pop.crt
//     key: /etc/drtp/pop.key
//   services:
//     - name: joes-pg
//       secret_sha256: 3b1f...    # `drtp-pop hash-secret` prints it
//       # or: secret_file: /etc/drtp/joes-pg.secret
//       public: 0.0.0.0:15432     # visitors connect here; omit: private
//       allow: [sam, group:partners]  # patch-panel principals (drtp connect)
//   principals:
//     - name: sam
//       secret_sha256: 9d0e...    # or secret_file
//       groups: [partners]
//       revoked: false

#include <string>
#include <vector>

#include "actors/env.hpp"
#include "actors/pop_server.hpp"

namespace drtp::pop {

struct config {
  std::string listen_host = "0.0.0.0";
  uint16_t listen_port = 7000;
  std::string cert_file;
  std::string key_file;
  std::vector<service_config> services;
  std::vector<principal_config> principals;
  /// Sessions with no bytes either way this long are closed; 0: never.
  uint32_t session_idle_timeout_ms = tunnel_limits{}.session_idle_timeout_ms;
};

/// The longest idle timeout one may set (a week), in seconds.
constexpr uint32_t idle_timeout_s_max = 7 * 24 * 3600;

/// Throws cli::error with the file, line and key that are wrong.
config load_config(const std::string& path);

/// Every `allow` entry names a principal, or a group that some principal is
/// in: a typo must not silently lock out (or seem to admit) anyone. Throws
/// cli::error starting with `where` (the config file, or the flag).
void check_allow_lists(const config& cfg, const std::string& where);

} // namespace drtp::pop
