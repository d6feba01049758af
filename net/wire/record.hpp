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
//   1 hello      token(32)                              client, first path
//   2 welcome    agent id (<= 256 bytes)                serve, answers hello
//   3 resume     token(32) recv_offset(u64)             client, later paths
//   4 resumed    recv_offset(u64)                       serve, answers resume
//   5 data       payload bytes (<= 64 KiB - 5)          both; offsets implicit
//   6 ack        delivered_offset(u64) fin_seen(u8)     both
//   7 fin        (empty)                                both: no more data
//   8 close      (empty)                                both: abort
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
};

const char* to_string(record_type t) noexcept;

constexpr size_t record_header_bytes = 5;
/// Largest body of any record but data: bounds what a decoder gathers.
constexpr size_t record_control_bytes_max = 256;
constexpr size_t record_token_bytes = 32;
/// Largest data record: one stream frame holds its header and body.
constexpr size_t record_data_bytes_max = frame_data_bytes_max - record_header_bytes;
constexpr size_t record_resume_bytes = record_token_bytes + 8;
constexpr size_t record_resumed_bytes = 8;
constexpr size_t record_ack_bytes = 9;

/// Writes the 5-byte header of a record with `body_bytes` of body.
void put_record_header(char* out, record_type t, uint32_t body_bytes) noexcept;

// Whole control records (header + body), ready for frame_writer::data_copy.
std::string encode_hello(const std::string& token);
/// An agent id longer than record_control_bytes_max is cut to it.
std::string encode_welcome(const std::string& agent_id);
std::string encode_resume(const std::string& token, uint64_t recv_offset);
std::string encode_resumed(uint64_t recv_offset);
std::string encode_ack(uint64_t delivered_offset, bool fin_seen);
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
struct resume_body {
  std::string token;
  uint64_t recv_offset = 0;
};
resume_body decode_resume(const chunk& body);
uint64_t decode_resumed(const chunk& body);
struct ack_body {
  uint64_t delivered_offset = 0;
  bool fin_seen = false;
};
ack_body decode_ack(const chunk& body);

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
