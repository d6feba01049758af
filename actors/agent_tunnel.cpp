#include "actors/agent_tunnel.hpp"

#include <algorithm>

#include "actors/messages.hpp"
#include "actors/rsession.hpp"
#include "actors/session.hpp"
#include "actors/tunnel.hpp"
#include "caf/all.hpp"
#include "net/seam/assert.hpp"
#include "net/wire/handshake.hpp"

namespace drtp {

namespace {

using net::frame;
using net::frame_type;

class agent_tunnel_actor final : public tunnel_actor {
public:
  agent_tunnel_actor(caf::actor_config& cfg, agent_tunnel_params p)
    : tunnel_actor(cfg, p.e, p.parent, opener::dialer), p_(std::move(p)) {
    // nop
  }

  caf::behavior make_behavior() override {
    start();
    net::connect_req req;
    req.tag = 1;
    req.host = p_.pop_host;
    req.port = p_.pop_port;
    req.timeout_ms = e_.limits.connect_timeout_ms;
    req.tls = p_.tls;
    req.report_sent = false; // credit is per stream, in the sessions
    req.write_queue_bytes_max = e_.limits.link_write_queue_bytes_max;
    send(e_.io, std::move(req));
    delayed_send(this, e_.clock->real_delay(ms(e_.limits.handshake_timeout_ms)),
                 hs_timeout_atom::value);
    return connecting();
  }

private:
  enum class state : uint8_t {
    connecting,         // connect_req sent
    awaiting_challenge, // hello sent
    awaiting_verdict,   // proof sent
    up,
    letting_go, // drain_atom: close once the last stream ends
    let_go,     // close_req sent by us: the end is not news
    dead,
  };

  bool legal(state from, state to) const {
    if (to == state::dead)
      return from != state::dead;
    switch (from) {
      case state::connecting:
        return to == state::awaiting_challenge
               || (to == state::awaiting_verdict && p_.certificate);
      case state::awaiting_challenge: return to == state::awaiting_verdict;
      case state::awaiting_verdict: return to == state::up;
      case state::up: return to == state::letting_go;
      case state::letting_go: return to == state::let_go;
      default: return false;
    }
  }

  /// Every transition goes through here.
  void enter(state to) {
    DRTP_ASSERT(legal(state_, to),
                "an agent tunnel moves only connecting -> awaiting_challenge -> "
                "awaiting_verdict -> up -> letting_go -> let_go, or to dead once");
    state_ = to;
    switch (to) {
      case state::awaiting_challenge: become(handshaking()); break;
      case state::awaiting_verdict: become(handshaking()); break;
      case state::up: become(carrying()); break;
      case state::letting_go: become(letting_go()); break;
      case state::let_go: become(closing()); break;
      default: break; // dead quits
    }
  }

  // -- behaviours --------------------------------------------------------------------

  /// What every state handles alike: the link, the stream table, and the
  /// messages meant for other states or for the POP's end, deliberately dropped.
  caf::message_handler common() {
    return common_handlers().or_else(
      [](net::connected&) {
        // One connect_req, one answer: handled while connecting.
      },
      [](net::connect_failed&) {
        // As above.
      },
      [](hs_timeout_atom) {
        // The handshake is over: its timer is moot.
      },
      [](delayed_atom) {
        // The POP's end delays challenges; this end has no such timer.
      },
      [this](attach_visitor& ev) {
        // The POP server hands visitors to its own end of a tunnel only.
        send(e_.io, net::abort_req{ev.conn});
      },
      [this](attach_splice& ev) {
        send(ev.client_tunnel, set_owner{ev.client_sid, nullptr,
                                         static_cast<uint32_t>(net::rst_code::refused)});
      },
      [this](tunnel_renew& ev) { on_renew_req(ev); });
  }

  /// The control plane renewed our certificate: a tunnel that logged in by
  /// the old one tells its POP in band (net::renew_msg), so that the POP
  /// does not close it at the old notAfter; one still handshaking tells it
  /// once up. A tunnel that logs in by secret has nothing to renew.
  void on_renew_req(tunnel_renew& ev) {
    if (!p_.certificate || state_ == state::dead)
      return;
    renew_ = std::move(ev);
    if (state_ == state::up || state_ == state::letting_go)
      send_renew();
  }

  void send_renew() {
    if (renew_.cert_pem.empty())
      return;
    DRTP_ASSERT(!channel_binding_.empty(), "a renewal signs the link's channel binding");
    net::renew_msg m;
    m.cert_pem = std::move(renew_.cert_pem);
    m.signature = e_.crypto->sign(renew_.seed, net::renew_message(channel_binding_, m.cert_pem));
    std::fill(renew_.seed.begin(), renew_.seed.end(), '\0');
    renew_ = {};
    write_control(frame_type::renew, 0, net::encode(m));
    trace("sent the renewed certificate to " + peer_name());
  }

  caf::behavior connecting() {
    return caf::message_handler{
      [this](net::connected& ev) { on_connected(ev); },
      [this](net::connect_failed& ev) {
        fail("cannot reach POP " + p_.pop_host + ":" + std::to_string(p_.pop_port)
             + ": " + ev.what);
      },
    }.or_else(handshaking());
  }

  caf::message_handler handshaking() {
    return caf::message_handler{
      [this](hs_timeout_atom) { fail("handshake with " + peer_name() + " timed out"); },
      [](drain_atom) {
        // The agent lets go only of tunnels that reported up.
      },
      [this](open_stream_req&) { refuse_open(); },
    }.or_else(common());
  }

  caf::behavior carrying() {
    return caf::message_handler{
      [this](drain_atom) {
        enter(state::letting_go);
        streams_changed();
      },
      [this](open_stream_req& ev) { open_client_stream(ev); },
    }.or_else(common());
  }

  caf::behavior letting_go() {
    return caf::message_handler{
      [](drain_atom) {
        // Letting go already.
      },
      [this](open_stream_req& ev) { open_client_stream(ev); },
    }.or_else(common());
  }

  caf::behavior closing() {
    return caf::message_handler{
      [](drain_atom) {
        // Let go already.
      },
      [this](open_stream_req&) { refuse_open(); },
    }.or_else(common());
  }

  // -- the handshake -------------------------------------------------------------------

  void on_connected(const net::connected& ev) {
    conn_ = ev.id;
    channel_binding_ = ev.channel_binding;
    net::hello_msg hello;
    hello.service = p_.service;
    hello.agent_id = p_.agent_id;
    if (p_.client)
      hello.role = static_cast<uint8_t>(net::peer_role::client);
    hello.certificate = p_.certificate;
    hello_payload_ = net::encode(hello);
    write_control(frame_type::hello, 0, hello_payload_);
    enter(p_.certificate ? state::awaiting_verdict : state::awaiting_challenge);
  }

  bool on_frame(const frame& f) override {
    switch (state_) {
      case state::connecting:
      case state::dead:
        return false; // no link yet, or gone
      case state::awaiting_challenge:
        if (f.type == frame_type::challenge)
          return on_challenge(f);
        if (f.type == frame_type::reject)
          return on_reject(f);
        break;
      case state::awaiting_verdict:
        if (f.type == frame_type::accept)
          return on_accept(f);
        if (f.type == frame_type::reject)
          return on_reject(f);
        break;
      case state::up:
      case state::letting_go:
      case state::let_go:
        return on_up_frame(f);
    }
    return protocol_error(std::string("unexpected ") + to_string(f.type)
                          + " during handshake");
  }

  bool on_challenge(const frame& f) {
    net::challenge_msg ch;
    if (!net::decode(f.payload, ch) || ch.nonce.size() != net::nonce_bytes)
      return protocol_error("malformed challenge");
    challenge_payload_ = f.payload;
    net::proof_msg proof;
    proof.signature = net::make_proof(*e_.crypto, p_.signing_key, channel_binding_,
                                      hello_payload_, challenge_payload_);
    write_control(frame_type::proof, 0, net::encode(proof));
    enter(state::awaiting_verdict);
    return true;
  }

  bool on_accept(const frame& f) {
    net::accept_msg acc;
    if (!net::decode(f.payload, acc))
      return protocol_error("malformed accept");
    // The POP decides how often both ends ping; its value is adopted within
    // sane bounds (see agent_tunnel.hpp) so that a POP cannot stall us.
    // The POP's name for this tunnel: with the stream id, a public
    // session's id at both ends (net/seam/session_table).
    tunnel_id_ = acc.tunnel_id;
    auto interval_ms = std::clamp(acc.heartbeat_interval_ms,
                                  adopted_heartbeat_interval_ms_min,
                                  adopted_heartbeat_interval_ms_max);
    go_up(interval_ms);
    return true;
  }

  void go_up(uint32_t heartbeat_interval_ms) {
    DRTP_ASSERT(!hello_payload_.empty() && (challenge_payload_.size() > 0 || p_.certificate),
                "an agent tunnel is up only after its hello and its proof or certificate");
    enter(state::up);
    trace("tunnel up with " + peer_name());
    send(parent_, tunnel_up{this, p_.service, p_.agent_id, p_.pop_host, false});
    start_heartbeats(heartbeat_interval_ms);
    send_renew();
  }

  bool on_reject(const frame& f) {
    net::reject_msg rj;
    if (!net::decode(f.payload, rj))
      return protocol_error("malformed reject");
    send(parent_, tunnel_rejected{rj.code, rj.message});
    // Final: the parent stops; no tunnel_failed to retry on.
    enter(state::dead);
    trace("POP " + p_.pop_host + ":" + std::to_string(p_.pop_port)
          + " rejected service '" + p_.service + "': " + rj.message);
    end_streams_and_link(link_end::close);
    quit();
    return false;
  }

  // -- streams ---------------------------------------------------------------------------

  bool on_open(uint32_t sid, net::open_msg& open) override {
    // A client carries no streams of the POP's: it opens its own.
    if (streams_full() || p_.client) {
      refuse_stream(sid, net::rst_code::refused);
      return true;
    }
    if (open.resumable)
      return open_resumable(sid, open);
    session_params sp;
    sp.e = e_;
    sp.tunnel = this;
    sp.tunnel_conn = conn_;
    sp.sid = sid;
    sp.service = p_.service;
    sp.id = tunnel_id_ + "/" + std::to_string(sid);
    sp.pop = p_.pop_name;
    sp.local_host = p_.local_host;
    sp.local_port = p_.local_port;
    auto s = spawn_session(system(), std::move(sp));
    add_stream(sid, s, opener::acceptor);
    if (e_.trace->verbose())
      trace("stream " + std::to_string(sid) + " opened for " + open.peer);
    return true;
  }

  bool open_resumable(uint32_t sid, const net::open_msg& open) {
    // The session id is the patch-panel client's, relayed by the POP
    // unread: a bad one costs that stream, never the tunnel (which carries
    // every other visitor of the service).
    if (open.session_id.size() != net::session_id_bytes) {
      trace("refused stream " + std::to_string(sid) + ": a session id of "
            + std::to_string(open.session_id.size()) + " bytes");
      refuse_stream(sid, net::rst_code::refused);
      return true;
    }
    add_stream(sid, nullptr, opener::acceptor);
    // A resume goes to the session it names, which checks its proof before
    // acting on anything the stream says; a fresh open makes a new session.
    // A fresh open that names an existing session is refused: a client
    // that lost its first path before the welcome starts a new session.
    request(parent_, caf::infinite, lookup_atom::value, open.session_id)
      .then([this, sid, open](caf::actor s) {
        if (s && open.resume) {
          send(s, attach_stream{this, conn_, sid, open.principal});
          adopt_stream(sid, s);
        } else if (s || open.resume) {
          refuse_stream(sid, net::rst_code::refused);
        } else {
          start_rsession(sid, open);
        }
      });
    return true;
  }

  void start_rsession(uint32_t sid, const net::open_msg& open) {
    if (!streams_.count(sid))
      return; // reset while we looked
    rsession_params rp;
    rp.e = e_;
    rp.session_id = open.session_id;
    rp.principal = open.principal;
    rp.tunnel = this;
    rp.tunnel_conn = conn_;
    rp.sid = sid;
    rp.local_host = p_.local_host;
    rp.local_port = p_.local_port;
    rp.agent_id = p_.agent_id;
    rp.service = p_.service;
    rp.controller = parent_; // the session goes with its agent
    rp.resume_timeout_ms = p_.resume_timeout_ms;
    auto s = spawn_rsession(system(), std::move(rp));
    send(parent_, register_session{open.session_id, s});
    adopt_stream(sid, s);
  }

  /// Client side: a session asks for a new stream to its service.
  void open_client_stream(open_stream_req& req) {
    auto who = caf::actor_cast<caf::actor>(current_sender());
    if (!who || streams_full()) {
      refuse_open();
      return;
    }
    auto sid = next_stream_id();
    write_control(frame_type::open, sid, net::encode(req.open));
    add_stream(sid, who, opener::dialer);
    send(who, stream_opened{this, conn_, sid});
  }

  void refuse_open() {
    if (auto who = caf::actor_cast<caf::actor>(current_sender()))
      send(who, stream_rst{0, static_cast<uint32_t>(net::rst_code::refused)});
  }

  void streams_changed() override {
    if (state_ != state::letting_go || !streams_.empty())
      return;
    DRTP_ASSERT(conn_ != 0, "a tunnel letting go still has its link");
    trace("let go of draining " + peer_name());
    send(e_.io, net::close_req{conn_});
    enter(state::let_go);
  }

  // -- the rest of the up state ---------------------------------------------------------

  void on_goaway(const net::goaway_msg& g) override {
    send(parent_, tunnel_draining{g.message});
  }

  void on_rtt(uint64_t rtt_us) override {
    send(parent_, tunnel_rtt{static_cast<uint32_t>(std::min<uint64_t>(rtt_us, UINT32_MAX))});
  }

  std::string peer_name() const override {
    return "POP " + p_.pop_host + ":" + std::to_string(p_.pop_port);
  }

  /// The tunnel is gone: reset every stream, tell the parent, quit.
  void fail(const std::string& what) override {
    if (state_ == state::dead)
      return;
    auto was = state_;
    enter(state::dead);
    if (was != state::let_go)
      trace(what);
    end_streams_and_link(link_end::abort);
    send(parent_, tunnel_failed{what});
    quit();
  }

  void on_exit() override {
    tunnel_actor::on_exit();
    p_ = {};
  }

  agent_tunnel_params p_;
  state state_ = state::connecting;
  std::string channel_binding_; // of this link (net::connected): the proof signs it
  std::string tunnel_id_; // the POP's name for this tunnel (accept_msg)
  net::chunk hello_payload_;
  net::chunk challenge_payload_;
  tunnel_renew renew_; // a renewal to send once up; empty: none
};

} // namespace

caf::actor spawn_agent_tunnel(caf::actor_system& sys, agent_tunnel_params p) {
  return sys.spawn<agent_tunnel_actor>(std::move(p));
}

} // namespace drtp
