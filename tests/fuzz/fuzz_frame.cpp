// The frame decoder against any bytes in any split: it never crashes, never
// yields a frame beyond its type's limit, never buffers more than one header
// and one control payload, and stays failed after an error.

#include "net/wire/frame.hpp"
#include "tests/fuzz/fuzz.hpp"

using namespace drtp::net;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz_splitter split{data, size};
  frame_decoder dec;
  std::vector<frame> out;
  const uint8_t* p = nullptr;
  size_t n = 0;
  size_t fed = 0, payload = 0;
  bool failed = false;
  while (split.next(p, n)) {
    out.clear();
    auto st = dec.feed(chunk::copy_of(p, n), out);
    fed += n;
    FUZZ_CHECK(!failed || out.empty());
    for (auto& f : out) {
      auto limit = f.type == frame_type::data ? frame_data_bytes_max
                                              : frame_control_bytes_max;
      FUZZ_CHECK(f.payload.size() <= limit);
      payload += f.payload.size();
    }
    FUZZ_CHECK(payload <= fed);
    FUZZ_CHECK(dec.buffered_bytes()
               <= 2 * frame_header_bytes + frame_control_bytes_max);
    if (st != frame_decoder::status::ok)
      failed = true;
    FUZZ_CHECK(to_string(st) != nullptr);
  }
  return 0;
}
