#pragma once
// The local half of a session: one TCP connection to the application (a
// visitor adopted at the POP, the local service connected to at the agent,
// the user's client at `drtp connect`). Session and rsession own one each;
// it speaks the seam for them and calls back into its owner for what the
// socket says. It buffers writes until a pending connect completes, defers a
// half-close until then too, pauses and resumes reading for backpressure, and
// counts the bytes the socket took (for credit and acknowledgements).
//
//   idle -> connecting -> open -> read_closed -> closed
//             |  |          \________|______-> closing -> closed
//             |  '-> closed (connect failed)      ^
//             '-----------------------------------'  (abort before connected)

#include <cstdint>
#include <string>

#include "caf/actor.hpp"
#include "caf/fwd.hpp"
#include "net/seam/io.hpp"

namespace drtp {

class local_link {
public:
  /// What the owner hears. Calls come only while the owner handles an event
  /// it passed to the link.
  class owner {
  public:
    virtual void on_local_bytes(net::chunk data) = 0;
    /// The application will send no more (EOF); writing may continue.
    virtual void on_local_read_closed() = 0;
    /// The socket took `bytes` more; delivered_bytes() has the total.
    virtual void on_local_sent(uint64_t bytes) = 0;
    virtual void on_local_connect_failed(const std::string& what) = 0;
    virtual void on_local_closed(net::close_reason reason, const std::string& what) = 0;

  protected:
    ~owner() = default;
  };

  enum class state { idle, connecting, open, read_closed, closing, closed };

  local_link(caf::event_based_actor* self, owner* o);

  /// Takes over an accepted connection: open at once.
  void adopt(caf::actor io, net::conn_id id);
  void connect(caf::actor io, uint64_t tag, const std::string& host, uint16_t port,
               uint32_t timeout_ms);

  // -- events from the io, passed on by the owner's behaviour -----------------
  /// The owner's behaviour for the local connection's events: or_else it
  /// with the owner's own handlers.
  caf::message_handler handlers();

  void handle(const net::connected& ev);
  void handle(const net::connect_failed& ev);
  void handle(net::received& ev);
  void handle(const net::read_closed& ev);
  void handle(const net::sent& ev);
  void handle(const net::closed& ev);

  // -- requests ------------------------------------------------------------------
  /// Sent now when open, kept while connecting, dropped once closing.
  void write(net::chunk data);
  /// Half-close once queued writes drained (at connect, if still connecting).
  void shutdown_write();
  /// Graceful close; a link not yet connected is aborted when it connects.
  void close();
  /// Reset now; a link not yet connected is aborted when it connects.
  void abort();
  /// Backpressure: stop reading while the owner holds bytes it cannot send.
  void set_paused(bool paused);

  /// Lets go of the io (from the owner's on_exit: no handle cycles).
  void release();

  state current() const noexcept {
    return state_;
  }
  /// Connected and not yet asked to close: a socket the owner holds.
  bool live() const noexcept {
    return state_ == state::open || state_ == state::read_closed;
  }
  /// The application sent everything it will (EOF read, or closed in order).
  bool eof() const noexcept {
    return state_ == state::read_closed || state_ == state::closed;
  }
  bool is_closed() const noexcept {
    return state_ == state::closed;
  }
  uint64_t delivered_bytes() const noexcept {
    return delivered_bytes_;
  }

private:
  enum class write_end { open, shutdown_pending, shut };
  enum class reading { flowing, paused };

  void become(state next);
  bool connect_pending() const noexcept;

  caf::event_based_actor* self_;
  owner* owner_;
  caf::actor io_;
  net::conn_id id_ = 0;
  state state_ = state::idle;
  write_end write_end_ = write_end::open;
  reading reading_ = reading::flowing;
  net::chunk_list pending_; // written while connecting
  uint64_t delivered_bytes_ = 0;
};

const char* to_string(local_link::state s) noexcept;

} // namespace drtp
