#pragma once
// What refused requests cost their source: a token bucket per source prefix
// (an IPv4 /24 or IPv6 /64, as admission::prefix_of says). Every refusal
// (no or a wrong credential, a forbidden request) takes a token; a source
// with none left is refused before its credential is even looked at, so
// guessing tokens or signatures is slow and cheap to turn away. Tokens come
// back one per refill_interval_ms up to the burst. At most sources_max
// buckets are kept; the least recently used goes first (a forgotten source
// starts full again, which costs an attacker nothing it did not have).
//
// Plain state; time is passed in (the host clock).

#include <cstdint>
#include <list>
#include <string>
#include <unordered_map>

#include "caf/actor_clock.hpp"

namespace drtp::control {

struct refusal_limits {
  uint32_t burst = 20;
  uint32_t refill_interval_ms = 1000;
  uint32_t sources_max = 10000;
};

class refusal_buckets {
public:
  using time_point = caf::actor_clock::time_point;

  explicit refusal_buckets(refusal_limits lim);

  /// Whether `host` may still be refused once more (has a token).
  bool has_token(const std::string& host, time_point now);
  /// `host` was refused: it loses a token (none below zero).
  void take(const std::string& host, time_point now);

  size_t sources() const {
    return buckets_.size();
  }

private:
  struct bucket {
    int64_t tokens = 0;
    time_point refilled;
    std::list<std::string>::iterator lru;
  };

  bucket& bucket_of(const std::string& host, time_point now);

  refusal_limits lim_;
  std::unordered_map<std::string, bucket> buckets_;
  std::list<std::string> lru_; // least recently used first
};

} // namespace drtp::control
