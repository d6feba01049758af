#pragma once
// The seam. An actor asks for I/O by sending one of the *_req messages below
// to its host's io actor (a caf::actor); it hears of I/O through the events
// below, sent to the owner of the listener or connection. Two implementations
// exist: net/asio_io (real sockets, TLS) and sim/world (the deterministic
// simulator). Actors in actors/ must never know which one they talk to.
//
// Rules both implementations keep:
// - Every connection reports `closed` exactly once, also after a local close
//   or abort; nothing is reported for it afterwards.
// - `received` and `read_closed` arrive in stream order, `sent` after the
//   bytes left the local write queue.
// - An accepted connection does not read until an `adopt_req` names its owner;
//   a connection opened by `connect_req` reads at once, owned by the requester.
// - Requests for an unknown or closed connection are ignored.
// - Each connection's write queue has a hard cap (write_queue_bytes_max of
//   its connect_req or adopt_req, write_queue_bytes_default when 0): bytes
//   written and not yet taken by the peer beyond what the transport itself
//   buffers. A write that takes the queue over the cap aborts the
//   connection at once (the peer sees a reset) and the owner gets
//   `closed{error, "write queue over N bytes: the peer does not read"}`. A
//   peer that never reads can cost at most the cap, never the process.

#include <cstdint>
#include <memory>
#include <string>

#include "caf/actor.hpp"
#include "caf/allowed_unsafe_message_type.hpp"
#include "net/seam/chunk.hpp"

namespace drtp::net {

using conn_id = uint64_t;
using listener_id = uint64_t;

/// The write queue cap of a connection whose request says 0. The actors bound
/// what they queue by flow control (a window per stream), far below this.
constexpr uint64_t write_queue_bytes_default = 64ull * 1024 * 1024;

/// A client certificate a listener with request_client_cert takes: the
/// whole chain the client sends (DER, as on the wire; a larger one fails the
/// handshake) and the leaf's PEM handed to the owner. An Ed25519 leaf with a
/// short subject is well under 1 KiB.
constexpr size_t client_cert_chain_bytes_max = 16 * 1024;
constexpr size_t peer_cert_pem_bytes_max = 8 * 1024;

/// How a client verifies the TLS server it dials. A null pointer in a
/// connect_req means plain TCP.
struct tls_client_config {
  /// PEM file of trusted CAs; empty = none.
  std::string ca_file;
  /// Pinned SHA-256 of the server certificate (32 raw bytes); empty = none.
  std::string fingerprint_sha256;
  /// Expected server name (SNI and verification); empty = skip name check.
  std::string server_name;
  /// Only for tests and explicit --insecure: accept any certificate.
  bool verify = true;
  /// The client's own certificate and private key (PEM), presented when the
  /// server asks (listen_req::request_client_cert); empty = none.
  std::string cert_pem;
  std::string key_pem;
};

enum class connect_error : uint8_t {
  refused,     // nothing listens there
  unreachable, // no route, unknown host, name resolution failed
  timed_out,   // no answer within timeout_ms
  tls_failed,  // TCP worked, the TLS handshake or verification did not
  other,
};

enum class close_reason : uint8_t {
  local,    // this side asked for close_req or abort_req
  peer,     // the peer closed both directions gracefully
  reset,    // the peer reset the connection (or its host crashed)
  timeout,  // the transport gave up on an unresponsive peer
  error,    // any other I/O or TLS error
};

const char* to_string(connect_error x) noexcept;
const char* to_string(close_reason x) noexcept;

// -- requests: actor -> io ---------------------------------------------------

/// Listen on host:port (port 0 picks a free port). Answered by `listening` or
/// `listen_failed` carrying the same tag.
struct listen_req {
  uint64_t tag = 0;
  std::string host;
  uint16_t port = 0;
  bool tls = false; // serve TLS with the io's server certificate
  /// TLS only: ask clients for a certificate. The transport checks only
  /// that the client holds its key (the TLS handshake proves that); whom it
  /// was issued by, and whether it is valid now, the owner decides
  /// (accepted::peer_cert_pem, crypto::verify_certificate at its own time).
  bool request_client_cert = false;
};

struct stop_listen_req {
  listener_id id = 0;
};

/// Open a connection. Answered by `connected` or `connect_failed`.
struct connect_req {
  uint64_t tag = 0;
  std::string host;
  uint16_t port = 0;
  uint32_t timeout_ms = 5000;
  std::shared_ptr<const tls_client_config> tls; // null = plain TCP
  /// false: no `sent` events (owners that do not count bytes, like tunnels,
  /// are spared one message per write).
  bool report_sent = true;
  /// The write queue's hard cap; 0 = write_queue_bytes_default.
  uint64_t write_queue_bytes_max = 0;
};

/// Makes `owner` the receiver of this connection's events and starts reading.
struct adopt_req {
  conn_id id = 0;
  caf::actor owner;
  bool report_sent = true; // as in connect_req
  uint64_t write_queue_bytes_max = 0; // as in connect_req
};

struct write_req {
  conn_id id = 0;
  chunk_list data;
};

/// Half-close: no more writes from this side (after queued writes drain).
struct shutdown_write_req {
  conn_id id = 0;
};

/// Graceful close: drain queued writes, then close both directions.
struct close_req {
  conn_id id = 0;
};

/// Reset now: queued writes are dropped, the peer sees a reset.
struct abort_req {
  conn_id id = 0;
};

/// Backpressure: stop (and restart) reading from the socket.
struct pause_read_req {
  conn_id id = 0;
};
struct resume_read_req {
  conn_id id = 0;
};

/// Serve TLS with this certificate and key (PEM) from now on: connections
/// accepted later present it, those already open keep theirs. Answered by
/// `identity_set` (a config reload: the sender learns whether it took).
struct set_identity_req {
  std::string cert_pem;
  std::string key_pem;
};

// -- events: io -> owner -------------------------------------------------------

struct listening {
  uint64_t tag = 0;
  listener_id id = 0;
  uint16_t port = 0; // the bound port
};

struct listen_failed {
  uint64_t tag = 0;
  std::string what;
};

struct accepted {
  listener_id listener = 0;
  conn_id id = 0;
  std::string peer_host; // peer address, for logs and rate limits
  uint16_t peer_port = 0;
  /// TLS only: bytes both ends of this connection, and no other connection,
  /// can compute (a TLS exporter, net::channel_binding_label in
  /// net/wire/handshake.hpp); a login proof signs them. Empty for plain TCP.
  std::string channel_binding;
  /// TLS with request_client_cert: the certificate (PEM) the client
  /// presented and proved it holds the key of; empty: none. Unverified:
  /// the owner checks it (crypto::verify_certificate). At most
  /// peer_cert_pem_bytes_max: a larger one is not passed on (empty).
  std::string peer_cert_pem;
};

struct connected {
  uint64_t tag = 0;
  conn_id id = 0;
  std::string channel_binding; // as in `accepted`
};

struct connect_failed {
  uint64_t tag = 0;
  connect_error reason = connect_error::other;
  std::string what;
};

struct received {
  conn_id id = 0;
  chunk data;
};

struct sent {
  conn_id id = 0;
  uint64_t bytes = 0;
};

/// The peer will send no more bytes (EOF); writing may continue.
struct read_closed {
  conn_id id = 0;
};

struct closed {
  conn_id id = 0;
  close_reason reason = close_reason::local;
  std::string what;
};

/// The answer to set_identity_req: ok, or why not (the old identity stays).
struct identity_set {
  bool ok = false;
  std::string what;
};

} // namespace drtp::net

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(drtp::net::set_identity_req)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(drtp::net::identity_set)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(drtp::net::listen_req)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(drtp::net::stop_listen_req)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(drtp::net::connect_req)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(drtp::net::adopt_req)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(drtp::net::write_req)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(drtp::net::shutdown_write_req)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(drtp::net::close_req)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(drtp::net::abort_req)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(drtp::net::pause_read_req)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(drtp::net::resume_read_req)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(drtp::net::listening)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(drtp::net::listen_failed)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(drtp::net::accepted)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(drtp::net::connected)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(drtp::net::connect_failed)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(drtp::net::received)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(drtp::net::sent)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(drtp::net::read_closed)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(drtp::net::closed)
