#include "actors/rsession.hpp"

#include <algorithm>
#include <deque>
#include <set>
#include <vector>

#include "actors/local_link.hpp"
#include "actors/messages.hpp"
#include "caf/all.hpp"
#include "net/seam/assert.hpp"
#include "net/seam/crypto.hpp"
#include "net/wire/control.hpp"
#include "net/wire/frame_writer.hpp"
#include "net/wire/record.hpp"

namespace drtp {

namespace {

using net::record_type;

/// Where the session stands with its current path (one stream through one
/// POP). Client end: no_path -> opening -> awaiting_welcome (first path) or
/// awaiting_resumed (later paths) -> attached. Serve end: awaiting_hello (its
/// first stream) or awaiting_resume (the client came back through another
/// POP) -> attached. Any path can be lost: -> no_path. On the client end,
/// no_path always has a retry scheduled.
enum class path_state {
  no_path,
  opening,
  awaiting_welcome,
  awaiting_resumed,
  awaiting_hello,
  awaiting_resume,
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
    case p::awaiting_resume:
      return from == p::no_path || from == p::awaiting_hello
             || from == p::awaiting_resume || from == p::attached;
    case p::attached:
      return from == p::awaiting_welcome || from == p::awaiting_resumed
             || from == p::awaiting_hello || from == p::awaiting_resume;
  }
  return false;
}

/// A stream is ours (tunnel_ set) in these states.
bool on_stream(path_state s) {
  return s != path_state::no_path && s != path_state::opening;
}

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
    start();
    // The local connection's events go to the link, which calls back
    // on_local_*.
    return caf::message_handler{
      // -- the stream ------------------------------------------------------------------
      [this](stream_opened& ev) { on_stream_opened(ev); },
      [this](attach_stream& ev) { on_attach_stream(ev); },
      [this](stream_data& ev) { on_stream_data(ev); },
      [this](stream_window& ev) { on_stream_window(ev); },
      [this](stream_fin&) {
        // The end is decided by FIN records end to end; the stream's FIN
        // only follows them.
        maybe_done();
      },
      [this](stream_rst& ev) { on_stream_rst(ev); },
      [this](retry_atom) { on_retry(); },
      [this](expire_atom, uint64_t epoch) { on_expire(epoch); },
    }.or_else(local_.handlers());
  }

private:
  void trace(const std::string& what) {
    p_.e.trace->emit(p_.e.host, who_, what);
  }

  // -- states ----------------------------------------------------------------------

  void to_path(path_state next) {
    DRTP_ASSERT(legal(path_, next), "rsession path: only legal state transitions");
    DRTP_ASSERT(!(p_.client_end ? serve_only(next) : client_only(next)),
                "opening, welcome and resumed belong to the client end; hello and "
                "resume to the serve end");
    path_ = next;
  }

  static bool client_only(path_state s) {
    return s == path_state::opening || s == path_state::awaiting_welcome
           || s == path_state::awaiting_resumed;
  }

  static bool serve_only(path_state s) {
    return s == path_state::awaiting_hello || s == path_state::awaiting_resume;
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

  /// The end-to-end accounting, checked wherever it moves.
  void check_flow() const {
    DRTP_ASSERT(acked_ <= sent_, "acked bytes never exceed sent bytes");
    DRTP_ASSERT(sent_ - acked_ <= p_.retransmit_bytes_max,
                "unacknowledged bytes fit the retransmit buffer");
    DRTP_ASSERT(retx_.empty() ? acked_ == sent_
                              : retx_.front().first == acked_
                                  && retx_.back().first + retx_.back().second.size()
                                       == sent_,
                "the retransmit buffer holds exactly the unacknowledged bytes");
    DRTP_ASSERT(resend_at_ <= retx_.size(), "resending stays within the buffer");
    DRTP_ASSERT(received_ >= local_.delivered_bytes(),
                "bytes delivered locally were received first");
    DRTP_ASSERT(stream_credit_ <= p_.e.limits.window_bytes,
                "stream credit never above the window");
    DRTP_ASSERT(static_cast<bool>(tunnel_) == on_stream(path_),
                "a stream is held exactly in the states that have one");
  }

  // -- start -------------------------------------------------------------------------

  void start() {
    if (p_.client_end) {
      local_.adopt(p_.e.io, p_.local_conn);
      token_ = p_.e.rng->bytes(net::record_token_bytes);
      // A first path must come within the resume timeout too, or the local
      // connection is closed rather than left waiting forever.
      arm_expiry();
      attach_via_controller();
    } else {
      attach_path(p_.tunnel, p_.tunnel_conn, p_.sid, path_state::awaiting_hello);
      local_.connect(p_.e.io, 1, p_.local_host, p_.local_port,
                     p_.e.limits.connect_timeout_ms);
    }
  }

  // -- the local connection ----------------------------------------------------------

  void on_local_bytes(net::chunk data) override {
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
  }

  void on_local_connect_failed(const std::string& what) override {
    trace("cannot reach local service " + p_.local_host + ":"
          + std::to_string(p_.local_port) + ": " + what);
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
    send_control(net::encode_close());
    end_soon();
  }

  // -- paths -------------------------------------------------------------------------

  void attach_path(caf::actor tunnel, net::conn_id conn, uint32_t sid,
                   path_state next) {
    to_path(next);
    tunnel_ = std::move(tunnel);
    tunnel_conn_ = conn;
    sid_ = sid;
    stream_credit_ = p_.e.limits.window_bytes;
    stream_consumed_ = 0;
    decoder_ = {};
  }

  void on_stream_opened(stream_opened& ev) {
    if (life_ == life_state::greeting) {
      attach_path(ev.tunnel, ev.conn, ev.sid, path_state::awaiting_welcome);
      send_control(net::encode_hello(token_));
    } else {
      // Nothing is resent before the serve end says from where.
      attach_path(ev.tunnel, ev.conn, ev.sid, path_state::awaiting_resumed);
      send_control(net::encode_resume(token_, received_));
    }
  }

  void on_attach_stream(attach_stream& ev) {
    // Serve end: the client came back through another POP.
    DRTP_ASSERT(!p_.client_end, "only the serve end is handed a stream by its agent");
    if (tunnel_)
      send(tunnel_, stream_rst{sid_, static_cast<uint32_t>(net::rst_code::closed)});
    tunnel_ = nullptr;
    attach_path(ev.tunnel, ev.conn, ev.sid, path_state::awaiting_resume);
  }

  /// A stream message belongs to the current path only if it comes from the
  /// current tunnel with the current stream id: an old path's tunnel may
  /// reuse the id, and its late data or credit must not count here.
  bool on_path(uint32_t sid) {
    return tunnel_ && sid == sid_
           && current_sender() == caf::actor_cast<caf::strong_actor_ptr>(tunnel_);
  }

  void on_stream_data(stream_data& ev) {
    if (!on_path(ev.sid))
      return;
    stream_consumed_ += ev.data.size();
    DRTP_ASSERT(stream_consumed_ <= p_.e.limits.window_bytes,
                "credit returned to the peer never exceeds the window it had");
    if (stream_consumed_ >= p_.e.limits.window_bytes / 4) {
      send(tunnel_, stream_window{sid_, static_cast<uint32_t>(stream_consumed_)});
      stream_consumed_ = 0;
    }
    on_stream_bytes(ev.data);
  }

  void on_stream_window(stream_window& ev) {
    if (!on_path(ev.sid))
      return;
    // An honest peer returns only credit we used; more would only make us
    // overrun its window and be reset.
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
    trace("lost its path (" + why + "); resuming");
    arm_expiry();
    if (p_.client_end)
      schedule_retry(std::chrono::milliseconds(20));
  }

  /// Serve end: a hello or resume with the wrong token; the path goes, the
  /// session stays for the right client.
  void refuse_path() {
    send(tunnel_, stream_rst{sid_, static_cast<uint32_t>(net::rst_code::refused)});
    tunnel_ = nullptr;
    to_path(path_state::no_path);
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
      net::open_msg open;
      open.peer = "patch panel";
      open.resumable = true;
      open.resume = life_ != life_state::greeting;
      open.session_id = p_.session_id;
      open.agent_id = agent_id_;
      last_try_ = t.address();
      send(t, open_stream_req{open});
      return;
    }
    refused_.clear();
    lose_path_and_retry(std::chrono::milliseconds(200));
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

  bool can_send(size_t n) const {
    // Nothing goes out before the welcome (or after a resume, before the
    // other end said from where).
    return path_ == path_state::attached
           && stream_credit_ >= net::record_header_bytes + n;
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
        && can_send(0)) {
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
      if (!can_send(c.size()))
        break;
      send_data(c);
      ++resend_at_;
    }
  }

  void send_new() {
    while (!held_.empty()) {
      auto& front = held_.front();
      auto room = p_.retransmit_bytes_max
                  - std::min<uint64_t>(p_.retransmit_bytes_max, sent_ - acked_);
      auto n = std::min<uint64_t>({front.size(), net::record_data_bytes_max, room});
      if (n == 0 || !can_send(n))
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
    for (auto& r : records_) {
      // A record may cost us the path (a refused token) or end the session.
      if (!tunnel_ || life_ == life_state::finished)
        return;
      if (r.type == record_type::data)
        on_data(std::move(r.body));
      else
        on_record(r);
    }
    if (st != net::record_decoder::status::ok && tunnel_
        && life_ != life_state::finished)
      protocol_error("bad record");
  }

  void on_data(net::chunk payload) {
    if (payload.empty())
      return;
    received_ += payload.size();
    local_.write(std::move(payload));
  }

  void on_record(const net::record& r) {
    switch (r.type) {
      case record_type::hello:
        return on_hello(r.body.to_string());
      case record_type::welcome:
        return on_welcome(r.body.to_string());
      case record_type::resume:
        return on_resume(net::decode_resume(r.body));
      case record_type::resumed:
        if (!p_.client_end || path_ != path_state::awaiting_resumed)
          return protocol_error("unexpected resumed");
        to_path(path_state::attached);
        return resume_from(net::decode_resumed(r.body));
      case record_type::ack:
        return on_ack(net::decode_ack(r.body));
      case record_type::fin:
        return on_fin();
      case record_type::close:
        local_.abort();
        return end_soon();
      case record_type::data:
        break;
    }
  }

  void on_hello(const std::string& token) {
    if (p_.client_end || !serve_only(path_))
      return protocol_error("unexpected hello");
    if (!token_.empty() && !net::equal_ct(token, token_)) {
      trace("refused a hello with another session's token");
      return refuse_path();
    }
    if (life_ == life_state::running) {
      // The client lost its first path before our welcome reached it, so it
      // has none of our bytes: start over from offset 0.
      if (!rewind_to(0))
        return;
      path_back();
    } else {
      to_life(life_state::running);
    }
    token_ = token;
    to_path(path_state::attached);
    send_control(net::encode_welcome(p_.agent_id));
    pump();
  }

  void on_welcome(const std::string& agent_id) {
    if (!p_.client_end || path_ != path_state::awaiting_welcome)
      return protocol_error("unexpected welcome");
    agent_id_ = agent_id;
    to_life(life_state::running);
    to_path(path_state::attached);
    path_back();
    pump();
  }

  void on_resume(const net::resume_body& body) {
    if (p_.client_end || !serve_only(path_))
      return protocol_error("unexpected resume");
    // Constant time: guessing the token must not be cheaper than brute force.
    if (!net::equal_ct(body.token, token_)) {
      trace("refused a resume with a wrong token");
      return refuse_path();
    }
    DRTP_ASSERT(life_ == life_state::running, "a resume matches only a welcomed token");
    send_control(net::encode_resumed(received_));
    to_path(path_state::attached);
    resume_from(body.recv_offset);
  }

  void on_ack(const net::ack_body& ack) {
    if (!trim_to(ack.delivered_offset))
      return;
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
    path_back();
    trace("resumed on a new path; resending " + std::to_string(sent_ - acked_)
          + " bytes from offset " + std::to_string(acked_));
    pump();
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
    local_.abort();
    if (tunnel_)
      send(tunnel_, stream_rst{sid_, static_cast<uint32_t>(net::rst_code::refused)});
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
    if (tunnel_)
      send(tunnel_, stream_done{sid_});
    if (p_.e.trace->verbose() || resumes_ > 0)
      trace("session ended after " + std::to_string(resumes_) + " resume(s); "
            + std::to_string(sent_) + " bytes sent, " + std::to_string(received_)
            + " received");
    quit();
  }

  // Actors hold each other's handles (owner <-> tunnel <-> session); a dead
  // actor lets go of them so that no cycle outlives it.
  void on_exit() override {
    p_ = {};
    tunnel_ = nullptr;
    local_.release();
  }

  rsession_params p_;
  std::string who_;
  std::string token_;
  std::string agent_id_;
  net::frame_writer writer_;
  life_state life_ = life_state::greeting;
  // the local socket
  local_link local_;
  std::deque<net::chunk> held_; // read, not yet sent
  // the path
  path_state path_ = path_state::no_path;
  caf::actor tunnel_;
  net::conn_id tunnel_conn_ = 0;
  uint32_t sid_ = 0;
  uint64_t stream_credit_ = 0;
  uint64_t stream_consumed_ = 0;
  net::record_decoder decoder_;
  std::vector<net::record> records_; // decoded from one stream chunk
  std::set<caf::actor_addr> refused_;
  caf::actor_addr last_try_;
  timer_state expiry_ = timer_state::idle;
  uint64_t path_epoch_ = 0;
  uint32_t resumes_ = 0;
  // our direction, end to end
  std::deque<std::pair<uint64_t, net::chunk>> retx_; // [offset, bytes) unacked
  size_t resend_at_ = 0; // retx_ entries before this index went out on this path
  uint64_t sent_ = 0;
  uint64_t acked_ = 0;
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
