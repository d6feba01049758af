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
//       public_key: ed25519:3b1f...  # `drtp-pop public-key` prints it
//       # or: secret_file: /etc/drtp/joes-pg.secret (the public key is
//       # derived at load; the secret is not kept)
//       public: 0.0.0.0:15432     # visitors connect here; omit: private
//       allow: [sam, group:partners, org:acme]  # patch-panel principals
//                                 # (drtp connect): names, groups, orgs
//       allow_cidr: [10.0.0.0/8, "2001:db8::/32"]  # sources admitted (public
//                                 # visitors, and a client tunnel's source);
//                                 # omit: any. Bare address = /32 or /128;
//                                 # host bits set is an error (net/wire/cidr.hpp)
//       gateway: office-pg        # named in refusal audit lines; omit: the service
//       end_open_sessions: false  # on reload, also end open sessions the new
//                                 # rules refuse (false: only new ones refused)
//   principals:
//     - name: sam
//       public_key: ed25519:9d0e...  # or secret_file
//       groups: [partners]
//       org: acme                 # at most one; `allow: [org:acme]` admits it
//       revoked: false
//   limits:                       # optional, each key too
//     # before login, per source
//     handshakes_max: 1024        # links between TLS and login, in all
//     handshakes_per_source_max: 32   # the same, per source (IPv4 address, IPv6 /64)
//     hello_deadline_ms: 2000     # a link that sends no hello is closed
//     auth_attempts_burst: 16     # challenges per /24 (IPv4) or /64 (IPv6)
//     auth_attempt_interval_ms: 500   #   at once, then one per interval
//     auth_failure_window_ms: 60000   # failures double the next delay...
//     auth_delay_max_ms: 5000     #   up to this; a longer wait is refused
//     prefixes_max: 10000         # prefixes remembered (least recent go)
//     # after login (defaults shown)
//     visitors_per_source_max: 512
//     visitor_opens_per_source_per_s: 200
//     visitor_opens_per_source_burst: 400
//     visitors_per_service_max: 65536
//     streams_per_principal_max: 1024
//     stream_opens_per_principal_per_s: 200
//     stream_opens_per_principal_burst: 400
//     link_write_queue_bytes_max: 268435456
//     pings_per_interval_max: 16

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
  /// The `limits:` section: only its limit fields are read (see above;
  /// admission before login in limits.admission).
  pop_params limits;
  /// Sessions with no bytes either way this long are closed; 0: never.
  uint32_t session_idle_timeout_ms = tunnel_limits{}.session_idle_timeout_ms;
};

/// A config's form of an Ed25519 public key: "ed25519:" and 64 hex digits.
std::string public_key_text(const std::string& public_key);
/// false unless `text` is that form; `public_key` then holds 32 bytes.
bool parse_public_key(const std::string& text, std::string& public_key);

/// The longest idle timeout one may set (a week), in seconds.
constexpr uint32_t idle_timeout_s_max = 7 * 24 * 3600;

/// Throws cli::error with the file, line and key that are wrong.
/// `services_required` false (drtp-pop --control: the registry has them):
/// a config may list none.
config load_config(const std::string& path, bool services_required = true);

/// Every `allow` entry names a principal, a group that some principal is
/// in, or (org:NAME) an org some principal belongs to: a typo must not silently lock out (or seem to admit) anyone. Throws
/// cli::error starting with `where` (the config file, or the flag).
void check_allow_lists(const config& cfg, const std::string& where);

} // namespace drtp::pop
