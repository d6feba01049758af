#pragma once
// HTTP/1.1, the part DRTP speaks: the control plane's JSON API (and its
// watch streams), etcd's JSON gateway, the metrics endpoint. Incremental,
// bounded parsers (every byte from the network is hostile: a header block,
// a header count, a body and a chunk all have caps, and a parser that
// refuses input says which 4xx to answer) and writers. No I/O here: the
// server and client actors (actors/http_server, actors/http_client) feed
// the bytes they read through the seam.

#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "caf/allowed_unsafe_message_type.hpp"

namespace drtp::http {

struct limits {
  /// Request or status line plus headers, up to the blank line.
  size_t header_bytes_max = 16 * 1024;
  size_t headers_max = 64;
  /// A whole body (Content-Length or chunked, once reassembled).
  size_t body_bytes_max = 1024 * 1024;
};

using header_list = std::vector<std::pair<std::string, std::string>>;

/// The first value of header `name` (case-insensitive), or nullptr.
const std::string* find_header(const header_list& headers, std::string_view name);

struct request {
  std::string method;  // "GET", "POST", "PUT", "DELETE", ...
  std::string target;  // as sent: path and query
  std::string path;    // percent-decoded, without the query
  std::string query;   // after '?', raw
  header_list headers;
  std::string body;
  bool keep_alive = true; // HTTP/1.1 unless "Connection: close"

  const std::string* header(std::string_view name) const {
    return find_header(headers, name);
  }
};

/// The value of `key` in a query string ("a=1&b=x"), percent-decoded;
/// empty when absent. `found` (if given) says whether it was present.
/// A JSON string literal of `s`, quotes included, every control character
/// escaped (for the JSON bodies the API and the metrics endpoint write).
std::string json_quote(const std::string& s);

std::string query_param(std::string_view query, std::string_view key,
                        bool* found = nullptr);

struct response {
  int status = 200;
  header_list headers;
  std::string body;

  const std::string* header(std::string_view name) const {
    return find_header(headers, name);
  }
};

enum class parse_state : uint8_t {
  need_more, // feed more bytes
  done,      // a whole message is ready: take() it
  error,     // malformed or over a limit: error_status() / error()
};

namespace detail {

/// The body after a header block, shared by both parsers: a fixed length,
/// chunks (size line, data, CRLF, then trailers), or until the peer closes.
class body_decoder {
public:
  enum class mode : uint8_t { length, chunked, until_close };
  void start(mode m, size_t length);
  /// Appends payload to `body` (bounded by body_bytes_max in total), or in
  /// stream mode pushes it to `pieces` (each chunk bounded on its own).
  parse_state feed(const char* data, size_t n, size_t& consumed,
                   const limits& l, std::string& body,
                   std::deque<std::string>* pieces);
  /// The peer closed: done for until_close, an error otherwise.
  parse_state eof(std::string& body);
  int error_status = 0;
  std::string error;

private:
  parse_state fail(int status, std::string what);
  parse_state feed_size_line(const char* data, size_t n, size_t& i,
                             const limits& l, size_t body_size);
  parse_state feed_trailers(const char* data, size_t n, size_t& i,
                            const limits& l);
  mode mode_ = mode::length;
  int phase_ = 0;
  size_t left_ = 0;      // bytes of the body or chunk still to come
  std::string line_;     // a chunk size line or trailer line so far
  size_t trailer_bytes_ = 0;
};

} // namespace detail

/// Requests, one after another on one connection (keep-alive). Supports
/// Content-Length and chunked bodies; refuses both at once.
class request_parser {
public:
  explicit request_parser(limits l = {});
  /// Consumes bytes from `data` up to the end of one request; `consumed`
  /// says how many. Bytes after a complete request are left for the next.
  parse_state feed(const char* data, size_t n, size_t& consumed);
  /// The request just parsed; the parser is then ready for the next one.
  request take();
  /// After error: the status to answer (400, 413, 414, 431, 501, 505).
  int error_status() const { return error_status_; }
  /// After error: one line saying what is wrong.
  const std::string& error() const { return error_; }

private:
  parse_state fail(int status, std::string what);
  parse_state parse_head();
  limits limits_;
  int error_status_ = 0;
  std::string error_;
  std::string buf_;      // the header block so far
  size_t scanned_ = 0;   // bytes of buf_ searched for the blank line
  request cur_;
  int phase_ = 0;        // 0 head, 1 body, 2 done, 3 error
  detail::body_decoder body_;
};

/// Responses as a client reads them. A chunked response can be read as it
/// arrives (a watch stream): with stream_chunks, each chunk's payload is
/// handed out by next_chunk() instead of being reassembled into body.
class response_parser {
public:
  explicit response_parser(limits l = {});
  /// For the response to a HEAD request (no body follows).
  void expect_no_body();
  /// As request_parser::feed. n == 0 says the peer closed: a response
  /// without Content-Length or chunks (delimited by the close) is then done.
  parse_state feed(const char* data, size_t n, size_t& consumed);
  /// After the header block of a chunked response: whether it is chunked.
  bool headers_done() const;
  bool chunked() const { return chunked_; }
  /// Stream mode: chunks are not kept in body (bounded by
  /// limits.body_bytes_max each, not in total); next_chunk pops them.
  void set_stream_chunks(bool on) { stream_chunks_ = on; }
  bool next_chunk(std::string& out);
  response take();
  /// The status line and headers, once headers_done().
  const response& head() const { return cur_; }
  const std::string& error() const { return error_; }

private:
  parse_state fail(std::string what);
  parse_state parse_head();
  limits limits_;
  std::string error_;
  std::string buf_;
  size_t scanned_ = 0;
  response cur_;
  std::deque<std::string> chunks_;
  int phase_ = 0; // 0 head, 1 body, 2 done, 3 error
  detail::body_decoder body_;
  bool chunked_ = false;
  bool stream_chunks_ = false;
  bool no_body_ = false;
};

/// The standard reason phrase of `status` ("OK", "Not Found", ...).
const char* reason_phrase(int status);

/// A whole response with Content-Length.
std::string write_response(const response& r, bool keep_alive = true);
/// The head of a chunked response; then write_chunk() per piece and
/// write_last_chunk() at the end.
std::string write_chunked_head(int status, const header_list& headers);
std::string write_chunk(std::string_view payload); // empty payload: nothing
std::string write_last_chunk();
/// A request with Content-Length (0 without a body). `host` is the Host
/// header.
std::string write_request(std::string_view method, std::string_view target,
                          std::string_view host, const header_list& headers,
                          std::string_view body);

/// Percent-encoding of one path segment or query value.
std::string url_encode(std::string_view s);

} // namespace drtp::http

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(drtp::http::request)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(drtp::http::response)
