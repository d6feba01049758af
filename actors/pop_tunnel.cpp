#include "actors/pop_tunnel.hpp"

#include "actors/messages.hpp"
#include "actors/session.hpp"
#include "actors/splice.hpp"
#include "actors/tunnel.hpp"
#include "caf/all.hpp"
#include "net/seam/assert.hpp"
#include "net/wire/civil_time.hpp"
#include "net/wire/handshake.hpp"

namespace drtp {

namespace {

using net::frame;
using net::frame_type;

using hello_deadline_atom = caf::atom_constant<caf::atom("hellodl")>;
using cert_expiry_atom = caf::atom_constant<caf::atom("certexp")>;

/// What a peer's certificate says, fit for one log line: printable ASCII,
/// at most `max` bytes.
std::string printable(const std::string& s, size_t max = 160) {
  std::string out;
  for (char c : s.substr(0, max))
    out.push_back(c >= 0x20 && c < 0x7f ? c : '?');
  return out;
}

class pop_tunnel_actor final : public tunnel_actor {
public:
  pop_tunnel_actor(caf::actor_config& cfg, pop_tunnel_params p)
    : tunnel_actor(cfg, p.e, p.parent, opener::acceptor), p_(std::move(p)) {
    // nop
  }

  caf::behavior make_behavior() override {
    start();
    conn_ = p_.conn;
    send(e_.io, net::adopt_req{conn_, this, false, e_.limits.link_write_queue_bytes_max});
    delayed_send(this, e_.clock->real_delay(ms(e_.limits.handshake_timeout_ms)),
                 hs_timeout_atom::value);
    // A link costs a handshake slot: one that says nothing gives it back soon.
    delayed_send(this, e_.clock->real_delay(ms(p_.hello_deadline_ms)),
                 hello_deadline_atom::value);
    return handshaking();
  }

private:
  enum class state : uint8_t {
    awaiting_hello,
    delaying_challenge, // until the POP server's admission says when
    awaiting_proof,     // challenge sent
    up,
    draining, // goaway sent: no new streams
    rejected, // reject and close_req sent: waiting for the link to close
    dead,
  };

  bool legal(state from, state to) const {
    if (to == state::dead)
      return from != state::dead;
    switch (from) {
      case state::awaiting_hello:
        return to == state::delaying_challenge || to == state::rejected
               || (to == state::up && !cert_pem_.empty());
      case state::delaying_challenge: return to == state::awaiting_proof;
      case state::awaiting_proof: return to == state::up || to == state::rejected;
      case state::up: return to == state::draining;
      default: return false;
    }
  }

  /// Every transition goes through here.
  void enter(state to) {
    DRTP_ASSERT(legal(state_, to),
                "a POP tunnel moves only awaiting_hello -> delaying_challenge -> "
                "awaiting_proof -> up -> draining, from a handshake to rejected, or "
                "to dead once");
    state_ = to;
    switch (to) {
      case state::delaying_challenge: become(delaying()); break;
      case state::awaiting_proof: become(handshaking()); break;
      case state::up: become(carrying()); break;
      case state::draining: become(draining()); break;
      case state::rejected: become(rejected()); break;
      default: break; // awaiting_hello is the first behaviour; dead quits
    }
  }

  bool handshake_pending() const {
    return state_ == state::awaiting_hello || state_ == state::delaying_challenge
           || state_ == state::awaiting_proof;
  }

  // -- behaviours --------------------------------------------------------------------

  /// What every state handles alike: the link, the stream table, and what
  /// is meant for the agent's end, deliberately refused.
  caf::message_handler common() {
    return common_handlers().or_else([this](open_stream_req&) {
      // Client streams are opened by the client's end, never by the POP.
      if (auto who = caf::actor_cast<caf::actor>(current_sender()))
        send(who, stream_rst{0, static_cast<uint32_t>(net::rst_code::refused)});
    });
  }

  /// Not carrying streams (yet, or any more): new ones are refused.
  caf::message_handler refusing() {
    return caf::message_handler{
      [this](attach_visitor& ev) { send(e_.io, net::abort_req{ev.conn}); },
      [this](attach_splice& ev) { refuse_splice(ev); },
      [](delayed_atom) {
        // Only a delaying handshake waits for it.
      },
      [](overlimit_atom) {
        // As delayed_atom.
      },
      [](hello_deadline_atom) {
        // Only a link that sent no hello is closed by it.
      },
      [](evict_atom) {
        // Up: the handshake slot is given back already.
      },
      [](cert_expiry_atom, uint64_t) {
        // Only a tunnel that is up is ended by it.
      },
    }.or_else(common());
  }

  caf::behavior handshaking() {
    return caf::message_handler{
      [this](hs_timeout_atom) {
        reject(net::reject_code::handshake_timeout);
        count_handshake_failure("timeout");
        fail("handshake with " + peer_name() + " timed out");
      },
      [this](hello_deadline_atom) {
        // No reject: a peer that sent nothing may be an agent on a slow
        // path, which must retry rather than give up.
        if (state_ == state::awaiting_hello) {
          count_handshake_failure("no_hello");
          fail("no hello from " + peer_name() + " within "
               + std::to_string(p_.hello_deadline_ms) + " ms");
        }
      },
      [this](evict_atom) {
        count_handshake_failure("evicted");
        fail("handshake with " + peer_name()
             + " evicted: the POP's handshake table is full");
      },
      [](drain_atom) {
        // The POP server drains only tunnels that reported up.
      },
    }.or_else(refusing());
  }

  caf::behavior delaying() {
    return caf::message_handler{
      [this](delayed_atom) {
        send_challenge();
        enter(state::awaiting_proof);
      },
      [this](overlimit_atom) {
        // No reject either: the agent retries later, within the budget.
        count_handshake_failure("overlimit");
        fail("handshake with " + peer_name() + " from " + p_.peer_host
             + " refused: too many login attempts from its network");
      },
    }.or_else(handshaking());
  }

  caf::behavior carrying() {
    return caf::message_handler{
      [this](drain_atom) { start_draining(); },
      [this](service_gone_atom) { send_away(); },
      [this](cert_expiry_atom, uint64_t gen) { on_cert_expiry(gen); },
      [this](attach_visitor& ev) { open_stream(ev); },
      [this](attach_splice& ev) { splice(ev); },
      [](hs_timeout_atom) {
        // The handshake is over: its timer is moot.
      },
    }.or_else(refusing());
  }

  caf::behavior draining() {
    return caf::message_handler{
      [](drain_atom) {
        // goaway is sent already.
      },
      [this](service_gone_atom) { send_away(); },
      [this](cert_expiry_atom, uint64_t gen) { on_cert_expiry(gen); },
      [](hs_timeout_atom) {
        // As when up.
      },
    }.or_else(refusing());
  }

  caf::behavior rejected() {
    return caf::message_handler{
      [](net::received&) {
        // Refused: whatever the peer still sends is moot.
      },
      [this](hs_timeout_atom) {
        // The reject is sent already; the peer did not close in time.
        fail("handshake with " + peer_name() + " timed out");
      },
      [this](evict_atom) {
        fail("rejected handshake with " + peer_name() + " evicted");
      },
      [](drain_atom) {
        // Not up: nothing to drain.
      },
    }.or_else(refusing());
  }

  // -- the handshake -------------------------------------------------------------------

  bool on_frame(const frame& f) override {
    switch (state_) {
      case state::awaiting_hello:
        if (f.type == frame_type::hello)
          return on_hello(f);
        break;
      case state::delaying_challenge:
        break; // the peer speaks before its challenge
      case state::awaiting_proof:
        if (f.type == frame_type::proof)
          return on_proof(f);
        break;
      case state::up:
      case state::draining:
        return on_up_frame(f);
      case state::rejected:
      case state::dead:
        return false;
    }
    return protocol_error(std::string("unexpected ") + to_string(f.type)
                          + " during handshake");
  }

  bool on_hello(const frame& f) {
    net::hello_msg hello;
    if (!net::decode(f.payload, hello))
      return protocol_error("malformed hello");
    hello_payload_ = f.payload;
    agent_id_ = hello.agent_id;
    service_ = hello.service;
    if (hello.version != net::protocol_version)
      return refuse(net::reject_code::bad_version, hello.service);
    auto i = p_.auth->service_keys.find(hello.service);
    if (i == p_.auth->service_keys.end())
      return refuse(net::reject_code::unknown_service, hello.service);
    if (hello.certificate)
      return certificate_login(hello);
    if (hello.role == static_cast<uint8_t>(net::peer_role::client)) {
      peer_ = net::peer_role::client;
      if (!take_principal_key(hello))
        return false;
    } else if (hello.role == static_cast<uint8_t>(net::peer_role::agent)) {
      public_key_ = i->second;
    } else {
      return protocol_error("unknown role");
    }
    // Admission decides when (or whether) the challenge goes out: the
    // attempts of the source's network are counted across its links.
    send(parent_, attempt_atom::value);
    enter(state::delaying_challenge);
    return true;
  }

  /// The TLS handshake proved the key of the link's certificate: it logs
  /// in if the CA signed it, it is valid now, names this service (or
  /// principal) and is not revoked. No challenge: accepted or refused now.
  bool certificate_login(const net::hello_msg& hello) {
    bool client = hello.role == static_cast<uint8_t>(net::peer_role::client);
    if (!client && hello.role != static_cast<uint8_t>(net::peer_role::agent))
      return protocol_error("unknown role");
    peer_ = client ? net::peer_role::client : net::peer_role::agent;
    auto name = client ? hello.agent_id : hello.service;
    net::crypto::certificate_info info;
    auto now_s = e_.clock->unix_ms(clock()) / 1000;
    auto why = p_.auth->check_certificate(*e_.crypto, p_.peer_cert_pem, client, name, now_s,
                                          info);
    auto who = std::string(client ? "principal '" : "agent '") + printable(hello.agent_id)
               + "' for service '" + printable(hello.service) + "' from " + p_.peer_host;
    if (!why.empty()) {
      audit(false, "denied certificate login of " + who
              + (info.serial.empty() ? "" : " (serial " + printable(info.serial, 40) + ")")
              + ": " + printable(why),
            false);
      return refuse(net::reject_code::bad_certificate, hello.service,
                    "certificate refused: " + printable(why));
    }
    if (client && !p_.auth->allowed(name, hello.service)) {
      audit(false, "denied principal '" + printable(name) + "' from " + p_.peer_host
              + " for service '" + hello.service + "': not on its allow list",
            true);
      return refuse(net::reject_code::not_authorized, hello.service,
                    p_.auth->refusal_reason(name, hello.service));
    }
    audit(true, "certificate login of " + who + " (serial "
            + info.serial + ", valid until " + net::rfc3339(info.not_after_s * 1000) + ")",
          true);
    cert_pem_ = p_.peer_cert_pem;
    net::accept_msg acc;
    acc.tunnel_id = who_;
    acc.heartbeat_interval_ms = e_.limits.heartbeat_interval_ms;
    write_control(frame_type::accept, 0, net::encode(acc));
    go_up();
    arm_cert_expiry(info.not_after_s);
    return true;
  }

  /// Closed at notAfter by the POP's clock unless the agent renews in band
  /// before (a renewal arms a later generation; the older timer is moot).
  void arm_cert_expiry(int64_t not_after_s) {
    ++cert_gen_;
    auto left_ms = std::max<int64_t>(0, not_after_s * 1000 - e_.clock->unix_ms(clock()));
    delayed_send(this, e_.clock->real_delay(std::chrono::milliseconds(left_ms)),
                 cert_expiry_atom::value, cert_gen_);
  }

  /// An up tunnel's agent renewed its certificate (net::renew_msg): the
  /// same checks as a certificate login, plus the new key's signature over
  /// this link's channel binding. A renewal refused ends nothing: the old
  /// certificate holds until its notAfter. Bounded per tunnel, as a peer
  /// could make the POP verify signatures in a loop.
  bool on_renew(const frame& f) override {
    if (cert_pem_.empty())
      return protocol_error("renew on a tunnel that logged in by secret");
    net::renew_msg m;
    if (!net::decode(f.payload, m))
      return protocol_error("malformed renew");
    auto now = e_.clock->now(clock());
    if (now - renew_window_start_ >= std::chrono::seconds(renew_window_s)) {
      renew_window_start_ = now;
      renews_in_window_ = 0;
    }
    if (++renews_in_window_ > renews_per_window_max)
      return protocol_error("more than " + std::to_string(renews_per_window_max)
                            + " renewals within " + std::to_string(renew_window_s) + " s");
    bool client = peer_ == net::peer_role::client;
    auto name = client ? agent_id_ : service_;
    net::crypto::certificate_info info;
    auto why = p_.auth->check_certificate(*e_.crypto, m.cert_pem, client, name,
                                          e_.clock->unix_ms(clock()) / 1000, info);
    if (why.empty()
        && !e_.crypto->verify(info.public_key, net::renew_message(p_.channel_binding, m.cert_pem),
                              m.signature))
      why = "the renewal is not signed by the new certificate's key";
    if (!why.empty()) {
      audit(false, "refused renewed certificate of " + peer_name() + " for service '" + service_
              + "': " + printable(why),
            true);
      return true;
    }
    audit(true, "renewed certificate of " + peer_name() + " for service '" + service_
            + "' (serial " + info.serial + ", valid until " + net::rfc3339(info.not_after_s * 1000)
            + ")",
          true);
    cert_pem_ = std::move(m.cert_pem);
    arm_cert_expiry(info.not_after_s);
    send(parent_, tunnel_cert_renewed{cert_pem_});
    return true;
  }

  void on_cert_expiry(uint64_t gen) {
    if (gen != cert_gen_)
      return; // renewed since
    net::goaway_msg g;
    g.code = static_cast<uint16_t>(net::reject_code::bad_certificate);
    g.message = "client certificate expired";
    write_control(frame_type::goaway, 0, net::encode(g));
    enter(state::dead);
    trace("certificate of " + peer_name() + " expired: tunnel closed");
    end_streams_and_link(link_end::close);
    quit();
  }

  /// A client proves its principal's secret: known and not revoked.
  bool take_principal_key(const net::hello_msg& hello) {
    auto pr = p_.auth->principals.find(hello.agent_id);
    if (pr == p_.auth->principals.end() || pr->second.revoked) {
      audit(false, "denied principal '" + hello.agent_id + "' from " + p_.peer_host
            + " for service '" + hello.service + "': "
            + (pr == p_.auth->principals.end() ? "unknown principal" : "revoked"),
            false);
      return refuse(net::reject_code::unknown_principal, hello.service);
    }
    public_key_ = pr->second.public_key;
    return true;
  }

  void send_challenge() {
    net::challenge_msg ch;
    ch.nonce = e_.rng->bytes(net::nonce_bytes);
    challenge_payload_ = net::encode(ch);
    write_control(frame_type::challenge, 0, challenge_payload_);
  }

  bool on_proof(const frame& f) {
    DRTP_ASSERT(!challenge_payload_.empty(), "a proof is read only after the challenge is sent");
    net::proof_msg proof;
    if (!net::decode(f.payload, proof))
      return protocol_error("malformed proof");
    if (!net::check_proof(*e_.crypto, public_key_, proof.signature, p_.channel_binding,
                          hello_payload_, challenge_payload_)) {
      if (peer_ != net::peer_role::client)
        return refuse(net::reject_code::bad_proof, service_);
      audit(false, "denied principal '" + agent_id_ + "' from " + p_.peer_host
            + " for service '" + service_ + "': wrong secret",
            false);
      return refuse(net::reject_code::unknown_principal, service_);
    }
    if (peer_ == net::peer_role::client) {
      if (!p_.auth->allowed(agent_id_, service_)) {
        audit(false, "denied principal '" + agent_id_ + "' from " + p_.peer_host
              + " for service '" + service_ + "': not on its allow list",
            true);
        return refuse(net::reject_code::not_authorized, service_,
                      p_.auth->refusal_reason(agent_id_, service_));
      }
      audit(true, "allowed principal '" + agent_id_ + "' from " + p_.peer_host
            + " for service '" + service_ + "'", true);
    }
    net::accept_msg acc;
    acc.tunnel_id = who_;
    acc.heartbeat_interval_ms = e_.limits.heartbeat_interval_ms;
    write_control(frame_type::accept, 0, net::encode(acc));
    go_up();
    return true;
  }

  void go_up() {
    DRTP_ASSERT(!hello_payload_.empty() && (!challenge_payload_.empty() || !cert_pem_.empty()),
                "a POP tunnel is up only after a hello and a valid proof or certificate");
    enter(state::up);
    e_.stats->counter(net::metric::pop_tunnel_logins_total, {kind_label(), "ok"}).add();
    trace("tunnel up with " + peer_name() + " for service '" + service_ + "'");
    send(parent_, tunnel_up{this, service_, agent_id_, p_.peer_host,
                            peer_ == net::peer_role::client, public_key_, cert_pem_});
    start_heartbeats(e_.limits.heartbeat_interval_ms);
  }

  void reject(net::reject_code code, std::string message = {}) {
    net::reject_msg rj;
    rj.code = static_cast<uint16_t>(code);
    rj.message = message.empty() ? to_string(code) : message.substr(0, net::reason_bytes_max);
    write_control(frame_type::reject, 0, net::encode(rj));
  }

  /// Rejects the peer and waits for the link to close. Returns false: the
  /// rest of the batch is moot.
  bool refuse(net::reject_code code, const std::string& service, std::string message = {}) {
    e_.stats->counter(net::metric::pop_tunnel_logins_total, {kind_label(), reject_label(code)})
      .add();
    trace(std::string("refused ")
          + (peer_ == net::peer_role::client ? "client" : "agent") + " from "
          + p_.peer_host + " for service '" + service
          + "': " + (message.empty() ? to_string(code) : message));
    if (code == net::reject_code::bad_proof || code == net::reject_code::unknown_service
        || code == net::reject_code::unknown_principal
        || code == net::reject_code::bad_certificate) {
      e_.stats->counter(net::metric::auth_failures_total, {reject_label(code)}).add();
      send(parent_, auth_failed{p_.peer_host, service});
    }
    reject(code, std::move(message));
    // Let the reject reach the agent, then go.
    send(e_.io, net::close_req{conn_});
    enter(state::rejected);
    return false;
  }

  void on_protocol_error() override {
    if (handshake_pending())
      reject(net::reject_code::protocol_error);
  }

  // -- streams ---------------------------------------------------------------------------

  bool on_open(uint32_t sid, net::open_msg& open) override {
    // Only a patch-panel client opens streams here, and not during a drain.
    if (streams_full() || peer_ != net::peer_role::client || state_ == state::draining) {
      refuse_stream(sid, net::rst_code::refused);
      return true;
    }
    // The POP server finds an agent to splice to.
    add_stream(sid, nullptr, opener::dialer);
    open.principal = agent_id_;
    send(parent_, client_stream{this, conn_, sid, open, service_});
    return true;
  }

  void open_stream(attach_visitor& ev) {
    if (streams_full()) {
      send(e_.io, net::abort_req{ev.conn});
      return;
    }
    auto sid = next_stream_id();
    // OPEN goes to the io before the session exists, so it precedes every
    // DATA frame the session writes on the link.
    net::open_msg open;
    open.peer = ev.peer;
    write_control(frame_type::open, sid, net::encode(open));
    session_params sp;
    sp.e = e_;
    sp.tunnel = this;
    sp.tunnel_conn = conn_;
    sp.sid = sid;
    sp.service = service_;
    sp.id = who_ + "/" + std::to_string(sid);
    sp.conn = ev.conn;
    sp.admitted = std::move(ev.admitted);
    auto s = spawn_session(system(), std::move(sp));
    add_stream(sid, s, opener::acceptor);
  }

  /// An agent's tunnel: splice a client's stream to a new one here.
  void splice(attach_splice& ev) {
    if (streams_full()) {
      refuse_splice(ev);
      return;
    }
    auto sid = next_stream_id();
    write_control(frame_type::open, sid, net::encode(ev.open));
    auto sp = spawn_splice(system(), e_,
                           splice_leg{ev.client_tunnel, ev.client_conn, ev.client_sid},
                           splice_leg{this, conn_, sid},
                           splice_names{service_, ev.open.session_id, ev.open.principal, agent_id_},
                           std::move(ev.admitted));
    add_stream(sid, sp, opener::acceptor);
    send(ev.client_tunnel, set_owner{ev.client_sid, sp, 0});
  }

  void refuse_splice(attach_splice& ev) {
    send(ev.client_tunnel, set_owner{ev.client_sid, nullptr,
                                     static_cast<uint32_t>(net::rst_code::refused)});
  }

  void start_draining() {
    // Tell the agent to move on; carry the open streams to their end.
    enter(state::draining);
    net::goaway_msg g;
    g.code = static_cast<uint16_t>(net::reject_code::draining);
    g.message = "POP is draining";
    write_control(frame_type::goaway, 0, net::encode(g));
  }

  /// The service is gone from this POP: the agent hears goaway (so it does
  /// not count this POP among its tunnels), then the link closes after it.
  void send_away() {
    net::goaway_msg g;
    g.code = static_cast<uint16_t>(net::reject_code::unknown_service);
    g.message = "service removed from this POP";
    write_control(frame_type::goaway, 0, net::encode(g));
    enter(state::dead);
    trace("service '" + service_ + "' removed: goaway to " + peer_name());
    end_streams_and_link(link_end::close);
    quit();
  }

  void streams_changed() override {
    if (state_ == state::up || state_ == state::draining)
      send(parent_, tunnel_load{static_cast<uint32_t>(streams_.size())});
  }

  // -- the rest ----------------------------------------------------------------------------

  const char* kind_label() const {
    return peer_ == net::peer_role::client ? "client" : "agent";
  }

  /// A reject code as a metric label (net/wire's to_string is for people).
  static const char* reject_label(net::reject_code c) {
    switch (c) {
      case net::reject_code::bad_version: return "bad_version";
      case net::reject_code::unknown_service: return "unknown_service";
      case net::reject_code::bad_proof: return "bad_proof";
      case net::reject_code::handshake_timeout: return "timeout";
      case net::reject_code::draining: return "draining";
      case net::reject_code::protocol_error: return "protocol_error";
      case net::reject_code::not_authorized: return "not_authorized";
      case net::reject_code::unknown_principal: return "unknown_principal";
      case net::reject_code::bad_certificate: return "bad_certificate";
    }
    return "other";
  }

  void count_handshake_failure(const char* reason) {
    e_.stats->counter(net::metric::handshakes_failed_total, {reason}).add();
  }

  std::string peer_name() const override {
    return (peer_ == net::peer_role::client ? "client " : "agent ")
           + (agent_id_.empty() ? p_.peer_host : agent_id_);
  }

  /// Authorization decisions, always logged (never with secrets).
  /// `authenticated`: the peer proved its secret (see tracer::audit).
  void audit(bool allowed, const std::string& what, bool authenticated) {
    e_.stats->counter(net::metric::audit_decisions_total, {allowed ? "allow" : "deny"}).add();
    e_.trace->audit(e_.host, what, authenticated);
  }

  /// The tunnel is gone: reset every stream and quit.
  void fail(const std::string& what) override {
    if (state_ == state::dead)
      return;
    auto was = state_;
    enter(state::dead);
    trace(what);
    end_streams_and_link(was == state::rejected ? link_end::close : link_end::abort);
    quit();
  }

  void on_exit() override {
    tunnel_actor::on_exit();
    p_ = {};
  }

  pop_tunnel_params p_;
  state state_ = state::awaiting_hello;
  net::peer_role peer_ = net::peer_role::agent;
  net::chunk hello_payload_;
  net::chunk challenge_payload_;
  std::string service_;
  std::string agent_id_;
  std::string public_key_; // of the service or principal the hello names
  std::string cert_pem_;   // logged in by it (or renewed to); empty: by secret
  uint64_t cert_gen_ = 0;  // the expiry timer that counts (see arm_cert_expiry)
  static constexpr uint32_t renew_window_s = 60;
  static constexpr uint32_t renews_per_window_max = 4;
  caf::actor_clock::time_point renew_window_start_{};
  uint32_t renews_in_window_ = 0;
};

} // namespace

caf::actor spawn_pop_tunnel(caf::actor_system& sys, pop_tunnel_params p) {
  return sys.spawn<pop_tunnel_actor>(std::move(p));
}

} // namespace drtp
