#include "control/refusal_buckets.hpp"

#include <algorithm>
#include <chrono>

#include "actors/admission.hpp"
#include "net/seam/assert.hpp"

namespace drtp::control {

refusal_buckets::refusal_buckets(refusal_limits lim) : lim_(lim) {
  DRTP_ASSERT(lim_.burst > 0 && lim_.refill_interval_ms > 0 && lim_.sources_max > 0,
              "refusal limits are positive");
}

refusal_buckets::bucket& refusal_buckets::bucket_of(const std::string& host, time_point now) {
  auto prefix = admission::prefix_of(host);
  auto i = buckets_.find(prefix);
  if (i == buckets_.end()) {
    if (buckets_.size() >= lim_.sources_max) {
      buckets_.erase(lru_.front());
      lru_.pop_front();
    }
    lru_.push_back(prefix);
    bucket b;
    b.tokens = lim_.burst;
    b.refilled = now;
    b.lru = std::prev(lru_.end());
    i = buckets_.emplace(prefix, b).first;
  } else {
    lru_.splice(lru_.end(), lru_, i->second.lru);
  }
  auto& b = i->second;
  auto interval = std::chrono::milliseconds(lim_.refill_interval_ms);
  if (now > b.refilled) {
    auto earned = (now - b.refilled) / interval;
    if (earned > 0) {
      b.tokens = std::min<int64_t>(lim_.burst, b.tokens + earned);
      b.refilled += earned * interval;
    }
  }
  if (b.tokens >= lim_.burst)
    b.refilled = now; // a full bucket does not save up
  DRTP_ASSERT(buckets_.size() <= lim_.sources_max, "the bucket table is bounded");
  return b;
}

bool refusal_buckets::has_token(const std::string& host, time_point now) {
  return bucket_of(host, now).tokens > 0;
}

void refusal_buckets::take(const std::string& host, time_point now) {
  auto& b = bucket_of(host, now);
  if (b.tokens > 0)
    --b.tokens;
}

} // namespace drtp::control
