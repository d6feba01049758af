#include "actors/session.hpp"

#include <cassert>
#include <deque>

#include "actors/messages.hpp"
#include "caf/all.hpp"
#include "net/wire/frame.hpp"

namespace drtp {

namespace {

class session_actor final : public caf::event_based_actor {
public:
  session_actor(caf::actor_config& cfg, session_params p)
    : caf::event_based_actor(cfg), p_(std::move(p)),
      send_credit_bytes_(p_.e.limits.window_bytes) {
  }

  const char* name() const override {
    return "drtp.session";
  }

  caf::behavior make_behavior() override {
    who_ = "session#" + std::to_string(id()) + "/s" + std::to_string(p_.sid);
    if (p_.conn != 0) {
      conn_ = p_.conn;
      send(p_.e.io, net::adopt_req{conn_, this});
    } else {
      net::connect_req req;
      req.tag = p_.sid;
      req.host = p_.local_host;
      req.port = p_.local_port;
      req.timeout_ms = p_.e.limits.connect_timeout_ms;
      send(p_.e.io, std::move(req));
    }
    return {
      // -- the local connection ------------------------------------------------
      [this](net::connected& ev) {
        conn_ = ev.id;
        if (rst_) {
          send(p_.e.io, net::abort_req{conn_});
          return;
        }
        if (!to_local_.empty()) {
          send(p_.e.io, net::write_req{conn_, std::move(to_local_)});
          to_local_.clear();
        }
        if (peer_fin_)
          send(p_.e.io, net::shutdown_write_req{conn_});
      },
      [this](net::connect_failed& ev) {
        trace("cannot reach local service " + p_.local_host + ":"
              + std::to_string(p_.local_port) + ": " + ev.what);
        if (!rst_)
          send(p_.tunnel,
               stream_rst{p_.sid, static_cast<uint32_t>(net::rst_code::connect_failed)});
        finish();
      },
      [this](net::received& ev) {
        if (ev.id == conn_)
          from_local(std::move(ev.data));
      },
      [this](net::read_closed& ev) {
        if (ev.id != conn_)
          return;
        local_eof_ = true;
        maybe_send_fin();
      },
      [this](net::sent& ev) {
        if (ev.id != conn_)
          return;
        // Credit flows back only once bytes left for the local socket, so
        // the peer can never make us hold more than one window.
        consumed_bytes_ += ev.bytes;
        if (consumed_bytes_ >= p_.e.limits.window_bytes / 4 && !rst_) {
          send(p_.tunnel,
               stream_window{p_.sid, static_cast<uint32_t>(consumed_bytes_)});
          consumed_bytes_ = 0;
        }
      },
      [this](net::closed& ev) {
        if (ev.id != conn_)
          return;
        conn_ = 0;
        if (!rst_ && ev.reason == net::close_reason::peer) {
          // Both directions of the socket ended in order; bytes still held
          // for lack of credit go out first, then the FIN, then we finish.
          local_eof_ = true;
          local_gone_ = true;
          flush_held();
          if (fin_sent_)
            finish();
          return;
        }
        if (!rst_ && !(fin_sent_ && peer_fin_)) {
          // The local side went away before both directions finished.
          trace(std::string("local connection ") + net::to_string(ev.reason)
                + (ev.what.empty() ? "" : ": " + ev.what)
                + " before the stream finished; resetting it");
          rst_ = true;
          send(p_.tunnel,
               stream_rst{p_.sid, static_cast<uint32_t>(net::rst_code::closed)});
        }
        finish();
      },
      // -- the stream ------------------------------------------------------------
      [this](stream_data& ev) {
        if (rst_ || peer_fin_)
          return;
        if (conn_ != 0)
          send(p_.e.io, net::write_req{conn_, {std::move(ev.data)}});
        else
          to_local_.push_back(std::move(ev.data));
      },
      [this](stream_fin&) {
        peer_fin_ = true;
        if (conn_ != 0)
          send(p_.e.io, net::shutdown_write_req{conn_});
      },
      [this](stream_rst& ev) {
        if (peer_fin_ && fin_sent_) {
          // Both directions were complete; only the stream's bookkeeping was
          // cut (a drained tunnel let go). The bytes queued for the local
          // socket still go out, then it closes as usual.
          return;
        }
        rst_ = true;
        if (p_.e.trace->verbose())
          trace(std::string("stream reset by peer: ")
                + to_string(static_cast<net::rst_code>(ev.code)));
        // Without a connection yet, the pending connect ends the session.
        if (conn_ != 0)
          send(p_.e.io, net::abort_req{conn_});
      },
      [this](stream_window& ev) {
        send_credit_bytes_ += ev.bytes;
        flush_held();
      },
    };
  }

private:
  void trace(const std::string& what) {
    p_.e.trace->emit(p_.e.host, who_, what);
  }

  void from_local(net::chunk data) {
    if (rst_ || data.empty())
      return;
    held_.push_back(std::move(data));
    flush_held();
    if (!held_.empty() && !paused_ && conn_ != 0) {
      paused_ = true;
      send(p_.e.io, net::pause_read_req{conn_});
    }
  }

  void flush_held() {
    while (!held_.empty() && send_credit_bytes_ > 0 && !rst_) {
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
    if (held_.empty() && paused_ && conn_ != 0) {
      paused_ = false;
      send(p_.e.io, net::resume_read_req{conn_});
    }
    maybe_send_fin();
  }

  void maybe_send_fin() {
    if (local_eof_ && held_.empty() && !fin_sent_ && !rst_) {
      fin_sent_ = true;
      send(p_.e.io, net::write_req{p_.tunnel_conn,
                                   {net::encode_frame(net::frame_type::fin,
                                                      p_.sid, nullptr, 0)}});
      if (local_gone_)
        finish();
    }
  }

  void write_data(net::chunk data) {
    assert(data.size() <= net::frame_data_bytes_max);
    auto hdr = headers_.make(net::frame_type::data, p_.sid,
                             static_cast<uint32_t>(data.size()));
    send(p_.e.io, net::write_req{p_.tunnel_conn, {std::move(hdr), std::move(data)}});
  }

  void finish() {
    if (finished_)
      return;
    finished_ = true;
    send(p_.tunnel, stream_done{p_.sid});
    quit();
  }

  // Actors hold each other's handles (owner <-> tunnel <-> session); a dead
  // actor lets go of them so that no cycle outlives it.
  void on_exit() override {
    p_ = {};
  }

  session_params p_;
  std::string who_;
  net::header_pool headers_;
  net::conn_id conn_ = 0;
  /// Peer bytes that arrived before the local connection was up.
  net::chunk_list to_local_;
  /// Local bytes waiting for credit; bounded by the reads done before pausing.
  std::deque<net::chunk> held_;
  uint64_t send_credit_bytes_;
  uint64_t consumed_bytes_ = 0;
  bool paused_ = false;
  bool local_eof_ = false;
  bool fin_sent_ = false;
  bool peer_fin_ = false;
  bool rst_ = false;
  bool finished_ = false;
  bool local_gone_ = false; // the socket closed gracefully, stream not yet
};

} // namespace

caf::actor spawn_session(caf::actor_system& sys, session_params p) {
  return sys.spawn<session_actor>(std::move(p));
}

} // namespace drtp
