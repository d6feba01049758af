#pragma once
// Admission control before login, at a POP: which unauthenticated links may
// hold a handshake slot, and how fast one network may try secrets.
//
// - Links in handshake: at most handshakes_max in all and
//   handshakes_per_source_max per source address (a newcomer beyond that is
//   refused). When the table is full, the oldest link of the most
//   represented source prefix is evicted for the newcomer: a flood from one
//   network can only push out its own links, never lock out another one.
// - Attempts (a challenge issued) per source prefix (/24 for IPv4, /64 for
//   IPv6; anything else, a simulator host name, is its own prefix) come from
//   a token bucket: auth_attempts_burst at once, then one per
//   auth_attempt_interval_ms. A failed login drains the bucket and adds the
//   doubling per-failure delay. An attempt that would wait longer than
//   auth_delay_max_ms is refused. The bucket table holds at most
//   prefixes_max entries; the least recently used one goes first.
//
// Plain state, no actor: the POP server owns one and asks it; time is passed
// in (the host clock), so the unit test drives it directly.

#include <cstdint>
#include <list>
#include <map>
#include <string>
#include <unordered_map>

#include "caf/actor_clock.hpp"

namespace drtp {

struct admission_limits {
  /// Links between TLS and the end of their handshake, in all.
  uint32_t handshakes_max = 1024;
  /// The same, per source address. NATs share addresses: generous.
  uint32_t handshakes_per_source_max = 32;
  /// A link that sent no hello within this is closed (the proof deadline,
  /// tunnel_limits::handshake_timeout_ms, is separate and longer).
  uint32_t hello_deadline_ms = 2000;
  /// Token bucket of challenges per source prefix.
  uint32_t auth_attempts_burst = 16;
  uint32_t auth_attempt_interval_ms = 500;
  /// Failed logins within this window double the next attempt's delay.
  uint32_t auth_failure_window_ms = 60000;
  /// Longest an attempt waits for its challenge; beyond it is refused.
  uint32_t auth_delay_max_ms = 5000;
  /// Prefixes whose bucket is remembered.
  uint32_t prefixes_max = 10000;
};

class admission {
public:
  using link_id = uint64_t;
  using time_point = caf::actor_clock::time_point;

  explicit admission(admission_limits lim);

  /// The one client a peer host stands for: its IPv4 address (IPv4-mapped
  /// IPv6 as IPv4), or its IPv6 /64 ("x:x:x:x::/64": one site holds a whole
  /// /64, so per-address limits would not bind it); anything unparsable as
  /// it is. Per-source limits (handshakes, visitors) count by this.
  static std::string source_of(const std::string& host);
  /// "a.b.c.0/24", "x:x:x:x::/64", or the host itself when unparsable.
  static std::string prefix_of(const std::string& host);

  struct link_verdict {
    bool admit = false;
    bool evict = false; // admit after evicting `victim`
    link_id victim = 0;
  };

  /// A link from `host` finished TLS. If the verdict evicts, the victim is
  /// already out of the table.
  link_verdict on_link(const std::string& host);
  /// Records an admitted link; `id` is new.
  void add_link(link_id id, const std::string& host);
  /// The link's handshake ended (up, or gone). False if not in the table.
  bool remove_link(link_id id);
  /// The host of a link in the table, or null.
  const std::string* host_of(link_id id) const;

  struct attempt_verdict {
    bool allowed = false;
    uint32_t delay_ms = 0; // before the challenge
  };

  /// A hello from `host` asks for a challenge.
  attempt_verdict on_attempt(const std::string& host, time_point now);
  /// A login from `host` failed.
  void on_failure(const std::string& host, time_point now);

  size_t handshakes() const {
    return links_.size();
  }
  size_t prefixes() const {
    return buckets_.size();
  }
  const admission_limits& limits() const {
    return lim_;
  }

private:
  struct link_entry {
    std::string source;
    std::string prefix;
    uint64_t seq = 0; // admission order: lower is older
  };

  struct bucket {
    int64_t millitokens = 0;
    time_point refilled;
    uint32_t failures = 0;
    time_point last_failure;
    std::list<std::string>::iterator lru; // into lru_
  };

  bucket& bucket_of(const std::string& prefix, time_point now);
  void refill(bucket& b, time_point now) const;
  uint32_t failure_delay_ms(const bucket& b, time_point now) const;

  admission_limits lim_;
  uint64_t next_seq_ = 0;
  std::unordered_map<link_id, link_entry> links_;
  std::unordered_map<std::string, uint32_t> per_source_;
  /// prefix -> its links by age (seq -> id)
  std::unordered_map<std::string, std::map<uint64_t, link_id>> per_prefix_;
  std::unordered_map<std::string, bucket> buckets_;
  std::list<std::string> lru_; // least recently used prefix first
};

} // namespace drtp
