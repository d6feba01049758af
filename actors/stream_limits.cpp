#include "actors/stream_limits.hpp"

#include <algorithm>

#include "caf/all.hpp"
#include "net/seam/assert.hpp"

namespace drtp {

open_limiter::open_limiter(open_limits limits, size_t keys_max)
  : limits_(limits), keys_max_(std::max<size_t>(keys_max, 1)) {
  // nop
}

void open_limiter::refill(entry& e, time_point now) const {
  if (limits_.opens_per_s == 0)
    return;
  if (now > e.refilled) {
    std::chrono::duration<double> dt = now - e.refilled;
    e.tokens = std::min<double>(limits_.opens_burst,
                                e.tokens + dt.count() * limits_.opens_per_s);
  }
  e.refilled = now;
}

void open_limiter::prune(time_point now) {
  for (auto i = entries_.begin(); i != entries_.end();) {
    refill(i->second, now);
    bool full = limits_.opens_per_s == 0 || i->second.tokens >= limits_.opens_burst;
    if (i->second.open == 0 && full)
      i = entries_.erase(i);
    else
      ++i;
  }
}

open_limiter::verdict open_limiter::try_open(const std::string& key, time_point now) {
  auto i = entries_.find(key);
  if (i == entries_.end()) {
    if (entries_.size() >= keys_max_)
      prune(now);
    if (entries_.size() >= keys_max_)
      return verdict::too_many_keys;
    entry fresh;
    fresh.tokens = limits_.opens_burst;
    fresh.refilled = now;
    i = entries_.emplace(key, fresh).first;
  }
  DRTP_ASSERT(entries_.size() <= keys_max_, "a limiter holds at most keys_max keys");
  auto& e = i->second;
  if (limits_.open_max != 0 && e.open >= limits_.open_max)
    return verdict::too_many_open;
  refill(e, now);
  if (limits_.opens_per_s != 0) {
    if (e.tokens < 1)
      return verdict::too_fast;
    e.tokens -= 1;
  }
  ++e.open;
  return verdict::admitted;
}

void open_limiter::release(const std::string& key) {
  auto i = entries_.find(key);
  if (i == entries_.end())
    return; // counted before a reload of the limits, or never admitted
  DRTP_ASSERT(i->second.open > 0, "a key releases only streams it opened");
  --i->second.open;
}

uint32_t open_limiter::open_now(const std::string& key) const {
  auto i = entries_.find(key);
  return i == entries_.end() ? 0 : i->second.open;
}

const char* to_string(open_limiter::verdict v) noexcept {
  switch (v) {
    case open_limiter::verdict::admitted: return "admitted";
    case open_limiter::verdict::too_many_open: return "too many open streams";
    case open_limiter::verdict::too_fast: return "opening too fast";
    case open_limiter::verdict::too_many_keys: return "too many sources";
  }
  return "?";
}

stream_slot::~stream_slot() {
  if (auto server = caf::actor_cast<caf::actor>(server_))
    caf::anon_send(server, stream_slot_released{std::move(keys_)});
}

} // namespace drtp
