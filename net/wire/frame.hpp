#pragma once
// The tunnel's wire format: every frame is a fixed 12-byte header followed by
// its payload. Data frames carry payload bytes as they are; control payloads
// are encoded with cereal (net/control.hpp).
//
//   0      1      2      4            8            12
//   +------+------+------+------------+------------+-----------
//   | type | flags| zero |  stream id |   length   | payload...
//   +------+------+------+------------+------------+-----------
//   integers big-endian; `zero` must be 0 (room for later versions).

#include <cstdint>
#include <string>
#include <vector>

#include "net/seam/chunk.hpp"

namespace drtp::net {

enum class frame_type : uint8_t {
  // handshake (stream 0)
  hello = 1,
  challenge = 2,
  proof = 3,
  accept = 4,
  reject = 5,
  // streams
  open = 16,   // payload: control open_msg
  data = 17,   // payload: raw bytes
  window = 18, // payload: u32 credit increment in bytes
  fin = 19,    // no payload: the sender writes no more on this stream
  rst = 20,    // payload: u32 reason code
  // tunnel
  ping = 32,   // payload: u64 opaque, echoed by pong
  pong = 33,
  goaway = 34, // payload: control goaway_msg
  renew = 35,  // agent -> POP, stream 0: control renew_msg (a renewed certificate)
};

constexpr size_t frame_header_bytes = 12;
/// Largest data payload in one frame; larger writes are split.
constexpr size_t frame_data_bytes_max = 64 * 1024;
/// Largest control payload (handshake, open, goaway).
constexpr size_t frame_control_bytes_max = 4 * 1024;

struct frame {
  frame_type type = frame_type::data;
  uint8_t flags = 0;
  uint32_t stream_id = 0;
  chunk payload;
};

const char* to_string(frame_type t) noexcept;

/// Why a stream was reset: the payload of an rst frame (u32).
enum class rst_code : uint32_t {
  closed = 0,          // the local side reset its connection
  connect_failed = 1,  // the agent could not reach the local service
  tunnel_lost = 2,     // the tunnel carrying the stream went away
  flow_violation = 3,  // the peer sent beyond its credit
  refused = 4,         // too many streams, or draining
};

const char* to_string(rst_code c) noexcept;

/// Encodes a header; `payload_bytes` must respect the limit of `t`.
void encode_header(char* out, frame_type t, uint8_t flags, uint32_t stream_id,
                   uint32_t payload_bytes) noexcept;

/// Header + payload in one chunk (control frames, small frames).
chunk encode_frame(frame_type t, uint32_t stream_id, const void* payload,
                   size_t payload_bytes);
chunk encode_u32_frame(frame_type t, uint32_t stream_id, uint32_t value);
chunk encode_u64_frame(frame_type t, uint32_t stream_id, uint64_t value);

uint32_t read_u32(const char* p) noexcept;
uint64_t read_u64(const char* p) noexcept;

/// Hands out 12-byte header slices carved from shared 4 KiB blocks, so that a
/// data frame costs no allocation of its own.
class header_pool {
public:
  /// A frame header, followed by `prefix_bytes` copied from `prefix` (the
  /// start of the payload, e.g. a record header of the layer above).
  chunk make(frame_type t, uint32_t stream_id, uint32_t payload_bytes,
             const void* prefix = nullptr, size_t prefix_bytes = 0);

  static constexpr size_t prefix_bytes_max = 16;

private:
  static constexpr size_t block_bytes = 4096;
  chunk block_chunk_;
  char* block_data_ = nullptr;
  size_t used_ = block_bytes;
};

/// Cuts a byte stream into frames. Data payloads are slices of the input (no
/// copy): a data frame that straddles two chunks comes out as two frames of
/// the same stream, one per chunk, because data is a byte stream anyway.
/// Control frames come out whole (a control payload split across chunks is
/// gathered, at most 4 KiB).
class frame_decoder {
public:
  enum class status { ok, bad_type, bad_reserved, too_large, bad_size };

  /// Appends every complete frame in `in` to `out`. After an error the
  /// decoder is unusable: the caller closes the tunnel.
  status feed(const chunk& in, std::vector<frame>& out);

  /// Bytes held while waiting for the rest of a header or control frame.
  size_t buffered_bytes() const noexcept {
    return hdr_have_ + (control_left_ > 0 ? frame_header_bytes + partial_.size() : 0);
  }

private:
  status check_header(const char* h, size_t& payload_bytes) const;
  char hdr_[frame_header_bytes];     // a header split across chunks
  size_t hdr_have_ = 0;
  char cur_hdr_[frame_header_bytes]; // the frame in progress
  size_t data_left_ = 0;             // payload bytes of it still to come
  size_t control_left_ = 0;
  std::vector<char> partial_;        // control payload gathered so far
  bool failed_ = false;
};

const char* to_string(frame_decoder::status s) noexcept;

} // namespace drtp::net
