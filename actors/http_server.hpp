#pragma once
// An HTTP/1.1 server over the seam, for the control plane's API and the
// metrics endpoint (so the simulator serves and scrapes them too). It
// listens (TLS or plain), runs one small actor per connection that parses
// requests (net/wire/http, bounded) and hands each to the handler actor,
// one at a time per connection, in order.
//
// Bounds: connections at once (past it the oldest idle one is closed, the
// newcomer is served; with none idle the newcomer gets 503), bytes a client
// pipelines while its request is answered (past header_bytes_max +
// body_bytes_max the connection is not read), header and body size (net/wire/http limits; over
// them: the 4xx and close), a request not complete within
// request_timeout_ms (408 and close), a connection idle for idle_timeout_ms
// (closed), a handler that does not answer in handler_timeout_ms (503).
// A streaming response (watch) is bounded by the connection's write queue
// cap: a client that does not read is cut, never buffered for.
//
// The handler receives http_call and answers it (caf request/response) with
// either an http::response (sent with Content-Length) or http_stream_begin,
// after which it sends http_stream_chunk / http_stream_end to
// http_call::conn until the stream ends. A connection that closes while
// streaming sends http_stream_gone to the handler.

#include <cstdint>
#include <string>

#include "actors/env.hpp"
#include "caf/allowed_unsafe_message_type.hpp"
#include "caf/fwd.hpp"
#include "net/wire/http.hpp"

namespace drtp {

struct http_server_params {
  env e;
  std::string host = "127.0.0.1";
  uint16_t port = 0; // 0: pick a free one (tests)
  bool tls = false;  // the io's server certificate
  caf::actor handler;
  /// Receives http_listening or http_listen_failed; may be null.
  caf::actor observer;
  http::limits limits;
  uint32_t connections_max = 256;
  uint32_t request_timeout_ms = 10000;
  uint32_t idle_timeout_ms = 60000;
  uint32_t handler_timeout_ms = 10000;
  /// A streaming connection's write queue cap (the seam resets past it).
  uint64_t stream_write_queue_bytes_max = 8ull * 1024 * 1024;
  /// For traces: "control", "metrics".
  std::string name = "http";
};

/// One request, as the handler sees it.
struct http_call {
  http::request req;
  std::string peer_host;
  uint16_t peer_port = 0;
  /// The TLS channel binding of the connection (empty for plain TCP): a
  /// client may sign it to authenticate (see control/auth.hpp).
  std::string channel_binding;
  /// The connection actor: where http_stream_* go.
  caf::actor conn;
  /// Unique per connection for this server (for caching auth per link).
  uint64_t conn_serial = 0;
};

/// Answer to http_call: a chunked response follows.
struct http_stream_begin {
  int status = 200;
  http::header_list headers;
};
struct http_stream_chunk {
  std::string data;
};
struct http_stream_end {};
/// conn -> handler: the client is gone (or was cut); stop streaming to it.
struct http_stream_gone {
  uint64_t conn_serial = 0;
};

struct http_listening {
  uint16_t port = 0;
};
struct http_listen_failed {
  std::string what;
};

caf::actor spawn_http_server(caf::actor_system& sys, http_server_params p);

} // namespace drtp

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(drtp::http_call)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(drtp::http_stream_begin)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(drtp::http_stream_chunk)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(drtp::http_stream_end)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(drtp::http_stream_gone)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(drtp::http_listening)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(drtp::http_listen_failed)
