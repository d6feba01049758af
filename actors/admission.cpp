#include "actors/admission.hpp"

#include <algorithm>
#include <array>
#include <cstdio>
#include <iterator>
#include <vector>

#include "net/seam/assert.hpp"

namespace drtp {

namespace {

using ipv4 = std::array<uint8_t, 4>;
using ipv6 = std::array<uint16_t, 8>;

/// Dotted quad, each part 0-255 in at most 3 digits.
bool parse_ipv4(const std::string& s, ipv4& out) {
  size_t part = 0;
  size_t digits = 0;
  uint32_t value = 0;
  for (char c : s) {
    if (c >= '0' && c <= '9') {
      if (++digits > 3)
        return false;
      value = value * 10 + static_cast<uint32_t>(c - '0');
    } else if (c == '.' && digits > 0 && part < 3) {
      if (value > 255)
        return false;
      out[part++] = static_cast<uint8_t>(value);
      digits = 0;
      value = 0;
    } else {
      return false;
    }
  }
  if (part != 3 || digits == 0 || value > 255)
    return false;
  out[3] = static_cast<uint8_t>(value);
  return true;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

/// Colon-separated groups of 1-4 hex digits (the last may be a dotted
/// quad, as two groups); appends them to `out`, at most `room` of them.
bool parse_groups(const std::string& s, std::vector<uint16_t>& out, size_t room) {
  if (s.empty())
    return true;
  size_t start = 0;
  while (true) {
    auto end = s.find(':', start);
    auto g = s.substr(start, end == std::string::npos ? std::string::npos : end - start);
    if (end == std::string::npos && g.find('.') != std::string::npos) {
      ipv4 v4{};
      if (!parse_ipv4(g, v4))
        return false;
      out.push_back(static_cast<uint16_t>(v4[0] << 8 | v4[1]));
      out.push_back(static_cast<uint16_t>(v4[2] << 8 | v4[3]));
    } else {
      if (g.empty() || g.size() > 4)
        return false;
      uint32_t v = 0;
      for (char c : g) {
        auto h = hex_value(c);
        if (h < 0)
          return false;
        v = v * 16 + static_cast<uint32_t>(h);
      }
      out.push_back(static_cast<uint16_t>(v));
    }
    if (out.size() > room)
      return false;
    if (end == std::string::npos)
      return true;
    start = end + 1;
  }
}

/// RFC 4291 text, with at most one "::" and an optional zone ("%eth0").
bool parse_ipv6(std::string s, ipv6& out) {
  if (auto pct = s.find('%'); pct != std::string::npos)
    s.resize(pct);
  std::vector<uint16_t> head;
  std::vector<uint16_t> tail;
  auto gap = s.find("::");
  if (gap == std::string::npos) {
    if (!parse_groups(s, head, 8) || head.size() != 8)
      return false;
  } else {
    if (s.find("::", gap + 1) != std::string::npos)
      return false;
    if (!parse_groups(s.substr(0, gap), head, 7)
        || !parse_groups(s.substr(gap + 2), tail, 7 - head.size()))
      return false;
  }
  out.fill(0);
  std::copy(head.begin(), head.end(), out.begin());
  std::copy(tail.begin(), tail.end(), out.end() - static_cast<long>(tail.size()));
  return true;
}

std::string v4_text(const ipv4& a, bool prefix) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%u.%u.%u.%u%s", a[0], a[1], a[2],
                prefix ? 0u : a[3], prefix ? "/24" : "");
  return buf;
}

/// ::ffff:a.b.c.d
bool mapped_v4(const ipv6& a, ipv4& out) {
  for (size_t i = 0; i < 5; ++i)
    if (a[i] != 0)
      return false;
  if (a[5] != 0xffff)
    return false;
  out = {static_cast<uint8_t>(a[6] >> 8), static_cast<uint8_t>(a[6] & 0xff),
         static_cast<uint8_t>(a[7] >> 8), static_cast<uint8_t>(a[7] & 0xff)};
  return true;
}

/// How much of an address names one party: `prefix` a network (/24, /64),
/// else one client: an IPv4 address, or an IPv6 /64, because a single site
/// is handed a whole /64 and may use any of its 2^64 addresses.
std::string canonical(const std::string& host, bool prefix) {
  ipv4 v4{};
  if (parse_ipv4(host, v4))
    return v4_text(v4, prefix);
  ipv6 v6{};
  if (host.size() <= 64 && parse_ipv6(host, v6)) {
    if (mapped_v4(v6, v4))
      return v4_text(v4, prefix);
    char buf[64];
    std::snprintf(buf, sizeof(buf), "%x:%x:%x:%x::/64", v6[0], v6[1], v6[2], v6[3]);
    return buf;
  }
  // A simulator host name, or whatever else: a source of its own.
  return host;
}

constexpr int64_t milli = 1000;

} // namespace

admission::admission(admission_limits lim) : lim_(lim) {
  DRTP_ASSERT(lim_.handshakes_max > 0 && lim_.handshakes_per_source_max > 0
                && lim_.auth_attempt_interval_ms > 0 && lim_.prefixes_max > 0,
              "admission limits are positive");
}

std::string admission::source_of(const std::string& host) {
  return canonical(host, false);
}

std::string admission::prefix_of(const std::string& host) {
  return canonical(host, true);
}

admission::link_verdict admission::on_link(const std::string& host) {
  link_verdict v;
  auto src = source_of(host);
  if (auto i = per_source_.find(src);
      i != per_source_.end() && i->second >= lim_.handshakes_per_source_max)
    return v; // refused: this address holds its share already
  v.admit = true;
  if (links_.size() < lim_.handshakes_max)
    return v;
  // Full: the most represented prefix gives up its oldest link; among
  // equals, the one whose oldest link is oldest.
  const std::map<uint64_t, link_id>* worst = nullptr;
  for (auto& [prefix, by_age] : per_prefix_) {
    DRTP_ASSERT(!by_age.empty(), "a prefix without links leaves the table");
    if (!worst || by_age.size() > worst->size()
        || (by_age.size() == worst->size() && by_age.begin()->first < worst->begin()->first))
      worst = &by_age;
  }
  DRTP_ASSERT(worst != nullptr, "a full table has a prefix");
  v.evict = true;
  v.victim = worst->begin()->second;
  remove_link(v.victim);
  return v;
}

void admission::add_link(link_id id, const std::string& host) {
  DRTP_ASSERT(links_.size() < lim_.handshakes_max, "a link is added only below the cap");
  link_entry e{source_of(host), prefix_of(host), next_seq_++};
  auto& n = per_source_[e.source];
  DRTP_ASSERT(n < lim_.handshakes_per_source_max, "a source is added only below its cap");
  ++n;
  per_prefix_[e.prefix].emplace(e.seq, id);
  auto inserted = links_.emplace(id, std::move(e)).second;
  DRTP_ASSERT(inserted, "a link enters the handshake table once");
}

bool admission::remove_link(link_id id) {
  auto i = links_.find(id);
  if (i == links_.end())
    return false;
  auto s = per_source_.find(i->second.source);
  if (--s->second == 0)
    per_source_.erase(s);
  auto p = per_prefix_.find(i->second.prefix);
  p->second.erase(i->second.seq);
  if (p->second.empty())
    per_prefix_.erase(p);
  links_.erase(i);
  return true;
}

const std::string* admission::host_of(link_id id) const {
  auto i = links_.find(id);
  return i == links_.end() ? nullptr : &i->second.source;
}

void admission::refill(bucket& b, time_point now) const {
  if (now <= b.refilled)
    return;
  auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(now - b.refilled);
  int64_t cap = int64_t{lim_.auth_attempts_burst} * milli;
  // Beyond a full refill the exact time is moot (and cannot overflow).
  int64_t full_ms = (cap - b.millitokens) * lim_.auth_attempt_interval_ms / milli + 1;
  int64_t ms = std::min<int64_t>(elapsed.count(), full_ms);
  b.millitokens = std::min(cap, b.millitokens + ms * milli / lim_.auth_attempt_interval_ms);
  b.refilled = now;
}

admission::bucket& admission::bucket_of(const std::string& prefix, time_point now) {
  if (auto i = buckets_.find(prefix); i != buckets_.end()) {
    lru_.splice(lru_.end(), lru_, i->second.lru);
    refill(i->second, now);
    return i->second;
  }
  if (buckets_.size() >= lim_.prefixes_max) {
    buckets_.erase(lru_.front());
    lru_.pop_front();
  }
  lru_.push_back(prefix);
  bucket b;
  b.millitokens = int64_t{lim_.auth_attempts_burst} * milli;
  b.refilled = now;
  b.lru = std::prev(lru_.end());
  auto& out = buckets_.emplace(prefix, b).first->second;
  DRTP_ASSERT(buckets_.size() <= lim_.prefixes_max && lru_.size() == buckets_.size(),
              "the bucket table holds at most prefixes_max prefixes");
  return out;
}

uint32_t admission::failure_delay_ms(const bucket& b, time_point now) const {
  if (b.failures == 0 || now - b.last_failure > std::chrono::milliseconds(lim_.auth_failure_window_ms))
    return 0;
  // 100 ms after the first failure, doubling up to the cap.
  uint64_t d = 100ull << std::min<uint32_t>(b.failures - 1, 10);
  return static_cast<uint32_t>(std::min<uint64_t>(d, lim_.auth_delay_max_ms));
}

admission::attempt_verdict admission::on_attempt(const std::string& host, time_point now) {
  auto& b = bucket_of(prefix_of(host), now);
  attempt_verdict v;
  int64_t wait_ms = 0;
  if (b.millitokens < milli)
    // Round up: the token is whole only then.
    wait_ms = ((milli - b.millitokens) * lim_.auth_attempt_interval_ms + milli - 1) / milli;
  auto delay = std::max<int64_t>(wait_ms, failure_delay_ms(b, now));
  if (delay > lim_.auth_delay_max_ms)
    return v; // refused; the bucket's debt stays bounded by the cap
  b.millitokens -= milli;
  v.allowed = true;
  v.delay_ms = static_cast<uint32_t>(delay);
  return v;
}

void admission::on_failure(const std::string& host, time_point now) {
  auto& b = bucket_of(prefix_of(host), now);
  if (now - b.last_failure > std::chrono::milliseconds(lim_.auth_failure_window_ms))
    b.failures = 0;
  b.failures = std::min<uint32_t>(b.failures + 1, 16);
  b.last_failure = now;
  // The burst is for sources that log in; one that fails is paced.
  b.millitokens = std::min<int64_t>(b.millitokens, 0);
}

} // namespace drtp
