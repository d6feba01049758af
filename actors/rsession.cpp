#include "actors/rsession.hpp"

#include <cassert>
#include <deque>
#include <set>

#include "actors/messages.hpp"
#include "caf/all.hpp"
#include "net/wire/control.hpp"
#include "net/wire/frame.hpp"
#include "net/seam/crypto.hpp"

namespace drtp {

namespace {

enum class rec : uint8_t {
  hello = 1,   // client -> serve: token(32)
  welcome = 2, // serve -> client: agent id
  resume = 3,  // client -> serve: token(32) recv_offset(8)
  resumed = 4, // serve -> client: recv_offset(8)
  data = 5,    // payload bytes; offsets are implicit
  ack = 6,     // delivered_offset(8) fin_seen(1)
  fin = 7,     // the sender's local side will send nothing more
  close = 8,   // the sender's local side failed: abort
};

constexpr size_t rec_header_bytes = 5;
constexpr size_t rec_control_bytes_max = 256;
constexpr size_t token_bytes = 32;
/// Largest data record: one stream frame holds the record header and it.
constexpr size_t rec_data_bytes_max = net::frame_data_bytes_max - rec_header_bytes;

void put_rec_header(char* p, rec type, uint32_t len) {
  p[0] = static_cast<char>(type);
  for (int i = 0; i < 4; ++i)
    p[1 + i] = static_cast<char>(len >> (24 - 8 * i));
}

void put_u64(char* p, uint64_t v) {
  for (int i = 0; i < 8; ++i)
    p[i] = static_cast<char>(v >> (56 - 8 * i));
}

using retry_atom = caf::atom_constant<caf::atom("retry")>;
using expire_atom = caf::atom_constant<caf::atom("expire")>;

class rsession_actor final : public caf::event_based_actor {
public:
  rsession_actor(caf::actor_config& cfg, rsession_params p)
    : caf::event_based_actor(cfg), p_(std::move(p)) {
  }

  const char* name() const override {
    return "drtp.rsession";
  }

  caf::behavior make_behavior() override {
    who_ = "rsession#" + std::to_string(id());
    if (p_.client_end) {
      local_ = p_.local_conn;
      send(p_.e.io, net::adopt_req{local_, this});
      token_ = p_.e.rng->bytes(token_bytes);
      // A first path must come within the resume timeout too, or the local
      // connection is closed rather than left waiting forever.
      expire_armed_ = true;
      delayed_send(this, p_.e.clock->real_delay(
                           std::chrono::milliseconds(p_.resume_timeout_ms)),
                   expire_atom::value, path_epoch_);
      attach_via_controller();
    } else {
      attach(p_.tunnel, p_.tunnel_conn, p_.sid);
      net::connect_req req;
      req.tag = 1;
      req.host = p_.local_host;
      req.port = p_.local_port;
      req.timeout_ms = p_.e.limits.connect_timeout_ms;
      send(p_.e.io, std::move(req));
    }
    return {
      // -- the local connection ----------------------------------------------------
      [this](net::connected& ev) {
        local_ = ev.id;
        if (!to_local_.empty()) {
          send(p_.e.io, net::write_req{local_, std::move(to_local_)});
          to_local_.clear();
        }
        if (peer_fin_)
          send(p_.e.io, net::shutdown_write_req{local_});
        if (peer_close_)
          send(p_.e.io, net::abort_req{local_});
      },
      [this](net::connect_failed& ev) {
        trace("cannot reach local service " + p_.local_host + ":"
              + std::to_string(p_.local_port) + ": " + ev.what);
        send_record(rec::close, nullptr, 0);
        end_soon();
      },
      [this](net::received& ev) {
        if (ev.id == local_ && !ev.data.empty()) {
          held_.push_back(std::move(ev.data));
          pump();
        }
      },
      [this](net::read_closed& ev) {
        if (ev.id != local_)
          return;
        local_eof_ = true;
        pump();
      },
      [this](net::sent& ev) {
        if (ev.id != local_)
          return;
        delivered_ += ev.bytes;
        // Acknowledge in batches, and everything once the peer is done.
        if (delivered_ - acked_sent_ >= p_.retransmit_bytes_max / 4
            || (peer_fin_ && delivered_ == received_))
          send_ack();
      },
      [this](net::closed& ev) {
        if (ev.id != local_)
          return;
        local_ = 0;
        if (ev.reason == net::close_reason::peer) {
          // Both directions ended in order: only the FIN handshake is left.
          local_eof_ = true;
          local_done_ = true;
          pump();
          maybe_done();
          return;
        }
        if (!peer_close_) {
          trace(std::string("local connection ") + net::to_string(ev.reason)
                + "; closing the session");
          send_record(rec::close, nullptr, 0);
        }
        end_soon();
      },
      // -- the stream ------------------------------------------------------------------
      [this](stream_opened& ev) {
        attach(ev.tunnel, ev.conn, ev.sid);
        if (resumes_ == 0 && !welcomed_) {
          send_record(rec::hello, token_.data(), token_.size());
        } else {
          char buf[token_bytes + 8];
          std::memcpy(buf, token_.data(), token_bytes);
          put_u64(buf + token_bytes, received_);
          awaiting_resume_ = true; // resend only once the serve end says from where
          send_record(rec::resume, buf, sizeof(buf));
        }
      },
      [this](attach_stream& ev) {
        // Serve end: the client came back through another POP.
        if (tunnel_)
          send(tunnel_, stream_rst{sid_, static_cast<uint32_t>(net::rst_code::closed)});
        attach(ev.tunnel, ev.conn, ev.sid);
        awaiting_resume_ = true;
      },
      [this](stream_data& ev) {
        if (!tunnel_ || ev.sid != sid_)
          return;
        stream_consumed_ += ev.data.size();
        if (stream_consumed_ >= p_.e.limits.window_bytes / 4) {
          send(tunnel_, stream_window{sid_, static_cast<uint32_t>(stream_consumed_)});
          stream_consumed_ = 0;
        }
        on_stream_bytes(ev.data);
      },
      [this](stream_window& ev) {
        if (tunnel_ && ev.sid == sid_) {
          stream_credit_ += ev.bytes;
          pump();
        }
      },
      [this](stream_fin&) {
        // The end is decided by FIN records end to end; the stream's FIN
        // only follows them.
        maybe_done();
      },
      [this](stream_rst& ev) {
        auto code = static_cast<net::rst_code>(ev.code);
        if (!tunnel_ && ev.sid == 0 && p_.client_end) {
          // The tunnel could not open a stream: try another.
          refused_.insert(last_try_);
          schedule_retry(std::chrono::milliseconds(20));
          return;
        }
        if (!tunnel_ || ev.sid != sid_)
          return;
        if (code == net::rst_code::refused && p_.client_end)
          refused_.insert(tunnel_.address()); // no agent there, or a bad resume
        detach(to_string(code));
      },
      [this](retry_atom) {
        retry_pending_ = false;
        if (!tunnel_ && !finished_)
          attach_via_controller();
      },
      [this](expire_atom, uint64_t epoch) {
        if (epoch != path_epoch_)
          return; // a path came back since this timer was set
        expire_armed_ = false;
        if (!tunnel_ && !finished_) {
          trace("no path back within " + std::to_string(p_.resume_timeout_ms)
                + " ms; closing the session");
          if (local_ != 0)
            send(p_.e.io, net::close_req{local_});
          finish();
        }
      },
    };
  }

private:
  void trace(const std::string& what) {
    p_.e.trace->emit(p_.e.host, who_, what);
  }

  // -- paths -------------------------------------------------------------------------

  void attach(caf::actor tunnel, net::conn_id conn, uint32_t sid) {
    tunnel_ = std::move(tunnel);
    tunnel_conn_ = conn;
    sid_ = sid;
    stream_credit_ = p_.e.limits.window_bytes;
    stream_consumed_ = 0;
    in_.clear();
    in_need_ = 0;
    in_type_ = 0;
    stream_fin_sent_ = false;
  }

  void detach(const std::string& why) {
    tunnel_ = nullptr;
    if (finished_ || ending_) {
      finish();
      return;
    }
    trace("lost its path (" + why + "); resuming");
    if (!expire_armed_) {
      expire_armed_ = true;
      delayed_send(this, p_.e.clock->real_delay(std::chrono::milliseconds(p_.resume_timeout_ms)),
                   expire_atom::value, path_epoch_);
    }
    if (p_.client_end)
      schedule_retry(std::chrono::milliseconds(20));
  }

  void schedule_retry(std::chrono::milliseconds d) {
    if (retry_pending_)
      return;
    retry_pending_ = true;
    delayed_send(this, p_.e.clock->real_delay(d), retry_atom::value);
  }

  /// Client end: the best tunnel the controller has, skipping ones that just
  /// refused us; then a new stream on it.
  void attach_via_controller() {
    request(p_.controller, std::chrono::seconds(5), best_tunnel_atom::value)
      .then(
        [this](std::vector<caf::actor>& candidates) {
          if (tunnel_ || finished_)
            return;
          for (auto& t : candidates) {
            if (refused_.count(t.address()))
              continue;
            net::open_msg open;
            open.peer = "patch panel";
            open.resumable = true;
            open.resume = welcomed_;
            open.session_id = p_.session_id;
            open.agent_id = agent_id_;
            last_try_ = t.address();
            send(t, open_stream_req{open});
            return;
          }
          refused_.clear();
          schedule_retry(std::chrono::milliseconds(200));
        },
        [this](caf::error& err) {
          if (err == caf::sec::request_receiver_down) {
            // drtp connect itself is going away (or refused for good).
            trace("no controller for tunnels; closing the session");
            if (local_ != 0)
              send(p_.e.io, net::abort_req{local_});
            finish();
            return;
          }
          schedule_retry(std::chrono::milliseconds(200));
        });
  }

  // -- records out -------------------------------------------------------------------

  void send_record(rec type, const void* payload, size_t n) {
    assert(n <= rec_control_bytes_max);
    if (!tunnel_)
      return;
    char* out = nullptr;
    auto c = net::chunk::allocate(net::frame_header_bytes + rec_header_bytes + n, &out);
    net::encode_header(out, net::frame_type::data, 0, sid_,
                       static_cast<uint32_t>(rec_header_bytes + n));
    put_rec_header(out + net::frame_header_bytes, type, static_cast<uint32_t>(n));
    if (n > 0)
      std::memcpy(out + net::frame_header_bytes + rec_header_bytes, payload, n);
    stream_credit_ -= std::min<uint64_t>(stream_credit_, rec_header_bytes + n);
    send(p_.e.io, net::write_req{tunnel_conn_, {std::move(c)}});
  }

  void send_data(const net::chunk& payload) {
    // Frame and record header in one pooled slice: no allocation per record.
    auto n = static_cast<uint32_t>(payload.size());
    char rh[rec_header_bytes];
    put_rec_header(rh, rec::data, n);
    auto hdr = headers_.make(net::frame_type::data, sid_, rec_header_bytes + n, rh,
                             sizeof(rh));
    stream_credit_ -= rec_header_bytes + n;
    send(p_.e.io, net::write_req{tunnel_conn_, {std::move(hdr), payload}});
  }

  void send_ack() {
    char buf[9];
    put_u64(buf, delivered_);
    buf[8] = peer_fin_ ? 1 : 0;
    acked_sent_ = delivered_;
    send_record(rec::ack, buf, sizeof(buf));
  }

  bool can_send(size_t n) const {
    // Nothing goes out before the welcome: a client that was never welcomed
    // has received nothing, which makes a second hello safe.
    return tunnel_ && !awaiting_resume_ && welcomed_
           && stream_credit_ >= rec_header_bytes + n;
  }

  /// Moves local bytes out while the stream has credit and the retransmit
  /// buffer has room; pauses reading the local socket otherwise.
  void pump() {
    // Resend first (after a resume), then new bytes.
    while (resend_at_ < retx_.size()) {
      auto& c = retx_[resend_at_].second;
      if (!can_send(c.size()))
        break;
      send_data(c);
      ++resend_at_;
    }
    if (resend_at_ >= retx_.size()) {
      while (!held_.empty()) {
        auto& front = held_.front();
        auto room = p_.retransmit_bytes_max - std::min<uint64_t>(
                                                p_.retransmit_bytes_max,
                                                sent_ - acked_);
        auto n = std::min<uint64_t>({front.size(), rec_data_bytes_max, room});
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
    if (local_eof_ && held_.empty() && !fin_sent_ && resend_at_ >= retx_.size()
        && can_send(0)) {
      fin_sent_ = true;
      send_record(rec::fin, nullptr, 0);
    }
    bool want_pause = !held_.empty();
    if (local_ != 0 && want_pause != paused_) {
      paused_ = want_pause;
      if (paused_)
        send(p_.e.io, net::pause_read_req{local_});
      else
        send(p_.e.io, net::resume_read_req{local_});
    }
    maybe_done();
  }

  // -- records in ----------------------------------------------------------------------

  void on_stream_bytes(const net::chunk& c) {
    size_t pos = 0;
    while (pos < c.size() && tunnel_) {
      if (in_type_ == 0) {
        // Collect a 5-byte record header.
        auto take = std::min(rec_header_bytes - in_.size(), c.size() - pos);
        in_.append(c.data() + pos, take);
        pos += take;
        if (in_.size() < rec_header_bytes)
          return;
        in_type_ = static_cast<uint8_t>(in_[0]);
        in_need_ = net::read_u32(in_.data() + 1);
        in_.clear();
        if (in_type_ < 1 || in_type_ > 8
            || (in_type_ != static_cast<uint8_t>(rec::data)
                && in_need_ > rec_control_bytes_max)) {
          protocol_error("bad record");
          return;
        }
        if (in_need_ == 0) {
          on_record(static_cast<rec>(in_type_), "");
          in_type_ = 0;
        }
        continue;
      }
      auto take = std::min<size_t>(in_need_, c.size() - pos);
      if (in_type_ == static_cast<uint8_t>(rec::data)) {
        on_data(c.slice(pos, take));
      } else {
        in_.append(c.data() + pos, take);
      }
      pos += take;
      in_need_ -= take;
      if (in_need_ == 0) {
        if (in_type_ != static_cast<uint8_t>(rec::data))
          on_record(static_cast<rec>(in_type_), in_);
        in_.clear();
        in_type_ = 0;
      }
    }
  }

  void on_data(net::chunk payload) {
    if (payload.empty() || peer_close_)
      return;
    received_ += payload.size();
    if (local_ != 0)
      send(p_.e.io, net::write_req{local_, {std::move(payload)}});
    else if (!p_.client_end)
      to_local_.push_back(std::move(payload));
  }

  void on_record(rec type, const std::string& body) {
    switch (type) {
      case rec::hello:
        if (p_.client_end || body.size() != token_bytes)
          return protocol_error("unexpected hello");
        if (!token_.empty() && !net::equal_ct(body, token_)) {
          trace("refused a hello with another session's token");
          send(tunnel_, stream_rst{sid_, static_cast<uint32_t>(net::rst_code::refused)});
          tunnel_ = nullptr;
          return;
        }
        if (welcomed_) {
          // The client lost its first path before our welcome reached it,
          // so it has none of our bytes: start over from offset 0.
          rewind_to(0);
          path_back();
        }
        token_ = body;
        welcomed_ = true;
        awaiting_resume_ = false;
        send_record(rec::welcome, p_.agent_id.data(),
                    std::min(p_.agent_id.size(), rec_control_bytes_max));
        pump();
        return;
      case rec::welcome:
        if (!p_.client_end)
          return protocol_error("unexpected welcome");
        agent_id_ = body;
        welcomed_ = true;
        path_back();
        pump();
        return;
      case rec::resume: {
        if (p_.client_end || body.size() != token_bytes + 8)
          return protocol_error("unexpected resume");
        // Constant time: guessing the token must not be cheaper than brute force.
        if (!net::equal_ct(body.substr(0, token_bytes), token_)) {
          trace("refused a resume with a wrong token");
          send(tunnel_, stream_rst{sid_, static_cast<uint32_t>(net::rst_code::refused)});
          tunnel_ = nullptr;
          return;
        }
        char buf[8];
        put_u64(buf, received_);
        send_record(rec::resumed, buf, sizeof(buf));
        resume_from(net::read_u64(body.data() + token_bytes));
        return;
      }
      case rec::resumed:
        if (!p_.client_end || body.size() != 8)
          return protocol_error("unexpected resumed");
        resume_from(net::read_u64(body.data()));
        return;
      case rec::ack:
        if (body.size() != 9)
          return protocol_error("bad ack");
        trim_to(net::read_u64(body.data()));
        fin_acked_ = fin_acked_ || body[8] != 0;
        pump();
        return;
      case rec::fin:
        if (!peer_fin_) {
          peer_fin_ = true;
          if (local_ != 0)
            send(p_.e.io, net::shutdown_write_req{local_});
        }
        send_ack();
        maybe_done();
        return;
      case rec::close:
        peer_close_ = true;
        if (local_ != 0)
          send(p_.e.io, net::abort_req{local_});
        end_soon();
        return;
      default:
        return protocol_error("unknown record");
    }
  }

  /// Both ends agree where the peer stands: resend from there and go on.
  void resume_from(uint64_t peer_received) {
    awaiting_resume_ = false;
    rewind_to(peer_received);
    ++resumes_;
    path_back();
    trace("resumed on a new path; resending " + std::to_string(sent_ - acked_)
          + " bytes from offset " + std::to_string(acked_));
    pump();
  }

  /// A working path again: the resume timeout starts over at the next loss.
  void path_back() {
    ++path_epoch_;
    expire_armed_ = false;
    refused_.clear();
  }

  /// The peer has everything before `offset`: drop it, resend the rest.
  void rewind_to(uint64_t offset) {
    trim_to(offset);
    resend_at_ = 0;
    // A FIN that may have been lost with the old path goes out again.
    if (fin_sent_ && !fin_acked_)
      fin_sent_ = false;
  }

  void trim_to(uint64_t offset) {
    if (offset > sent_)
      return protocol_error("acknowledged bytes never sent");
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
  }

  void protocol_error(const std::string& what) {
    trace("protocol error in session: " + what);
    if (local_ != 0)
      send(p_.e.io, net::abort_req{local_});
    if (tunnel_)
      send(tunnel_, stream_rst{sid_, static_cast<uint32_t>(net::rst_code::refused)});
    finish();
  }

  // -- the end -----------------------------------------------------------------------

  /// Done when both directions finished end to end and the local socket is
  /// closed: our FIN acknowledged, theirs received.
  void maybe_done() {
    if (finished_)
      return;
    bool ours = fin_sent_ && fin_acked_ && acked_ == sent_;
    if (ours && peer_fin_ && local_done_)
      end_soon();
  }

  /// Ends the stream (the splice at the POP passes the FIN on) and the session.
  void end_soon() {
    ending_ = true;
    if (tunnel_ && !stream_fin_sent_) {
      stream_fin_sent_ = true;
      send(p_.e.io, net::write_req{tunnel_conn_, {net::encode_frame(
                                                   net::frame_type::fin, sid_,
                                                   nullptr, 0)}});
    }
    finish();
  }

  void finish() {
    if (finished_)
      return;
    finished_ = true;
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
  }

  rsession_params p_;
  std::string who_;
  std::string token_;
  std::string agent_id_;
  net::header_pool headers_;
  // the local socket
  net::conn_id local_ = 0;
  net::chunk_list to_local_; // serve end, before the local connect completes
  std::deque<net::chunk> held_; // read, not yet sent
  bool paused_ = false;
  bool local_eof_ = false;
  bool local_done_ = false;
  // the path
  caf::actor tunnel_;
  net::conn_id tunnel_conn_ = 0;
  uint32_t sid_ = 0;
  uint64_t stream_credit_ = 0;
  uint64_t stream_consumed_ = 0;
  std::string in_;
  uint8_t in_type_ = 0;
  uint64_t in_need_ = 0;
  bool stream_fin_sent_ = false;
  bool awaiting_resume_ = false;
  bool welcomed_ = false;
  std::set<caf::actor_addr> refused_;
  caf::actor_addr last_try_;
  bool retry_pending_ = false;
  bool expire_armed_ = false;
  uint64_t path_epoch_ = 0;
  uint32_t resumes_ = 0;
  // end to end
  std::deque<std::pair<uint64_t, net::chunk>> retx_; // [offset, bytes) unacked
  size_t resend_at_ = 0; // retx_ entries before this index went out on this path
  uint64_t sent_ = 0;
  uint64_t acked_ = 0;
  uint64_t received_ = 0;
  uint64_t delivered_ = 0;
  uint64_t acked_sent_ = 0;
  bool fin_sent_ = false;
  bool fin_acked_ = false;
  bool peer_fin_ = false;
  bool peer_close_ = false;
  bool ending_ = false;
  bool finished_ = false;
};

} // namespace

caf::actor spawn_rsession(caf::actor_system& sys, rsession_params p) {
  return sys.spawn<rsession_actor>(std::move(p));
}

} // namespace drtp
