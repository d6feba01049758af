// The patch panel's record layer: any sequence of records, fed in any split,
// decodes to the same sequence; a cut record is simply not yet complete;
// oversized, unknown, wrongly sized and garbage input is rejected without a
// crash and without gathering more than the control limit.

#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include <cstring>

#include "net/wire/record.hpp"

using namespace drtp::net;

namespace {

/// What a record means, independent of how the decoder cut it.
struct expected {
  record_type type;
  std::string body;
};

std::string bytes32() {
  return *rc::gen::container<std::string>(32, rc::gen::arbitrary<char>());
}

/// A random record, encoded; `e` is what the decoder must give back.
std::string random_record(expected& e) {
  auto t = static_cast<record_type>(*rc::gen::inRange<int>(1, 11));
  e.type = t;
  switch (t) {
    case record_type::hello: {
      e.body = bytes32();
      return encode_hello(e.body);
    }
    case record_type::welcome: {
      auto key = bytes32();
      auto id = *rc::gen::resize(static_cast<int>(record_agent_id_bytes_max),
                                 rc::gen::arbitrary<std::string>());
      id.resize(std::min(id.size(), record_agent_id_bytes_max));
      e.body = key + id;
      return encode_welcome(key, id);
    }
    case record_type::resume: {
      e.body = bytes32();
      return encode_resume(e.body);
    }
    case record_type::resumed: {
      auto wire = encode_resumed(bytes32(), *rc::gen::arbitrary<uint64_t>(), bytes32());
      e.body = wire.substr(record_header_bytes);
      return wire;
    }
    case record_type::proof: {
      auto wire = encode_proof(*rc::gen::arbitrary<uint64_t>(), bytes32());
      e.body = wire.substr(record_header_bytes);
      return wire;
    }
    case record_type::ack: {
      auto wire = encode_ack(*rc::gen::arbitrary<uint64_t>(), *rc::gen::arbitrary<bool>());
      e.body = wire.substr(record_header_bytes);
      return wire;
    }
    case record_type::fin:
      return encode_fin();
    case record_type::close:
      return encode_close();
    case record_type::telemetry: {
      telemetry_body t;
      t.sent_bytes = *rc::gen::arbitrary<uint64_t>();
      t.received_bytes = *rc::gen::arbitrary<uint64_t>();
      t.resent_bytes = *rc::gen::arbitrary<uint64_t>();
      t.resumes = *rc::gen::arbitrary<uint32_t>();
      t.stall_ms = *rc::gen::arbitrary<uint32_t>();
      t.rtt_samples = *rc::gen::arbitrary<uint32_t>();
      t.rtt_p50_us = *rc::gen::arbitrary<uint32_t>();
      t.rtt_max_us = *rc::gen::arbitrary<uint32_t>();
      t.pop = *rc::gen::resize(100, rc::gen::arbitrary<std::string>());
      auto wire = encode_telemetry(t);
      e.body = wire.substr(record_header_bytes);
      // Every field comes back; the POP name cut to its bound.
      auto back = decode_telemetry(chunk::copy_of(e.body));
      RC_ASSERT(back.sent_bytes == t.sent_bytes && back.received_bytes == t.received_bytes
                && back.resent_bytes == t.resent_bytes && back.resumes == t.resumes
                && back.stall_ms == t.stall_ms && back.rtt_samples == t.rtt_samples
                && back.rtt_p50_us == t.rtt_p50_us && back.rtt_max_us == t.rtt_max_us);
      RC_ASSERT(back.pop == t.pop.substr(0, record_telemetry_pop_bytes_max));
      return wire;
    }
    case record_type::data:
      break;
  }
  e.body = *rc::gen::resize(3000, rc::gen::arbitrary<std::string>());
  char hdr[record_header_bytes];
  put_record_header(hdr, record_type::data, static_cast<uint32_t>(e.body.size()));
  return std::string(hdr, sizeof(hdr)) + e.body;
}

record_decoder::status feed_in_pieces(record_decoder& dec, const std::string& bytes,
                                      const std::vector<size_t>& cuts,
                                      std::vector<record>& out) {
  size_t pos = 0;
  for (auto cut : cuts) {
    if (pos >= bytes.size())
      break;
    auto n = std::min(cut % 5000 + 1, bytes.size() - pos);
    auto st = dec.feed(chunk::copy_of(bytes.data() + pos, n), out);
    pos += n;
    if (st != record_decoder::status::ok)
      return st;
    RC_ASSERT(dec.buffered_bytes() <= record_header_bytes + record_control_bytes_max);
  }
  if (pos < bytes.size())
    return dec.feed(chunk::copy_of(bytes.data() + pos, bytes.size() - pos), out);
  return record_decoder::status::ok;
}

/// Joins the pieces of data records (a data record split across chunks
/// comes out in pieces); control records stay one each.
std::vector<expected> join(const std::vector<record>& rs) {
  std::vector<expected> out;
  for (auto& r : rs) {
    if (r.type == record_type::data) {
      RC_ASSERT(!r.body.empty()); // an empty data piece means nothing
      RC_ASSERT(r.body.size() <= record_data_bytes_max);
    } else {
      RC_ASSERT(r.body.size() <= record_control_bytes_max);
    }
    out.push_back({r.type, r.body.to_string()});
  }
  return out;
}

std::vector<expected> merge_data(std::vector<expected> xs) {
  std::vector<expected> out;
  for (auto& x : xs) {
    if (x.type == record_type::data && x.body.empty())
      continue;
    if (x.type == record_type::data && !out.empty()
        && out.back().type == record_type::data)
      out.back().body += x.body;
    else
      out.push_back(std::move(x));
  }
  return out;
}

std::string header(uint8_t type, uint32_t len) {
  char h[record_header_bytes];
  h[0] = static_cast<char>(type);
  for (int i = 0; i < 4; ++i)
    h[1 + i] = static_cast<char>(len >> (24 - 8 * i));
  return std::string(h, sizeof(h));
}

} // namespace

RC_GTEST_PROP(record_codec, any_records_round_trip_across_any_split, ()) {
  auto count = *rc::gen::inRange<int>(0, 40);
  std::string wire;
  std::vector<expected> want;
  for (int i = 0; i < count; ++i) {
    expected e{};
    wire += random_record(e);
    want.push_back(e);
  }
  auto cuts = *rc::gen::container<std::vector<size_t>>(rc::gen::arbitrary<size_t>());
  record_decoder dec;
  std::vector<record> out;
  RC_ASSERT(feed_in_pieces(dec, wire, cuts, out) == record_decoder::status::ok);
  RC_ASSERT(dec.buffered_bytes() == 0u);
  auto got = merge_data(join(out));
  want = merge_data(want);
  RC_ASSERT(got.size() == want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    RC_ASSERT(got[i].type == want[i].type);
    RC_ASSERT(got[i].body == want[i].body);
  }
}

RC_GTEST_PROP(record_codec, fields_decode_to_what_was_encoded, ()) {
  auto key = bytes32();
  auto nonce = bytes32();
  auto mac = bytes32();
  auto off = *rc::gen::arbitrary<uint64_t>();
  auto fin_seen = *rc::gen::arbitrary<bool>();
  std::string wire = encode_welcome(key, "agent") + encode_resumed(nonce, off, mac)
                     + encode_proof(off, mac) + encode_ack(off, fin_seen);
  record_decoder dec;
  std::vector<record> out;
  RC_ASSERT(dec.feed(chunk::copy_of(wire), out) == record_decoder::status::ok);
  RC_ASSERT(out.size() == 4u);
  auto w = decode_welcome(out[0].body);
  RC_ASSERT(w.serve_key == key);
  RC_ASSERT(w.agent_id == std::string("agent"));
  auto r = decode_resumed(out[1].body);
  RC_ASSERT(r.nonce_s == nonce);
  RC_ASSERT(r.recv_offset == off);
  RC_ASSERT(r.mac == mac);
  auto p = decode_proof(out[2].body);
  RC_ASSERT(p.recv_offset == off);
  RC_ASSERT(p.mac == mac);
  auto a = decode_ack(out[3].body);
  RC_ASSERT(a.delivered_offset == off);
  RC_ASSERT(a.fin_seen == fin_seen);
}

RC_GTEST_PROP(record_codec, a_cut_record_is_incomplete_not_an_error, ()) {
  expected e{};
  auto wire = random_record(e);
  auto cut = *rc::gen::inRange<size_t>(0, wire.size());
  record_decoder dec;
  std::vector<record> out;
  RC_ASSERT(dec.feed(chunk::copy_of(wire.data(), cut), out)
            == record_decoder::status::ok);
  if (e.type == record_type::data) {
    // Data comes out as it arrives: exactly the bytes before the cut.
    std::string got;
    for (auto& r : out) {
      RC_ASSERT(r.type == record_type::data);
      got += r.body.to_string();
    }
    auto have = cut > record_header_bytes ? cut - record_header_bytes : 0;
    RC_ASSERT(got == e.body.substr(0, have));
  } else {
    RC_ASSERT(out.empty()); // no control record before its last byte
  }
}

RC_GTEST_PROP(record_codec, oversized_control_bodies_are_rejected, ()) {
  auto t = *rc::gen::element<uint8_t>(1, 2, 3, 4, 6, 7, 8);
  auto len = *rc::gen::inRange<uint32_t>(record_control_bytes_max + 1, UINT32_MAX);
  record_decoder dec;
  std::vector<record> out;
  RC_ASSERT(dec.feed(chunk::copy_of(header(t, len)), out)
            == record_decoder::status::too_large);
  RC_ASSERT(out.empty());
  RC_ASSERT(dec.buffered_bytes() == 0u); // nothing gathered from that length
  // Failed for good: even a valid record is refused now.
  RC_ASSERT(dec.feed(chunk::copy_of(encode_fin()), out)
            == record_decoder::status::too_large);
  RC_ASSERT(out.empty());
}

RC_GTEST_PROP(record_codec, oversized_data_records_are_rejected, ()) {
  auto len = *rc::gen::inRange<uint32_t>(record_data_bytes_max + 1, UINT32_MAX);
  record_decoder dec;
  std::vector<record> out;
  RC_ASSERT(dec.feed(chunk::copy_of(header(5, len) + "abc"), out)
            == record_decoder::status::too_large);
  RC_ASSERT(out.empty());
}

RC_GTEST_PROP(record_codec, unknown_types_are_rejected, ()) {
  auto t = *rc::gen::suchThat(rc::gen::arbitrary<uint8_t>(),
                              [](uint8_t x) { return x < 1 || x > 10; });
  auto len = *rc::gen::inRange<uint32_t>(0, 300);
  record_decoder dec;
  std::vector<record> out;
  auto prefix = *rc::gen::arbitrary<bool>() ? encode_fin() : std::string();
  RC_ASSERT(dec.feed(chunk::copy_of(prefix + header(t, len)), out)
            == record_decoder::status::bad_type);
  RC_ASSERT(out.size() == (prefix.empty() ? 0u : 1u)); // what came before stays
}

RC_GTEST_PROP(record_codec, wrong_sizes_of_fixed_records_are_rejected, ()) {
  auto t = *rc::gen::element<uint8_t>(1, 3, 4, 6, 7, 8, 9);
  size_t fixed = t == 1 || t == 3 ? 32 : t == 4 ? 72 : t == 9 ? 40 : t == 6 ? 9 : 0;
  auto len = *rc::gen::suchThat(rc::gen::inRange<uint32_t>(0, record_control_bytes_max + 1),
                                [&](uint32_t n) { return n != fixed; });
  record_decoder dec;
  std::vector<record> out;
  RC_ASSERT(dec.feed(chunk::copy_of(header(t, len) + std::string(len, 'x')), out)
            == record_decoder::status::bad_size);
  RC_ASSERT(out.empty());
}

TEST(record_codec, a_welcome_without_a_whole_key_is_rejected) {
  for (uint32_t len = 0; len < record_key_bytes; ++len) {
    record_decoder dec;
    std::vector<record> out;
    EXPECT_EQ(dec.feed(chunk::copy_of(header(2, len) + std::string(len, 'x')), out),
              record_decoder::status::bad_size);
    EXPECT_TRUE(out.empty());
  }
}

RC_GTEST_PROP(record_codec, garbage_never_crashes_and_stays_bounded, ()) {
  auto bytes = *rc::gen::arbitrary<std::string>();
  auto cuts = *rc::gen::container<std::vector<size_t>>(rc::gen::arbitrary<size_t>());
  record_decoder dec;
  std::vector<record> out;
  auto st = feed_in_pieces(dec, bytes, cuts, out);
  size_t body_bytes = 0;
  for (auto& r : out) {
    RC_ASSERT(static_cast<uint8_t>(r.type) >= 1 && static_cast<uint8_t>(r.type) <= 8);
    RC_ASSERT(r.type == record_type::data || r.body.size() <= record_control_bytes_max);
    body_bytes += r.body.size();
  }
  RC_ASSERT(body_bytes <= bytes.size()); // nothing made up beyond the input
  RC_ASSERT(dec.buffered_bytes() <= record_header_bytes + record_control_bytes_max);
  if (st != record_decoder::status::ok) {
    std::vector<record> more;
    RC_ASSERT(dec.feed(chunk::copy_of(encode_fin()), more) == st);
    RC_ASSERT(more.empty());
  }
}

TEST(record_codec, wire_bytes_are_the_documented_layout) {
  std::string key(record_key_bytes, 'k');
  std::string nonce(record_nonce_bytes, 'n');
  std::string mac(record_mac_bytes, 'm');
  EXPECT_EQ(encode_hello(key), header(1, 32) + key);
  EXPECT_EQ(encode_welcome(key, "agent-7"), header(2, 39) + key + "agent-7");
  EXPECT_EQ(encode_welcome(key, std::string(300, 'a')),
            header(2, 256) + key + std::string(224, 'a'));
  EXPECT_EQ(encode_resume(nonce), header(3, 32) + nonce);
  EXPECT_EQ(encode_resumed(nonce, 0x0102030405060708ull, mac),
            header(4, 72) + nonce + std::string("\x01\x02\x03\x04\x05\x06\x07\x08", 8)
              + mac);
  EXPECT_EQ(encode_proof(258, mac),
            header(9, 40) + std::string("\0\0\0\0\0\0\x01\x02", 8) + mac);
  EXPECT_EQ(encode_ack(1, true), header(6, 9) + std::string("\0\0\0\0\0\0\0\x01\x01", 9));
  EXPECT_EQ(encode_fin(), header(7, 0));
  EXPECT_EQ(encode_close(), header(8, 0));
  char h[record_header_bytes];
  put_record_header(h, record_type::data, 65531);
  EXPECT_EQ(std::string(h, 5), header(5, 65531));
}

RC_GTEST_PROP(record_codec, telemetry_outside_its_bounds_is_rejected, ()) {
  auto len = *rc::gen::oneOf(
    rc::gen::inRange<uint32_t>(0, record_telemetry_fixed_bytes),
    rc::gen::inRange<uint32_t>(record_telemetry_fixed_bytes + record_telemetry_pop_bytes_max + 1,
                               record_control_bytes_max + 1));
  record_decoder dec;
  std::vector<record> out;
  RC_ASSERT(dec.feed(chunk::copy_of(header(10, len)), out) == record_decoder::status::bad_size);
  RC_ASSERT(out.empty());
}
