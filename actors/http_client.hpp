#pragma once
// An HTTP/1.1 client over the seam: the control plane's clients (drtp-pop,
// drtp serve, drtp connect, drtpctl) and the etcd store use it, so all of
// them run in the simulator too.
//
// One client actor holds one keep-alive connection to one server (TLS or
// plain), connects on first use and again after the connection drops, and
// runs requests one at a time in the order they came. A request is a caf
// request: http_fetch -> http::response, or an error (caf::sec or a
// caf::error made with make_error(http_errc::...)), never a hang: each has
// a deadline. A fetch that is idempotent (GET, HEAD, PUT, DELETE) goes
// again once when a reused link drops before any byte of its answer (the
// server closed the link as idle just as the request left). At most 1024
// fetches wait; past that a fetch fails at once (http_errc::overloaded).
//
// A watch is a long-lived chunked response: http_watch runs on a
// connection of its own (the client opens a second link for it); every
// chunk's payload is split into lines and each complete line is sent to
// the watch's owner as http_watch_line; when the stream ends or the link
// drops the owner gets http_watch_ended (then decides whether to watch
// again, from which resourceVersion). Lines are bounded (limits), and so
// are watches per client (64). A watch answered 200 with a whole body
// gives that body's lines, then http_watch_ended; any other status ends it
// with that status and the start of the body as `what`.
//
// Every request carries the Authorization header that params.authorization
// computes for the link that carries it (see control/auth.hpp).

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "actors/env.hpp"
#include "caf/allowed_unsafe_message_type.hpp"
#include "caf/fwd.hpp"
#include "net/seam/io.hpp"
#include "net/wire/http.hpp"

namespace drtp {

/// Per-link credentials: the Authorization header's value for a link with
/// this TLS channel binding ("Bearer TOKEN" for operators, a signature over
/// the binding for POPs, agents and principals: control/auth.hpp). Called
/// once per link, on the actor's own thread.
using http_authorization = std::function<std::string(const std::string& channel_binding)>;

struct http_client_params {
  env e;
  std::string host;
  uint16_t port = 0;
  std::shared_ptr<const net::tls_client_config> tls; // null: plain TCP
  http_authorization authorization; // empty: no Authorization header
  http::limits limits;
  uint32_t connect_timeout_ms = 5000;
  uint32_t request_timeout_ms = 10000;
  /// A watch stream silent this long is treated as dead (the server sends
  /// a bookmark at least every 10 s).
  uint32_t watch_idle_timeout_ms = 30000;
  std::string name = "http-client"; // for traces
};

struct http_fetch {
  std::string method;
  std::string target; // path and query
  http::header_list headers;
  std::string body;
};

struct http_watch {
  std::string target; // path and query (with watch=1&resourceVersion=N)
  caf::actor owner;
  uint64_t tag = 0;   // echoed in http_watch_line / http_watch_ended
  /// GET for the control plane's watches; etcd's gateway wants a POST
  /// whose JSON body says what to watch.
  std::string method = "GET";
  std::string body;   // sent as is, with Content-Type: application/json
};
struct http_watch_line {
  uint64_t tag = 0;
  std::string line;
};
struct http_watch_ended {
  uint64_t tag = 0;
  int status = 0;    // the response status; 0 when no response came
  std::string what;  // why, one line
};
/// Stop the watch with this tag (no http_watch_ended follows).
struct http_unwatch {
  uint64_t tag = 0;
};

/// New credentials (an enrolled agent's renewed certificate): later links
/// sign in with them; the current fetch link is closed once idle. Watches
/// keep their link until it ends.
struct http_set_authorization {
  http_authorization authorization;
};

/// Why a fetch failed (besides caf::sec): the error's context holds one
/// line saying more.
enum class http_errc : uint8_t {
  connect_failed = 1, // the server could not be reached
  connection_lost,    // the link dropped before the whole response
  timed_out,          // no whole response within request_timeout_ms
  bad_response,       // a response the parser refused (malformed, too big)
  overloaded,         // too many fetches queued on this client
};

caf::error make_error(http_errc x, std::string what);
/// The one line for a fetch's error ("timed out: ..."), also for caf::sec.
std::string describe_http_error(const caf::error& err);

caf::actor spawn_http_client(caf::actor_system& sys, http_client_params p);

} // namespace drtp

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(drtp::http_fetch)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(drtp::http_watch)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(drtp::http_watch_line)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(drtp::http_watch_ended)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(drtp::http_unwatch)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(drtp::http_set_authorization)
