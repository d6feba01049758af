// The wire format: frames and control messages round-trip, and truncated,
// oversized or garbage input is rejected without crashing or over-allocating.

#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include <chrono>
#include <cstdio>
#include <vector>

#include "net/wire/control.hpp"
#include "net/wire/frame.hpp"
#include "net/openssl_crypto.hpp"
#include "net/wire/handshake.hpp"

using namespace drtp::net;

namespace {

std::vector<frame> decode_all(const std::string& bytes,
                              const std::vector<size_t>& cuts,
                              frame_decoder::status& st) {
  frame_decoder dec;
  std::vector<frame> out;
  size_t pos = 0;
  st = frame_decoder::status::ok;
  for (auto cut : cuts) {
    if (pos >= bytes.size())
      break;
    auto n = std::min(cut % 70000 + 1, bytes.size() - pos);
    st = dec.feed(chunk::copy_of(bytes.data() + pos, n), out);
    pos += n;
    if (st != frame_decoder::status::ok)
      return out;
  }
  if (pos < bytes.size())
    st = dec.feed(chunk::copy_of(bytes.data() + pos, bytes.size() - pos), out);
  return out;
}

} // namespace

RC_GTEST_PROP(frame_codec, data_frames_round_trip_across_any_split, ()) {
  auto payloads = *rc::gen::container<std::vector<std::string>>(
    rc::gen::resize(3000, rc::gen::arbitrary<std::string>()));
  std::string wire;
  header_pool pool;
  for (size_t i = 0; i < payloads.size(); ++i) {
    auto h = pool.make(frame_type::data, static_cast<uint32_t>(2 * i + 1),
                       static_cast<uint32_t>(payloads[i].size()));
    wire += h.to_string() + payloads[i];
  }
  auto cuts = *rc::gen::container<std::vector<size_t>>(rc::gen::arbitrary<size_t>());
  frame_decoder::status st;
  auto pieces = decode_all(wire, cuts, st);
  RC_ASSERT(st == frame_decoder::status::ok);
  // A data frame that straddles chunks comes out in pieces of the same
  // stream; every stream id differs here, so consecutive pieces of one id
  // are one frame.
  std::vector<std::pair<uint32_t, std::string>> frames;
  for (auto& f : pieces) {
    RC_ASSERT(f.type == frame_type::data);
    RC_ASSERT(f.payload.size() <= frame_data_bytes_max);
    if (!frames.empty() && frames.back().first == f.stream_id) {
      RC_ASSERT(!f.payload.empty()); // only a frame's first piece may be empty
      frames.back().second += f.payload.to_string();
    } else {
      frames.emplace_back(f.stream_id, f.payload.to_string());
    }
  }
  RC_ASSERT(frames.size() == payloads.size());
  for (size_t i = 0; i < payloads.size(); ++i) {
    RC_ASSERT(frames[i].first == 2 * i + 1);
    RC_ASSERT(frames[i].second == payloads[i]);
  }
}

RC_GTEST_PROP(frame_codec, control_frames_come_out_whole_across_any_split, ()) {
  auto payloads = *rc::gen::container<std::vector<std::string>>(
    rc::gen::resize(static_cast<int>(frame_control_bytes_max),
                    rc::gen::arbitrary<std::string>()));
  std::string wire;
  for (size_t i = 0; i < payloads.size(); ++i) {
    RC_PRE(payloads[i].size() <= frame_control_bytes_max);
    wire += encode_frame(frame_type::open, static_cast<uint32_t>(i + 1),
                         payloads[i].data(), payloads[i].size())
              .to_string();
  }
  auto cuts = *rc::gen::container<std::vector<size_t>>(rc::gen::arbitrary<size_t>());
  frame_decoder::status st;
  auto frames = decode_all(wire, cuts, st);
  RC_ASSERT(st == frame_decoder::status::ok);
  RC_ASSERT(frames.size() == payloads.size());
  for (size_t i = 0; i < payloads.size(); ++i) {
    RC_ASSERT(frames[i].type == frame_type::open);
    RC_ASSERT(frames[i].stream_id == i + 1);
    RC_ASSERT(frames[i].payload.to_string() == payloads[i]);
  }
}

RC_GTEST_PROP(frame_codec, truncated_input_yields_only_what_arrived, ()) {
  auto payload = *rc::gen::arbitrary<std::string>();
  RC_PRE(payload.size() <= frame_control_bytes_max);
  bool data = *rc::gen::arbitrary<bool>();
  auto wire = encode_frame(data ? frame_type::data : frame_type::open, 7,
                           payload.data(), payload.size())
                .to_string();
  auto cut = *rc::gen::inRange<size_t>(0, wire.size());
  frame_decoder dec;
  std::vector<frame> out;
  RC_ASSERT(dec.feed(chunk::copy_of(wire.data(), cut), out)
            == frame_decoder::status::ok);
  if (data) {
    // Data bytes that arrived are handed on; nothing is held past a header.
    std::string got;
    for (auto& f : out)
      got += f.payload.to_string();
    auto arrived = cut > frame_header_bytes ? cut - frame_header_bytes : 0;
    RC_ASSERT(got == payload.substr(0, arrived));
    RC_ASSERT(dec.buffered_bytes() == (cut < frame_header_bytes ? cut : 0u));
  } else {
    // A control frame comes out whole or not at all.
    RC_ASSERT(out.empty());
    RC_ASSERT(dec.buffered_bytes() == cut);
  }
}

RC_GTEST_PROP(frame_codec, garbage_never_crashes_and_stays_bounded, ()) {
  auto bytes = *rc::gen::arbitrary<std::string>();
  frame_decoder dec;
  std::vector<frame> out;
  auto st = dec.feed(chunk::copy_of(bytes), out);
  // Whatever came out respects the limits.
  for (auto& f : out)
    RC_ASSERT(f.payload.size() <= frame_data_bytes_max);
  RC_ASSERT(dec.buffered_bytes()
            <= frame_header_bytes + frame_control_bytes_max);
  (void) st;
}

TEST(frame_codec, fixed_size_frames_must_have_their_size) {
  // A 2-byte window update would make its reader run past the payload.
  for (auto t : {frame_type::window, frame_type::rst, frame_type::ping,
                 frame_type::pong}) {
    char h[frame_header_bytes];
    encode_header(h, t, 0, 1, 0);
    h[11] = 2;
    frame_decoder dec;
    std::vector<frame> out;
    EXPECT_EQ(dec.feed(chunk::copy_of(h, sizeof(h)), out),
              frame_decoder::status::bad_size)
      << to_string(t);
  }
}

TEST(frame_codec, oversized_frame_is_rejected_from_its_header) {
  char h[frame_header_bytes];
  encode_header(h, frame_type::data, 0, 1, 0);
  // Claim 16 MiB of payload: rejected before any of it is awaited.
  h[8] = 1;
  h[9] = 0;
  frame_decoder dec;
  std::vector<frame> out;
  EXPECT_EQ(dec.feed(chunk::copy_of(h, sizeof(h)), out),
            frame_decoder::status::too_large);
  // An unknown type and set reserved bits are errors too.
  frame_decoder d2;
  char bad[frame_header_bytes] = {99};
  EXPECT_EQ(d2.feed(chunk::copy_of(bad, sizeof(bad)), out),
            frame_decoder::status::bad_type);
  frame_decoder d3;
  encode_header(bad, frame_type::ping, 0, 0, 8);
  bad[2] = 1;
  EXPECT_EQ(d3.feed(chunk::copy_of(bad, sizeof(bad)), out),
            frame_decoder::status::bad_reserved);
  // A window frame must be exactly its size or less; 5 bytes is too large.
  frame_decoder d4;
  encode_header(bad, frame_type::ping, 0, 0, 8);
  bad[11] = 9;
  EXPECT_EQ(d4.feed(chunk::copy_of(bad, sizeof(bad)), out),
            frame_decoder::status::too_large);
}

RC_GTEST_PROP(control_codec, hello_round_trips, ()) {
  hello_msg in;
  in.version = *rc::gen::arbitrary<uint16_t>();
  in.service = *rc::gen::resize(name_bytes_max, rc::gen::arbitrary<std::string>());
  in.agent_id = *rc::gen::resize(name_bytes_max, rc::gen::arbitrary<std::string>());
  RC_PRE(in.service.size() <= name_bytes_max && in.agent_id.size() <= name_bytes_max);
  hello_msg out;
  RC_ASSERT(decode(encode(in), out));
  RC_ASSERT(out.version == in.version);
  RC_ASSERT(out.service == in.service);
  RC_ASSERT(out.agent_id == in.agent_id);
}

RC_GTEST_PROP(control_codec, garbage_and_truncation_are_rejected, ()) {
  reject_msg in;
  in.code = 3;
  in.message = *rc::gen::resize(200, rc::gen::arbitrary<std::string>());
  auto wire = encode(in).to_string();
  auto cut = *rc::gen::inRange<size_t>(0, wire.size());
  reject_msg out;
  RC_ASSERT(!decode(chunk::copy_of(wire.substr(0, cut)), out));
  auto garbage = *rc::gen::arbitrary<std::string>();
  hello_msg h;
  if (decode(chunk::copy_of(garbage), h)) {
    RC_ASSERT(h.service.size() <= name_bytes_max);
    RC_ASSERT(h.agent_id.size() <= name_bytes_max);
  }
}

TEST(control_codec, huge_length_prefix_is_not_allocated) {
  // A hello claiming a 65535-byte service name in a 10-byte payload.
  std::string wire = encode(hello_msg{}).to_string();
  std::string evil = wire.substr(0, 3) + std::string("\xff\xff", 2) + "abc";
  hello_msg out;
  EXPECT_FALSE(decode(chunk::copy_of(evil), out));
}

TEST(handshake, proof_depends_on_key_transcript_and_channel) {
  auto t0 = std::chrono::steady_clock::now();
  auto k1 = derive_login_key("secret one", service_salt("db"));
  auto scrypt_ms = std::chrono::duration<double, std::milli>(
                     std::chrono::steady_clock::now() - t0)
                     .count();
  std::printf("figure: scrypt (N=2^15, r=8, p=1) + Ed25519 key: %.1f ms per derivation\n",
              scrypt_ms);
  auto k2 = derive_login_key("secret two", service_salt("db"));
  EXPECT_EQ(k1.seed.size(), seed_bytes);
  EXPECT_EQ(k1.public_key.size(), public_key_bytes);
  // Deterministic, and distinct per secret and per name and kind.
  EXPECT_EQ(derive_public_key("secret one", service_salt("db")), k1.public_key);
  EXPECT_NE(derive_login_key("secret one", service_salt("dc")).public_key, k1.public_key);
  EXPECT_NE(derive_login_key("secret one", principal_salt("db")).public_key,
            k1.public_key);
  EXPECT_NE(k2.public_key, k1.public_key);
  auto hello = chunk::copy_of(std::string("hello"));
  auto ch1 = chunk::copy_of(std::string("nonce-1"));
  auto ch2 = chunk::copy_of(std::string("nonce-2"));
  std::string cb1(channel_binding_bytes, 'a');
  std::string cb2(channel_binding_bytes, 'b');
  auto c = make_openssl_crypto();
  auto p = make_proof(*c, k1.seed, cb1, hello, ch1);
  EXPECT_EQ(p.size(), signature_bytes);
  EXPECT_TRUE(check_proof(*c, k1.public_key, p, cb1, hello, ch1));
  EXPECT_FALSE(check_proof(*c, k2.public_key, p, cb1, hello, ch1));
  EXPECT_FALSE(check_proof(*c, k1.public_key, p, cb1, hello, ch2));
  EXPECT_FALSE(check_proof(*c, k1.public_key, p, cb2, hello, ch1)); // another channel
  EXPECT_FALSE(check_proof(*c, k1.public_key, p.substr(0, 63), cb1, hello, ch1));
  EXPECT_FALSE(check_proof(*c, k1.public_key.substr(1), p, cb1, hello, ch1));
  auto flipped = p;
  flipped[10] = static_cast<char>(flipped[10] ^ 1);
  EXPECT_FALSE(check_proof(*c, k1.public_key, flipped, cb1, hello, ch1));
  // The secret itself appears nowhere in what crosses the wire.
  EXPECT_EQ(p.find("secret one"), std::string::npos);
}

TEST(handshake, what_a_pop_stores_cannot_make_a_proof) {
  // All a POP holds of a service is its public key. Used as a signing seed,
  // as an HMAC key (the old scheme), or padded, it yields no valid proof.
  auto k = derive_login_key("the secret", service_salt("db"));
  auto hello = chunk::copy_of(std::string("hello"));
  auto ch = chunk::copy_of(std::string("nonce"));
  std::string cb(channel_binding_bytes, 'x');
  auto c = make_openssl_crypto();
  auto transcript = proof_transcript(cb, hello, ch);
  std::vector<std::string> forged = {
    make_proof(*c, k.public_key, cb, hello, ch),
    c->hmac_sha256(k.public_key, transcript),
    c->hmac_sha256(k.public_key, transcript) + c->hmac_sha256(k.public_key, transcript),
    std::string(signature_bytes, '\0'),
  };
  for (auto& f : forged)
    EXPECT_FALSE(check_proof(*c, k.public_key, f, cb, hello, ch));
  EXPECT_TRUE(check_proof(*c, k.public_key, make_proof(*c, k.seed, cb, hello, ch), cb,
                          hello, ch));
}

TEST(control_codec, bools_other_than_0_or_1_are_rejected) {
  // Loading a byte of 2 into a bool is undefined behaviour: an open_msg
  // whose `resumable` byte is 2 must not decode.
  open_msg m;
  m.peer = "p";
  m.resumable = true;
  auto wire = encode(m).to_string();
  open_msg back;
  ASSERT_TRUE(decode(chunk::copy_of(wire), back));
  EXPECT_TRUE(back.resumable);
  // After the endianness byte and the u16-prefixed peer ("p"): the bool.
  auto at = 1 + 2 + 1;
  ASSERT_EQ(wire[at], 1);
  wire[at] = 2;
  EXPECT_FALSE(decode(chunk::copy_of(wire), back));
}
