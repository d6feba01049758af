#include "sim/hostile_peer.hpp"

#include "caf/all.hpp"
#include "net/seam/assert.hpp"
#include "net/seam/io.hpp"
#include "net/wire/control.hpp"
#include "net/wire/frame.hpp"
#include "net/wire/handshake.hpp"

namespace drtp::sim {

namespace {

using step_atom = caf::atom_constant<caf::atom("step")>;

// A script is played once; long scripts are the fuzzer's business, but a
// step count bounds every run.
constexpr size_t script_steps_max = 100'000;

class hostile_peer final : public caf::event_based_actor {
public:
  hostile_peer(caf::actor_config& cfg, hostile_peer_params p)
    : caf::event_based_actor(cfg), p_(std::move(p)) {
    DRTP_ASSERT(p_.result != nullptr, "a hostile peer reports to its test");
    DRTP_ASSERT(p_.script.size() <= script_steps_max, "a script is bounded");
  }

  const char* name() const override {
    return "sim.hostile_peer";
  }

  caf::behavior make_behavior() override {
    net::connect_req req;
    req.tag = 1;
    req.host = p_.pop_host;
    req.port = p_.pop_port;
    req.report_sent = false;
    send(p_.io, req);
    return {
      [this](const net::connected& ev) {
        conn_ = ev.id;
        channel_binding_ = ev.channel_binding;
        p_.result->connected = true;
        if (!p_.login) {
          play();
          return;
        }
        hello_ = net::chunk::copy_of(p_.login->hello);
        write(frame_bytes(static_cast<uint8_t>(net::frame_type::hello), 0, 0,
                          p_.login->hello));
      },
      [this](const net::connect_failed&) { finish(); },
      [this](const net::received& ev) { on_received(ev); },
      [](const net::read_closed&) {},
      [](const net::sent&) {},
      [this](const net::closed&) { finish(); },
      [this](step_atom) { play(); },
    };
  }

private:
  void write(const std::string& bytes) {
    send(p_.io, net::write_req{conn_, {net::chunk::copy_of(bytes)}});
  }

  void on_received(const net::received& ev) {
    std::vector<net::frame> frames;
    if (broken_ || decoder_.feed(ev.data, frames) != net::frame_decoder::status::ok) {
      // The POP never sends a malformed frame; if it did, the check that
      // follows the run notices. Stop decoding, keep playing.
      broken_ = true;
      p_.result->malformed_from_pop = true;
    }
    for (auto& f : frames) {
      ++p_.result->frames_received;
      if (f.type == net::frame_type::challenge && p_.login && !challenged_) {
        challenged_ = true;
        net::proof_msg proof;
        proof.signature = net::make_proof(*p_.login->crypto, p_.login->seed,
                                          channel_binding_, hello_, f.payload);
        write(frame_bytes(static_cast<uint8_t>(net::frame_type::proof), 0, 0,
                          net::encode(proof).to_string()));
      } else if (f.type == net::frame_type::accept && p_.login
                 && !p_.result->logged_in) {
        p_.result->logged_in = true;
        play();
      } else if (f.type == net::frame_type::open
                 && p_.result->streams_opened.size() < streams_kept_max) {
        p_.result->streams_opened.push_back(f.stream_id);
      }
    }
  }

  uint32_t resolve(uint32_t stream_id) const {
    if ((stream_id & seen_stream_bit) == 0)
      return stream_id;
    auto& seen = p_.result->streams_opened;
    return seen.empty() ? 0 : seen[(stream_id & ~seen_stream_bit) % seen.size()];
  }

  /// Plays steps until a wait or the end.
  void play() {
    while (next_ < p_.script.size() && !p_.result->closed) {
      auto& s = p_.script[next_++];
      switch (s.what) {
        case hostile_step::kind::write:
          write(s.bytes);
          break;
        case hostile_step::kind::frame:
          write(frame_bytes(s.type, s.flags, resolve(s.stream_id), s.bytes));
          break;
        case hostile_step::kind::wait:
          delayed_send(this, std::chrono::microseconds(s.us), step_atom::value);
          return;
        case hostile_step::kind::close:
          send(p_.io, net::close_req{conn_});
          next_ = p_.script.size();
          break;
        case hostile_step::kind::abort:
          send(p_.io, net::abort_req{conn_});
          next_ = p_.script.size();
          break;
      }
    }
    if (next_ >= p_.script.size())
      p_.result->script_done = true;
  }

  void finish() {
    p_.result->closed = true;
    quit();
  }

  static constexpr size_t streams_kept_max = 4096;

  hostile_peer_params p_;
  net::conn_id conn_ = 0;
  net::frame_decoder decoder_;
  net::chunk hello_;
  std::string channel_binding_; // what its proof is bound to
  bool challenged_ = false;
  bool broken_ = false;
  size_t next_ = 0;
};

} // namespace

std::string frame_bytes(uint8_t type, uint8_t flags, uint32_t stream_id,
                        const std::string& payload) {
  std::string h(net::frame_header_bytes, '\0');
  h[0] = static_cast<char>(type);
  h[1] = static_cast<char>(flags);
  auto size = static_cast<uint32_t>(payload.size());
  for (int i = 0; i < 4; ++i) {
    h[4 + i] = static_cast<char>(stream_id >> (24 - 8 * i));
    h[8 + i] = static_cast<char>(size >> (24 - 8 * i));
  }
  return h + payload;
}

caf::actor spawn_hostile_peer(caf::actor_system& sys, hostile_peer_params p) {
  return sys.spawn<hostile_peer>(std::move(p));
}

} // namespace drtp::sim
