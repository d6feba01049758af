// The patch-panel record decoder against any stream bytes in any split: it
// never crashes, never holds more than one header and one control body,
// yields control records with the sizes their type demands and data records
// within the limit, and stays failed after an error.

#include "net/wire/record.hpp"
#include "tests/fuzz/fuzz.hpp"

using namespace drtp::net;

namespace {

void check_record(const record& r) {
  switch (r.type) {
    case record_type::hello:
      FUZZ_CHECK(r.body.size() == record_key_bytes);
      break;
    case record_type::welcome:
      FUZZ_CHECK(r.body.size() <= record_control_bytes_max);
      FUZZ_CHECK(decode_welcome(r.body).serve_key.size() == record_key_bytes);
      break;
    case record_type::resume:
      FUZZ_CHECK(r.body.size() == record_resume_bytes);
      break;
    case record_type::proof:
      FUZZ_CHECK(r.body.size() == record_proof_bytes);
      FUZZ_CHECK(decode_proof(r.body).mac.size() == record_mac_bytes);
      break;
    case record_type::resumed:
      FUZZ_CHECK(r.body.size() == record_resumed_bytes);
      (void) decode_resumed(r.body);
      break;
    case record_type::data:
      FUZZ_CHECK(r.body.size() <= record_data_bytes_max);
      break;
    case record_type::ack:
      FUZZ_CHECK(r.body.size() == record_ack_bytes);
      (void) decode_ack(r.body);
      break;
    case record_type::fin:
    case record_type::close:
      FUZZ_CHECK(r.body.empty());
      break;
    default:
      FUZZ_CHECK(!"the decoder yields only known record types");
  }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz_splitter split{data, size};
  record_decoder dec;
  std::vector<record> out;
  const uint8_t* p = nullptr;
  size_t n = 0;
  bool failed = false;
  while (split.next(p, n)) {
    out.clear();
    auto st = dec.feed(chunk::copy_of(p, n), out);
    FUZZ_CHECK(!failed || out.empty());
    for (auto& r : out)
      check_record(r);
    FUZZ_CHECK(dec.buffered_bytes()
               <= record_header_bytes + record_control_bytes_max);
    FUZZ_CHECK(to_string(st) != nullptr);
    if (st != record_decoder::status::ok)
      failed = true;
  }
  return 0;
}
