#pragma once
// The real network: standalone Asio on one I/O thread, OpenSSL TLS 1.3 for
// tunnel links, plain TCP elsewhere. Implements the seam of net/io.hpp.

#include <memory>
#include <optional>

#include "caf/fwd.hpp"
#include "net/tls.hpp"
#include "net/seam/trace.hpp"

namespace drtp::net {

/// Bytes queued for writing on every real connection of the process (for
/// drtp_write_queue_bytes).
uint64_t asio_write_queue_bytes();

class asio_io {
public:
  /// `server_identity` is needed only to accept TLS (listen_req::tls).
  asio_io(caf::actor_system& sys, std::shared_ptr<tracer> trace,
          std::optional<tls_identity> server_identity);
  ~asio_io(); // stops the I/O thread, closes every socket

  asio_io(const asio_io&) = delete;
  asio_io& operator=(const asio_io&) = delete;

  /// The handle actors send seam requests to.
  const caf::actor& handle() const;

  /// Closes every socket and joins the I/O thread. Idempotent.
  void stop();

private:
  struct impl;
  std::shared_ptr<impl> impl_;
};

} // namespace drtp::net
