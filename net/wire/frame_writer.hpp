#pragma once
// The one place that turns what an actor means to send on a tunnel link into
// frames (header + payload chunks), for tunnel, session, rsession and splice
// alike. Data frame headers are carved from a pool, so a data frame costs no
// allocation of its own and its payload is never copied.

#include <cstdint>

#include "net/seam/chunk.hpp"
#include "net/wire/frame.hpp"

namespace drtp::net {

class frame_writer {
public:
  /// A data frame: pooled header + the payload as it is (<= 64 KiB).
  chunk_list data(uint32_t stream_id, chunk payload);

  /// A data frame whose payload starts with `prefix` (a record header of the
  /// layer above, at most header_pool::prefix_bytes_max) followed by `rest`.
  chunk_list data(uint32_t stream_id, const void* prefix, size_t prefix_bytes,
                  chunk rest);

  /// A data frame of small bytes copied into one chunk (a control record).
  chunk data_copy(uint32_t stream_id, const void* payload, size_t payload_bytes);

  /// A control frame (handshake, open, goaway) with an encoded payload.
  chunk control(frame_type t, uint32_t stream_id, const chunk& payload);

  chunk window(uint32_t stream_id, uint32_t credit_bytes);
  chunk fin(uint32_t stream_id);
  chunk rst(uint32_t stream_id, rst_code code);
  /// An rst with a code from the wire, passed on unchanged (a splice).
  chunk rst(uint32_t stream_id, uint32_t code);
  chunk ping(uint64_t opaque);
  chunk pong(const chunk& ping_payload);

private:
  header_pool headers_;
};

} // namespace drtp::net
