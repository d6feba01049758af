#include "actors/splice.hpp"

#include <optional>

#include "actors/messages.hpp"
#include "actors/session_meter.hpp"
#include "actors/stream_limits.hpp"
#include "caf/all.hpp"
#include "net/seam/assert.hpp"
#include "net/wire/frame_writer.hpp"
#include "net/wire/hex.hpp"

namespace drtp {

namespace {

/// What one leg's sender has done: it streams, it sent its FIN (passed on
/// to the other leg), or it reset (its tunnel already forgot the stream).
enum class leg_state { open, fin_seen, reset };

/// The splice joins its legs until both sent FIN or one reset.
enum class splice_phase { joined, finished };

class splice_actor final : public caf::event_based_actor {
public:
  splice_actor(caf::actor_config& cfg, env e, splice_leg client, splice_leg agent,
               splice_names names, std::shared_ptr<stream_slot> admitted)
    : caf::event_based_actor(cfg), e_(std::move(e)), admitted_(std::move(admitted)),
      names_(std::move(names)) {
    legs_[0] = std::move(client);
    legs_[1] = std::move(agent);
  }

  const char* name() const override {
    return "drtp.splice";
  }

  caf::behavior make_behavior() override {
    // A splice dies with either tunnel, but never takes the other down: it
    // only ever quits normally, which leaves a linked tunnel be. A leg's
    // tunnel ended on purpose (a revoked principal, end_open_sessions)
    // exits abnormally; the default exit handler would pass that on to
    // the agent's tunnel and every stream it carries.
    link_to(legs_[0].tunnel);
    link_to(legs_[1].tunnel);
    set_exit_handler([this](caf::exit_msg& m) {
      if (m.reason == caf::exit_reason::normal)
        return; // as the default handler: a tunnel that quit normally reset its streams
      for (int i = 0; i < 2; ++i)
        if (legs_[i].tunnel.address() == m.source && phase_ == splice_phase::joined) {
          auto& to = legs_[other(i)];
          send(to.tunnel, stream_rst{to.sid, static_cast<uint32_t>(net::rst_code::tunnel_lost)});
          phase_ = splice_phase::finished;
        }
      quit();
    });
    counted_ = true;
    e_.trace->census(e_.host, "splice", 1);
    auto now_ms = e_.clock->unix_ms(clock());
    meter_.emplace(e_, names_.service, "patch_panel", "pop", net::to_hex(names_.session_id),
                   now_ms);
    meter_->facts().set_ends(names_.principal, names_.agent);
    meter_->facts().moved_to(e_.host, now_ms, 0);
    return {
      [this](stream_data& ev) {
        auto from = leg_of_sender();
        if (from < 0)
          return;
        auto& to = legs_[other(from)];
        forwarded_bytes_[other(from)] += ev.data.size();
        // Leg 0 is the client's: what it sends goes toward the service.
        if (from == 0)
          meter_->to_service(ev.data.size());
        else
          meter_->from_service(ev.data.size());
        send(e_.io, net::write_req{to.conn, writer_.data(to.sid, std::move(ev.data))});
      },
      [this](stream_window& ev) {
        // Credit the far end gave passes on to the near end's sender. A leg
        // credits what it took of what we forwarded to it; more is a peer
        // lying about reading, which would fill its link's write queue.
        auto from = leg_of_sender();
        if (from < 0)
          return;
        credited_bytes_[from] += ev.bytes;
        if (credited_bytes_[from] > forwarded_bytes_[from]) {
          send(legs_[from].tunnel,
               stream_violation{legs_[from].sid, "credit for bytes never sent"});
          return;
        }
        send(legs_[other(from)].tunnel, stream_window{legs_[other(from)].sid, ev.bytes});
      },
      [this](stream_fin&) {
        auto from = leg_of_sender();
        if (from < 0)
          return;
        auto& to = legs_[other(from)];
        send(e_.io, net::write_req{to.conn, {writer_.fin(to.sid)}});
        set_state(from, leg_state::fin_seen);
        if (state_[0] == leg_state::fin_seen && state_[1] == leg_state::fin_seen)
          finish();
      },
      [this](stream_rst& ev) {
        auto from = leg_of_sender();
        if (from < 0)
          return;
        auto& to = legs_[other(from)];
        send(to.tunnel, stream_rst{to.sid, ev.code});
        set_state(from, leg_state::reset);
        finish();
      },
    };
  }

private:
  static int other(int leg) {
    DRTP_ASSERT(leg == 0 || leg == 1, "a splice leg is 0 or 1");
    return 1 - leg;
  }

  int leg_of_sender() {
    auto src = caf::actor_cast<caf::actor_addr>(current_sender());
    for (int i = 0; i < 2; ++i)
      if (legs_[i].tunnel.address() == src)
        return i;
    return -1;
  }

  void set_state(int leg, leg_state next) {
    DRTP_ASSERT(leg == 0 || leg == 1, "a splice leg is 0 or 1");
    // A second FIN from one leg is passed on like the first (the tunnel
    // decides what a stream may carry); a reset ends the splice.
    DRTP_ASSERT(state_[leg] != leg_state::reset,
                "a leg that reset sends nothing more through the splice");
    state_[leg] = next;
  }

  void finish() {
    DRTP_ASSERT(phase_ == splice_phase::joined, "a splice finishes once");
    DRTP_ASSERT(state_[0] == leg_state::reset || state_[1] == leg_state::reset
                  || (state_[0] == leg_state::fin_seen && state_[1] == leg_state::fin_seen),
                "a splice ends on a reset or on both FINs");
    phase_ = splice_phase::finished;
    meter_->close(state_[0] == leg_state::reset || state_[1] == leg_state::reset
                    ? session_end::reset
                    : session_end::done);
    for (int i = 0; i < 2; ++i)
      if (state_[i] != leg_state::reset)
        send(legs_[i].tunnel, stream_done{legs_[i].sid});
    quit();
  }

  // Actors hold each other's handles (owner <-> tunnel <-> session); a dead
  // actor lets go of them so that no cycle outlives it.
  void on_exit() override {
    if (counted_)
      e_.trace->census(e_.host, "splice", -1);
    meter_.reset(); // a tunnel's loss: cut
    e_ = {};
    legs_[0] = legs_[1] = {};
    admitted_ = nullptr;
  }

  env e_;
  std::shared_ptr<stream_slot> admitted_;
  splice_names names_;
  bool counted_ = false; // in the tracer's census
  std::optional<session_meter> meter_;
  splice_leg legs_[2];
  leg_state state_[2] = {leg_state::open, leg_state::open};
  splice_phase phase_ = splice_phase::joined;
  /// Per leg: bytes written to it, and credit it returned for them.
  uint64_t forwarded_bytes_[2] = {0, 0};
  uint64_t credited_bytes_[2] = {0, 0};
  net::frame_writer writer_;
};

} // namespace

caf::actor spawn_splice(caf::actor_system& sys, env e, splice_leg client,
                        splice_leg agent, splice_names names,
                        std::shared_ptr<stream_slot> admitted) {
  return sys.spawn<splice_actor>(std::move(e), std::move(client), std::move(agent),
                                 std::move(names), std::move(admitted));
}

} // namespace drtp
