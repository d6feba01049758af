#pragma once
// A scripted hostile peer for simulated runs: it dials a POP from its own
// host and, if given a login, authenticates first exactly like a real agent
// or patch-panel client that knows a valid secret (a compromised agent or
// principal), then plays its script: raw writes, pauses in virtual time, a
// close or an abort. It speaks only the seam, like every simulated app.
//
// It remembers the stream ids the POP opens towards it (OPEN frames), so a
// script can aim frames at streams that exist on the POP's side: a frame
// whose stream id has `seen_stream_bit` set goes to the (id % n)-th stream
// the POP opened instead (or stream 0 while it opened none).

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "caf/actor.hpp"
#include "net/seam/crypto.hpp"

namespace drtp::sim {

/// The 12-byte frame header and the payload, as a hostile peer writes them:
/// any type, any stream id, any payload up to what the header can say.
std::string frame_bytes(uint8_t type, uint8_t flags, uint32_t stream_id,
                        const std::string& payload);

constexpr uint32_t seen_stream_bit = 0x80000000u;

struct hostile_step {
  enum class kind : uint8_t {
    write,     // `bytes` as they are (frames are resolved, see above)
    frame,     // frame_bytes(type, flags, stream_id, bytes)
    wait,      // `us` of virtual time pass before the next step
    close,     // graceful close; the script ends
    abort,     // reset; the script ends
  };
  kind what = kind::write;
  uint8_t type = 0;
  uint8_t flags = 0;
  uint32_t stream_id = 0;
  std::string bytes;
  uint64_t us = 0;
};

struct hostile_login {
  std::string hello;  // an encoded hello_msg payload
  std::string seed;   // the signing seed a valid proof needs (a login_key's)
  std::shared_ptr<net::crypto> crypto;
};

struct hostile_result {
  bool connected = false;
  bool logged_in = false;  // the POP accepted the login
  bool closed = false;     // the connection is gone
  bool script_done = false;
  uint64_t frames_received = 0;
  bool malformed_from_pop = false; // never: the POP writes valid frames
  std::vector<uint32_t> streams_opened; // by the POP, in order
};

struct hostile_peer_params {
  caf::actor io;          // the hostile host's io
  std::string pop_host;
  uint16_t pop_port = 0;
  /// Absent (no hello): the script starts as soon as TCP/TLS is up.
  std::shared_ptr<const hostile_login> login;
  std::vector<hostile_step> script;
  std::shared_ptr<hostile_result> result;
};

caf::actor spawn_hostile_peer(caf::actor_system& sys, hostile_peer_params p);

} // namespace drtp::sim
