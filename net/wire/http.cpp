#include "net/wire/http.hpp"

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "net/seam/assert.hpp"

namespace drtp::http {

std::string json_quote(const std::string& s) {
  std::string out;
  out.reserve(s.size() + 2);
  out += '"';
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20 || c == 0x7f) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  out += '"';
  return out;
}


namespace {

/// A chunk size line ("1a2b;ext=x"): longer is an attack, not a chunk.
constexpr size_t chunk_size_line_bytes_max = 256;
/// Hex digits of a chunk size: 15 keep the value below 2^60, no overflow.
constexpr size_t chunk_size_digits_max = 15;
/// Digits of a Content-Length: 18 keep it below 10^18, no overflow.
constexpr size_t content_length_digits_max = 18;
constexpr size_t method_bytes_max = 32;

enum phase : int { ph_head = 0, ph_body = 1, ph_done = 2, ph_error = 3 };

char lower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size())
    return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (lower(a[i]) != lower(b[i]))
      return false;
  return true;
}

bool is_tchar(unsigned char c) {
  if (c >= '0' && c <= '9') return true;
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return true;
  return c != 0 && std::strchr("!#$%&'*+-.^_`|~", c) != nullptr;
}

bool is_token(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return is_tchar(static_cast<unsigned char>(c));
  });
}

/// Field values: visible characters, obs-text, space and tab; no controls.
bool is_field_value(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char ch) {
    auto c = static_cast<unsigned char>(ch);
    return c == '\t' || (c >= 0x20 && c != 0x7f);
  });
}

std::string_view trim_ows(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
    s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t'))
    s.remove_suffix(1);
  return s;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/// Percent-decoding; false on a malformed escape or a NUL (which no path
/// or value of ours contains and which C APIs would cut at).
bool percent_decode(std::string_view in, bool plus_is_space, std::string& out) {
  out.clear();
  out.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (c == '%') {
      if (i + 2 >= in.size())
        return false;
      int hi = hex_value(in[i + 1]);
      int lo = hex_value(in[i + 2]);
      if (hi < 0 || lo < 0)
        return false;
      c = static_cast<char>(hi * 16 + lo);
      i += 2;
    } else if (c == '+' && plus_is_space) {
      c = ' ';
    }
    if (c == '\0')
      return false;
    out.push_back(c);
  }
  return true;
}

/// Whether a comma-separated header value holds `token` (case-insensitive).
bool has_token(const std::string* value, std::string_view token) {
  if (value == nullptr)
    return false;
  std::string_view rest = *value;
  while (!rest.empty()) {
    auto comma = rest.find(',');
    auto item = trim_ows(rest.substr(0, comma));
    if (iequals(item, token))
      return true;
    if (comma == std::string_view::npos)
      break;
    rest.remove_prefix(comma + 1);
  }
  return false;
}

/// Header values we write come from our own code, but some carry text that
/// came from a peer (a name in an error): a CR or LF there would split the
/// header, so it becomes a space.
void append_field(std::string& out, std::string_view name, std::string_view value) {
  DRTP_ASSERT(is_token(name), "header names we write are tokens");
  out.append(name);
  out.append(": ");
  for (char c : value)
    out.push_back((c == '\r' || c == '\n' || c == '\0') ? ' ' : c);
  out.append("\r\n");
}

bool framing_header(std::string_view name) {
  return iequals(name, "Content-Length") || iequals(name, "Transfer-Encoding")
         || iequals(name, "Connection");
}

void append_status_line(std::string& out, int status) {
  DRTP_ASSERT(status >= 100 && status <= 999, "a status has three digits");
  out.append("HTTP/1.1 ");
  out.append(std::to_string(status));
  out.push_back(' ');
  out.append(reason_phrase(status));
  out.append("\r\n");
}

/// Appends bytes of `data` to the header block `buf` up to its blank line.
/// Returns true once the block is whole; `consumed` counts bytes taken.
bool take_head(std::string& buf, size_t& scanned, const char* data, size_t n,
               size_t cap, size_t& consumed) {
  size_t room = cap > buf.size() ? cap - buf.size() : 0;
  size_t take = std::min(n, room);
  size_t old_size = buf.size();
  buf.append(data, take);
  size_t from = scanned >= 3 ? scanned - 3 : 0;
  auto end = buf.find("\r\n\r\n", from);
  if (end == std::string::npos) {
    scanned = buf.size();
    consumed = take;
    return false;
  }
  buf.resize(end + 4);
  consumed = buf.size() - old_size;
  return true;
}

/// The header lines of a block (after its start line). 0 or the status.
int parse_fields(std::string_view lines, const limits& l, header_list& out,
                 std::string& err) {
  while (!lines.empty()) {
    auto eol = lines.find("\r\n");
    DRTP_ASSERT(eol != std::string_view::npos, "a header block ends in CRLF");
    auto line = lines.substr(0, eol);
    lines.remove_prefix(eol + 2);
    if (line.empty())
      break; // the blank line
    if (line.front() == ' ' || line.front() == '\t') {
      err = "folded header line (obs-fold) is not accepted";
      return 400;
    }
    auto colon = line.find(':');
    if (colon == std::string_view::npos || !is_token(line.substr(0, colon))) {
      err = "malformed header line";
      return 400;
    }
    auto value = trim_ows(line.substr(colon + 1));
    if (!is_field_value(value)) {
      err = "control character in header " + std::string(line.substr(0, colon));
      return 400;
    }
    if (out.size() >= l.headers_max) {
      err = "more than " + std::to_string(l.headers_max) + " headers";
      return 431;
    }
    out.emplace_back(std::string(line.substr(0, colon)), std::string(value));
  }
  return 0;
}

/// Splits a header block into its start line and its header lines; 0 or
/// the status (a bare CR or LF inside a line is refused: request smuggling
/// hides in the parsers that disagree on them).
int split_head(std::string_view block, std::string_view& start,
               std::string_view& lines, std::string& err) {
  for (size_t i = 0; i < block.size(); ++i) {
    bool crlf = block[i] == '\r' && i + 1 < block.size() && block[i + 1] == '\n';
    if (crlf) {
      ++i;
      continue;
    }
    if (block[i] == '\r' || block[i] == '\n') {
      err = "bare CR or LF in the header block";
      return 400;
    }
  }
  auto eol = block.find("\r\n");
  start = block.substr(0, eol);
  lines = block.substr(eol + 2);
  return 0;
}

/// "HTTP/1.x": 0, or 400 (not a version) or 505 (not HTTP/1).
int check_version(std::string_view v, std::string& err) {
  bool shape = v.size() == 8 && v.substr(0, 5) == "HTTP/" && v[5] >= '0'
               && v[5] <= '9' && v[6] == '.' && v[7] >= '0' && v[7] <= '9';
  if (!shape) {
    err = "malformed HTTP version";
    return 400;
  }
  if (v[5] != '1') {
    err = "HTTP version " + std::string(v.substr(5)) + " is not supported";
    return 505;
  }
  return 0;
}

struct framing {
  bool chunked = false;
  bool has_length = false;
  size_t length = 0;
};

/// Content-Length and Transfer-Encoding: 0 or the status.
int parse_framing(const header_list& headers, const limits& l, framing& f,
                  std::string& err) {
  size_t te_count = 0;
  for (const auto& [name, value] : headers) {
    if (iequals(name, "Transfer-Encoding")) {
      if (++te_count > 1 || !iequals(value, "chunked")) {
        err = "unsupported Transfer-Encoding (only chunked)";
        return 501;
      }
      f.chunked = true;
    } else if (iequals(name, "Content-Length")) {
      bool digits = !value.empty() && value.size() <= content_length_digits_max
                    && std::all_of(value.begin(), value.end(),
                                   [](char c) { return c >= '0' && c <= '9'; });
      if (!digits) {
        err = "malformed Content-Length";
        return 400;
      }
      size_t n = std::stoull(value);
      if (f.has_length && n != f.length) {
        err = "conflicting Content-Length headers";
        return 400;
      }
      f.has_length = true;
      f.length = n;
    }
  }
  if (f.chunked && f.has_length) {
    err = "both Content-Length and Transfer-Encoding: chunked";
    return 400;
  }
  if (f.has_length && f.length > l.body_bytes_max) {
    err = "body of " + std::to_string(f.length) + " bytes is over the "
          + std::to_string(l.body_bytes_max) + " bytes allowed";
    return 413;
  }
  return 0;
}

bool known_method(std::string_view m) {
  static constexpr std::string_view known[] = {"GET",    "HEAD",  "POST",
                                               "PUT",    "DELETE", "PATCH",
                                               "OPTIONS"};
  return std::find(std::begin(known), std::end(known), m) != std::end(known);
}

/// "METHOD SP target SP version": 0 or the status.
int parse_request_line(std::string_view line, request& r, bool& http10,
                       std::string& err) {
  auto sp1 = line.find(' ');
  auto sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || line.find(' ', sp2 + 1) != std::string_view::npos) {
    err = "malformed request line";
    return 400;
  }
  auto method = line.substr(0, sp1);
  auto target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  if (!is_token(method) || method.size() > method_bytes_max) {
    err = "malformed method";
    return 400;
  }
  bool target_ok = !target.empty() && target.front() == '/'
                   && std::all_of(target.begin(), target.end(), [](char ch) {
                        auto c = static_cast<unsigned char>(ch);
                        return c > 0x20 && c < 0x7f;
                      });
  if (!target_ok) {
    err = "malformed request target (must be a path)";
    return 400;
  }
  if (int st = check_version(line.substr(sp2 + 1), err); st != 0)
    return st;
  if (!known_method(method)) {
    err = "method " + std::string(method) + " is not implemented";
    return 501;
  }
  http10 = line.substr(sp2 + 1) == "HTTP/1.0";
  r.method = std::string(method);
  r.target = std::string(target);
  auto q = target.find('?');
  r.query = q == std::string_view::npos ? "" : std::string(target.substr(q + 1));
  if (!percent_decode(target.substr(0, q), false, r.path)) {
    err = "malformed percent-encoding in the path";
    return 400;
  }
  return 0;
}

} // namespace

// -- free functions -----------------------------------------------------------

const std::string* find_header(const header_list& headers, std::string_view name) {
  for (const auto& [k, v] : headers)
    if (iequals(k, name))
      return &v;
  return nullptr;
}

std::string query_param(std::string_view query, std::string_view key, bool* found) {
  if (found != nullptr)
    *found = false;
  std::string k;
  std::string v;
  while (!query.empty()) {
    auto amp = query.find('&');
    auto item = query.substr(0, amp);
    auto eq = item.find('=');
    auto raw_key = item.substr(0, eq);
    auto raw_value = eq == std::string_view::npos ? std::string_view{}
                                                  : item.substr(eq + 1);
    if (percent_decode(raw_key, true, k) && k == key
        && percent_decode(raw_value, true, v)) {
      if (found != nullptr)
        *found = true;
      return v;
    }
    if (amp == std::string_view::npos)
      break;
    query.remove_prefix(amp + 1);
  }
  return {};
}

const char* reason_phrase(int status) {
  switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 422: return "Unprocessable Content";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
  }
}

std::string write_response(const response& r, bool keep_alive) {
  std::string out;
  out.reserve(128 + r.body.size());
  append_status_line(out, r.status);
  for (const auto& [k, v] : r.headers)
    if (!framing_header(k))
      append_field(out, k, v);
  bool no_body = r.status == 204 || r.status == 304 || r.status < 200;
  DRTP_ASSERT(!no_body || r.body.empty(), "204, 304 and 1xx carry no body");
  if (!no_body)
    append_field(out, "Content-Length", std::to_string(r.body.size()));
  if (!keep_alive)
    append_field(out, "Connection", "close");
  out.append("\r\n");
  out.append(r.body);
  return out;
}

std::string write_chunked_head(int status, const header_list& headers) {
  std::string out;
  append_status_line(out, status);
  for (const auto& [k, v] : headers)
    if (!framing_header(k))
      append_field(out, k, v);
  append_field(out, "Transfer-Encoding", "chunked");
  out.append("\r\n");
  return out;
}

std::string write_chunk(std::string_view payload) {
  if (payload.empty())
    return {}; // an empty chunk would end the stream
  static constexpr char digits[] = "0123456789abcdef";
  char size[20];
  size_t len = 0;
  for (size_t n = payload.size(); n > 0; n /= 16)
    size[len++] = digits[n % 16];
  std::string out;
  out.reserve(len + payload.size() + 4);
  while (len > 0)
    out.push_back(size[--len]);
  out.append("\r\n");
  out.append(payload);
  out.append("\r\n");
  return out;
}

std::string write_last_chunk() {
  return "0\r\n\r\n";
}

std::string write_request(std::string_view method, std::string_view target,
                          std::string_view host, const header_list& headers,
                          std::string_view body) {
  DRTP_ASSERT(is_token(method), "a method is a token");
  DRTP_ASSERT(!target.empty() && target.front() == '/', "a target is a path");
  DRTP_ASSERT(target.find_first_of(" \r\n") == std::string_view::npos,
              "a target we write is encoded");
  std::string out;
  out.reserve(128 + target.size() + body.size());
  out.append(method);
  out.push_back(' ');
  out.append(target);
  out.append(" HTTP/1.1\r\n");
  append_field(out, "Host", host);
  for (const auto& [k, v] : headers)
    if (!framing_header(k) && !iequals(k, "Host"))
      append_field(out, k, v);
  append_field(out, "Content-Length", std::to_string(body.size()));
  out.append("\r\n");
  out.append(body);
  return out;
}

std::string url_encode(std::string_view s) {
  static constexpr char digits[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size());
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    bool unreserved = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
                      || (c >= '0' && c <= '9') || c == '-' || c == '.'
                      || c == '_' || c == '~';
    if (unreserved) {
      out.push_back(ch);
    } else {
      out.push_back('%');
      out.push_back(digits[c >> 4]);
      out.push_back(digits[c & 15]);
    }
  }
  return out;
}

// -- body_decoder --------------------------------------------------------------

namespace detail {

enum chunk_phase : int {
  cp_size = 0,
  cp_data = 1,
  cp_data_crlf = 2,
  cp_trailers = 3,
  cp_done = 4,
};

void body_decoder::start(mode m, size_t length) {
  mode_ = m;
  phase_ = cp_size;
  left_ = length;
  line_.clear();
  trailer_bytes_ = 0;
  error_status = 0;
  error.clear();
}

parse_state body_decoder::fail(int status, std::string what) {
  error_status = status;
  error = std::move(what);
  return parse_state::error;
}

parse_state body_decoder::feed_size_line(const char* data, size_t n, size_t& i,
                                         const limits& l, size_t body_size) {
  while (i < n) {
    char c = data[i++];
    if (c != '\n') {
      if (line_.size() >= chunk_size_line_bytes_max)
        return fail(400, "chunk size line too long");
      line_.push_back(c);
      continue;
    }
    if (line_.empty() || line_.back() != '\r')
      return fail(400, "chunk size line does not end in CRLF");
    line_.pop_back();
    auto digits = std::string_view(line_).substr(0, line_.find(';'));
    digits = trim_ows(digits);
    if (digits.empty() || digits.size() > chunk_size_digits_max)
      return fail(400, "bad chunk size");
    size_t size = 0;
    for (char d : digits) {
      int v = hex_value(d);
      if (v < 0)
        return fail(400, "bad chunk size");
      size = size * 16 + static_cast<size_t>(v);
    }
    line_.clear();
    if (size > l.body_bytes_max || size > l.body_bytes_max - body_size)
      return fail(413, "chunked body over the " + std::to_string(l.body_bytes_max)
                         + " bytes allowed");
    left_ = size;
    phase_ = size == 0 ? cp_trailers : cp_data;
    return parse_state::need_more;
  }
  return parse_state::need_more;
}

parse_state body_decoder::feed_trailers(const char* data, size_t n, size_t& i,
                                        const limits& l) {
  while (i < n) {
    char c = data[i++];
    if (++trailer_bytes_ > l.header_bytes_max)
      return fail(431, "trailers over the header size limit");
    if (c != '\n') {
      line_.push_back(c);
      continue;
    }
    if (line_.empty() || line_.back() != '\r')
      return fail(400, "trailer line does not end in CRLF");
    bool blank = line_.size() == 1;
    line_.clear();
    if (blank) {
      phase_ = cp_done;
      return parse_state::done;
    }
    // A trailer field: read and dropped (nothing of ours uses trailers).
  }
  return parse_state::need_more;
}

parse_state body_decoder::feed(const char* data, size_t n, size_t& consumed,
                               const limits& l, std::string& body,
                               std::deque<std::string>* pieces) {
  size_t i = 0;
  consumed = 0;
  if (mode_ == mode::length) {
    size_t take = std::min(n, left_);
    body.append(data, take);
    left_ -= take;
    consumed = take;
    return left_ == 0 ? parse_state::done : parse_state::need_more;
  }
  if (mode_ == mode::until_close) {
    if (n > l.body_bytes_max - std::min(body.size(), l.body_bytes_max))
      return fail(413, "body over the " + std::to_string(l.body_bytes_max)
                         + " bytes allowed");
    body.append(data, n);
    consumed = n;
    return parse_state::need_more;
  }
  auto st = parse_state::need_more;
  while (i < n && st == parse_state::need_more) {
    switch (phase_) {
      case cp_size:
        st = feed_size_line(data, n, i, l, pieces != nullptr ? 0 : body.size());
        break;
      case cp_data: {
        size_t take = std::min(n - i, left_);
        if (pieces != nullptr)
          pieces->emplace_back(data + i, take);
        else
          body.append(data + i, take);
        i += take;
        left_ -= take;
        if (left_ == 0)
          phase_ = cp_data_crlf;
        break;
      }
      case cp_data_crlf:
        line_.push_back(data[i++]);
        if (line_.size() == 2) {
          if (line_ != "\r\n")
            st = fail(400, "chunk data does not end in CRLF");
          line_.clear();
          phase_ = cp_size;
        }
        break;
      case cp_trailers:
        st = feed_trailers(data, n, i, l);
        break;
      default:
        DRTP_ASSERT(false, "no bytes are fed after the last chunk");
    }
  }
  consumed = i;
  return st;
}

parse_state body_decoder::eof(std::string& body) {
  (void) body;
  if (mode_ == mode::until_close)
    return parse_state::done;
  return fail(400, "connection closed in the middle of the body");
}

} // namespace detail

// -- request_parser -------------------------------------------------------------

request_parser::request_parser(limits l) : limits_(l) {
  DRTP_ASSERT(limits_.header_bytes_max >= 16, "a header block fits a request line");
}

parse_state request_parser::fail(int status, std::string what) {
  phase_ = ph_error;
  error_status_ = status;
  error_ = std::move(what);
  return parse_state::error;
}

parse_state request_parser::parse_head() {
  std::string_view start;
  std::string_view lines;
  bool http10 = false;
  int st = split_head(buf_, start, lines, error_);
  if (st == 0)
    st = parse_request_line(start, cur_, http10, error_);
  if (st == 0)
    st = parse_fields(lines, limits_, cur_.headers, error_);
  framing f;
  if (st == 0)
    st = parse_framing(cur_.headers, limits_, f, error_);
  if (st != 0)
    return fail(st, error_);
  size_t hosts = std::count_if(cur_.headers.begin(), cur_.headers.end(),
                               [](const auto& h) { return iequals(h.first, "Host"); });
  if (hosts > 1 || (!http10 && hosts == 0))
    return fail(400, "an HTTP/1.1 request needs exactly one Host header");
  const auto* conn = cur_.header("Connection");
  cur_.keep_alive = http10 ? has_token(conn, "keep-alive") : !has_token(conn, "close");
  buf_.clear();
  scanned_ = 0;
  if (!f.chunked && f.length == 0) {
    phase_ = ph_done;
    return parse_state::done;
  }
  body_.start(f.chunked ? detail::body_decoder::mode::chunked
                        : detail::body_decoder::mode::length,
              f.length);
  phase_ = ph_body;
  return parse_state::need_more;
}

parse_state request_parser::feed(const char* data, size_t n, size_t& consumed) {
  consumed = 0;
  if (phase_ == ph_error)
    return parse_state::error;
  if (phase_ == ph_done)
    return parse_state::done;
  if (phase_ == ph_head) {
    // Blank lines before a request are allowed (RFC 9112 2.2).
    while (buf_.empty() && consumed < n
           && (data[consumed] == '\r' || data[consumed] == '\n'))
      ++consumed;
    size_t used = 0;
    bool whole = take_head(buf_, scanned_, data + consumed, n - consumed,
                           limits_.header_bytes_max, used);
    consumed += used;
    if (!whole) {
      if (buf_.size() < limits_.header_bytes_max)
        return parse_state::need_more;
      if (buf_.find("\r\n") == std::string::npos)
        return fail(414, "request line over the header size limit");
      return fail(431, "header block over " + std::to_string(limits_.header_bytes_max)
                         + " bytes");
    }
    auto st = parse_head();
    if (st != parse_state::need_more)
      return st;
  }
  size_t used = 0;
  auto st = body_.feed(data + consumed, n - consumed, used, limits_, cur_.body, nullptr);
  consumed += used;
  if (st == parse_state::error)
    return fail(body_.error_status, body_.error);
  if (st == parse_state::done)
    phase_ = ph_done;
  return st;
}

request request_parser::take() {
  DRTP_ASSERT(phase_ == ph_done, "take() follows a done feed()");
  request r = std::move(cur_);
  cur_ = request{};
  phase_ = ph_head;
  buf_.clear();
  scanned_ = 0;
  return r;
}

// -- response_parser ------------------------------------------------------------

response_parser::response_parser(limits l) : limits_(l) {
  DRTP_ASSERT(limits_.header_bytes_max >= 16, "a header block fits a status line");
}

void response_parser::expect_no_body() {
  no_body_ = true;
}

bool response_parser::headers_done() const {
  return phase_ == ph_body || phase_ == ph_done;
}

parse_state response_parser::fail(std::string what) {
  phase_ = ph_error;
  error_ = std::move(what);
  return parse_state::error;
}

parse_state response_parser::parse_head() {
  std::string_view start;
  std::string_view lines;
  if (split_head(buf_, start, lines, error_) != 0)
    return fail(error_);
  auto sp = start.find(' ');
  if (sp == std::string_view::npos)
    return fail("malformed status line");
  auto code = start.substr(sp + 1, 3);
  bool code_ok = code.size() == 3 && std::all_of(code.begin(), code.end(), [](char c) {
                   return c >= '0' && c <= '9';
                 }) && code[0] != '0';
  bool rest_ok = start.size() == sp + 4 || (start.size() > sp + 4 && start[sp + 4] == ' ');
  if (!code_ok || !rest_ok || check_version(start.substr(0, sp), error_) != 0)
    return fail(error_.empty() ? "malformed status line" : error_);
  cur_.status = (code[0] - '0') * 100 + (code[1] - '0') * 10 + (code[2] - '0');
  if (int st = parse_fields(lines, limits_, cur_.headers, error_); st != 0)
    return fail(error_);
  buf_.clear();
  scanned_ = 0;
  if (cur_.status >= 100 && cur_.status < 200) {
    if (cur_.status == 101)
      return fail("unexpected 101 Switching Protocols");
    cur_ = response{}; // an interim response: the real one follows
    return parse_state::need_more;
  }
  framing f;
  if (parse_framing(cur_.headers, limits_, f, error_) != 0)
    return fail(error_);
  chunked_ = f.chunked;
  bool empty = no_body_ || cur_.status == 204 || cur_.status == 304
               || (f.has_length && f.length == 0);
  if (empty) {
    phase_ = ph_done;
    return parse_state::done;
  }
  using m = detail::body_decoder::mode;
  body_.start(f.chunked ? m::chunked : f.has_length ? m::length : m::until_close, f.length);
  phase_ = ph_body;
  return parse_state::need_more;
}

parse_state response_parser::feed(const char* data, size_t n, size_t& consumed) {
  consumed = 0;
  if (phase_ == ph_error)
    return parse_state::error;
  if (phase_ == ph_done)
    return parse_state::done;
  if (n == 0) {
    if (phase_ == ph_head)
      return fail("connection closed before a whole response");
    if (body_.eof(cur_.body) == parse_state::error)
      return fail(body_.error);
    phase_ = ph_done;
    return parse_state::done;
  }
  while (phase_ == ph_head && consumed < n) {
    size_t used = 0;
    bool whole = take_head(buf_, scanned_, data + consumed, n - consumed,
                           limits_.header_bytes_max, used);
    consumed += used;
    if (!whole) {
      if (buf_.size() < limits_.header_bytes_max)
        return parse_state::need_more;
      return fail("response header block over " + std::to_string(limits_.header_bytes_max)
                  + " bytes");
    }
    auto st = parse_head();
    if (st != parse_state::need_more)
      return st;
  }
  if (phase_ == ph_head)
    return parse_state::need_more;
  size_t used = 0;
  auto* pieces = (stream_chunks_ && chunked_) ? &chunks_ : nullptr;
  auto st = body_.feed(data + consumed, n - consumed, used, limits_, cur_.body, pieces);
  consumed += used;
  if (st == parse_state::error)
    return fail(body_.error);
  if (st == parse_state::done)
    phase_ = ph_done;
  return st;
}

bool response_parser::next_chunk(std::string& out) {
  if (chunks_.empty())
    return false;
  out = std::move(chunks_.front());
  chunks_.pop_front();
  return true;
}

response response_parser::take() {
  DRTP_ASSERT(phase_ == ph_done, "take() follows a done feed()");
  response r = std::move(cur_);
  cur_ = response{};
  phase_ = ph_head;
  buf_.clear();
  scanned_ = 0;
  chunked_ = false;
  no_body_ = false;
  return r;
}

} // namespace drtp::http
