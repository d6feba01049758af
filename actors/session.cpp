#include "actors/session.hpp"

#include <algorithm>
#include <deque>
#include <optional>

#include "actors/local_link.hpp"
#include "actors/messages.hpp"
#include "actors/session_meter.hpp"
#include "caf/all.hpp"
#include "net/seam/assert.hpp"
#include "net/wire/frame_writer.hpp"

namespace drtp {

namespace {

using idle_tick_atom = caf::atom_constant<caf::atom("idletick")>;
using time_point = caf::actor_clock::time_point;

/// The session's life: it streams until the stream is reset (by the peer,
/// or by us when the local side went away before both directions finished),
/// and finishes once nothing is left to do with the local socket.
enum class phase { streaming, reset, finished };

/// One direction of the stream: open until its sender says it writes no more.
enum class half { open, finished };

class session_actor final : public caf::event_based_actor, public local_link::owner {
public:
  session_actor(caf::actor_config& cfg, session_params p)
    : caf::event_based_actor(cfg), p_(std::move(p)), local_(this, this),
      send_credit_bytes_(p_.e.limits.window_bytes) {
  }

  const char* name() const override {
    return "drtp.session";
  }

  caf::behavior make_behavior() override {
    who_ = "session#" + std::to_string(id()) + "/s" + std::to_string(p_.sid);
    counted_ = true;
    p_.e.trace->census(p_.e.host, "session", 1);
    auto now_ms = p_.e.clock->unix_ms(clock());
    meter_.emplace(p_.e, p_.service, "public", p_.conn != 0 ? "pop" : "agent", p_.id, now_ms);
    meter_->facts().moved_to(p_.conn != 0 ? p_.e.host : p_.pop, now_ms, 0);
    if (p_.conn != 0)
      local_.adopt(p_.e.io, p_.conn);
    else
      local_.connect(p_.e.io, p_.sid, p_.local_host, p_.local_port,
                     p_.e.limits.connect_timeout_ms);
    touch();
    arm_idle_tick();
    // The local connection's events go to the link, which calls back
    // on_local_*.
    return caf::message_handler{
      // -- the stream ------------------------------------------------------------
      [this](stream_data& ev) {
        touch();
        if (phase_ == phase::streaming && from_peer_ == half::open) {
          // At the POP the peer is the agent (the service's replies).
          if (pop_side())
            meter_->from_service(ev.data.size());
          else
            meter_->to_service(ev.data.size());
          local_.write(std::move(ev.data));
        }
      },
      [this](stream_fin&) {
        from_peer_ = half::finished;
        local_.shutdown_write();
      },
      [this](stream_rst& ev) { on_stream_rst(ev); },
      [this](stream_window& ev) {
        touch();
        // An honest peer returns what it took of what we sent, so credit
        // never exceeds the window; more is a peer that lies about reading
        // (and would have us fill the link's write queue): the tunnel ends.
        if (send_credit_bytes_ + ev.bytes > p_.e.limits.window_bytes) {
          if (phase_ == phase::streaming)
            send(p_.tunnel, stream_violation{p_.sid, "credit above the window"});
          return;
        }
        send_credit_bytes_ += ev.bytes;
        flush_held();
      },
      [this](idle_tick_atom) { on_idle_tick(); },
    }.or_else(local_.handlers());
  }

private:
  void trace(const std::string& what) {
    p_.e.trace->emit(p_.e.host, who_, what);
  }

  /// The POP's end adopted a visitor; the agent's connects to the service.
  bool pop_side() const {
    return p_.conn != 0;
  }

  void become_phase(phase next) {
    DRTP_ASSERT(phase_ == phase::streaming
                  || (phase_ == phase::reset && next == phase::finished),
                "session: streaming -> reset -> finished, never back");
    phase_ = next;
  }

  // -- the idle timeout -------------------------------------------------------------

  /// Bytes moved one way or the other (or credit came back): not idle.
  void touch() {
    last_active_ = p_.e.clock->now(clock());
  }

  /// Checked four times per timeout: an idle session is closed between 1
  /// and 1.25 timeouts after its last byte, for one timer per session.
  void arm_idle_tick() {
    auto timeout_ms = p_.e.limits.session_idle_timeout_ms;
    if (timeout_ms == 0)
      return;
    auto tick = std::chrono::milliseconds(std::max<uint32_t>(timeout_ms / 4, 1));
    delayed_send(this, p_.e.clock->real_delay(tick), idle_tick_atom::value);
  }

  void on_idle_tick() {
    if (phase_ != phase::streaming)
      return; // ending already
    auto timeout = std::chrono::milliseconds(p_.e.limits.session_idle_timeout_ms);
    auto idle = p_.e.clock->now(clock()) - last_active_;
    if (idle < timeout) {
      arm_idle_tick();
      return;
    }
    trace("no bytes either way for "
          + std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(idle).count())
          + " ms (idle timeout " + std::to_string(p_.e.limits.session_idle_timeout_ms)
          + " ms); closing");
    become_phase(phase::reset);
    end_ = session_end::idle;
    send(p_.tunnel, stream_rst{p_.sid, static_cast<uint32_t>(net::rst_code::closed)});
    local_.abort();
    if (!local_.live() && local_.current() != local_link::state::closing)
      finish(); // no socket to wait for
  }

  bool both_finished() const {
    return to_peer_ == half::finished && from_peer_ == half::finished;
  }

  // -- the local connection ------------------------------------------------------

  void on_local_bytes(net::chunk data) override {
    if (phase_ != phase::streaming)
      return;
    touch();
    if (pop_side())
      meter_->to_service(data.size());
    else
      meter_->from_service(data.size());
    held_.push_back(std::move(data));
    flush_held();
    if (!held_.empty())
      local_.set_paused(true);
  }

  void on_local_read_closed() override {
    maybe_send_fin();
  }

  void on_local_sent(uint64_t bytes) override {
    // Credit flows back only once bytes left for the local socket, so the
    // peer can never make us hold more than one window.
    touch();
    consumed_bytes_ += bytes;
    DRTP_ASSERT(consumed_bytes_ <= p_.e.limits.window_bytes || phase_ != phase::streaming,
                "credit returned to the peer never exceeds the window it had");
    if (consumed_bytes_ >= p_.e.limits.window_bytes / 4 && phase_ == phase::streaming) {
      send(p_.tunnel, stream_window{p_.sid, static_cast<uint32_t>(consumed_bytes_)});
      consumed_bytes_ = 0;
    }
  }

  void on_local_connect_failed(const std::string& what) override {
    trace("cannot reach local service " + p_.local_host + ":"
          + std::to_string(p_.local_port) + ": " + what);
    end_ = session_end::local_failed;
    if (phase_ == phase::streaming)
      send(p_.tunnel,
           stream_rst{p_.sid, static_cast<uint32_t>(net::rst_code::connect_failed)});
    finish();
  }

  void on_local_closed(net::close_reason reason, const std::string& what) override {
    if (phase_ == phase::streaming && reason == net::close_reason::peer) {
      // Both directions of the socket ended in order; bytes still held for
      // lack of credit go out first, then the FIN, then we finish.
      flush_held();
      if (to_peer_ == half::finished)
        finish();
      return;
    }
    if (phase_ == phase::streaming && !both_finished()) {
      // The local side went away before both directions finished.
      trace(std::string("local connection ") + net::to_string(reason)
            + (what.empty() ? "" : ": " + what)
            + " before the stream finished; resetting it");
      become_phase(phase::reset);
      send(p_.tunnel, stream_rst{p_.sid, static_cast<uint32_t>(net::rst_code::closed)});
    }
    finish();
  }

  // -- the stream ------------------------------------------------------------------

  void on_stream_rst(const stream_rst& ev) {
    if (both_finished()) {
      // Both directions were complete; only the stream's bookkeeping was cut
      // (a drained tunnel let go). The bytes queued for the local socket
      // still go out, then it closes as usual.
      return;
    }
    if (phase_ == phase::streaming)
      become_phase(phase::reset);
    if (p_.e.trace->verbose())
      trace(std::string("stream reset by peer: ")
            + to_string(static_cast<net::rst_code>(ev.code)));
    // Without a connection yet, the pending connect ends the session (the
    // link aborts it when it connects).
    local_.abort();
    // A socket that already closed in order, its last bytes held for credit
    // that will never come: nothing is left to wait for.
    if (local_.is_closed())
      finish();
  }

  void flush_held() {
    while (!held_.empty() && send_credit_bytes_ > 0 && phase_ == phase::streaming) {
      auto& front = held_.front();
      auto n = std::min<uint64_t>({front.size(), send_credit_bytes_,
                                   net::frame_data_bytes_max});
      if (n == front.size()) {
        write_data(std::move(front));
        held_.pop_front();
      } else {
        write_data(front.slice(0, n));
        front = front.slice(n, front.size() - n);
      }
      send_credit_bytes_ -= n;
    }
    DRTP_ASSERT(send_credit_bytes_ <= p_.e.limits.window_bytes,
                "stream credit never above the window");
    if (held_.empty())
      local_.set_paused(false);
    maybe_send_fin();
  }

  void maybe_send_fin() {
    if (local_.eof() && held_.empty() && to_peer_ == half::open
        && phase_ == phase::streaming) {
      to_peer_ = half::finished;
      send(p_.e.io, net::write_req{p_.tunnel_conn, {writer_.fin(p_.sid)}});
      if (local_.is_closed())
        finish();
    }
  }

  void write_data(net::chunk data) {
    DRTP_ASSERT(data.size() <= send_credit_bytes_, "never send beyond the peer's credit");
    DRTP_ASSERT(phase_ == phase::streaming, "a reset or finished session sends no data");
    send(p_.e.io, net::write_req{p_.tunnel_conn, writer_.data(p_.sid, std::move(data))});
  }

  void finish() {
    if (phase_ == phase::finished)
      return;
    DRTP_ASSERT(!local_.live(), "a finished session holds no local socket");
    if (!end_)
      end_ = both_finished() ? session_end::done : session_end::reset;
    meter_->close(*end_);
    become_phase(phase::finished);
    send(p_.tunnel, stream_done{p_.sid});
    quit();
  }

  // Actors hold each other's handles (owner <-> tunnel <-> session); a dead
  // actor lets go of them so that no cycle outlives it.
  void on_exit() override {
    if (counted_)
      p_.e.trace->census(p_.e.host, "session", -1);
    meter_.reset(); // closes as cut unless finish() closed it
    p_ = {};
    local_.release();
  }

  session_params p_;
  bool counted_ = false; // in the tracer's census
  std::optional<session_meter> meter_; // from make_behavior to on_exit
  std::optional<session_end> end_;     // why, once known
  std::string who_;
  net::frame_writer writer_;
  local_link local_;
  /// Local bytes waiting for credit; bounded by the reads done before pausing.
  std::deque<net::chunk> held_;
  uint64_t send_credit_bytes_;
  uint64_t consumed_bytes_ = 0;
  time_point last_active_{};
  phase phase_ = phase::streaming;
  half to_peer_ = half::open;   // our FIN: the local side sent everything
  half from_peer_ = half::open; // the peer's FIN
};

} // namespace

caf::actor spawn_session(caf::actor_system& sys, session_params p) {
  return sys.spawn<session_actor>(std::move(p));
}

} // namespace drtp
