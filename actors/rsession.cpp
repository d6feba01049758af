#include "actors/rsession.hpp"

#include <algorithm>
#include <deque>
#include <optional>
#include <set>
#include <vector>

#include "actors/local_link.hpp"
#include "actors/messages.hpp"
#include "actors/session_meter.hpp"
#include "caf/all.hpp"
#include "net/seam/assert.hpp"
#include "net/seam/crypto.hpp"
#include "net/wire/control.hpp"
#include "net/wire/frame_writer.hpp"
#include "net/wire/hex.hpp"
#include "net/wire/record.hpp"

namespace drtp {

namespace {

using net::record_type;

/// Where the session stands with its current path (one stream through one
/// POP). Client end: no_path -> opening -> awaiting_welcome (first path) or
/// awaiting_resumed (later paths) -> attached. Serve end: awaiting_hello (its
/// first stream) -> attached; a later stream is a candidate (below) until
/// its proof checks, and then becomes the path: no_path -> attached. Any
/// path can be lost: -> no_path. On the client end, no_path always has a
/// retry scheduled.
enum class path_state {
  no_path,
  opening,
  awaiting_welcome,
  awaiting_resumed,
  awaiting_hello,
  attached,
};

bool legal(path_state from, path_state to) {
  using p = path_state;
  switch (to) {
    case p::no_path:
      return from != p::no_path;
    case p::opening:
      return from == p::no_path;
    case p::awaiting_welcome:
    case p::awaiting_resumed:
      return from == p::opening;
    case p::awaiting_hello:
      return from == p::no_path;
    case p::attached:
      return from == p::awaiting_welcome || from == p::awaiting_resumed
             || from == p::awaiting_hello || from == p::no_path;
  }
  return false;
}

/// A stream is ours (tunnel_ set) in these states.
bool on_stream(path_state s) {
  return s != path_state::no_path && s != path_state::opening;
}

/// Serve end: a stream that claims the session (the client came back
/// through another POP) is a candidate, acted on for nothing but the
/// challenge-response, while the current path (if any) goes on:
/// none -> awaiting_resume -> awaiting_proof -> none (refused, or it became
/// the path).
enum class candidate_state { none, awaiting_resume, awaiting_proof };

bool legal(candidate_state from, candidate_state to) {
  using c = candidate_state;
  switch (to) {
    case c::none:
      return from != c::none;
    case c::awaiting_resume:
      return from == c::none;
    case c::awaiting_proof:
      return from == c::awaiting_resume;
  }
  return false;
}

/// Bytes of stream credit that data never uses, so that acks, FIN and
/// close always fit the window even while the peer's application is slow.
constexpr uint64_t control_reserve_bytes = 256;

/// The session's life: greeting until the first hello/welcome exchange (a
/// client never welcomed has received nothing, which makes a second hello
/// safe), running, ending (the stream's FIN goes out), finished.
enum class life_state { greeting, running, ending, finished };

bool legal(life_state from, life_state to) {
  // Only forward: a session never becomes younger.
  return static_cast<int>(to) > static_cast<int>(from);
}

/// Our FIN record, end to end: it may have to go out again on a new path
/// (sent -> open) until the peer acknowledges it.
enum class out_fin { open, sent, acked };
/// The peer's FIN record.
enum class in_fin { open, received };
/// The resume timeout: armed from a path's loss until a path is back.
enum class timer_state { idle, armed };

using retry_atom = caf::atom_constant<caf::atom("retry")>;
using expire_atom = caf::atom_constant<caf::atom("expire")>;
using telemetry_tick_atom = caf::atom_constant<caf::atom("telemtick")>;

class rsession_actor final : public caf::event_based_actor, public local_link::owner {
public:
  rsession_actor(caf::actor_config& cfg, rsession_params p)
    : caf::event_based_actor(cfg), p_(std::move(p)), local_(this, this) {
  }

  const char* name() const override {
    return "drtp.rsession";
  }

  caf::behavior make_behavior() override {
    who_ = "rsession#" + std::to_string(id());
    counted_ = true;
    p_.e.trace->census(p_.e.host, "rsession", 1);
    meter_.emplace(p_.e, p_.service, "patch_panel", p_.client_end ? "connect" : "serve",
                   std::string{}, now_ms());
    start();
    // The local connection's events go to the link, which calls back
    // on_local_*.
    return caf::message_handler{
      // -- the stream ------------------------------------------------------------------
      [this](stream_opened& ev) { on_stream_opened(ev); },
      [this](attach_stream& ev) { on_attach_stream(ev); },
      [this](stream_data& ev) { on_stream_data(ev); },
      [this](stream_window& ev) { on_stream_window(ev); },
      [this](stream_fin& ev) {
        if (on_candidate(ev.sid))
          return drop_candidate("ended before its proof");
        // The end is decided by FIN records end to end; the stream's FIN
        // only follows them.
        maybe_done();
      },
      [this](stream_rst& ev) { on_stream_rst(ev); },
      [this](retry_atom) { on_retry(); },
      [this](expire_atom, uint64_t epoch) { on_expire(epoch); },
      [this](telemetry_tick_atom) { on_telemetry_tick(); },
    }.or_else(local_.handlers());
  }

private:
  void trace(const std::string& what) {
    p_.e.trace->emit(p_.e.host, who_, what);
  }

  int64_t now_ms() {
    return p_.e.clock->unix_ms(clock());
  }

  // -- states ----------------------------------------------------------------------

  void to_path(path_state next) {
    DRTP_ASSERT(legal(path_, next), "rsession path: only legal state transitions");
    DRTP_ASSERT(!(p_.client_end ? serve_only(next) : client_only(next)),
                "opening, welcome and resumed belong to the client end; hello to the "
                "serve end");
    path_ = next;
  }

  static bool client_only(path_state s) {
    return s == path_state::opening || s == path_state::awaiting_welcome
           || s == path_state::awaiting_resumed;
  }

  static bool serve_only(path_state s) {
    return s == path_state::awaiting_hello;
  }

  void to_candidate(candidate_state next) {
    DRTP_ASSERT(legal(cand_.state, next), "rsession candidate: only legal transitions");
    DRTP_ASSERT(!p_.client_end, "only the serve end has candidate paths");
    cand_.state = next;
  }

  void to_life(life_state next) {
    DRTP_ASSERT(legal(life_, next), "rsession life: greeting -> running -> ending -> "
                                    "finished, never back");
    life_ = next;
  }

  void to_out_fin(out_fin next) {
    DRTP_ASSERT(next == out_fin::acked || out_fin_ != out_fin::acked,
                "an acknowledged FIN stays acknowledged");
    DRTP_ASSERT(next != out_fin::sent || out_fin_ == out_fin::open,
                "our FIN goes out once per path");
    DRTP_ASSERT(next != out_fin::sent || (local_.eof() && held_.empty() && sent_all()),
                "our FIN follows every byte the local side sent");
    out_fin_ = next;
  }

  bool sent_all() const {
    return resend_at_ >= retx_.size();
  }

  /// Bytes the peer sent that the local socket has not taken yet.
  uint64_t undelivered() const {
    return received_ - local_.delivered_bytes();
  }

  /// The end-to-end accounting, checked wherever it moves.
  void check_flow() const {
    DRTP_ASSERT(acked_ <= sent_ && peer_delivered_ <= acked_,
                "what the peer delivered <= what it has <= what we sent");
    DRTP_ASSERT(sent_ - peer_delivered_ <= p_.retransmit_bytes_max,
                "unacknowledged bytes fit the retransmit buffer");
    DRTP_ASSERT(retx_.empty() ? acked_ == sent_
                              : retx_.front().first == acked_
                                  && retx_.back().first + retx_.back().second.size()
                                       == sent_,
                "the retransmit buffer holds exactly the unacknowledged bytes");
    DRTP_ASSERT(resend_at_ <= retx_.size(), "resending stays within the buffer");
    DRTP_ASSERT(received_ >= local_.delivered_bytes(),
                "bytes delivered locally were received first");
    DRTP_ASSERT(undelivered() <= p_.retransmit_bytes_max,
                "we hold at most retransmit_bytes_max bytes the local side did not take");
    DRTP_ASSERT(stream_credit_ <= p_.e.limits.window_bytes,
                "stream credit never above the window");
    DRTP_ASSERT(path_in_ - path_credited_ <= p_.e.limits.window_bytes,
                "the peer never has more than a window of ours uncredited");
    DRTP_ASSERT(static_cast<bool>(tunnel_) == on_stream(path_),
                "a stream is held exactly in the states that have one");
    DRTP_ASSERT(static_cast<bool>(cand_.tunnel) == (cand_.state != candidate_state::none),
                "a candidate stream is held exactly while there is a candidate");
  }

  // -- keys ----------------------------------------------------------------------------

  /// Client end: a fresh session id and key pair. A client that lost its
  /// first path before the welcome starts over with these: the serve end
  /// accepts a hello only on a session's first stream.
  void new_identity() {
    session_id_ = p_.session_id.empty() || hello_sent_
                    ? p_.e.rng->bytes(net::session_id_bytes)
                    : p_.session_id;
    meter_->facts().set_id(net::to_hex(session_id_));
    make_key_pair();
    hello_sent_ = false;
  }

  void make_key_pair() {
    private_key_ = p_.e.rng->bytes(net::x25519_key_bytes);
    public_key_ = p_.e.crypto->x25519_public(private_key_);
  }

  /// The session key from our private half and the peer's public one; false
  /// for a peer key that is not one.
  bool derive_key(const std::string& peer_public) {
    auto shared = p_.e.crypto->x25519_shared(private_key_, peer_public);
    if (shared.empty())
      return false;
    const auto& client_key = p_.client_end ? public_key_ : peer_public;
    const auto& serve_key = p_.client_end ? peer_public : public_key_;
    key_ = p_.e.crypto->hmac_sha256(
      shared, net::session_key_context(session_id_, client_key, serve_key));
    private_key_.assign(private_key_.size(), '\0'); // no longer needed
    return true;
  }

  std::string resume_mac(const char* label, const std::string& nonce_c,
                         const std::string& nonce_s, uint64_t offset) {
    DRTP_ASSERT(!key_.empty(), "a resume MAC needs the session key");
    return p_.e.crypto->hmac_sha256(
      key_, net::resume_transcript(label, session_id_, nonce_c, nonce_s, offset));
  }

  // -- start -------------------------------------------------------------------------

  void start() {
    // A session does not outlive the agent that holds it (drtp serve or
    // drtp connect going away), and a tunnel that dies without a word (no
    // RST for its streams) costs the path, like a lost link.
    set_down_handler([this](caf::down_msg& dm) { on_down(dm); });
    if (p_.controller)
      monitor(p_.controller);
    if (p_.client_end) {
      local_.adopt(p_.e.io, p_.local_conn);
      new_identity();
      // A first path must come within the resume timeout too, or the local
      // connection is closed rather than left waiting forever.
      arm_expiry();
      attach_via_controller();
    } else {
      session_id_ = p_.session_id;
      meter_->facts().set_id(net::to_hex(session_id_));
      attach_path(p_.tunnel, p_.tunnel_conn, p_.sid, path_state::awaiting_hello);
      local_.connect(p_.e.io, 1, p_.local_host, p_.local_port,
                     p_.e.limits.connect_timeout_ms);
    }
  }

  void on_down(const caf::down_msg& dm) {
    if (life_ == life_state::finished)
      return;
    if (p_.controller && dm.source == p_.controller.address()) {
      trace("its agent is gone; closing the session");
      local_.abort();
      if (tunnel_)
        send(tunnel_, stream_rst{sid_, static_cast<uint32_t>(net::rst_code::closed)});
      tunnel_ = nullptr;
      return finish();
    }
    if (cand_.tunnel && dm.source == cand_.tunnel.address()) {
      cand_.tunnel = nullptr;
      to_candidate(candidate_state::none);
    }
    if (tunnel_ && dm.source == tunnel_.address())
      detach_path("its tunnel is gone");
  }

  // -- the local connection ----------------------------------------------------------

  void on_local_bytes(net::chunk data) override {
    // The client end's local side is the user's client, the serve end's the
    // service.
    if (p_.client_end)
      meter_->to_service(data.size());
    else
      meter_->from_service(data.size());
    held_.push_back(std::move(data));
    pump();
  }

  void on_local_read_closed() override {
    pump();
  }

  void on_local_sent(uint64_t) override {
    auto delivered = local_.delivered_bytes();
    // Acknowledge in batches, and everything once the peer is done.
    if (delivered - acked_sent_ >= p_.retransmit_bytes_max / 4
        || (in_fin_ == in_fin::received && delivered == received_))
      send_ack();
    return_credit();
  }

  void on_local_connect_failed(const std::string& what) override {
    trace("cannot reach local service " + p_.local_host + ":"
          + std::to_string(p_.local_port) + ": " + what);
    end_ = session_end::local_failed;
    send_control(net::encode_close());
    end_soon();
  }

  void on_local_closed(net::close_reason reason, const std::string&) override {
    if (reason == net::close_reason::peer) {
      // Both directions ended in order: only the FIN handshake is left.
      pump();
      maybe_done();
      return;
    }
    trace(std::string("local connection ") + net::to_string(reason)
          + "; closing the session");
    end_ = session_end::reset;
    send_control(net::encode_close());
    end_soon();
  }

  // -- paths -------------------------------------------------------------------------

  void attach_path(caf::actor tunnel, net::conn_id conn, uint32_t sid,
                   path_state next) {
    to_path(next);
    tunnel_ = std::move(tunnel);
    monitor(tunnel_);
    tunnel_conn_ = conn;
    sid_ = sid;
    stream_credit_ = p_.e.limits.window_bytes;
    path_in_ = 0;
    path_credited_ = 0;
    path_pos_ = received_;
    decoder_ = {};
  }

  void on_stream_opened(stream_opened& ev) {
    if (life_ == life_state::greeting) {
      attach_path(ev.tunnel, ev.conn, ev.sid, path_state::awaiting_welcome);
      hello_sent_ = true;
      send_control(net::encode_hello(public_key_));
    } else {
      // Nothing is resent before the serve end proved it holds the key and
      // said from where.
      attach_path(ev.tunnel, ev.conn, ev.sid, path_state::awaiting_resumed);
      nonce_c_ = p_.e.rng->bytes(net::record_nonce_bytes);
      send_control(net::encode_resume(nonce_c_));
    }
  }

  /// Serve end: a stream claims this session. It is only a candidate: the
  /// current path goes on until the candidate proves it holds the key.
  void on_attach_stream(attach_stream& ev) {
    DRTP_ASSERT(!p_.client_end, "only the serve end is handed a stream by its agent");
    auto refuse = [&](const std::string& why) {
      trace("refused a stream for the session: " + why);
      send(ev.tunnel, stream_rst{ev.sid, static_cast<uint32_t>(net::rst_code::refused)});
    };
    if (ev.principal != p_.principal)
      return refuse("opened by principal '" + ev.principal + "', not by '"
                    + p_.principal + "'");
    if (key_.empty() || life_ != life_state::running)
      return refuse("nothing to resume");
    if (cand_.state != candidate_state::none)
      drop_candidate("replaced by a newer one");
    to_candidate(candidate_state::awaiting_resume);
    cand_.tunnel = ev.tunnel;
    monitor(cand_.tunnel);
    cand_.conn = ev.conn;
    cand_.sid = ev.sid;
    cand_.credit = p_.e.limits.window_bytes;
    cand_.in_bytes = 0;
    cand_.decoder = {};
    check_flow();
  }

  /// A stream message belongs to the current path only if it comes from the
  /// current tunnel with the current stream id: an old path's tunnel may
  /// reuse the id, and its late data or credit must not count here.
  bool on_path(uint32_t sid) {
    return tunnel_ && sid == sid_
           && current_sender() == caf::actor_cast<caf::strong_actor_ptr>(tunnel_);
  }

  bool on_candidate(uint32_t sid) {
    return cand_.tunnel && sid == cand_.sid
           && current_sender() == caf::actor_cast<caf::strong_actor_ptr>(cand_.tunnel);
  }

  void on_stream_data(stream_data& ev) {
    if (on_candidate(ev.sid))
      return on_candidate_bytes(ev.data);
    if (!on_path(ev.sid))
      return;
    path_in_ += ev.data.size();
    on_stream_bytes(ev.data);
    return_credit();
  }

  /// Credit goes back for what we no longer hold: record headers and control
  /// records at once, data once the local socket took it. The peer can so
  /// never make us hold more than a window per path (and the end-to-end
  /// bound holds across paths). In batches, unless the peer runs low.
  void return_credit() {
    if (!tunnel_ || life_ == life_state::finished)
      return;
    auto w = uint64_t{p_.e.limits.window_bytes};
    auto creditable = path_in_ - std::min(path_in_, undelivered());
    DRTP_ASSERT(creditable >= path_credited_, "credit once returned stays returned");
    auto unreturned = creditable - path_credited_;
    auto outstanding = path_in_ - path_credited_;
    if (unreturned == 0 || (unreturned < w / 4 && w - outstanding >= w / 4))
      return;
    path_credited_ += unreturned;
    send(tunnel_, stream_window{sid_, static_cast<uint32_t>(unreturned)});
  }

  void on_stream_window(stream_window& ev) {
    // An honest peer returns only credit we used; more would only make us
    // overrun its window and be reset.
    if (on_candidate(ev.sid)) {
      cand_.credit = std::min<uint64_t>(cand_.credit + ev.bytes, p_.e.limits.window_bytes);
      return;
    }
    if (!on_path(ev.sid))
      return;
    stream_credit_ = std::min<uint64_t>(stream_credit_ + ev.bytes,
                                        p_.e.limits.window_bytes);
    pump();
  }

  void on_stream_rst(stream_rst& ev) {
    auto code = static_cast<net::rst_code>(ev.code);
    if (!tunnel_ && ev.sid == 0 && p_.client_end) {
      // The tunnel could not open a stream: try another.
      refused_.insert(last_try_);
      if (path_ == path_state::opening)
        lose_path_and_retry(std::chrono::milliseconds(20));
      return;
    }
    if (on_candidate(ev.sid)) {
      // Its tunnel forgot the stream already.
      cand_.tunnel = nullptr;
      to_candidate(candidate_state::none);
      return;
    }
    if (!on_path(ev.sid))
      return;
    if (code == net::rst_code::refused && p_.client_end)
      refused_.insert(tunnel_.address()); // no agent there, or a bad resume
    detach_path(to_string(code));
  }

  void detach_path(const std::string& why) {
    tunnel_ = nullptr;
    to_path(path_state::no_path);
    if (life_ == life_state::ending) {
      finish();
      return;
    }
    meter_->facts().lost_path(now_ms());
    trace("lost its path (" + why + "); resuming");
    if (!stalled_since_)
      stalled_since_ = p_.e.clock->now(clock());
    arm_expiry();
    if (p_.client_end)
      schedule_retry(std::chrono::milliseconds(20));
  }

  /// Client end: a path that answered our resume without the session key
  /// (a POP that is not the way to our serve end): it goes, the session
  /// tries another.
  void refuse_path(const std::string& why) {
    DRTP_ASSERT(p_.client_end && path_ == path_state::awaiting_resumed,
                "only a path not yet proven is refused");
    trace("refused a path: " + why);
    refused_.insert(tunnel_.address());
    send(tunnel_, stream_rst{sid_, static_cast<uint32_t>(net::rst_code::refused)});
    detach_path("refused");
  }

  void lose_path_and_retry(std::chrono::milliseconds d) {
    to_path(path_state::no_path);
    schedule_retry(d);
  }

  void schedule_retry(std::chrono::milliseconds d) {
    DRTP_ASSERT(p_.client_end && path_ == path_state::no_path,
                "a retry is scheduled once, on the client end's way into no_path");
    delayed_send(this, p_.e.clock->real_delay(d), retry_atom::value);
  }

  void on_retry() {
    DRTP_ASSERT(path_ == path_state::no_path, "a retry fires only while there is no path");
    if (life_ != life_state::finished)
      attach_via_controller();
  }

  void arm_expiry() {
    if (expiry_ == timer_state::armed)
      return;
    expiry_ = timer_state::armed;
    delayed_send(this, p_.e.clock->real_delay(std::chrono::milliseconds(p_.resume_timeout_ms)),
                 expire_atom::value, path_epoch_);
  }

  void on_expire(uint64_t epoch) {
    if (epoch != path_epoch_)
      return; // a path came back since this timer was set
    expiry_ = timer_state::idle;
    if (!tunnel_ && life_ != life_state::finished) {
      trace("no path back within " + std::to_string(p_.resume_timeout_ms)
            + " ms; closing the session");
      end_ = session_end::resume_timeout;
      local_.close();
      finish();
    }
  }

  /// Client end: the best tunnel the controller has, skipping ones that just
  /// refused us; then a new stream on it.
  void attach_via_controller() {
    to_path(path_state::opening);
    request(p_.controller, std::chrono::seconds(5), best_tunnel_atom::value)
      .then([this](std::vector<caf::actor>& candidates) { on_candidates(candidates); },
            [this](caf::error& err) {
              if (err == caf::sec::request_receiver_down) {
                // drtp connect itself is going away (or refused for good).
                trace("no controller for tunnels; closing the session");
                local_.abort();
                finish();
                return;
              }
              lose_path_and_retry(std::chrono::milliseconds(200));
            });
  }

  void on_candidates(std::vector<caf::actor>& candidates) {
    if (path_ != path_state::opening || life_ == life_state::finished)
      return;
    for (auto& t : candidates) {
      if (refused_.count(t.address()))
        continue;
      if (life_ == life_state::greeting && hello_sent_)
        new_identity(); // a hello went out and got no welcome: start over
      net::open_msg open;
      open.peer = "patch panel";
      open.resumable = true;
      open.resume = life_ != life_state::greeting;
      open.session_id = session_id_;
      open.agent_id = agent_id_;
      last_try_ = t.address();
      send(t, open_stream_req{open});
      return;
    }
    refused_.clear();
    lose_path_and_retry(std::chrono::milliseconds(200));
  }

  // -- the candidate (serve end) -------------------------------------------------------

  void on_candidate_bytes(const net::chunk& c) {
    cand_.in_bytes += c.size();
    cand_records_.clear();
    auto st = cand_.decoder.feed(c, cand_records_);
    for (size_t i = 0; i < cand_records_.size(); ++i) {
      auto& r = cand_records_[i];
      if (cand_.state == candidate_state::awaiting_resume && r.type == record_type::resume) {
        answer_resume(r.body.to_string());
      } else if (cand_.state == candidate_state::awaiting_proof
                 && r.type == record_type::proof) {
        if (!check_proof(net::decode_proof(r.body)))
          return;
        // What followed the proof in this chunk is the new path's.
        for (++i; i < cand_records_.size(); ++i)
          if (!on_path_record(cand_records_[i]))
            return;
        break;
      } else {
        return drop_candidate(std::string("sent ") + to_string(r.type)
                              + " before its proof");
      }
    }
    if (st != net::record_decoder::status::ok) {
      if (cand_.state != candidate_state::none)
        drop_candidate("bad record");
      else if (tunnel_ && life_ != life_state::finished)
        protocol_error("bad record");
    }
    if (cand_.state == candidate_state::none)
      return_credit(); // it became the path
  }

  /// The serve end proves it holds the key first, over the client's nonce
  /// and its own fresh one, and says where it stands.
  void answer_resume(const std::string& nonce_c) {
    to_candidate(candidate_state::awaiting_proof);
    cand_.nonce_c = nonce_c;
    cand_.nonce_s = p_.e.rng->bytes(net::record_nonce_bytes);
    cand_.offered = received_;
    auto rec = net::encode_resumed(cand_.nonce_s, cand_.offered,
                                   resume_mac("resumed", nonce_c, cand_.nonce_s,
                                              cand_.offered));
    cand_.credit -= std::min<uint64_t>(cand_.credit, rec.size());
    send(p_.e.io, net::write_req{cand_.conn, {writer_.data_copy(cand_.sid, rec.data(),
                                                                rec.size())}});
  }

  /// The client's answer over both nonces: the candidate becomes the path,
  /// or goes.
  bool check_proof(const net::proof_body& proof) {
    auto want = resume_mac("proof", cand_.nonce_c, cand_.nonce_s, proof.recv_offset);
    if (!net::equal_ct(proof.mac, want)) {
      drop_candidate("its proof does not check");
      return false;
    }
    if (proof.recv_offset > sent_) {
      drop_candidate("it claims bytes never sent");
      return false;
    }
    promote_candidate();
    resume_from(proof.recv_offset);
    return tunnel_ && life_ != life_state::finished;
  }

  void promote_candidate() {
    if (tunnel_) {
      send(tunnel_, stream_rst{sid_, static_cast<uint32_t>(net::rst_code::closed)});
      tunnel_ = nullptr;
      to_path(path_state::no_path);
    }
    to_path(path_state::attached);
    tunnel_ = std::move(cand_.tunnel);
    on_attached();
    tunnel_conn_ = cand_.conn;
    sid_ = cand_.sid;
    stream_credit_ = cand_.credit;
    path_in_ = cand_.in_bytes;
    path_credited_ = 0;
    // The client resends from where we said we stood; what reached us since
    // on the old path is skipped (on_data).
    path_pos_ = cand_.offered;
    decoder_ = std::move(cand_.decoder);
    cand_ = {};
  }

  void drop_candidate(const std::string& why) {
    trace("refused a stream for the session: " + why);
    send(cand_.tunnel, stream_rst{cand_.sid, static_cast<uint32_t>(net::rst_code::refused)});
    cand_.tunnel = nullptr;
    to_candidate(candidate_state::none);
    check_flow();
  }

  // -- records out -------------------------------------------------------------------

  void send_control(const std::string& rec) {
    DRTP_ASSERT(rec.size() <= net::record_header_bytes + net::record_control_bytes_max,
                "a control record fits its limit");
    if (!tunnel_)
      return;
    DRTP_ASSERT(life_ != life_state::finished, "a finished session sends nothing");
    stream_credit_ -= std::min<uint64_t>(stream_credit_, rec.size());
    send(p_.e.io, net::write_req{tunnel_conn_, {writer_.data_copy(sid_, rec.data(),
                                                                  rec.size())}});
  }

  void send_data(const net::chunk& payload) {
    // Frame and record header in one pooled slice: no allocation per record.
    auto n = payload.size();
    DRTP_ASSERT(n > 0 && n <= net::record_data_bytes_max,
                "a data record carries 1 byte to 64 KiB - 5");
    DRTP_ASSERT(stream_credit_ >= net::record_header_bytes + n,
                "never send beyond the stream's credit");
    DRTP_ASSERT(life_ != life_state::finished, "a finished session sends nothing");
    char rh[net::record_header_bytes];
    net::put_record_header(rh, record_type::data, static_cast<uint32_t>(n));
    stream_credit_ -= net::record_header_bytes + n;
    send(p_.e.io, net::write_req{tunnel_conn_, writer_.data(sid_, rh, sizeof(rh), payload)});
  }

  void send_ack() {
    auto delivered = local_.delivered_bytes();
    DRTP_ASSERT(delivered <= received_, "we acknowledge only bytes we received");
    acked_sent_ = delivered;
    send_control(net::encode_ack(delivered, in_fin_ == in_fin::received));
  }

  /// Nothing goes out before the welcome (or after a resume, before the
  /// other end proved itself and said from where). Data leaves room for
  /// control records.
  bool can_send(size_t n, uint64_t reserve) const {
    return path_ == path_state::attached
           && stream_credit_ >= net::record_header_bytes + n + reserve;
  }

  /// Moves local bytes out while the stream has credit and the retransmit
  /// buffer has room; pauses reading the local socket otherwise.
  void pump() {
    if (life_ == life_state::finished)
      return;
    resend();
    if (sent_all())
      send_new();
    if (local_.eof() && held_.empty() && out_fin_ == out_fin::open && sent_all()
        && can_send(0, 0)) {
      to_out_fin(out_fin::sent);
      send_control(net::encode_fin());
    }
    local_.set_paused(!held_.empty());
    check_flow();
    maybe_done();
  }

  /// After a resume: what the peer may have missed, from where it stands.
  void resend() {
    while (resend_at_ < retx_.size()) {
      auto& c = retx_[resend_at_].second;
      if (!can_send(c.size(), control_reserve_bytes))
        break;
      send_data(c);
      ++resend_at_;
    }
  }

  void send_new() {
    while (!held_.empty()) {
      auto& front = held_.front();
      // Room end to end: the peer holds at most retransmit_bytes_max of ours
      // that its local side has not taken (it checks: on_data).
      auto room = p_.retransmit_bytes_max
                  - std::min<uint64_t>(p_.retransmit_bytes_max, sent_ - peer_delivered_);
      auto n = std::min<uint64_t>({front.size(), net::record_data_bytes_max, room});
      if (n == 0 || !can_send(n, control_reserve_bytes))
        break;
      net::chunk piece;
      if (n == front.size()) {
        piece = std::move(front);
        held_.pop_front();
      } else {
        piece = front.slice(0, n);
        front = front.slice(n, front.size() - n);
      }
      retx_.emplace_back(sent_, piece);
      sent_ += n;
      send_data(piece);
      resend_at_ = retx_.size();
    }
  }

  // -- records in ----------------------------------------------------------------------

  void on_stream_bytes(const net::chunk& c) {
    records_.clear();
    auto st = decoder_.feed(c, records_);
    for (auto& r : records_)
      if (!on_path_record(r))
        return;
    if (st != net::record_decoder::status::ok && tunnel_
        && life_ != life_state::finished)
      bad_path_record("bad record");
  }

  /// One record of the current path; false once it cost us the path or
  /// ended the session.
  bool on_path_record(net::record& r) {
    if (!tunnel_ || life_ == life_state::finished)
      return false;
    if (path_ != path_state::attached && !greeting_record(r.type)) {
      bad_path_record(std::string("unexpected ") + to_string(r.type));
      return false;
    }
    if (r.type == record_type::data)
      on_data(std::move(r.body));
    else
      on_record(r);
    return tunnel_ && life_ != life_state::finished;
  }

  /// What a path may say before it is attached.
  bool greeting_record(record_type t) const {
    switch (path_) {
      case path_state::awaiting_hello:
        return t == record_type::hello;
      case path_state::awaiting_welcome:
        return t == record_type::welcome;
      case path_state::awaiting_resumed:
        return t == record_type::resumed;
      default:
        return false;
    }
  }

  /// A path not yet proven that speaks out of turn goes; the session stays.
  /// Anywhere else it is the session's protocol error.
  void bad_path_record(const std::string& what) {
    if (p_.client_end && path_ == path_state::awaiting_resumed)
      refuse_path(what);
    else
      protocol_error(what);
  }

  void on_data(net::chunk payload) {
    if (payload.empty())
      return;
    // After a resume the client may resend bytes that reached us on the old
    // path meanwhile: skip them.
    auto end = path_pos_ + payload.size();
    if (end <= received_) {
      path_pos_ = end;
      return;
    }
    if (path_pos_ < received_)
      payload = payload.slice(received_ - path_pos_, end - received_);
    DRTP_ASSERT(path_pos_ <= received_, "a path's data continues where we stand");
    path_pos_ = end;
    received_ = end;
    if (p_.client_end)
      meter_->from_service(payload.size());
    else
      meter_->to_service(payload.size());
    local_.write(std::move(payload));
    // An honest peer keeps at most retransmit_bytes_max unacknowledged, and
    // we acknowledge only what the local side took: more is an attack on
    // our memory (a service that does not read, a connect still pending).
    if (undelivered() > p_.retransmit_bytes_max)
      protocol_error("peer sent more than the local side took plus the bound");
  }

  void on_record(const net::record& r) {
    switch (r.type) {
      case record_type::hello:
        return on_hello(r.body.to_string());
      case record_type::welcome:
        return on_welcome(net::decode_welcome(r.body));
      case record_type::resume:
      case record_type::proof:
        return protocol_error(std::string("unexpected ") + to_string(r.type));
      case record_type::resumed:
        return on_resumed(net::decode_resumed(r.body));
      case record_type::ack:
        return on_ack(net::decode_ack(r.body));
      case record_type::fin:
        return on_fin();
      case record_type::close:
        local_.abort();
        return end_soon();
      case record_type::telemetry:
        return on_telemetry(net::decode_telemetry(r.body));
      case record_type::data:
        break;
    }
  }

  void on_hello(const std::string& client_key) {
    DRTP_ASSERT(!p_.client_end && path_ == path_state::awaiting_hello
                  && life_ == life_state::greeting,
                "a hello is acted on only on a session's first stream");
    make_key_pair();
    if (!derive_key(client_key))
      return protocol_error("hello with a key that is not one");
    to_life(life_state::running);
    to_path(path_state::attached);
    on_attached();
    send_control(net::encode_welcome(public_key_, p_.agent_id));
    start_telemetry();
    pump();
  }

  void on_welcome(const net::welcome_body& w) {
    DRTP_ASSERT(p_.client_end && path_ == path_state::awaiting_welcome,
                "a welcome is acted on only while awaiting it");
    if (!derive_key(w.serve_key))
      return protocol_error("welcome with a key that is not one");
    agent_id_ = w.agent_id;
    to_life(life_state::running);
    to_path(path_state::attached);
    on_attached();
    start_telemetry();
    path_back();
    pump();
  }

  /// Client end: the serve end must prove it holds the key before we believe
  /// where it says it stands; then we prove it too.
  void on_resumed(const net::resumed_body& r) {
    DRTP_ASSERT(p_.client_end && path_ == path_state::awaiting_resumed,
                "a resumed is acted on only while awaiting it");
    auto want = resume_mac("resumed", nonce_c_, r.nonce_s, r.recv_offset);
    if (!net::equal_ct(r.mac, want))
      return refuse_path("its resume answer does not check");
    if (r.recv_offset > sent_)
      return refuse_path("it claims bytes never sent");
    send_control(net::encode_proof(received_,
                                   resume_mac("proof", nonce_c_, r.nonce_s, received_)));
    to_path(path_state::attached);
    on_attached();
    resume_from(r.recv_offset);
  }

  void on_ack(const net::ack_body& ack) {
    if (!trim_to(ack.delivered_offset))
      return;
    peer_delivered_ = std::max(peer_delivered_, ack.delivered_offset);
    if (ack.fin_seen && out_fin_ != out_fin::acked) {
      // The peer saw our FIN, perhaps on a path lost before its ack came.
      if (!local_.eof())
        return protocol_error("acknowledged a FIN never sent");
      to_out_fin(out_fin::acked);
    }
    pump();
  }

  void on_fin() {
    if (in_fin_ == in_fin::open) {
      in_fin_ = in_fin::received;
      local_.shutdown_write();
    }
    send_ack();
    maybe_done();
  }

  /// Both ends agree where the peer stands: resend from there and go on.
  void resume_from(uint64_t peer_received) {
    if (!rewind_to(peer_received))
      return;
    ++resumes_;
    count_resume(sent_ - acked_);
    path_back();
    trace("resumed on a new path; resending " + std::to_string(sent_ - acked_)
          + " bytes from offset " + std::to_string(acked_));
    // Our last ack may have been lost with the old path: the peer's room to
    // send depends on it.
    send_ack();
    pump();
  }

  /// The metrics of one resume: resent bytes, and the stall since the loss.
  void count_resume(uint64_t resent_bytes) {
    auto& m = *p_.e.stats;
    m.counter(net::metric::resumes_total, {p_.service}).add();
    m.counter(net::metric::resent_bytes_total, {p_.service}).add(resent_bytes);
    meter_->facts().resumed(resent_bytes, stall_ms());
    if (stalled_since_) {
      auto stall = p_.e.clock->now(clock()) - *stalled_since_;
      m.histogram(net::metric::resume_stall_seconds, {p_.service})
        .observe_us(static_cast<uint64_t>(
          std::chrono::duration_cast<std::chrono::microseconds>(stall).count()));
      stalled_since_.reset();
    }
  }

  // -- the session's path and telemetry (net/seam/session_table) ------------------------

  /// Since the path was lost, in ms (0 while there is one).
  uint32_t stall_ms() {
    if (!stalled_since_)
      return 0;
    auto d = p_.e.clock->now(clock()) - *stalled_since_;
    return static_cast<uint32_t>(std::min<int64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(d).count(), UINT32_MAX));
  }

  /// A proven path: which POP it goes through is the agent's to say.
  void on_attached() {
    DRTP_ASSERT(path_ == path_state::attached && tunnel_, "a hop is an attached path");
    auto at = now_ms();
    auto stall = stall_ms();
    if (!p_.controller) {
      meter_->facts().moved_to("?", at, stall);
      return;
    }
    request(p_.controller, std::chrono::seconds(5), path_info_atom::value, tunnel_.address())
      .then([this, at, stall](const std::string& pop) {
              meter_->facts().moved_to(pop.empty() ? "?" : pop, at, stall);
            },
            [this, at, stall](caf::error&) { meter_->facts().moved_to("?", at, stall); });
  }

  void start_telemetry() {
    if (p_.telemetry_interval_ms == 0)
      return;
    delayed_send(this, p_.e.clock->real_delay(std::chrono::milliseconds(p_.telemetry_interval_ms)),
                 telemetry_tick_atom::value);
  }

  /// Our hop's facts to the other end, when they changed (or now and then,
  /// so that its figure of our round trip stays fresh) and the stream has
  /// credit to spare beyond what acks and FIN need.
  void on_telemetry_tick() {
    if (life_ == life_state::finished)
      return;
    start_telemetry();
    auto& f = meter_->facts();
    auto bytes = f.to_service_bytes.load(std::memory_order_relaxed)
                 + f.from_service_bytes.load(std::memory_order_relaxed);
    ++quiet_ticks_;
    bool changed = f.version() != told_version_ || bytes != told_bytes_;
    if (!changed && quiet_ticks_ < telemetry_quiet_ticks)
      return;
    auto ours = f.ours(*p_.e.sessions, now_ms());
    net::telemetry_body t;
    t.sent_bytes = ours.sent_bytes;
    t.received_bytes = ours.received_bytes;
    t.resent_bytes = ours.resent_bytes;
    t.resumes = ours.resumes;
    t.stall_ms = ours.stall_ms;
    t.rtt_samples = ours.rtt.samples;
    t.rtt_p50_us = ours.rtt.p50_us;
    t.rtt_max_us = ours.rtt.max_us;
    t.pop = ours.pop;
    auto rec = net::encode_telemetry(t);
    if (!can_send(rec.size() - net::record_header_bytes, control_reserve_bytes))
      return; // best effort: the next tick tries again
    send_control(rec);
    told_version_ = f.version();
    told_bytes_ = bytes;
    quiet_ticks_ = 0;
  }

  void on_telemetry(const net::telemetry_body& t) {
    net::peer_telemetry p;
    p.at_ms = now_ms();
    p.sent_bytes = t.sent_bytes;
    p.received_bytes = t.received_bytes;
    p.resent_bytes = t.resent_bytes;
    p.resumes = t.resumes;
    p.stall_ms = t.stall_ms;
    p.rtt.samples = t.rtt_samples;
    p.rtt.p50_us = t.rtt_p50_us;
    p.rtt.max_us = t.rtt_max_us;
    p.pop = t.pop;
    meter_->facts().set_peer(std::move(p));
  }

  /// A working path again: the resume timeout starts over at the next loss.
  void path_back() {
    ++path_epoch_;
    expiry_ = timer_state::idle;
    refused_.clear();
  }

  /// The peer has everything before `offset`: drop it, resend the rest.
  bool rewind_to(uint64_t offset) {
    if (!trim_to(offset))
      return false;
    resend_at_ = 0;
    // A FIN that may have been lost with the old path goes out again.
    if (out_fin_ == out_fin::sent)
      to_out_fin(out_fin::open);
    return true;
  }

  bool trim_to(uint64_t offset) {
    if (offset > sent_) {
      protocol_error("acknowledged bytes never sent");
      return false;
    }
    while (!retx_.empty()) {
      auto& [at, c] = retx_.front();
      if (at + c.size() <= offset) {
        retx_.pop_front();
        if (resend_at_ > 0)
          --resend_at_;
      } else if (at < offset) {
        auto cut = offset - at;
        c = c.slice(cut, c.size() - cut);
        at = offset;
        break;
      } else {
        break;
      }
    }
    acked_ = std::max(acked_, offset);
    check_flow();
    return true;
  }

  void protocol_error(const std::string& what) {
    trace("protocol error in session: " + what);
    end_ = session_end::reset;
    local_.abort();
    if (tunnel_)
      send(tunnel_, stream_rst{sid_, static_cast<uint32_t>(net::rst_code::refused)});
    tunnel_ = nullptr;
    finish();
  }

  // -- the end -----------------------------------------------------------------------

  /// Done when both directions finished end to end and the local socket is
  /// closed: our FIN acknowledged, theirs received.
  void maybe_done() {
    if (life_ == life_state::finished)
      return;
    bool ours = out_fin_ == out_fin::acked && acked_ == sent_;
    if (ours && in_fin_ == in_fin::received && local_.is_closed())
      end_soon();
  }

  /// Ends the stream (the splice at the POP passes the FIN on) and the session.
  void end_soon() {
    if (life_ == life_state::finished)
      return;
    if (life_ != life_state::ending) {
      to_life(life_state::ending);
      if (tunnel_)
        send(p_.e.io, net::write_req{tunnel_conn_, {writer_.fin(sid_)}});
    }
    finish();
  }

  void finish() {
    if (life_ == life_state::finished)
      return;
    DRTP_ASSERT(!local_.live(), "a finished session holds no local socket");
    to_life(life_state::finished);
    meter_->close(end_.value_or(session_end::done));
    if (tunnel_)
      send(tunnel_, stream_done{sid_});
    if (cand_.tunnel)
      send(cand_.tunnel, stream_rst{cand_.sid, static_cast<uint32_t>(net::rst_code::refused)});
    if (p_.e.trace->verbose() || resumes_ > 0)
      trace("session ended after " + std::to_string(resumes_) + " resume(s); "
            + std::to_string(sent_) + " bytes sent, " + std::to_string(received_)
            + " received");
    quit();
  }

  // Actors hold each other's handles (owner <-> tunnel <-> session); a dead
  // actor lets go of them so that no cycle outlives it.
  void on_exit() override {
    if (counted_)
      p_.e.trace->census(p_.e.host, "rsession", -1);
    meter_.reset(); // killed with its controller: cut
    p_ = {};
    tunnel_ = nullptr;
    cand_ = {};
    local_.release();
  }

  /// Serve end: a stream that claims the session, before its proof.
  struct candidate {
    candidate_state state = candidate_state::none;
    caf::actor tunnel;
    net::conn_id conn = 0;
    uint32_t sid = 0;
    uint64_t credit = 0;   // for the resumed record
    uint64_t in_bytes = 0; // stream bytes it sent, credited once it is the path
    net::record_decoder decoder;
    std::string nonce_c;
    std::string nonce_s;
    uint64_t offered = 0; // the offset we told it we stand at
  };

  rsession_params p_;
  bool counted_ = false; // in the tracer's census
  std::optional<session_meter> meter_;
  std::optional<session_end> end_; // why, once known
  /// Since the path was lost (for the stall histogram); none while it has one.
  std::optional<caf::actor_clock::time_point> stalled_since_;
  std::string who_;
  std::string agent_id_;
  net::frame_writer writer_;
  life_state life_ = life_state::greeting;
  // the session key (X25519 halves -> HMAC key), never on the wire
  std::string session_id_;
  std::string private_key_;
  std::string public_key_;
  std::string key_;
  bool hello_sent_ = false; // client: on a path that never got its welcome
  std::string nonce_c_;     // client: of the resume on the current path
  // the local socket
  local_link local_;
  std::deque<net::chunk> held_; // read, not yet sent
  // the path
  path_state path_ = path_state::no_path;
  caf::actor tunnel_;
  net::conn_id tunnel_conn_ = 0;
  uint32_t sid_ = 0;
  uint64_t stream_credit_ = 0;
  uint64_t path_in_ = 0;       // stream bytes the peer sent on this path
  uint64_t path_credited_ = 0; // credit we returned for them
  uint64_t path_pos_ = 0;      // session offset of the path's next data byte
  net::record_decoder decoder_;
  std::vector<net::record> records_; // decoded from one stream chunk
  candidate cand_;
  std::vector<net::record> cand_records_;
  std::set<caf::actor_addr> refused_;
  caf::actor_addr last_try_;
  timer_state expiry_ = timer_state::idle;
  uint64_t path_epoch_ = 0;
  uint32_t resumes_ = 0;
  // the telemetry we last told the other end
  uint64_t told_version_ = 0;
  uint64_t told_bytes_ = 0;
  uint32_t quiet_ticks_ = 0;
  // our direction, end to end
  std::deque<std::pair<uint64_t, net::chunk>> retx_; // [offset, bytes) unacked
  size_t resend_at_ = 0; // retx_ entries before this index went out on this path
  uint64_t sent_ = 0;
  uint64_t acked_ = 0;          // the peer has everything before this
  uint64_t peer_delivered_ = 0; // ... and its local side took everything before this
  out_fin out_fin_ = out_fin::open;
  // the peer's direction
  uint64_t received_ = 0;
  uint64_t acked_sent_ = 0; // delivered offset in our last ack
  in_fin in_fin_ = in_fin::open;
};

} // namespace

caf::actor spawn_rsession(caf::actor_system& sys, rsession_params p) {
  return sys.spawn<rsession_actor>(std::move(p));
}

} // namespace drtp

