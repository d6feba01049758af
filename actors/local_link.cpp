#include "actors/local_link.hpp"

#include "caf/all.hpp"
#include "net/seam/assert.hpp"

namespace drtp {

namespace {

bool legal(local_link::state from, local_link::state to) {
  using s = local_link::state;
  switch (to) {
    case s::idle:
      return false;
    case s::connecting:
      return from == s::idle;
    case s::open:
      return from == s::idle || from == s::connecting;
    case s::read_closed:
      return from == s::open;
    case s::closing:
      return from == s::connecting || from == s::open || from == s::read_closed;
    case s::closed:
      return from != s::idle && from != s::closed;
  }
  return false;
}

} // namespace

const char* to_string(local_link::state s) noexcept {
  switch (s) {
    case local_link::state::idle:
      return "idle";
    case local_link::state::connecting:
      return "connecting";
    case local_link::state::open:
      return "open";
    case local_link::state::read_closed:
      return "read_closed";
    case local_link::state::closing:
      return "closing";
    case local_link::state::closed:
      return "closed";
  }
  return "unknown";
}

local_link::local_link(caf::event_based_actor* self, owner* o)
  : self_(self), owner_(o) {
}

void local_link::become(state next) {
  DRTP_ASSERT(legal(state_, next), "local connection: only legal state transitions");
  state_ = next;
}

bool local_link::connect_pending() const noexcept {
  // Closing without an id: the owner gave up before the connect completed.
  return state_ == state::connecting || (state_ == state::closing && id_ == 0);
}

void local_link::adopt(caf::actor io, net::conn_id id) {
  DRTP_ASSERT(id != 0, "an adopted local connection has an id");
  io_ = std::move(io);
  id_ = id;
  become(state::open);
  self_->send(io_, net::adopt_req{id_, caf::actor_cast<caf::actor>(self_)});
}

void local_link::connect(caf::actor io, uint64_t tag, const std::string& host,
                         uint16_t port, uint32_t timeout_ms) {
  io_ = std::move(io);
  become(state::connecting);
  net::connect_req req;
  req.tag = tag;
  req.host = host;
  req.port = port;
  req.timeout_ms = timeout_ms;
  self_->send(io_, std::move(req));
}

caf::message_handler local_link::handlers() {
  return {
    [this](net::connected& ev) { handle(ev); },
    [this](net::connect_failed& ev) { handle(ev); },
    [this](net::received& ev) { handle(ev); },
    [this](net::read_closed& ev) { handle(ev); },
    [this](net::sent& ev) { handle(ev); },
    [this](net::closed& ev) { handle(ev); },
  };
}

void local_link::handle(const net::connected& ev) {
  if (!connect_pending())
    return;
  DRTP_ASSERT(ev.id != 0, "a connected local connection has an id");
  id_ = ev.id;
  if (state_ == state::closing) {
    // The owner gave up while the connect was pending.
    pending_.clear();
    self_->send(io_, net::abort_req{id_});
    return;
  }
  become(state::open);
  if (!pending_.empty()) {
    self_->send(io_, net::write_req{id_, std::move(pending_)});
    pending_.clear();
  }
  if (write_end_ == write_end::shutdown_pending) {
    write_end_ = write_end::shut;
    self_->send(io_, net::shutdown_write_req{id_});
  }
}

void local_link::handle(const net::connect_failed& ev) {
  if (!connect_pending())
    return;
  become(state::closed);
  pending_.clear();
  owner_->on_local_connect_failed(ev.what);
}

void local_link::handle(net::received& ev) {
  if (ev.id != id_ || id_ == 0 || !live() || ev.data.empty())
    return;
  owner_->on_local_bytes(std::move(ev.data));
}

void local_link::handle(const net::read_closed& ev) {
  if (ev.id != id_ || id_ == 0 || state_ != state::open)
    return;
  become(state::read_closed);
  owner_->on_local_read_closed();
}

void local_link::handle(const net::sent& ev) {
  if (ev.id != id_ || id_ == 0)
    return;
  delivered_bytes_ += ev.bytes;
  owner_->on_local_sent(ev.bytes);
}

void local_link::handle(const net::closed& ev) {
  if (ev.id != id_ || id_ == 0 || state_ == state::closed)
    return;
  become(state::closed);
  id_ = 0;
  owner_->on_local_closed(ev.reason, ev.what);
}

void local_link::write(net::chunk data) {
  if (live())
    self_->send(io_, net::write_req{id_, {std::move(data)}});
  else if (state_ == state::connecting)
    pending_.push_back(std::move(data));
}

void local_link::shutdown_write() {
  if (write_end_ != write_end::open)
    return;
  if (live()) {
    write_end_ = write_end::shut;
    self_->send(io_, net::shutdown_write_req{id_});
  } else if (state_ == state::connecting) {
    write_end_ = write_end::shutdown_pending;
  }
}

void local_link::close() {
  if (live())
    self_->send(io_, net::close_req{id_});
  if (live() || state_ == state::connecting)
    become(state::closing);
}

void local_link::abort() {
  if (live())
    self_->send(io_, net::abort_req{id_});
  if (live() || state_ == state::connecting)
    become(state::closing);
}

void local_link::set_paused(bool paused) {
  auto want = paused ? reading::paused : reading::flowing;
  if (!live() || want == reading_)
    return;
  reading_ = want;
  if (paused)
    self_->send(io_, net::pause_read_req{id_});
  else
    self_->send(io_, net::resume_read_req{id_});
}

void local_link::release() {
  io_ = nullptr;
  pending_.clear();
}

} // namespace drtp
