#pragma once
// The store protocol (control/store.hpp) over etcd v3, so that several
// drtp-control replicas serve one registry. It speaks etcd's JSON gateway
// (/v3/kv/range, /v3/kv/put, /v3/kv/txn, /v3/kv/deleterange, /v3/watch)
// through actors/http_client, over the seam, so the simulator could run it
// too. Conditional writes are etcd transactions on mod_revision; revisions
// are etcd's own, so every replica sees the same resourceVersions.
//
// Members are tried in turn: a request that fails on one member (refused,
// timed out) goes to the next, within request_timeout_ms overall; the store
// answers store_errc::unavailable only when no member answered. A watch
// whose member dies is resumed on another from the last revision it
// delivered (etcd keeps the history; a compacted one gives store_compacted).
//
// store_limits: keys and values are checked exactly; keys_max as well as a
// count of the keys under key_prefix allows (racy between replicas);
// total_bytes_max is left to etcd's --quota-backend-bytes ("database space
// exceeded" answers `full`); the store compacts etcd (the whole cluster) to
// its last history_max revisions, since etcd 3.4 does not by default. The
// top of etcd_store.cpp says more. Watch progress revisions come from the
// store's own timer, at the revision up to which etcd delivered (etcd's
// progress notifications, --experimental-watch-progress-notify-interval,
// move it on when nothing under the prefix changes).

#include <cstdint>
#include <string>
#include <vector>

#include "actors/env.hpp"
#include "caf/fwd.hpp"
#include "control/store.hpp"

namespace drtp::control {

struct etcd_member {
  std::string host;
  uint16_t port = 0;
};

struct etcd_store_params {
  env e;
  /// The cluster's client URLs (plain HTTP, loopback or a private network).
  std::vector<etcd_member> members;
  /// Prepended to every key, so one etcd may hold other things too.
  std::string key_prefix;
  store_limits limits;
  /// One request, over every member it tries.
  uint32_t request_timeout_ms = 5000;
  /// One member's answer.
  uint32_t member_timeout_ms = 2000;
};

/// Parses "etcd:http://h1:p1,http://h2:p2" (the config's `store:`); false
/// and one line in `error` when it is not that.
bool parse_etcd_url(const std::string& text, std::vector<etcd_member>& out, std::string& error);

caf::actor spawn_etcd_store(caf::actor_system& sys, etcd_store_params p);

} // namespace drtp::control
