#include "net/wire/frame_writer.hpp"

#include <cstring>

#include "net/seam/assert.hpp"

namespace drtp::net {

chunk_list frame_writer::data(uint32_t stream_id, chunk payload) {
  DRTP_ASSERT(payload.size() <= frame_data_bytes_max,
              "a data frame carries at most 64 KiB");
  auto hdr = headers_.make(frame_type::data, stream_id,
                           static_cast<uint32_t>(payload.size()));
  return {std::move(hdr), std::move(payload)};
}

chunk_list frame_writer::data(uint32_t stream_id, const void* prefix,
                              size_t prefix_bytes, chunk rest) {
  DRTP_ASSERT(prefix_bytes + rest.size() <= frame_data_bytes_max,
              "a data frame carries at most 64 KiB");
  auto hdr = headers_.make(frame_type::data, stream_id,
                           static_cast<uint32_t>(prefix_bytes + rest.size()),
                           prefix, prefix_bytes);
  if (rest.empty())
    return {std::move(hdr)};
  return {std::move(hdr), std::move(rest)};
}

chunk frame_writer::data_copy(uint32_t stream_id, const void* payload,
                              size_t payload_bytes) {
  DRTP_ASSERT(payload_bytes <= frame_data_bytes_max,
              "a data frame carries at most 64 KiB");
  return encode_frame(frame_type::data, stream_id, payload, payload_bytes);
}

chunk frame_writer::control(frame_type t, uint32_t stream_id, const chunk& payload) {
  DRTP_ASSERT(t != frame_type::data, "control frames are not data");
  DRTP_ASSERT(payload.size() <= frame_control_bytes_max,
              "a control frame carries at most 4 KiB");
  return encode_frame(t, stream_id, payload.data(), payload.size());
}

chunk frame_writer::window(uint32_t stream_id, uint32_t credit_bytes) {
  return encode_u32_frame(frame_type::window, stream_id, credit_bytes);
}

chunk frame_writer::fin(uint32_t stream_id) {
  return encode_frame(frame_type::fin, stream_id, nullptr, 0);
}

chunk frame_writer::rst(uint32_t stream_id, rst_code code) {
  return rst(stream_id, static_cast<uint32_t>(code));
}

chunk frame_writer::rst(uint32_t stream_id, uint32_t code) {
  return encode_u32_frame(frame_type::rst, stream_id, code);
}

chunk frame_writer::ping(uint64_t opaque) {
  return encode_u64_frame(frame_type::ping, 0, opaque);
}

chunk frame_writer::pong(const chunk& ping_payload) {
  DRTP_ASSERT(ping_payload.size() <= frame_control_bytes_max,
              "a pong echoes a bounded ping");
  return encode_frame(frame_type::pong, 0, ping_payload.data(), ping_payload.size());
}

} // namespace drtp::net
