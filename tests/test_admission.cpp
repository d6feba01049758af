// Admission control before login (actors/admission): source and prefix
// parsing, the per-source cap, eviction when the table is full, the token
// bucket of attempts per prefix, and the bound on its table.

#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include <chrono>

#include "actors/admission.hpp"

using namespace drtp;
using namespace std::chrono_literals;

namespace {

admission::time_point at(std::chrono::milliseconds t) {
  return admission::time_point{} + 1h + t;
}

} // namespace

TEST(admission, prefixes_of_ipv4_ipv6_mapped_and_names) {
  EXPECT_EQ(admission::prefix_of("192.0.2.77"), "192.0.2.0/24");
  EXPECT_EQ(admission::prefix_of("::ffff:192.0.2.77"), "192.0.2.0/24");
  EXPECT_EQ(admission::prefix_of("::FFFF:c000:24d"), "192.0.2.0/24");
  EXPECT_EQ(admission::prefix_of("2001:db8:1:2:3:4:5:6"), "2001:db8:1:2::/64");
  EXPECT_EQ(admission::prefix_of("2001:DB8:1:2::9%eth0"), "2001:db8:1:2::/64");
  EXPECT_EQ(admission::prefix_of("::1"), "0:0:0:0::/64");
  EXPECT_EQ(admission::source_of("::ffff:127.0.0.2"), "127.0.0.2");
  // One site holds a /64: its addresses are one source.
  EXPECT_EQ(admission::source_of("2001:db8::1"), "2001:db8:0:0::/64");
  EXPECT_EQ(admission::source_of("2001:db8::1"), admission::source_of("2001:db8::ffff:2"));
  EXPECT_NE(admission::source_of("2001:db8::1"), admission::source_of("2001:db8:0:1::1"));
  // The simulator's host names, and anything unparsable: a prefix of its own.
  for (auto s : {"mallory", "", "1.2.3", "1.2.3.256", "1.2.3.4.5", "1..2.3", "01234.1.1.1",
                 ":::", "1::2::3", "1:2:3:4:5:6:7:8:9", "12345::", "g::1", "::1.2.3"}) {
    EXPECT_EQ(admission::prefix_of(s), s);
    EXPECT_EQ(admission::source_of(s), s);
  }
  EXPECT_NE(admission::prefix_of("192.0.2.1"), admission::prefix_of("192.0.3.1"));
}

RC_GTEST_PROP(admission, prefix_is_total_and_stable, (std::string s)) {
  auto p = admission::prefix_of(s);
  // A prefix's own prefix is itself (canonical text is a fixed point).
  RC_ASSERT(admission::prefix_of(admission::source_of(s)) == p);
}

TEST(admission, per_source_cap_refuses_the_newcomer_of_that_source_only) {
  admission_limits lim;
  lim.handshakes_max = 100;
  lim.handshakes_per_source_max = 3;
  admission a{lim};
  for (admission::link_id i = 1; i <= 3; ++i) {
    auto v = a.on_link("10.0.0.1");
    ASSERT_TRUE(v.admit);
    EXPECT_FALSE(v.evict);
    a.add_link(i, "10.0.0.1");
  }
  EXPECT_FALSE(a.on_link("10.0.0.1").admit);
  EXPECT_FALSE(a.on_link("::ffff:10.0.0.1").admit); // the same address
  EXPECT_TRUE(a.on_link("10.0.0.2").admit);
  EXPECT_TRUE(a.remove_link(2));
  EXPECT_FALSE(a.remove_link(2));
  EXPECT_TRUE(a.on_link("10.0.0.1").admit);
}

TEST(admission, full_table_evicts_the_oldest_of_the_most_represented_prefix) {
  admission_limits lim;
  lim.handshakes_max = 10;
  lim.handshakes_per_source_max = 4;
  admission a{lim};
  admission::link_id id = 0;
  // One honest link first (the oldest of all), then a /24 floods.
  a.add_link(++id, "198.51.100.7");
  for (int host = 1; id < 10; ++host)
    for (int k = 0; k < 4 && id < 10; ++k)
      a.add_link(++id, "203.0.113." + std::to_string(host));
  ASSERT_EQ(a.handshakes(), 10u);
  // Newcomers from other networks, while the flood holds two or more.
  for (admission::link_id expect = 2; expect <= 9; ++expect) {
    auto host = "192.0." + std::to_string(expect) + ".1";
    auto v = a.on_link(host);
    ASSERT_TRUE(v.admit);
    ASSERT_TRUE(v.evict);
    // The flood's links go, oldest first; the honest one stays.
    EXPECT_EQ(v.victim, expect);
    EXPECT_EQ(a.host_of(expect), nullptr);
    a.add_link(100 + expect, host);
    EXPECT_EQ(a.handshakes(), 10u);
  }
  EXPECT_NE(a.host_of(1), nullptr);
  // All equal now: the oldest link of all goes.
  auto v = a.on_link("192.0.99.1");
  EXPECT_TRUE(v.evict);
  EXPECT_EQ(v.victim, 1u);
}

TEST(admission, bucket_bounds_attempts_per_prefix_and_failures_drain_it) {
  admission_limits lim;
  lim.auth_attempts_burst = 4;
  lim.auth_attempt_interval_ms = 500;
  lim.auth_delay_max_ms = 2000;
  admission a{lim};
  auto t = 0ms;
  // The burst goes at once, from any address of the /24.
  for (int i = 0; i < 4; ++i) {
    auto v = a.on_attempt("10.1.2." + std::to_string(i), at(t));
    ASSERT_TRUE(v.allowed);
    EXPECT_EQ(v.delay_ms, 0u);
  }
  // Then each waits one interval more than the last, up to the cap.
  for (uint32_t k = 1; k <= 4; ++k) {
    auto v = a.on_attempt("10.1.2.9", at(t));
    ASSERT_TRUE(v.allowed);
    EXPECT_EQ(v.delay_ms, 500 * k);
  }
  EXPECT_FALSE(a.on_attempt("10.1.2.9", at(t)).allowed);
  // Another /24 is untouched.
  EXPECT_EQ(a.on_attempt("10.1.3.1", at(t)).delay_ms, 0u);
  // Time refills; a failure drains what refilled and adds its delay.
  t = 60s;
  EXPECT_EQ(a.on_attempt("10.1.2.1", at(t)).delay_ms, 0u);
  a.on_failure("10.1.2.1", at(t));
  auto v = a.on_attempt("10.1.2.200", at(t));
  ASSERT_TRUE(v.allowed);
  EXPECT_EQ(v.delay_ms, 500u);
}

TEST(admission, guesses_per_prefix_are_paced_whatever_the_parallelism) {
  admission_limits lim; // the defaults
  admission a{lim};
  uint64_t allowed = 0;
  // 1 000 connections a second for 60 s, all failing, from 50 addresses.
  for (int s = 0; s < 60; ++s)
    for (int c = 0; c < 1000; ++c) {
      auto now = at(std::chrono::milliseconds(s * 1000 + c));
      auto host = "127.0.0." + std::to_string(2 + c % 50);
      if (a.on_attempt(host, now).allowed) {
        ++allowed;
        a.on_failure(host, now);
      }
    }
  // The burst, then one per interval (plus the debt the cap allows).
  uint64_t bound = lim.auth_attempts_burst + 60'000 / lim.auth_attempt_interval_ms
                   + lim.auth_delay_max_ms / lim.auth_attempt_interval_ms + 1;
  EXPECT_LE(allowed, bound);
  EXPECT_GE(allowed, 60'000 / lim.auth_attempt_interval_ms / 2);
}

TEST(admission, bucket_table_is_bounded_and_forgets_the_least_recent) {
  admission_limits lim;
  lim.prefixes_max = 100;
  lim.auth_attempts_burst = 1;
  admission a{lim};
  auto t = at(0ms);
  a.on_attempt("172.16.0.1", t); // spends its burst
  for (int i = 0; i < 5000; ++i) {
    a.on_attempt("10." + std::to_string(i / 256) + "." + std::to_string(i % 256) + ".1", t);
    if (i % 10 == 0)
      a.on_attempt("172.16.0.1", t); // kept recent
    ASSERT_LE(a.prefixes(), 100u);
  }
  // Recently used: still remembered, its debt refuses it (a fresh one passes).
  EXPECT_FALSE(a.on_attempt("172.16.0.1", t).allowed);
  // Long unused: forgotten, so its spent burst is whole again.
  auto v = a.on_attempt("10.0.0.1", t);
  EXPECT_TRUE(v.allowed);
  EXPECT_EQ(v.delay_ms, 0u);
}
