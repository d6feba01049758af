#pragma once
// The io actor is the handle an actor sends seam requests to. It is a custom
// CAF actor whose enqueue() hands each request straight to a backend, in the
// sender's thread: no mailbox, no scheduling hop on the I/O path. The real
// network (net/asio_io) and the simulator (sim/world) are the two backends.

#include <memory>

#include "caf/fwd.hpp"
#include "net/seam/io.hpp"

namespace drtp::net {

/// One method per seam request. `sender` is the requesting actor (it owns
/// what it opens). Each backend decides on which thread the work runs.
class io_backend {
public:
  virtual ~io_backend();
  virtual void on_listen(caf::actor sender, listen_req req) = 0;
  virtual void on_stop_listen(stop_listen_req req) = 0;
  virtual void on_set_identity(caf::actor sender, set_identity_req req) = 0;
  virtual void on_connect(caf::actor sender, connect_req req) = 0;
  virtual void on_adopt(adopt_req req) = 0;
  virtual void on_write(write_req req) = 0;
  virtual void on_shutdown_write(shutdown_write_req req) = 0;
  virtual void on_close(close_req req) = 0;
  virtual void on_abort(abort_req req) = 0;
  virtual void on_pause_read(pause_read_req req) = 0;
  virtual void on_resume_read(resume_read_req req) = 0;
};

/// Wraps `backend` in an actor handle. The handle keeps the backend alive.
caf::actor make_io_actor(caf::actor_system& sys,
                         std::shared_ptr<io_backend> backend);

} // namespace drtp::net
