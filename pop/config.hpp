#pragma once
// drtp-pop's configuration file (YAML):
//
//   listen: 0.0.0.0:7000          # where agents dial in (TLS)
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
//   limits:                       # optional, each key too (defaults shown)
//     visitors_per_source_max: 512
//     visitor_opens_per_source_per_s: 200
//     visitor_opens_per_source_burst: 400
//     visitors_per_service_max: 4096
//     streams_per_principal_max: 1024
//     stream_opens_per_principal_per_s: 200
//     stream_opens_per_principal_burst: 400
//     link_write_queue_bytes_max: 268435456
//     pings_per_interval_max: 16

#include <string>
#include <vector>

#include "actors/pop_server.hpp"

namespace drtp::pop {

struct config {
  std::string listen_host = "0.0.0.0";
  uint16_t listen_port = 7000;
  std::string cert_file;
  std::string key_file;
  std::vector<service_config> services;
  std::vector<principal_config> principals;
  /// The `limits:` section: only its limit fields are read (see above).
  pop_params limits;
};

/// Throws cli::error with the file, line and key that are wrong.
config load_config(const std::string& path);

/// Every `allow` entry names a principal, or a group that some principal is
/// in: a typo must not silently lock out (or seem to admit) anyone. Throws
/// cli::error starting with `where` (the config file, or the flag).
void check_allow_lists(const config& cfg, const std::string& where);

} // namespace drtp::pop
