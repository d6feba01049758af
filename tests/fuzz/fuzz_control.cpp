// Control and handshake messages from any bytes: decoding never crashes or
// reads a bool that is not 0 or 1, and whatever decodes re-encodes to bytes
// that decode to the same message (encode(decode(x)) is a fixed point).

#include "net/wire/control.hpp"
#include "net/wire/frame.hpp"
#include "tests/fuzz/fuzz.hpp"

using namespace drtp::net;

namespace {

template <class T>
void round_trip(const chunk& in) {
  T x;
  if (!decode(in, x))
    return;
  auto once = encode(x);
  FUZZ_CHECK(once.size() <= frame_control_bytes_max);
  T y;
  FUZZ_CHECK(decode(once, y));
  auto twice = encode(y);
  FUZZ_CHECK(once.to_string() == twice.to_string());
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1)
    return 0;
  // The first byte picks the message, the rest is its payload.
  auto in = chunk::copy_of(data + 1, size - 1);
  switch (data[0] % 7) {
    case 0: round_trip<hello_msg>(in); break;
    case 1: round_trip<challenge_msg>(in); break;
    case 2: round_trip<proof_msg>(in); break;
    case 3: round_trip<accept_msg>(in); break;
    case 4: round_trip<reject_msg>(in); break;
    case 5: round_trip<open_msg>(in); break;
    case 6: round_trip<goaway_msg>(in); break;
  }
  return 0;
}
