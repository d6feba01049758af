#include "net/wire/frame.hpp"

#include <cstring>

#include "net/seam/assert.hpp"

namespace drtp::net {

namespace {

void put_u32(char* p, uint32_t v) noexcept {
  p[0] = static_cast<char>(v >> 24);
  p[1] = static_cast<char>(v >> 16);
  p[2] = static_cast<char>(v >> 8);
  p[3] = static_cast<char>(v);
}

bool known_type(uint8_t t) noexcept {
  switch (static_cast<frame_type>(t)) {
    case frame_type::hello:
    case frame_type::challenge:
    case frame_type::proof:
    case frame_type::accept:
    case frame_type::reject:
    case frame_type::open:
    case frame_type::data:
    case frame_type::window:
    case frame_type::fin:
    case frame_type::rst:
    case frame_type::ping:
    case frame_type::pong:
    case frame_type::goaway:
    case frame_type::renew:
      return true;
  }
  return false;
}

size_t payload_limit(frame_type t) noexcept {
  switch (t) {
    case frame_type::data: return frame_data_bytes_max;
    case frame_type::window:
    case frame_type::rst: return 4;
    case frame_type::ping:
    case frame_type::pong: return 8;
    case frame_type::fin: return 0;
    default: return frame_control_bytes_max;
  }
}

} // namespace

const char* to_string(frame_type t) noexcept {
  switch (t) {
    case frame_type::hello: return "hello";
    case frame_type::challenge: return "challenge";
    case frame_type::proof: return "proof";
    case frame_type::accept: return "accept";
    case frame_type::reject: return "reject";
    case frame_type::open: return "open";
    case frame_type::data: return "data";
    case frame_type::window: return "window";
    case frame_type::fin: return "fin";
    case frame_type::rst: return "rst";
    case frame_type::ping: return "ping";
    case frame_type::pong: return "pong";
    case frame_type::goaway: return "goaway";
    case frame_type::renew: return "renew";
  }
  return "unknown";
}

const char* to_string(rst_code c) noexcept {
  switch (c) {
    case rst_code::closed: return "connection closed";
    case rst_code::connect_failed: return "local service unreachable";
    case rst_code::tunnel_lost: return "tunnel lost";
    case rst_code::flow_violation: return "flow control violated";
    case rst_code::refused: return "stream refused";
  }
  return "reset";
}

const char* to_string(frame_decoder::status s) noexcept {
  switch (s) {
    case frame_decoder::status::ok: return "ok";
    case frame_decoder::status::bad_type: return "unknown frame type";
    case frame_decoder::status::bad_reserved: return "reserved header bits set";
    case frame_decoder::status::too_large: return "frame exceeds its size limit";
    case frame_decoder::status::bad_size: return "fixed-size frame of the wrong size";
  }
  return "unknown";
}

uint32_t read_u32(const char* p) noexcept {
  auto b = reinterpret_cast<const unsigned char*>(p);
  return (uint32_t{b[0]} << 24) | (uint32_t{b[1]} << 16) | (uint32_t{b[2]} << 8)
         | uint32_t{b[3]};
}

uint64_t read_u64(const char* p) noexcept {
  return (uint64_t{read_u32(p)} << 32) | read_u32(p + 4);
}

void encode_header(char* out, frame_type t, uint8_t flags, uint32_t stream_id,
                   uint32_t payload_bytes) noexcept {
  DRTP_ASSERT(payload_bytes <= payload_limit(t), "a frame respects its type's payload limit");
  out[0] = static_cast<char>(t);
  out[1] = static_cast<char>(flags);
  out[2] = 0;
  out[3] = 0;
  put_u32(out + 4, stream_id);
  put_u32(out + 8, payload_bytes);
}

chunk encode_frame(frame_type t, uint32_t stream_id, const void* payload,
                   size_t payload_bytes) {
  std::vector<char> buf(frame_header_bytes + payload_bytes);
  encode_header(buf.data(), t, 0, stream_id,
                static_cast<uint32_t>(payload_bytes));
  if (payload_bytes > 0)
    std::memcpy(buf.data() + frame_header_bytes, payload, payload_bytes);
  return chunk::adopt(std::move(buf));
}

chunk encode_u32_frame(frame_type t, uint32_t stream_id, uint32_t value) {
  char p[4];
  put_u32(p, value);
  return encode_frame(t, stream_id, p, sizeof(p));
}

chunk encode_u64_frame(frame_type t, uint32_t stream_id, uint64_t value) {
  char p[8];
  put_u32(p, static_cast<uint32_t>(value >> 32));
  put_u32(p + 4, static_cast<uint32_t>(value));
  return encode_frame(t, stream_id, p, sizeof(p));
}

chunk header_pool::make(frame_type t, uint32_t stream_id, uint32_t payload_bytes,
                        const void* prefix, size_t prefix_bytes) {
  DRTP_ASSERT(prefix_bytes <= prefix_bytes_max && prefix_bytes <= payload_bytes, "a header prefix is small and part of the payload");
  auto n = frame_header_bytes + prefix_bytes;
  if (used_ + n > block_bytes) {
    // The old block stays alive as long as chunks of it are in flight.
    block_chunk_ = chunk::allocate(block_bytes, &block_data_);
    used_ = 0;
  }
  // The pool is the block's only writer and never rewrites a handed-out slice.
  encode_header(block_data_ + used_, t, 0, stream_id, payload_bytes);
  if (prefix_bytes > 0)
    std::memcpy(block_data_ + used_ + frame_header_bytes, prefix, prefix_bytes);
  auto out = block_chunk_.slice(used_, n);
  used_ += n;
  return out;
}

frame_decoder::status frame_decoder::check_header(const char* h,
                                                  size_t& payload_bytes) const {
  auto t = static_cast<uint8_t>(h[0]);
  if (!known_type(t))
    return status::bad_type;
  if (h[2] != 0 || h[3] != 0)
    return status::bad_reserved;
  payload_bytes = read_u32(h + 8);
  auto type = static_cast<frame_type>(t);
  if (payload_bytes > payload_limit(type))
    return status::too_large;
  // Fixed-size payloads must be exactly their size: handlers read them
  // without further checks.
  bool fixed = type == frame_type::window || type == frame_type::rst
               || type == frame_type::ping || type == frame_type::pong;
  if (fixed && payload_bytes != payload_limit(type))
    return status::bad_size;
  return status::ok;
}

frame_decoder::status frame_decoder::feed(const chunk& in,
                                          std::vector<frame>& out) {
  if (failed_)
    return status::too_large;
  size_t pos = 0;
  const char* p = in.data();
  const size_t n = in.size();
  auto emit = [&](const char* h, chunk payload) {
    frame f;
    f.type = static_cast<frame_type>(static_cast<uint8_t>(h[0]));
    f.flags = static_cast<uint8_t>(h[1]);
    f.stream_id = read_u32(h + 4);
    f.payload = std::move(payload);
    out.push_back(std::move(f));
  };
  while (pos < n) {
    if (data_left_ > 0) {
      // The rest of a data frame, as far as it is here: a slice, no copy.
      auto take = std::min(data_left_, n - pos);
      emit(cur_hdr_, in.slice(pos, take));
      pos += take;
      data_left_ -= take;
      continue;
    }
    if (control_left_ > 0) {
      // Control payloads are small (<= 4 KiB): gather them.
      auto take = std::min(control_left_, n - pos);
      partial_.insert(partial_.end(), p + pos, p + pos + take);
      pos += take;
      control_left_ -= take;
      if (control_left_ == 0) {
        emit(cur_hdr_, chunk::copy_of(partial_.data(), partial_.size()));
        partial_.clear();
      }
      continue;
    }
    // A frame boundary: the header, in place if it is whole here.
    const char* h = p + pos;
    if (hdr_have_ > 0 || n - pos < frame_header_bytes) {
      auto take = std::min(frame_header_bytes - hdr_have_, n - pos);
      std::memcpy(hdr_ + hdr_have_, p + pos, take);
      hdr_have_ += take;
      pos += take;
      if (hdr_have_ < frame_header_bytes)
        break;
      hdr_have_ = 0;
      h = hdr_;
    } else {
      pos += frame_header_bytes;
    }
    size_t len = 0;
    if (auto st = check_header(h, len); st != status::ok) {
      failed_ = true;
      return st;
    }
    std::memcpy(cur_hdr_, h, frame_header_bytes);
    if (static_cast<frame_type>(static_cast<uint8_t>(h[0])) == frame_type::data) {
      // Data is a byte stream: hand on what is here now and the rest as it
      // comes, so a frame that straddles two reads is never copied.
      if (len == 0) {
        emit(cur_hdr_, chunk{});
        continue;
      }
      data_left_ = len;
    } else if (n - pos >= len) {
      emit(cur_hdr_, in.slice(pos, len));
      pos += len;
    } else {
      control_left_ = len;
    }
  }
  DRTP_ASSERT(partial_.size() <= frame_control_bytes_max, "a gathered control payload stays within 4 KiB");
  return status::ok;
}

} // namespace drtp::net
