// net::parse_cidr / cidr_contains / cidr_set: the gateway allow list's
// parser and matcher (issue 15). Pure text; hostile input is refused with
// one bounded line, never crashes.

#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include "net/wire/cidr.hpp"

using namespace drtp::net;

namespace {

cidr must(const std::string& text) {
  cidr c;
  std::string err;
  EXPECT_TRUE(parse_cidr(text, c, &err)) << text << ": " << err;
  return c;
}

std::string refused(const std::string& text) {
  cidr c;
  std::string err;
  EXPECT_FALSE(parse_cidr(text, c, &err)) << text;
  return err;
}

} // namespace

TEST(cidr, parses_and_prints_canonical) {
  EXPECT_EQ(to_string(must("10.0.0.0/8")), "10.0.0.0/8");
  EXPECT_EQ(to_string(must("0.0.0.0/0")), "0.0.0.0/0");
  EXPECT_EQ(to_string(must("127.0.0.2")), "127.0.0.2/32");
  EXPECT_EQ(to_string(must("2001:db8::/32")), "2001:db8::/32");
  EXPECT_EQ(to_string(must("2001:DB8:0:0::/64")), "2001:db8::/64");
  EXPECT_EQ(to_string(must("::1")), "::1/128");
  EXPECT_EQ(to_string(must("::/0")), "::/0");
  EXPECT_EQ(to_string(must("1:2:3:4:5:6:7:8")), "1:2:3:4:5:6:7:8/128");
  EXPECT_EQ(to_string(must("fe80::/10")), "fe80::/10");
  EXPECT_EQ(to_string(must("1:0:0:2::/64")), "1:0:0:2::/64");
  EXPECT_EQ(to_string(must("1:0:0:2:0:0:0:3")), "1:0:0:2::3/128");
  // IPv4-mapped blocks are IPv4 blocks.
  EXPECT_EQ(to_string(must("::ffff:10.0.0.0/104")), "10.0.0.0/8");
  EXPECT_EQ(to_string(must("::ffff:127.0.0.2")), "127.0.0.2/32");
  EXPECT_EQ(to_string(must("::ffff:0:0/96")), "0.0.0.0/0");
  EXPECT_EQ(to_string(must("::1.2.3.4")), "::102:304/128");
}

TEST(cidr, refuses_malformed_with_a_reason) {
  for (const char* bad :
       {"", "/", "/8", "10.0.0.0/", "10.0.0.0/33", "10.0.0.0/-1", "10.0.0.0/08",
        "10.0.0.0/8/8", "10.0.0/8", "10.0.0.0.0", "256.0.0.0", "1.2.3.04",
        "01.2.3.4", "1.2.3.4 ", " 1.2.3.4", "1..3.4", "a.b.c.d", "1.2.3.4x",
        "::/129", ":::", "1:::2", ":1::", "1::2::3", "12345::", "g::",
        "1:2:3:4:5:6:7:8:9", "1:2:3:4:5:6:7::8", "1:2:3:4:5:6:7:", ":1:2",
        "1:2:3:4:5:6:1.2.3.4:5", "1.2.3.4::", "::1.2.3", "fe80::1%eth0",
        "10.0.0.0/8 ", "localhost", "example.com/24", "0x0a.0.0.0"}) {
    std::string err = refused(bad);
    EXPECT_NE(err.find("bad CIDR"), std::string::npos) << bad << ": " << err;
  }
  EXPECT_NE(refused("10.0.0.0/33").find("0..32"), std::string::npos);
  EXPECT_NE(refused("::/129").find("0..128"), std::string::npos);
}

TEST(cidr, refuses_host_bits_and_names_the_block_meant) {
  EXPECT_NE(refused("10.0.0.1/8").find("did you mean 10.0.0.0/8?"),
            std::string::npos);
  EXPECT_NE(refused("2001:db8::1/32").find("did you mean 2001:db8::/32?"),
            std::string::npos);
  EXPECT_NE(refused("192.168.1.129/25").find("192.168.1.128/25"),
            std::string::npos);
  must("192.168.1.128/25");
}

TEST(cidr, error_is_bounded_and_printable) {
  std::string huge(100000, 'x');
  huge[5] = '\n';
  std::string err = refused(huge);
  EXPECT_LT(err.size(), 200u);
  EXPECT_EQ(err.find('\n'), std::string::npos);
  cidr c;
  EXPECT_FALSE(parse_cidr(huge, c, nullptr)); // null error is fine
}

TEST(cidr, contains_v4) {
  auto c = must("10.0.0.0/8");
  EXPECT_TRUE(cidr_contains(c, "10.0.0.0"));
  EXPECT_TRUE(cidr_contains(c, "10.255.255.255"));
  EXPECT_FALSE(cidr_contains(c, "11.0.0.0"));
  EXPECT_FALSE(cidr_contains(c, "9.255.255.255"));
  auto h = must("127.0.0.2");
  EXPECT_TRUE(cidr_contains(h, "127.0.0.2"));
  EXPECT_FALSE(cidr_contains(h, "127.0.0.3"));
  auto odd = must("192.168.1.128/25");
  EXPECT_TRUE(cidr_contains(odd, "192.168.1.200"));
  EXPECT_FALSE(cidr_contains(odd, "192.168.1.127"));
  auto all = must("0.0.0.0/0");
  EXPECT_TRUE(cidr_contains(all, "1.2.3.4"));
  EXPECT_FALSE(cidr_contains(all, "::1")); // an IPv4 block holds no IPv6
}

TEST(cidr, contains_v6) {
  auto c = must("2001:db8::/32");
  EXPECT_TRUE(cidr_contains(c, "2001:db8::5"));
  EXPECT_TRUE(cidr_contains(c, "2001:DB8:ffff::1"));
  EXPECT_FALSE(cidr_contains(c, "2001:db9::1"));
  EXPECT_FALSE(cidr_contains(c, "10.0.0.1"));
  auto lo = must("::1/128");
  EXPECT_TRUE(cidr_contains(lo, "::1"));
  EXPECT_TRUE(cidr_contains(lo, "[::1]"));
  EXPECT_TRUE(cidr_contains(lo, "0:0:0:0:0:0:0:1"));
  EXPECT_FALSE(cidr_contains(lo, "::2"));
  auto ll = must("fe80::/10");
  EXPECT_TRUE(cidr_contains(ll, "fe80::1%eth0")); // the zone id is ignored
  EXPECT_TRUE(cidr_contains(ll, "febf::1"));
  EXPECT_FALSE(cidr_contains(ll, "fec0::1"));
  EXPECT_FALSE(cidr_contains(must("::/0"), "1.2.3.4"));
  EXPECT_TRUE(cidr_contains(must("::/0"), "ff02::1"));
}

TEST(cidr, mapped_sources_match_v4_blocks) {
  auto c = must("127.0.0.2/32");
  EXPECT_TRUE(cidr_contains(c, "::ffff:127.0.0.2"));
  EXPECT_TRUE(cidr_contains(c, "::FFFF:7f00:2"));
  EXPECT_TRUE(cidr_contains(c, "[::ffff:127.0.0.2]"));
  EXPECT_FALSE(cidr_contains(c, "::ffff:127.0.0.3"));
  EXPECT_TRUE(cidr_contains(must("::ffff:127.0.0.0/104"), "127.1.2.3"));
  EXPECT_FALSE(cidr_contains(must("::/0"), "::ffff:1.2.3.4"));
}

TEST(cidr, contains_refuses_garbage_sources) {
  auto all4 = must("0.0.0.0/0");
  auto all6 = must("::/0");
  for (const char* bad : {"", "host", "1.2.3", "::g", "[::1", "1.2.3.4:80",
                          "999.1.1.1", "[]"}) {
    EXPECT_FALSE(cidr_contains(all4, bad)) << bad;
    EXPECT_FALSE(cidr_contains(all6, bad)) << bad;
  }
  EXPECT_FALSE(cidr_contains(all4, std::string(1000, '1')));
}

TEST(cidr, set_empty_admits_anyone_else_any_entry) {
  cidr_set s;
  std::string err;
  EXPECT_TRUE(s.contains("1.2.3.4"));
  EXPECT_TRUE(s.contains("not an address")); // no rule configured
  ASSERT_TRUE(parse_cidr_set({"127.0.0.2/32", "::1/128"}, s, &err)) << err;
  EXPECT_TRUE(s.contains("127.0.0.2"));
  EXPECT_TRUE(s.contains("::ffff:127.0.0.2"));
  EXPECT_TRUE(s.contains("::1"));
  EXPECT_FALSE(s.contains("127.0.0.3"));
  EXPECT_FALSE(s.contains("::2"));
  EXPECT_FALSE(s.contains("garbage"));
  // A bad entry leaves the set as it was and names the entry.
  EXPECT_FALSE(parse_cidr_set({"10.0.0.0/8", "10.0.0.1/8"}, s, &err));
  EXPECT_NE(err.find("'10.0.0.1/8'"), std::string::npos) << err;
  EXPECT_EQ(s.entries.size(), 2u);
  std::vector<std::string> many(cidr_set_entries_max + 1, "10.0.0.0/8");
  EXPECT_FALSE(parse_cidr_set(many, s, &err));
  EXPECT_EQ(s.entries.size(), 2u);
}

// Any v4 address is in its own /32 and in every shorter block of itself;
// a different address is outside the /32. Round-trip through to_string.
RC_GTEST_PROP(cidr, v4_blocks_hold_their_addresses, (uint32_t addr, uint32_t other)) {
  auto text = [](uint32_t a) {
    return std::to_string(a >> 24) + "." + std::to_string((a >> 16) & 255) +
           "." + std::to_string((a >> 8) & 255) + "." + std::to_string(a & 255);
  };
  unsigned prefix = *rc::gen::inRange(0u, 33u);
  uint32_t mask = prefix == 0 ? 0 : ~uint32_t{0} << (32 - prefix);
  cidr c;
  std::string err;
  RC_ASSERT(parse_cidr(text(addr & mask) + "/" + std::to_string(prefix), c, &err));
  RC_ASSERT(cidr_contains(c, text(addr)));
  RC_ASSERT(cidr_contains(c, "::ffff:" + text(addr)));
  RC_ASSERT(cidr_contains(c, text(other)) == ((other & mask) == (addr & mask)));
  cidr back;
  RC_ASSERT(parse_cidr(to_string(c), back, &err));
  RC_ASSERT(to_string(back) == to_string(c));
}

// Random bytes never crash the parser or the matcher.
RC_GTEST_PROP(cidr, garbage_never_crashes, (const std::string& text)) {
  cidr c;
  std::string err;
  if (parse_cidr(text, c, &err)) {
    cidr back;
    RC_ASSERT(parse_cidr(to_string(c), back, &err));
  } else {
    RC_ASSERT(err.size() < 300);
  }
  cidr_contains(must("::/0"), text);
  cidr_contains(must("0.0.0.0/0"), text);
}

// Random IPv6 group values round-trip through the canonical text.
RC_GTEST_PROP(cidr, v6_round_trips, ()) {
  auto groups = *rc::gen::container<std::vector<uint16_t>>(
      8, rc::gen::oneOf(rc::gen::just<uint16_t>(0), rc::gen::arbitrary<uint16_t>()));
  char buf[64];
  std::string text;
  for (int i = 0; i < 8; ++i) {
    std::snprintf(buf, sizeof buf, "%s%x", i ? ":" : "", groups[i]);
    text += buf;
  }
  cidr c;
  std::string err;
  RC_ASSERT(parse_cidr(text, c, &err));
  RC_ASSERT(cidr_contains(c, text));
  cidr back;
  RC_ASSERT(parse_cidr(to_string(c), back, &err));
  RC_ASSERT(back.bytes == c.bytes);
}
