#include "net/runtime.hpp"

#include <malloc.h>

#include "caf/actor_system.hpp"
#include "caf/actor_system_config.hpp"
#include "caf/atom.hpp"
#include "net/asio_io.hpp"
#include "net/loop_coordinator.hpp"

namespace drtp::net {

struct runtime::impl {
  caf::actor_system_config cfg;
  std::unique_ptr<caf::actor_system> sys;
  std::unique_ptr<asio_io> io;
  std::shared_ptr<tracer> trace;
};

runtime::runtime(std::shared_ptr<tracer> trace,
                 std::optional<tls_identity> server_identity,
                 uint32_t busy_poll_us)
  : impl_(std::make_unique<impl>()) {
  // Socket buffers of 64 KiB come and go at line rate: keep freed memory in
  // the heap instead of trimming it and faulting it back in on each read.
  mallopt(M_MMAP_THRESHOLD, 1 << 20);
  mallopt(M_TRIM_THRESHOLD, 64 << 20);
  // Every actor runs on the I/O thread (see net/loop_coordinator.hpp).
  use_loop_scheduler(impl_->cfg, busy_poll_us);
  impl_->cfg.set("logger.console", caf::atom("none"));
  impl_->cfg.set("logger.file-verbosity", caf::atom("quiet"));
  impl_->sys = std::make_unique<caf::actor_system>(impl_->cfg);
  // Binaries exit with actors still running; do not wait for them.
  impl_->sys->await_actors_before_shutdown(false);
  impl_->trace = std::move(trace);
  impl_->io = std::make_unique<asio_io>(*impl_->sys, impl_->trace,
                                             std::move(server_identity));
}

runtime::~runtime() {
  stop();
}

caf::actor_system& runtime::sys() {
  return *impl_->sys;
}

const caf::actor& runtime::io() const {
  return impl_->io->handle();
}

std::shared_ptr<tracer> runtime::trace() const {
  return impl_->trace;
}

void runtime::stop() {
  if (impl_->io)
    impl_->io->stop();
}

} // namespace drtp::net
