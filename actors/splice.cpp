#include "actors/splice.hpp"

#include "actors/messages.hpp"
#include "caf/all.hpp"
#include "net/wire/frame.hpp"

namespace drtp {

namespace {

class splice_actor final : public caf::event_based_actor {
public:
  splice_actor(caf::actor_config& cfg, env e, splice_leg client, splice_leg agent)
    : caf::event_based_actor(cfg), e_(std::move(e)) {
    legs_[0] = std::move(client);
    legs_[1] = std::move(agent);
  }

  const char* name() const override {
    return "drtp.splice";
  }

  caf::behavior make_behavior() override {
    // A splice lives and dies with its two tunnels (it only ever quits
    // normally, which leaves them be).
    link_to(legs_[0].tunnel);
    link_to(legs_[1].tunnel);
    return {
      [this](stream_data& ev) {
        auto from = leg_of_sender();
        if (from < 0)
          return;
        auto& to = legs_[1 - from];
        auto hdr = headers_.make(net::frame_type::data, to.sid,
                                 static_cast<uint32_t>(ev.data.size()));
        send(e_.io, net::write_req{to.conn, {std::move(hdr), std::move(ev.data)}});
      },
      [this](stream_window& ev) {
        // Credit the far end gave passes on to the near end's sender.
        auto from = leg_of_sender();
        if (from >= 0)
          send(legs_[1 - from].tunnel, stream_window{legs_[1 - from].sid, ev.bytes});
      },
      [this](stream_fin&) {
        auto from = leg_of_sender();
        if (from < 0)
          return;
        auto& to = legs_[1 - from];
        send(e_.io, net::write_req{to.conn, {net::encode_frame(net::frame_type::fin,
                                                               to.sid, nullptr, 0)}});
        fin_[from] = true;
        if (fin_[0] && fin_[1])
          finish();
      },
      [this](stream_rst& ev) {
        auto from = leg_of_sender();
        if (from < 0)
          return;
        auto& to = legs_[1 - from];
        send(to.tunnel, stream_rst{to.sid, ev.code});
        done_[from] = true; // the tunnel already forgot that stream
        finish();
      },
    };
  }

private:
  int leg_of_sender() {
    auto src = caf::actor_cast<caf::actor_addr>(current_sender());
    for (int i = 0; i < 2; ++i)
      if (legs_[i].tunnel.address() == src)
        return i;
    return -1;
  }

  void finish() {
    for (int i = 0; i < 2; ++i)
      if (!done_[i])
        send(legs_[i].tunnel, stream_done{legs_[i].sid});
    quit();
  }

  // Actors hold each other's handles (owner <-> tunnel <-> session); a dead
  // actor lets go of them so that no cycle outlives it.
  void on_exit() override {
    e_ = {};
    legs_[0] = legs_[1] = {};
  }

  env e_;
  splice_leg legs_[2];
  bool fin_[2] = {false, false};
  bool done_[2] = {false, false};
  net::header_pool headers_;
};

} // namespace

caf::actor spawn_splice(caf::actor_system& sys, env e, splice_leg client,
                        splice_leg agent) {
  return sys.spawn<splice_actor>(std::move(e), std::move(client), std::move(agent));
}

} // namespace drtp
