// The HTTP/1.1 request and response parsers against any bytes in any split:
// they never crash, never hold a body or a header list over their limits,
// consume no more than they are given, refuse with one of the statuses
// they document, stay failed after an error, and a request they accept,
// written again, parses to the same request.

#include <string>

#include "net/wire/http.hpp"
#include "tests/fuzz/fuzz.hpp"

using namespace drtp::http;

namespace {

limits small_limits() {
  limits l;
  l.header_bytes_max = 2048;
  l.headers_max = 16;
  l.body_bytes_max = 4096;
  return l;
}

bool documented_status(int s) {
  return s == 400 || s == 413 || s == 414 || s == 431 || s == 501 || s == 505;
}

void check_rewrite(const request& r) {
  const std::string* host = r.header("Host");
  auto wire = write_request(r.method, r.target, host ? *host : "h", r.headers, r.body);
  request_parser p(small_limits());
  size_t used = 0;
  auto st = p.feed(wire.data(), wire.size(), used);
  if (st != parse_state::done)
    return; // a header list rewritten may differ (Content-Length added): not a bug
  auto again = p.take();
  FUZZ_CHECK(again.method == r.method);
  FUZZ_CHECK(again.target == r.target);
  FUZZ_CHECK(again.path == r.path);
  FUZZ_CHECK(again.body == r.body);
}

void fuzz_requests(fuzz_splitter& split) {
  auto l = small_limits();
  request_parser p(l);
  const uint8_t* d = nullptr;
  size_t n = 0;
  bool failed = false;
  while (split.next(d, n)) {
    auto* data = reinterpret_cast<const char*>(d);
    size_t pos = 0;
    while (pos < n) {
      size_t used = 0;
      auto st = p.feed(data + pos, n - pos, used);
      FUZZ_CHECK(used <= n - pos);
      FUZZ_CHECK(!failed || st == parse_state::error);
      pos += used;
      if (st == parse_state::error) {
        FUZZ_CHECK(documented_status(p.error_status()));
        FUZZ_CHECK(!p.error().empty());
        failed = true;
        break;
      }
      if (st == parse_state::need_more) {
        FUZZ_CHECK(pos == n);
        break;
      }
      auto r = p.take();
      FUZZ_CHECK(r.body.size() <= l.body_bytes_max);
      FUZZ_CHECK(r.headers.size() <= l.headers_max);
      FUZZ_CHECK(!r.target.empty() && r.target[0] == '/');
      check_rewrite(r);
    }
  }
}

void fuzz_responses(fuzz_splitter& split, bool stream, bool head) {
  auto l = small_limits();
  response_parser p(l);
  p.set_stream_chunks(stream);
  if (head)
    p.expect_no_body();
  const uint8_t* d = nullptr;
  size_t n = 0;
  bool failed = false;
  std::string piece;
  while (split.next(d, n)) {
    auto* data = reinterpret_cast<const char*>(d);
    size_t pos = 0;
    while (pos < n) {
      size_t used = 0;
      auto st = p.feed(data + pos, n - pos, used);
      FUZZ_CHECK(used <= n - pos);
      FUZZ_CHECK(!failed || st == parse_state::error);
      pos += used;
      while (p.next_chunk(piece))
        FUZZ_CHECK(piece.size() <= l.body_bytes_max);
      if (st == parse_state::error) {
        FUZZ_CHECK(!p.error().empty());
        failed = true;
        break;
      }
      if (st == parse_state::need_more)
        break;
      auto r = p.take();
      FUZZ_CHECK(r.status >= 100 && r.status <= 999);
      FUZZ_CHECK(r.body.size() <= l.body_bytes_max);
      FUZZ_CHECK(r.headers.size() <= l.headers_max);
    }
  }
  if (!failed) {
    size_t used = 0;
    auto st = p.feed(nullptr, 0, used); // the peer closes
    FUZZ_CHECK(used == 0);
    if (st == parse_state::done)
      FUZZ_CHECK(p.take().body.size() <= l.body_bytes_max);
  }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1)
    return 0;
  uint8_t mode = data[0];
  fuzz_splitter split{data + 1, size - 1};
  if ((mode & 3) == 0)
    fuzz_requests(split);
  else
    fuzz_responses(split, (mode & 4) != 0, (mode & 3) == 3);
  return 0;
}
