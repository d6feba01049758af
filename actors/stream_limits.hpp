#pragma once
// Limits on opening streams, per key: a visitor's source address, a
// patch-panel principal, a service. Each key has a cap on the streams it
// holds open and a token bucket on the rate it opens them; the excess is
// refused at once, so one principal or one burst of visitors cannot fill an
// agent's tunnel or saturate the loops at both ends.
//
// A stream slot is held by whatever carries the stream (a session or a
// splice) and gives its keys back when the last handle to it goes, on
// every path: the stream ended, or it was refused before it began.

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "caf/actor_addr.hpp"
#include "caf/actor_clock.hpp"
#include "caf/allowed_unsafe_message_type.hpp"

namespace drtp {

struct open_limits {
  /// Streams one key may hold open at once; 0 = no limit.
  uint32_t open_max = 0;
  /// Sustained opens per second; 0 = no rate limit.
  uint32_t opens_per_s = 0;
  /// Opens allowed at once before the rate applies (the bucket's size).
  uint32_t opens_burst = 0;
};

/// Counts, per key, the streams open and the tokens left to open more.
class open_limiter {
public:
  using time_point = caf::actor_clock::time_point;

  enum class verdict : uint8_t { admitted, too_many_open, too_fast, too_many_keys };

  /// keys_max bounds the table; keys with nothing open are forgotten first.
  open_limiter(open_limits limits, size_t keys_max);

  /// Counts one more open stream for `key` if its limits allow it.
  verdict try_open(const std::string& key, time_point now);
  /// A stream of `key` ended.
  void release(const std::string& key);

  uint32_t open_now(const std::string& key) const;
  size_t keys() const { return entries_.size(); }

private:
  struct entry {
    uint32_t open = 0;
    double tokens = 0;
    time_point refilled{};
  };

  void refill(entry& e, time_point now) const;
  /// Forgets keys with nothing open whose bucket is full again.
  void prune(time_point now);

  open_limits limits_;
  size_t keys_max_;
  std::unordered_map<std::string, entry> entries_;
};

const char* to_string(open_limiter::verdict v) noexcept;

/// Which of the POP server's limiters a key counts in.
/// visitor: not a limit, the key is a public visitor's conn id, so the server
/// forgets the visitor (for end_open_sessions) when its slot goes.
enum class limit_kind : uint8_t { source, service, principal, visitor };

/// Sent to the POP server when a stream slot is let go.
struct stream_slot_released {
  std::vector<std::pair<limit_kind, std::string>> keys;
};

/// One admitted stream. The last handle to go tells the server (if it is
/// still there) to give the keys back.
class stream_slot {
public:
  stream_slot(caf::actor_addr server, std::vector<std::pair<limit_kind, std::string>> keys)
    : server_(std::move(server)), keys_(std::move(keys)) {
  }
  stream_slot(const stream_slot&) = delete;
  stream_slot& operator=(const stream_slot&) = delete;
  ~stream_slot();

private:
  caf::actor_addr server_;
  std::vector<std::pair<limit_kind, std::string>> keys_;
};

using stream_slot_ptr = std::shared_ptr<stream_slot>;

} // namespace drtp

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(drtp::stream_slot_released)
