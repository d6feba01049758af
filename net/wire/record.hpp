#pragma once
// The patch panel's record layer: what the two ends of a resumable session
// (actors/rsession) say to each other inside the payload of one stream's
// data frames. The POP's splice passes these bytes through unread, so only
// the two ends need to agree on them.
//
//   0      1                 5
//   +------+-----------------+-----------
//   | type |  body length    | body...
//   +------+-----------------+-----------
//   integers big-endian; a record may span data frames.
//
//   type         body                                   sent by
//   1 hello      client_key(32)                         client, first path
//   2 welcome    serve_key(32) agent id (<= 224 bytes)  serve, answers hello
//   3 resume     nonce_c(32)                            client, later paths
//   4 resumed    nonce_s(32) recv_offset(u64) mac(32)   serve, answers resume
//   5 data       payload bytes (<= 64 KiB - 5)          both; offsets implicit
//   6 ack        delivered_offset(u64) fin_seen(u8)     both
//   7 fin        (empty)                                both: no more data
//   8 close      (empty)                                both: abort
//   9 proof      recv_offset(u64) mac(32)               client, answers resumed
//  10 telemetry  sent(u64) received(u64) resent(u64)    both, attached paths
//                resumes(u32) stall_ms(u32) rtt_samples(u32)
//                rtt_p50_us(u32) rtt_max_us(u32) pop (<= 64 bytes)
//
// Telemetry is what one end knows of its hop (its POP, the round trip to
// it, what it resent and how long it stalled): each end shows the other's
// beside its own, which is the session's path end to end. It is sent only
// on an attached path, every few seconds while something changed, and
// skipped when the stream has no credit for it: it is never worth a stall.
// Both ends must be of a version that knows it (an older one ends the path
// on an unknown record type).
//
// The keys are X25519 public halves: each end derives the session key from
// its own private half and the other's public one, so the POPs that relay
// hello and welcome never learn it, and nothing secret is ever on the wire.
// A resume is a challenge-response under that key, fresh for every path:
// the serve end proves it holds the key over both nonces (resumed), then
// the client does (proof). Until its proof checks, a new path is acted on
// for nothing but these records (see actors/rsession).
//
// recv_offset and delivered_offset count data bytes from the start of the
// session, across paths: they tell the peer where to resend from and what it
// may drop from its retransmit buffer.

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "net/seam/chunk.hpp"
#include "net/wire/frame.hpp"

namespace drtp::net {

enum class record_type : uint8_t {
  hello = 1,
  welcome = 2,
  resume = 3,
  resumed = 4,
  data = 5,
  ack = 6,
  fin = 7,
  close = 8,
  proof = 9,
  telemetry = 10,
};

const char* to_string(record_type t) noexcept;

constexpr size_t record_header_bytes = 5;
/// Largest body of any record but data: bounds what a decoder gathers.
constexpr size_t record_control_bytes_max = 256;
/// An X25519 public key, a resume nonce, an HMAC-SHA256: 32 bytes each.
constexpr size_t record_key_bytes = 32;
constexpr size_t record_nonce_bytes = 32;
constexpr size_t record_mac_bytes = 32;
/// Largest data record: one stream frame holds its header and body.
constexpr size_t record_data_bytes_max = frame_data_bytes_max - record_header_bytes;
constexpr size_t record_agent_id_bytes_max = record_control_bytes_max - record_key_bytes;
constexpr size_t record_resume_bytes = record_nonce_bytes;
constexpr size_t record_resumed_bytes = record_nonce_bytes + 8 + record_mac_bytes;
constexpr size_t record_proof_bytes = 8 + record_mac_bytes;
constexpr size_t record_ack_bytes = 9;
constexpr size_t record_telemetry_fixed_bytes = 3 * 8 + 5 * 4;
constexpr size_t record_telemetry_pop_bytes_max = 64;

/// Writes the 5-byte header of a record with `body_bytes` of body.
void put_record_header(char* out, record_type t, uint32_t body_bytes) noexcept;

// Whole control records (header + body), ready for frame_writer::data_copy.
std::string encode_hello(const std::string& client_key);
/// An agent id longer than record_agent_id_bytes_max is cut to it.
std::string encode_welcome(const std::string& serve_key, const std::string& agent_id);
std::string encode_resume(const std::string& nonce_c);
std::string encode_resumed(const std::string& nonce_s, uint64_t recv_offset,
                           const std::string& mac);
std::string encode_proof(uint64_t recv_offset, const std::string& mac);
std::string encode_ack(uint64_t delivered_offset, bool fin_seen);
struct telemetry_body {
  uint64_t sent_bytes = 0;
  uint64_t received_bytes = 0;
  uint64_t resent_bytes = 0;
  uint32_t resumes = 0;
  uint32_t stall_ms = 0;
  uint32_t rtt_samples = 0;
  uint32_t rtt_p50_us = 0;
  uint32_t rtt_max_us = 0;
  std::string pop; // cut to record_telemetry_pop_bytes_max
};
std::string encode_telemetry(const telemetry_body& t);
std::string encode_fin();
std::string encode_close();

/// One decoded record. A data record's body is a slice of the input (no
/// copy); one that straddles input chunks comes out as one record per
/// chunk, because data is a byte stream anyway. Control records come out
/// whole, with a body size the decoder already checked.
struct record {
  record_type type = record_type::data;
  chunk body;
};

// Fields of decoded control records (their size checked by the decoder).
struct welcome_body {
  std::string serve_key;
  std::string agent_id;
};
welcome_body decode_welcome(const chunk& body);
struct resumed_body {
  std::string nonce_s;
  uint64_t recv_offset = 0;
  std::string mac;
};
resumed_body decode_resumed(const chunk& body);
struct proof_body {
  uint64_t recv_offset = 0;
  std::string mac;
};
proof_body decode_proof(const chunk& body);

/// What a resume MAC covers: who speaks (`label`: "resumed" from the serve
/// end, "proof" from the client end, so one cannot stand for the other), the
/// session, both nonces of this path and the offset the speaker reports.
std::string resume_transcript(const std::string& label, const std::string& session_id,
                              const std::string& nonce_c, const std::string& nonce_s,
                              uint64_t recv_offset);
/// What the session key is derived from (HMAC-SHA256 keyed by the X25519
/// shared secret): the session and both public halves.
std::string session_key_context(const std::string& session_id,
                                const std::string& client_key,
                                const std::string& serve_key);
struct ack_body {
  uint64_t delivered_offset = 0;
  bool fin_seen = false;
};
ack_body decode_ack(const chunk& body);
telemetry_body decode_telemetry(const chunk& body);

/// Cuts the payload bytes of one stream into records, incrementally.
class record_decoder {
public:
  enum class status { ok, bad_type, too_large, bad_size };

  /// Appends every record completed by `in` to `out`, in order; on an
  /// error, those before it. After an error the decoder stays failed: the
  /// caller ends the path.
  status feed(const chunk& in, std::vector<record>& out);

  /// Bytes held while waiting for the rest of a header or control body.
  size_t buffered_bytes() const noexcept {
    return hdr_have_ + body_.size();
  }

private:
  status start_record(std::vector<record>& out);
  char hdr_[record_header_bytes];
  size_t hdr_have_ = 0;
  /// The record in progress: no header pending while body_left_ is 0.
  record_type type_ = record_type::data;
  size_t body_left_ = 0;
  std::string body_; // control body gathered so far
  status failed_ = status::ok;
};

const char* to_string(record_decoder::status s) noexcept;

} // namespace drtp::net
