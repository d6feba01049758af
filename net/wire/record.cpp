#include "net/wire/record.hpp"

#include <algorithm>
#include <cstring>

#include "net/seam/assert.hpp"

namespace drtp::net {

namespace {

void put_u64(char* p, uint64_t v) noexcept {
  for (int i = 0; i < 8; ++i)
    p[i] = static_cast<char>(v >> (56 - 8 * i));
}

void put_u32(char* p, uint32_t v) noexcept {
  for (int i = 0; i < 4; ++i)
    p[i] = static_cast<char>(v >> (24 - 8 * i));
}

std::string encode_record(record_type t, const void* body, size_t n) {
  DRTP_ASSERT(n <= record_control_bytes_max,
              "a control record body is at most 256 bytes");
  std::string out(record_header_bytes + n, '\0');
  put_record_header(out.data(), t, static_cast<uint32_t>(n));
  if (n > 0)
    std::memcpy(out.data() + record_header_bytes, body, n);
  return out;
}

/// The body size a control record must have, or -1 for a variable one.
long fixed_body_bytes(record_type t) noexcept {
  switch (t) {
    case record_type::hello:
      return record_key_bytes;
    case record_type::resume:
      return record_resume_bytes;
    case record_type::resumed:
      return record_resumed_bytes;
    case record_type::proof:
      return record_proof_bytes;
    case record_type::ack:
      return record_ack_bytes;
    case record_type::fin:
    case record_type::close:
      return 0;
    default:
      return -1;
  }
}

} // namespace

const char* to_string(record_type t) noexcept {
  switch (t) {
    case record_type::hello:
      return "hello";
    case record_type::welcome:
      return "welcome";
    case record_type::resume:
      return "resume";
    case record_type::resumed:
      return "resumed";
    case record_type::data:
      return "data";
    case record_type::ack:
      return "ack";
    case record_type::fin:
      return "fin";
    case record_type::close:
      return "close";
    case record_type::proof:
      return "proof";
    case record_type::telemetry:
      return "telemetry";
  }
  return "unknown";
}

void put_record_header(char* out, record_type t, uint32_t body_bytes) noexcept {
  out[0] = static_cast<char>(t);
  for (int i = 0; i < 4; ++i)
    out[1 + i] = static_cast<char>(body_bytes >> (24 - 8 * i));
}

std::string encode_hello(const std::string& client_key) {
  DRTP_ASSERT(client_key.size() == record_key_bytes, "a session key half is 32 bytes");
  return encode_record(record_type::hello, client_key.data(), client_key.size());
}

std::string encode_welcome(const std::string& serve_key, const std::string& agent_id) {
  DRTP_ASSERT(serve_key.size() == record_key_bytes, "a session key half is 32 bytes");
  auto body = serve_key + agent_id.substr(0, record_agent_id_bytes_max);
  return encode_record(record_type::welcome, body.data(), body.size());
}

std::string encode_resume(const std::string& nonce_c) {
  DRTP_ASSERT(nonce_c.size() == record_nonce_bytes, "a resume nonce is 32 bytes");
  return encode_record(record_type::resume, nonce_c.data(), nonce_c.size());
}

std::string encode_resumed(const std::string& nonce_s, uint64_t recv_offset,
                           const std::string& mac) {
  DRTP_ASSERT(nonce_s.size() == record_nonce_bytes && mac.size() == record_mac_bytes,
              "a resumed record has a 32-byte nonce and a 32-byte MAC");
  char buf[record_resumed_bytes];
  std::memcpy(buf, nonce_s.data(), record_nonce_bytes);
  put_u64(buf + record_nonce_bytes, recv_offset);
  std::memcpy(buf + record_nonce_bytes + 8, mac.data(), record_mac_bytes);
  return encode_record(record_type::resumed, buf, sizeof(buf));
}

std::string encode_proof(uint64_t recv_offset, const std::string& mac) {
  DRTP_ASSERT(mac.size() == record_mac_bytes, "a proof carries a 32-byte MAC");
  char buf[record_proof_bytes];
  put_u64(buf, recv_offset);
  std::memcpy(buf + 8, mac.data(), record_mac_bytes);
  return encode_record(record_type::proof, buf, sizeof(buf));
}

std::string encode_ack(uint64_t delivered_offset, bool fin_seen) {
  char buf[record_ack_bytes];
  put_u64(buf, delivered_offset);
  buf[8] = fin_seen ? 1 : 0;
  return encode_record(record_type::ack, buf, sizeof(buf));
}

std::string encode_telemetry(const telemetry_body& t) {
  char buf[record_telemetry_fixed_bytes + record_telemetry_pop_bytes_max];
  put_u64(buf, t.sent_bytes);
  put_u64(buf + 8, t.received_bytes);
  put_u64(buf + 16, t.resent_bytes);
  uint32_t words[] = {t.resumes, t.stall_ms, t.rtt_samples, t.rtt_p50_us, t.rtt_max_us};
  for (size_t i = 0; i < 5; ++i)
    put_u32(buf + 24 + 4 * i, words[i]);
  auto pop_bytes = std::min(t.pop.size(), record_telemetry_pop_bytes_max);
  std::memcpy(buf + record_telemetry_fixed_bytes, t.pop.data(), pop_bytes);
  return encode_record(record_type::telemetry, buf, record_telemetry_fixed_bytes + pop_bytes);
}

telemetry_body decode_telemetry(const chunk& body) {
  DRTP_ASSERT(body.size() >= record_telemetry_fixed_bytes
                && body.size() <= record_telemetry_fixed_bytes + record_telemetry_pop_bytes_max,
              "the decoder passes only telemetry bodies within their bounds");
  auto p = body.data();
  telemetry_body t;
  t.sent_bytes = read_u64(p);
  t.received_bytes = read_u64(p + 8);
  t.resent_bytes = read_u64(p + 16);
  t.resumes = read_u32(p + 24);
  t.stall_ms = read_u32(p + 28);
  t.rtt_samples = read_u32(p + 32);
  t.rtt_p50_us = read_u32(p + 36);
  t.rtt_max_us = read_u32(p + 40);
  t.pop.assign(p + record_telemetry_fixed_bytes, body.size() - record_telemetry_fixed_bytes);
  return t;
}

std::string encode_fin() {
  return encode_record(record_type::fin, nullptr, 0);
}

std::string encode_close() {
  return encode_record(record_type::close, nullptr, 0);
}

welcome_body decode_welcome(const chunk& body) {
  DRTP_ASSERT(body.size() >= record_key_bytes,
              "the decoder passes only welcome bodies that hold a key");
  return {std::string(body.data(), record_key_bytes),
          std::string(body.data() + record_key_bytes, body.size() - record_key_bytes)};
}

resumed_body decode_resumed(const chunk& body) {
  DRTP_ASSERT(body.size() == record_resumed_bytes,
              "the decoder passes only resumed bodies of their fixed size");
  return {std::string(body.data(), record_nonce_bytes),
          read_u64(body.data() + record_nonce_bytes),
          std::string(body.data() + record_nonce_bytes + 8, record_mac_bytes)};
}

proof_body decode_proof(const chunk& body) {
  DRTP_ASSERT(body.size() == record_proof_bytes,
              "the decoder passes only proof bodies of their fixed size");
  return {read_u64(body.data()), std::string(body.data() + 8, record_mac_bytes)};
}

std::string resume_transcript(const std::string& label, const std::string& session_id,
                              const std::string& nonce_c, const std::string& nonce_s,
                              uint64_t recv_offset) {
  char off[8];
  put_u64(off, recv_offset);
  // Fixed-size fields after a label that ends in a NUL: unambiguous.
  return "drtp-rsession-" + label + std::string(1, '\0') + session_id + nonce_c + nonce_s
         + std::string(off, 8);
}

std::string session_key_context(const std::string& session_id,
                                const std::string& client_key,
                                const std::string& serve_key) {
  return std::string("drtp-rsession-key-v1") + std::string(1, '\0') + session_id
         + client_key + serve_key;
}

ack_body decode_ack(const chunk& body) {
  DRTP_ASSERT(body.size() == record_ack_bytes,
              "the decoder passes only ack bodies of their fixed size");
  return {read_u64(body.data()), body.data()[8] != 0};
}

record_decoder::status record_decoder::start_record(std::vector<record>& out) {
  auto t = static_cast<uint8_t>(hdr_[0]);
  size_t n = read_u32(hdr_ + 1);
  if (t < static_cast<uint8_t>(record_type::hello)
      || t > static_cast<uint8_t>(record_type::telemetry))
    return status::bad_type;
  type_ = static_cast<record_type>(t);
  if (type_ == record_type::data) {
    if (n > record_data_bytes_max)
      return status::too_large;
  } else {
    // Checked before a byte of the body is gathered: a length on the wire
    // never makes us hold more than record_control_bytes_max.
    if (n > record_control_bytes_max)
      return status::too_large;
    auto fixed = fixed_body_bytes(type_);
    if (fixed >= 0 && n != static_cast<size_t>(fixed))
      return status::bad_size;
    if (type_ == record_type::welcome && n < record_key_bytes)
      return status::bad_size;
    if (type_ == record_type::telemetry
        && (n < record_telemetry_fixed_bytes
            || n > record_telemetry_fixed_bytes + record_telemetry_pop_bytes_max))
      return status::bad_size;
    if (n == 0)
      out.push_back({type_, chunk{}});
  }
  body_left_ = n;
  return status::ok;
}

record_decoder::status record_decoder::feed(const chunk& in, std::vector<record>& out) {
  if (failed_ != status::ok)
    return failed_;
  size_t pos = 0;
  while (pos < in.size()) {
    auto left = in.size() - pos;
    if (body_left_ == 0) {
      auto take = std::min(record_header_bytes - hdr_have_, left);
      std::memcpy(hdr_ + hdr_have_, in.data() + pos, take);
      hdr_have_ += take;
      pos += take;
      if (hdr_have_ < record_header_bytes)
        break;
      hdr_have_ = 0;
      auto st = start_record(out);
      if (st != status::ok)
        return failed_ = st;
      continue;
    }
    auto take = std::min(body_left_, left);
    if (type_ == record_type::data) {
      out.push_back({type_, in.slice(pos, take)});
    } else if (body_.empty() && take == body_left_) {
      out.push_back({type_, in.slice(pos, take)}); // whole in this chunk
    } else {
      body_.append(in.data() + pos, take);
      if (take == body_left_) {
        out.push_back({type_, chunk::copy_of(body_)});
        body_.clear();
      }
    }
    pos += take;
    body_left_ -= take;
  }
  return status::ok;
}

const char* to_string(record_decoder::status s) noexcept {
  switch (s) {
    case record_decoder::status::ok:
      return "ok";
    case record_decoder::status::bad_type:
      return "unknown record type";
    case record_decoder::status::too_large:
      return "record too large";
    case record_decoder::status::bad_size:
      return "wrong size for a fixed-size record";
  }
  return "unknown";
}

} // namespace drtp::net
