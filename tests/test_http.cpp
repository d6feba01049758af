// HTTP/1.1 wire format (net/wire/http): what the writers write the parsers
// read back, however the bytes are cut; pipelined requests stay apart; every
// limit and every malformed input gives its status, never a crash.

#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "net/wire/http.hpp"

using namespace drtp::http;

namespace {

/// Feeds `wire` cut at `cuts` (positions, any order) into `p`, taking each
/// request as it completes. Returns the last state.
template <class Parser, class Message>
parse_state feed_cut(Parser& p, const std::string& wire, std::vector<size_t> cuts,
                     std::vector<Message>& out) {
  for (auto& c : cuts)
    c = wire.empty() ? 0 : c % (wire.size() + 1);
  cuts.push_back(wire.size());
  std::sort(cuts.begin(), cuts.end());
  size_t pos = 0;
  auto st = parse_state::need_more;
  for (size_t cut : cuts) {
    while (pos < cut) {
      size_t used = 0;
      st = p.feed(wire.data() + pos, cut - pos, used);
      pos += used;
      if (st == parse_state::error)
        return st;
      if (st == parse_state::done)
        out.push_back(p.take());
      else
        EXPECT_EQ(pos, cut) << "need_more consumes all it was given";
      if (st != parse_state::done && used == 0)
        break;
    }
  }
  return st;
}

/// Parses one whole input fed at once; the state and, if done, the request.
parse_state parse_one(const std::string& wire, request& r, request_parser& p) {
  size_t used = 0;
  auto st = p.feed(wire.data(), wire.size(), used);
  if (st == parse_state::done)
    r = p.take();
  return st;
}

int status_of(const std::string& wire, limits l = {}) {
  request_parser p(l);
  request r;
  auto st = parse_one(wire, r, p);
  if (st == parse_state::error) {
    EXPECT_FALSE(p.error().empty());
    return p.error_status();
  }
  return st == parse_state::done ? 0 : -1;
}

std::string token_gen() {
  auto s = *rc::gen::nonEmpty(rc::gen::container<std::string>(
    rc::gen::elementOf(std::string("abcdefghijklmnopqrstuvwxyz-ABCXYZ0123456789"))));
  return s.substr(0, 20);
}

std::string value_gen() {
  auto s = *rc::gen::container<std::string>(
    rc::gen::map(rc::gen::inRange(0x20, 0x7f), [](int c) { return static_cast<char>(c); }));
  // Values are stored without surrounding whitespace.
  while (!s.empty() && s.back() == ' ')
    s.pop_back();
  while (!s.empty() && s.front() == ' ')
    s.erase(0, 1);
  return s.substr(0, 60);
}

header_list headers_gen() {
  header_list hs;
  auto n = *rc::gen::inRange(0, 8);
  for (int i = 0; i < n; ++i) {
    auto name = "x-" + token_gen();
    hs.emplace_back(name, value_gen());
  }
  return hs;
}

} // namespace

// -- writers and readers agree --------------------------------------------------

RC_GTEST_PROP(http, requests_round_trip_whatever_the_cuts, ()) {
  auto n = *rc::gen::inRange(1, 4);
  std::string wire;
  std::vector<std::string> methods, targets, bodies;
  std::vector<header_list> headers;
  for (int i = 0; i < n; ++i) {
    methods.push_back(*rc::gen::element<std::string>("GET", "POST", "PUT", "DELETE"));
    auto seg = *rc::gen::arbitrary<std::string>();
    seg.erase(std::remove(seg.begin(), seg.end(), '\0'), seg.end()); // %00 is refused
    targets.push_back("/v1/" + url_encode(seg) + "?q=" + url_encode(seg));
    bodies.push_back(*rc::gen::arbitrary<std::string>());
    headers.push_back(headers_gen());
    wire += write_request(methods[i], targets[i], "h:1", headers[i], bodies[i]);
  }
  auto cuts = *rc::gen::container<std::vector<size_t>>(rc::gen::arbitrary<size_t>());
  request_parser p;
  std::vector<request> got;
  auto st = feed_cut(p, wire, cuts, got);
  RC_ASSERT(st == parse_state::done);
  RC_ASSERT(got.size() == static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) {
    RC_ASSERT(got[i].method == methods[i]);
    RC_ASSERT(got[i].target == targets[i]);
    RC_ASSERT(got[i].body == bodies[i]);
    RC_ASSERT(got[i].keep_alive);
    RC_ASSERT(*got[i].header("host") == "h:1");
    for (const auto& [k, v] : headers[i])
      RC_ASSERT(got[i].header(k) != nullptr);
    RC_ASSERT(query_param(got[i].query, "q") == got[i].path.substr(4));
  }
}

RC_GTEST_PROP(http, responses_round_trip_whatever_the_cuts, ()) {
  response r;
  r.status = *rc::gen::element(200, 201, 400, 404, 500);
  r.headers = headers_gen();
  r.body = *rc::gen::arbitrary<std::string>();
  auto wire = write_response(r) + write_response(r, false);
  auto cuts = *rc::gen::container<std::vector<size_t>>(rc::gen::arbitrary<size_t>());
  response_parser p;
  std::vector<response> got;
  feed_cut(p, wire, cuts, got);
  RC_ASSERT(got.size() == 2u);
  for (auto& g : got) {
    RC_ASSERT(g.status == r.status);
    RC_ASSERT(g.body == r.body);
    for (const auto& [k, v] : r.headers)
      RC_ASSERT(g.header(k) != nullptr);
  }
  RC_ASSERT(*got[1].header("connection") == "close");
}

RC_GTEST_PROP(http, chunked_responses_reassemble_or_stream, (bool stream)) {
  auto pieces = *rc::gen::container<std::vector<std::string>>(rc::gen::arbitrary<std::string>());
  std::string wire = write_chunked_head(200, {{"Content-Type", "application/json"}});
  std::string all;
  for (auto& s : pieces) {
    wire += write_chunk(s);
    all += s;
  }
  wire += write_last_chunk();
  auto cuts = *rc::gen::container<std::vector<size_t>>(rc::gen::arbitrary<size_t>());
  response_parser p;
  p.set_stream_chunks(stream);
  std::vector<response> got;
  std::string streamed;
  // Drain chunks after every feed, as a watch reader does.
  for (auto& c : cuts)
    c %= wire.size() + 1;
  cuts.push_back(wire.size());
  std::sort(cuts.begin(), cuts.end());
  size_t pos = 0;
  for (size_t cut : cuts) {
    while (pos < cut) {
      size_t used = 0;
      auto st = p.feed(wire.data() + pos, cut - pos, used);
      pos += used;
      RC_ASSERT(st != parse_state::error);
      RC_ASSERT(p.headers_done() || pos < wire.size());
      std::string piece;
      while (p.next_chunk(piece))
        streamed += piece;
      if (st == parse_state::done)
        got.push_back(p.take());
      else
        break;
    }
  }
  RC_ASSERT(got.size() == 1u);
  RC_ASSERT(got[0].body == (stream ? std::string() : all));
  RC_ASSERT(streamed == (stream ? all : std::string()));
}

TEST(http, pipelined_requests_leave_the_rest_for_the_next) {
  auto wire = write_request("GET", "/a", "h", {}, "") + write_request("POST", "/b", "h", {}, "xy")
              + "GET /c HTTP/1.1\r\nHost: h\r\n\r\n";
  request_parser p;
  size_t pos = 0;
  std::vector<std::string> paths;
  while (pos < wire.size()) {
    size_t used = 0;
    auto st = p.feed(wire.data() + pos, wire.size() - pos, used);
    pos += used;
    ASSERT_EQ(st, parse_state::done);
    paths.push_back(p.take().path);
  }
  EXPECT_EQ(paths, (std::vector<std::string>{"/a", "/b", "/c"}));
}

TEST(http, chunked_request_bodies_are_reassembled_and_trailers_dropped) {
  request_parser p;
  request r;
  auto st = parse_one("POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                      "3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nTrailer: t\r\n\r\n",
                      r, p);
  ASSERT_EQ(st, parse_state::done) << p.error();
  EXPECT_EQ(r.body, "abcde");
}

TEST(http, request_fields) {
  request_parser p;
  request r;
  ASSERT_EQ(parse_one("GET /a%20b/c?x=1&y=a%2Bb+c HTTP/1.0\r\nX-A:  v v \r\n\r\n", r, p),
            parse_state::done);
  EXPECT_EQ(r.path, "/a b/c");
  EXPECT_EQ(r.query, "x=1&y=a%2Bb+c");
  EXPECT_EQ(*r.header("x-a"), "v v");
  EXPECT_FALSE(r.keep_alive) << "HTTP/1.0 closes by default";
  bool found = false;
  EXPECT_EQ(query_param(r.query, "y", &found), "a+b c");
  EXPECT_TRUE(found);
  EXPECT_EQ(query_param(r.query, "z", &found), "");
  EXPECT_FALSE(found);
  ASSERT_EQ(parse_one("GET / HTTP/1.1\r\nHost: h\r\nConnection: foo, Close\r\n\r\n", r, p),
            parse_state::done);
  EXPECT_FALSE(r.keep_alive);
}

TEST(http, writers_neutralise_line_breaks_in_values) {
  response r;
  r.status = 404;
  r.headers = {{"X-Why", "no\r\nSet-Cookie: evil"}};
  auto wire = write_response(r);
  response_parser p;
  size_t used = 0;
  ASSERT_EQ(p.feed(wire.data(), wire.size(), used), parse_state::done);
  auto got = p.take();
  EXPECT_EQ(got.header("Set-Cookie"), nullptr);
  EXPECT_EQ(reason_phrase(404), std::string("Not Found"));
  EXPECT_EQ(url_encode("a b/ü~"), "a%20b%2F%C3%BC~");
}

// -- limits and malformed input ------------------------------------------------

TEST(http, every_limit_gives_its_status) {
  limits l;
  l.header_bytes_max = 256;
  l.headers_max = 4;
  l.body_bytes_max = 10;
  auto big = "GET / HTTP/1.1\r\nHost: h\r\nX: " + std::string(300, 'a') + "\r\n\r\n";
  EXPECT_EQ(status_of(big, l), 431);
  EXPECT_EQ(status_of("GET /" + std::string(300, 'a'), l), 414);
  std::string many = "GET / HTTP/1.1\r\nHost: h\r\n";
  for (int i = 0; i < 5; ++i)
    many += "X" + std::to_string(i) + ": v\r\n";
  EXPECT_EQ(status_of(many + "\r\n", l), 431);
  EXPECT_EQ(status_of("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\n", l), 413);
  EXPECT_EQ(status_of("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                      "6\r\nabcdef\r\n5\r\n",
                      l),
            413);
  EXPECT_EQ(status_of("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\n"
                      "Transfer-Encoding: chunked\r\n\r\n"),
            400);
  EXPECT_EQ(status_of("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"),
            400);
  EXPECT_EQ(status_of("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                      "1234567890abcdef0\r\n"),
            400);
  EXPECT_EQ(status_of("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                      "2\r\nabXY"),
            400);
  EXPECT_EQ(status_of("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n"), 501);
  EXPECT_EQ(status_of("GET / HTTP/2.0\r\nHost: h\r\n\r\n"), 505);
  EXPECT_EQ(status_of("BREW / HTTP/1.1\r\nHost: h\r\n\r\n"), 501);
}

TEST(http, malformed_requests_are_400) {
  for (const char* wire : {
         "GET / HTTP/1.1\r\n\r\n",                            // no Host
         "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",      // two Hosts
         "GET  / HTTP/1.1\r\nHost: h\r\n\r\n",                // double space
         "GET http://x/ HTTP/1.1\r\nHost: h\r\n\r\n",         // not a path
         "GET / HTTP/1.1\r\nHost: h\r\nX : v\r\n\r\n",        // space before colon
         "GET / HTTP/1.1\r\nHost: h\r\n folded\r\n\r\n",      // obs-fold
         "GET / HTTP/1.1\r\nHost: h\r\nX: a\nY: b\r\n\r\n",   // bare LF
         "GET / HTTP/1.1\r\nHost: h\r\nX: a\x01\r\n\r\n",     // control char
         "GET /%zz HTTP/1.1\r\nHost: h\r\n\r\n",              // bad escape
         "GET /%00 HTTP/1.1\r\nHost: h\r\n\r\n",              // NUL
         "GET / HTTQ/1.1\r\nHost: h\r\n\r\n",                 // not HTTP
         "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1x\r\n\r\n",
         "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
       })
    EXPECT_EQ(status_of(wire), 400) << wire;
}

TEST(http, a_parser_in_error_stays_there) {
  request_parser p;
  size_t used = 0;
  std::string bad = "GET / HTTP/9.9\r\nHost: h\r\n\r\n";
  ASSERT_EQ(p.feed(bad.data(), bad.size(), used), parse_state::error);
  auto good = write_request("GET", "/", "h", {}, "");
  EXPECT_EQ(p.feed(good.data(), good.size(), used), parse_state::error);
  EXPECT_EQ(used, 0u);
}

TEST(http, responses_framed_by_close_and_heads) {
  response_parser p;
  std::string wire = "HTTP/1.1 200 OK\r\n\r\nhello";
  size_t used = 0;
  ASSERT_EQ(p.feed(wire.data(), wire.size(), used), parse_state::need_more);
  ASSERT_EQ(p.feed(nullptr, 0, used), parse_state::done);
  EXPECT_EQ(p.take().body, "hello");
  wire = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n";
  ASSERT_EQ(p.feed(wire.data(), wire.size(), used), parse_state::done);
  EXPECT_EQ(p.take().status, 204);
  p.expect_no_body();
  wire = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n";
  ASSERT_EQ(p.feed(wire.data(), wire.size(), used), parse_state::done);
  EXPECT_EQ(p.take().body, "");
  wire = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab";
  ASSERT_EQ(p.feed(wire.data(), wire.size(), used), parse_state::need_more);
  EXPECT_EQ(p.feed(nullptr, 0, used), parse_state::error) << "cut mid-body";
}

TEST(http, malformed_responses_are_errors) {
  for (const char* wire : {"HTTP/1.1 20 OK\r\n\r\n", "HTTP/1.1 2000 OK\r\n\r\n",
                           "HTTP/2 200 OK\r\n\r\n", "HTTP/1.1200 OK\r\n\r\n",
                           "HTTP/1.1 101 Switching\r\n\r\n", "garbage\r\n\r\n",
                           "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nq\r\n"}) {
    response_parser p;
    size_t used = 0;
    EXPECT_EQ(p.feed(wire, std::strlen(wire), used), parse_state::error) << wire;
    EXPECT_FALSE(p.error().empty());
  }
}

RC_GTEST_PROP(http, hostile_bytes_never_crash_nor_grow_past_limits, (std::string junk)) {
  limits l;
  l.header_bytes_max = 64;
  l.body_bytes_max = 64;
  request_parser rq(l);
  response_parser rs(l);
  auto prefix = *rc::gen::element<std::string>("", "GET / HTTP/1.1\r\nHost: h\r\n",
                                               "HTTP/1.1 200 OK\r\n",
                                               "POST / HTTP/1.1\r\nHost: h\r\n"
                                               "Transfer-Encoding: chunked\r\n\r\n");
  auto wire = prefix + junk;
  std::vector<request> a;
  std::vector<response> b;
  auto cuts = *rc::gen::container<std::vector<size_t>>(rc::gen::arbitrary<size_t>());
  auto st = feed_cut(rq, wire, cuts, a);
  if (st == parse_state::error)
    RC_ASSERT(rq.error_status() >= 400 && rq.error_status() <= 505);
  feed_cut(rs, wire, cuts, b);
  for (auto& r : a)
    RC_ASSERT(r.body.size() <= l.body_bytes_max);
  for (auto& r : b)
    RC_ASSERT(r.body.size() <= l.body_bytes_max);
}
