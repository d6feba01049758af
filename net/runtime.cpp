#include "net/runtime.hpp"

#include <malloc.h>

#include <chrono>

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
  int64_t epoch_unix_ms = 0;
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
  // The actor clock counts from an arbitrary origin (steady_clock's); wall
  // time is that origin's Unix time plus the reading, fixed once here so a
  // system clock step later does not move leases or timestamps backwards.
  using namespace std::chrono;
  auto wall = duration_cast<milliseconds>(system_clock::now().time_since_epoch());
  auto mono = duration_cast<milliseconds>(impl_->sys->clock().now().time_since_epoch());
  impl_->epoch_unix_ms = (wall - mono).count();
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

std::shared_ptr<host_clock> runtime::clock() const {
  auto c = std::make_shared<host_clock>();
  c->set_epoch_unix_ms(impl_->epoch_unix_ms);
  return c;
}

void runtime::stop() {
  if (impl_->io)
    impl_->io->stop();
}

} // namespace drtp::net
