// The limits on opening streams (actors/stream_limits): open caps, the token
// bucket, the bounded key table.

#include <gtest/gtest.h>

#include "actors/stream_limits.hpp"

using drtp::open_limiter;
using drtp::open_limits;
using verdict = open_limiter::verdict;
using namespace std::chrono_literals;

namespace {

open_limiter::time_point t0() {
  return open_limiter::time_point{} + 1000s;
}

TEST(open_limiter, caps_what_one_key_holds_open_and_frees_on_release) {
  open_limiter l({3, 0, 0}, 16);
  for (int i = 0; i < 3; ++i)
    EXPECT_EQ(l.try_open("10.0.0.1", t0()), verdict::admitted);
  EXPECT_EQ(l.try_open("10.0.0.1", t0()), verdict::too_many_open);
  // Another key is not affected.
  EXPECT_EQ(l.try_open("10.0.0.2", t0()), verdict::admitted);
  l.release("10.0.0.1");
  EXPECT_EQ(l.open_now("10.0.0.1"), 2u);
  EXPECT_EQ(l.try_open("10.0.0.1", t0()), verdict::admitted);
}

TEST(open_limiter, the_bucket_allows_a_burst_then_the_rate) {
  open_limiter l({0, 10, 5}, 16); // 10 per second, 5 at once
  int admitted = 0;
  for (int i = 0; i < 100; ++i)
    admitted += l.try_open("p", t0()) == verdict::admitted ? 1 : 0;
  EXPECT_EQ(admitted, 5);
  EXPECT_EQ(l.try_open("p", t0()), verdict::too_fast);
  // 300 ms later: three more tokens, not more.
  admitted = 0;
  for (int i = 0; i < 100; ++i)
    admitted += l.try_open("p", t0() + 300ms) == verdict::admitted ? 1 : 0;
  EXPECT_EQ(admitted, 3);
  // Long idle refills up to the burst only.
  admitted = 0;
  for (int i = 0; i < 100; ++i)
    admitted += l.try_open("p", t0() + 3600s) == verdict::admitted ? 1 : 0;
  EXPECT_EQ(admitted, 5);
}

TEST(open_limiter, the_key_table_is_bounded_and_forgets_idle_keys_first) {
  open_limiter l({1, 10, 1}, 4);
  for (int i = 0; i < 4; ++i)
    EXPECT_EQ(l.try_open("k" + std::to_string(i), t0()), verdict::admitted);
  // Every key holds a stream: a fifth is refused, the table stays at 4.
  EXPECT_EQ(l.try_open("k4", t0() + 1s), verdict::too_many_keys);
  EXPECT_EQ(l.keys(), 4u);
  // Once a key's stream ends and its bucket refilled, it makes room.
  l.release("k0");
  EXPECT_EQ(l.try_open("k4", t0() + 1s), verdict::admitted);
  EXPECT_EQ(l.keys(), 4u);
  EXPECT_EQ(l.open_now("k0"), 0u);
}

TEST(open_limiter, a_burst_of_17000_from_one_principal_is_cut_to_its_limits) {
  open_limiter l({1024, 200, 400}, 65536);
  int admitted = 0;
  for (int i = 0; i < 17000; ++i)
    admitted += l.try_open("mallory", t0()) == verdict::admitted ? 1 : 0;
  EXPECT_EQ(admitted, 400);
  // Another principal still gets its burst.
  EXPECT_EQ(l.try_open("alice", t0()), verdict::admitted);
}

} // namespace
