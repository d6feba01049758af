#include "net/seam/io_actor.hpp"

#include "caf/actor_cast.hpp"
#include "caf/actor_config.hpp"
#include "caf/actor_system.hpp"
#include "caf/make_actor.hpp"
#include "caf/mailbox_element.hpp"
#include "caf/message.hpp"
#include "caf/monitorable_actor.hpp"

namespace drtp::net {

io_backend::~io_backend() = default;

namespace {

class io_actor final : public caf::monitorable_actor {
public:
  io_actor(caf::actor_config& cfg, std::shared_ptr<io_backend> backend)
    : caf::monitorable_actor(cfg), backend_(std::move(backend)) {
  }

  const char* name() const override {
    return "drtp.io";
  }

  void enqueue(caf::mailbox_element_ptr what, caf::execution_unit*) override {
    if (!what)
      return;
    auto sender = caf::actor_cast<caf::actor>(what->sender);
    auto& msg = what->content();
    if (msg.size() != 1)
      return; // not a seam request; the seam has only one-element messages
    if (msg.match_element<write_req>(0))
      backend_->on_write(std::move(msg.get_mutable_as<write_req>(0)));
    else if (msg.match_element<adopt_req>(0))
      backend_->on_adopt(std::move(msg.get_mutable_as<adopt_req>(0)));
    else if (msg.match_element<pause_read_req>(0))
      backend_->on_pause_read(msg.get_as<pause_read_req>(0));
    else if (msg.match_element<resume_read_req>(0))
      backend_->on_resume_read(msg.get_as<resume_read_req>(0));
    else if (msg.match_element<shutdown_write_req>(0))
      backend_->on_shutdown_write(msg.get_as<shutdown_write_req>(0));
    else if (msg.match_element<close_req>(0))
      backend_->on_close(msg.get_as<close_req>(0));
    else if (msg.match_element<abort_req>(0))
      backend_->on_abort(msg.get_as<abort_req>(0));
    else if (msg.match_element<connect_req>(0))
      backend_->on_connect(std::move(sender),
                           std::move(msg.get_mutable_as<connect_req>(0)));
    else if (msg.match_element<listen_req>(0))
      backend_->on_listen(std::move(sender),
                          std::move(msg.get_mutable_as<listen_req>(0)));
    else if (msg.match_element<stop_listen_req>(0))
      backend_->on_stop_listen(msg.get_as<stop_listen_req>(0));
    else if (msg.match_element<set_identity_req>(0))
      backend_->on_set_identity(std::move(sender),
                                std::move(msg.get_mutable_as<set_identity_req>(0)));
  }

private:
  std::shared_ptr<io_backend> backend_;
};

} // namespace

caf::actor make_io_actor(caf::actor_system& sys,
                         std::shared_ptr<io_backend> backend) {
  caf::actor_config cfg;
  return caf::make_actor<io_actor, caf::actor>(sys.next_actor_id(), sys.node(),
                                               &sys, cfg, std::move(backend));
}

const char* to_string(connect_error x) noexcept {
  switch (x) {
    case connect_error::refused: return "connection refused";
    case connect_error::unreachable: return "host unreachable";
    case connect_error::timed_out: return "connect timed out";
    case connect_error::tls_failed: return "TLS handshake failed";
    default: return "connect failed";
  }
}

const char* to_string(close_reason x) noexcept {
  switch (x) {
    case close_reason::local: return "closed locally";
    case close_reason::peer: return "closed by peer";
    case close_reason::reset: return "reset by peer";
    case close_reason::timeout: return "timed out";
    default: return "I/O error";
  }
}

} // namespace drtp::net
