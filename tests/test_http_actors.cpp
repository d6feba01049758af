// The HTTP server and client over the seam (actors/http_server,
// actors/http_client): in the simulator, fetches over one keep-alive link,
// reconnects, watch streams cut anywhere, and every bound the server keeps;
// over real sockets with TLS once, with the channel binding both ends see.

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "actors/http_client.hpp"
#include "actors/http_server.hpp"
#include "caf/all.hpp"
#include "net/asio_io.hpp"
#include "net/runtime.hpp"
#include "net/seam/io.hpp"
#include "net/tls.hpp"
#include "sim/rig.hpp"

using namespace drtp;

namespace {

constexpr uint64_t ms = 1000; // virtual microseconds
constexpr uint64_t sec = 1000 * ms;
constexpr uint16_t port = 8080;

struct handler_log {
  std::vector<std::string> paths;
  std::vector<uint64_t> serials;
  std::vector<std::string> bindings;
  std::vector<std::string> auths;
  int gone = 0;
};

/// Answers "/hello..." with its path, "/slow" never, "/watch" with lines
/// cut across chunks (ending the stream when the query says end=1), and
/// "/flood" with more stream than a client that does not read may cost.
caf::behavior handler(caf::event_based_actor* self, std::shared_ptr<handler_log> log) {
  return {
    [=](http_call& c) {
      log->paths.push_back(c.req.path);
      log->serials.push_back(c.conn_serial);
      log->bindings.push_back(c.channel_binding);
      auto* auth = c.req.header("Authorization");
      log->auths.push_back(auth ? *auth : "");
      auto rp = self->make_response_promise();
      if (c.req.path == "/slow")
        return;
      if (c.req.path == "/watch" || c.req.path == "/flood") {
        rp.deliver(http_stream_begin{200, {{"Content-Type", "application/json"}}});
        if (c.req.path == "/flood") {
          std::string big(64 * 1024, 'x');
          for (int i = 0; i < 64; ++i)
            self->send(c.conn, http_stream_chunk{big});
          return;
        }
        for (const char* piece : {"{\"a\":", "1}\n{\"b\"", ":2}\n\n", "{\"c\":3}\r\n"})
          self->send(c.conn, http_stream_chunk{piece});
        if (http::query_param(c.req.query, "end") == "1")
          self->send(c.conn, http_stream_end{});
        return;
      }
      rp.deliver(http::response{200, {{"Content-Type", "text/plain"}}, "you asked " + c.req.path});
    },
    [=](const http_stream_gone&) { ++log->gone; },
  };
}

struct fetch_log {
  std::vector<http::response> responses;
  std::vector<std::string> errors;
};

struct watch_log {
  std::vector<std::string> lines;
  std::vector<http_watch_ended> ended;
};

/// Sends fetches to the client (in order) and a watch; records what comes.
caf::behavior requester(caf::event_based_actor* self, caf::actor client,
                        std::vector<std::string> targets, std::shared_ptr<fetch_log> log,
                        std::shared_ptr<watch_log> wlog) {
  for (auto& t : targets)
    self->request(client, caf::infinite, http_fetch{"GET", t, {}, ""})
      .then([=](http::response& r) { log->responses.push_back(std::move(r)); },
            [=](caf::error& e) { log->errors.push_back(describe_http_error(e)); });
  return {
    [=](http_watch_line& l) { wlog->lines.push_back(std::move(l.line)); },
    [=](http_watch_ended& e) { wlog->ended.push_back(std::move(e)); },
    [=](const std::string& target) {
      self->send(client, http_watch{target, self, 7});
    },
  };
}

/// A raw peer: connects, writes `bytes`, maybe stops reading, records all.
struct raw_log {
  bool connected = false;
  std::string received;
  bool closed = false;
};

caf::behavior raw_peer(caf::event_based_actor* self, caf::actor io, std::string bytes,
                       bool read, std::shared_ptr<raw_log> log) {
  self->send(io, net::connect_req{1, "srv", port, 5000, nullptr});
  return {
    [=](const net::connected& ev) {
      log->connected = true;
      if (!read)
        self->send(io, net::pause_read_req{ev.id});
      if (!bytes.empty())
        self->send(io, net::write_req{ev.id, {net::chunk::copy_of(bytes)}});
    },
    [=](const net::connect_failed&) { log->closed = true; },
    [=](const net::received& ev) { log->received += ev.data.to_string(); },
    [=](const net::read_closed& ev) {
      log->closed = true; // the server is done with us
      self->send(io, net::close_req{ev.id});
    },
    [](const net::sent&) {},
    [=](const net::closed&) { log->closed = true; },
  };
}

struct fixture {
  sim::rig r{1};
  std::shared_ptr<handler_log> hlog = std::make_shared<handler_log>();
  caf::actor h;
  caf::actor server;
  caf::actor client;

  explicit fixture(http_server_params sp = {}) {
    r.d.net().add_host("srv");
    r.d.net().add_host("cli");
    h = r.d.sys().spawn(handler, hlog);
    sp.e = r.make_env("srv", 1);
    sp.host = "srv";
    sp.port = port;
    sp.handler = h;
    server = spawn_http_server(r.d.sys(), sp);
    r.d.run_for(10 * ms);
    http_client_params cp;
    cp.e = r.make_env("cli", 2);
    cp.host = "srv";
    cp.port = port;
    cp.authorization = [](const std::string&) { return std::string("Bearer t0k3n"); };
    client = spawn_http_client(r.d.sys(), cp);
  }

  std::pair<std::shared_ptr<fetch_log>, std::shared_ptr<watch_log>>
  fetch(std::vector<std::string> targets, caf::actor* req = nullptr) {
    auto log = std::make_shared<fetch_log>();
    auto wlog = std::make_shared<watch_log>();
    auto a = r.d.sys().spawn(requester, client, std::move(targets), log, wlog);
    if (req != nullptr)
      *req = a;
    return {log, wlog};
  }

  std::shared_ptr<raw_log> raw(std::string bytes, bool read = true) {
    auto log = std::make_shared<raw_log>();
    r.d.sys().spawn(raw_peer, r.d.net().io("cli"), std::move(bytes), read, log);
    return log;
  }
};

} // namespace

TEST(http_actors, fetches_share_one_keep_alive_link) {
  fixture f;
  auto [log, wlog] = f.fetch({"/hello/1", "/hello/2", "/hello/3"});
  ASSERT_TRUE(f.r.d.run_until([&] { return log->responses.size() == 3; }, 5 * sec));
  EXPECT_TRUE(log->errors.empty());
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(log->responses[i].status, 200);
    EXPECT_EQ(log->responses[i].body, "you asked /hello/" + std::to_string(i + 1));
  }
  ASSERT_EQ(f.hlog->serials.size(), 3u);
  EXPECT_EQ(f.hlog->serials[0], f.hlog->serials[2]) << "one connection";
  EXPECT_EQ(f.hlog->auths[0], "Bearer t0k3n");
}

TEST(http_actors, the_client_reconnects_after_the_server_closes) {
  http_server_params sp;
  sp.idle_timeout_ms = 1000;
  fixture f(sp);
  auto [log, wlog] = f.fetch({"/hello/a"});
  ASSERT_TRUE(f.r.d.run_until([&] { return log->responses.size() == 1; }, 5 * sec));
  f.r.d.run_for(3 * sec); // the server closes the idle link
  auto [log2, wlog2] = f.fetch({"/hello/b"});
  ASSERT_TRUE(f.r.d.run_until([&] { return log2->responses.size() == 1; }, 5 * sec));
  EXPECT_EQ(log2->responses[0].body, "you asked /hello/b");
  ASSERT_EQ(f.hlog->serials.size(), 2u);
  EXPECT_NE(f.hlog->serials[0], f.hlog->serials[1]);
}

TEST(http_actors, a_handler_that_does_not_answer_gives_503) {
  http_server_params sp;
  sp.handler_timeout_ms = 500;
  fixture f(sp);
  auto [log, wlog] = f.fetch({"/slow", "/hello/after"});
  ASSERT_TRUE(f.r.d.run_until([&] { return log->responses.size() == 2; }, 5 * sec));
  EXPECT_EQ(log->responses[0].status, 503);
  EXPECT_EQ(log->responses[1].status, 200);
}

TEST(http_actors, a_watch_delivers_lines_and_ends_with_the_stream) {
  fixture f;
  caf::actor req;
  auto [log, wlog] = f.fetch({}, &req);
  caf::anon_send(req, std::string("/watch?end=1"));
  ASSERT_TRUE(f.r.d.run_until([&] { return !wlog->ended.empty(); }, 5 * sec));
  EXPECT_EQ(wlog->lines, (std::vector<std::string>{"{\"a\":1}", "{\"b\":2}", "{\"c\":3}"}));
  EXPECT_EQ(wlog->ended[0].tag, 7u);
  EXPECT_EQ(wlog->ended[0].status, 200);
}

TEST(http_actors, a_watch_ends_when_the_link_dies) {
  fixture f;
  caf::actor req;
  auto [log, wlog] = f.fetch({}, &req);
  caf::anon_send(req, std::string("/watch"));
  ASSERT_TRUE(f.r.d.run_until([&] { return wlog->lines.size() == 3; }, 5 * sec));
  EXPECT_TRUE(wlog->ended.empty());
  f.r.d.net().crash("srv", sim::crash_mode::reset);
  ASSERT_TRUE(f.r.d.run_until([&] { return !wlog->ended.empty(); }, 5 * sec));
  EXPECT_EQ(wlog->ended[0].status, 200);
  EXPECT_FALSE(wlog->ended[0].what.empty());
}

TEST(http_actors, a_silent_watch_is_declared_dead) {
  fixture f;
  caf::actor req;
  auto [log, wlog] = f.fetch({}, &req);
  caf::anon_send(req, std::string("/watch"));
  ASSERT_TRUE(f.r.d.run_until([&] { return wlog->lines.size() == 3; }, 5 * sec));
  ASSERT_TRUE(f.r.d.run_until([&] { return !wlog->ended.empty(); }, 60 * sec));
  EXPECT_NE(wlog->ended[0].what.find("silent"), std::string::npos);
}

TEST(http_actors, an_oversized_header_block_gets_431_and_close) {
  fixture f;
  auto raw = f.raw("GET / HTTP/1.1\r\nHost: srv\r\nX: " + std::string(20000, 'a') + "\r\n\r\n");
  ASSERT_TRUE(f.r.d.run_until([&] { return raw->closed; }, 5 * sec));
  EXPECT_EQ(raw->received.rfind("HTTP/1.1 431 ", 0), 0u) << raw->received;
  EXPECT_TRUE(f.hlog->paths.empty());
}

TEST(http_actors, a_request_too_slow_gets_408_and_close) {
  http_server_params sp;
  sp.request_timeout_ms = 1000;
  fixture f(sp);
  auto raw = f.raw("GET / HTTP/1.1\r\nHost: srv\r\n");
  ASSERT_TRUE(f.r.d.run_until([&] { return raw->closed; }, 5 * sec));
  EXPECT_EQ(raw->received.rfind("HTTP/1.1 408 ", 0), 0u) << raw->received;
}

TEST(http_actors, past_connections_max_the_oldest_idle_goes) {
  http_server_params sp;
  sp.connections_max = 2;
  fixture f(sp);
  auto a = f.raw("");
  f.r.d.run_for(50 * ms);
  auto b = f.raw("");
  f.r.d.run_for(50 * ms);
  EXPECT_FALSE(a->closed);
  auto c = f.raw("GET /hello/c HTTP/1.1\r\nHost: srv\r\n\r\n");
  ASSERT_TRUE(f.r.d.run_until([&] { return a->closed; }, 5 * sec));
  ASSERT_TRUE(f.r.d.run_until([&] { return !c->received.empty(); }, 5 * sec));
  EXPECT_FALSE(b->closed);
  EXPECT_EQ(c->received.rfind("HTTP/1.1 200 ", 0), 0u);
}

TEST(http_actors, a_stream_client_that_does_not_read_is_cut) {
  http_server_params sp;
  sp.stream_write_queue_bytes_max = 256 * 1024;
  fixture f(sp);
  auto raw = f.raw("GET /flood HTTP/1.1\r\nHost: srv\r\n\r\n", false);
  ASSERT_TRUE(f.r.d.run_until([&] { return f.hlog->gone == 1; }, 10 * sec));
  EXPECT_TRUE(f.r.d.run_until([&] { return raw->closed; }, 5 * sec));
}

TEST(http_actors, fetches_fail_promptly_when_nothing_listens) {
  sim::rig r{2};
  r.d.net().add_host("cli");
  r.d.net().add_host("srv");
  http_client_params cp;
  cp.e = r.make_env("cli", 2);
  cp.host = "srv";
  cp.port = port;
  auto client = spawn_http_client(r.d.sys(), cp);
  auto log = std::make_shared<fetch_log>();
  auto wlog = std::make_shared<watch_log>();
  r.d.sys().spawn(requester, client, std::vector<std::string>{"/x"}, log, wlog);
  ASSERT_TRUE(r.d.run_until([&] { return !log->errors.empty(); }, 10 * sec));
  EXPECT_EQ(log->errors[0].rfind("cannot connect", 0), 0u) << log->errors[0];
}
