#include "net/asio_io.hpp"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <deque>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <type_traits>
#include <unordered_map>
#include <vector>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <asio.hpp>
#include <asio/ssl.hpp>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include "caf/all.hpp"
#include "net/loop_coordinator.hpp"
#include "net/seam/assert.hpp"
#include "net/seam/io.hpp"
#include "net/seam/io_actor.hpp"
#include "net/tls_stream.hpp"
#include "net/wire/handshake.hpp"

namespace drtp::net {

namespace {

using namespace std::chrono_literals;
using tcp = asio::ip::tcp;

// -- limits --------------------------------------------------------------------

/// Each read asks the kernel for at most this much.
constexpr size_t read_buffer_bytes = 64 * 1024;
/// Reads up to this size are copied into an exact-size chunk and the read
/// buffer is kept: cheaper than a fresh zeroed 64 KiB buffer per small read,
/// and a 64-byte message does not pin 64 KiB while actors hold it.
constexpr size_t small_read_copy_bytes = 4 * 1024;
/// A write gathers at most this many chunks / bytes; 64 is what asio hands
/// to one sendmsg anyway. TLS encrypts them all into one send.
constexpr size_t max_gather_chunks = 64;
constexpr size_t max_gather_bytes = 256 * 1024;
constexpr auto tls_accept_handshake_timeout = 10s;
/// TLS accept handshakes in progress per peer address: a source that opens
/// TCP connections and never speaks TLS holds a socket each until the
/// timeout above; bounded, it cannot use up the process's file descriptors
/// and with them every agent's way in. The POP's own admission control
/// (actors/admission) bounds what comes after TLS.
constexpr uint32_t tls_accepts_per_source_max = 64;
/// How long a graceful close waits for the peer to finish (TLS: its
/// close_notify; plain TCP: its FIN) before closing the socket anyway.
constexpr auto close_linger_timeout = 1s;
/// Back-off after a failing accept (EMFILE and the like) so it does not spin.
constexpr auto accept_retry_delay = 100ms;
/// How long stop() lets the I/O loop wind down before it cuts it off.
constexpr auto stop_grace_period = 2s;

static_assert(small_read_copy_bytes < read_buffer_bytes);
static_assert(max_gather_chunks > 0 && max_gather_bytes >= read_buffer_bytes);

// -- helpers -------------------------------------------------------------------

/// TCP keepalive on every socket: a peer that vanished without FIN or RST
/// (a visitor's laptop closed, a NAT that forgot us) is found after
/// keepalive_idle_s of silence plus keepalive_probes_max unanswered probes
/// keepalive_interval_s apart, about 2 minutes, instead of never. Best
/// effort: a socket that refuses an option still works.
constexpr int keepalive_idle_s = 60;
constexpr int keepalive_interval_s = 10;
constexpr int keepalive_probes_max = 5;

void set_keepalive(asio::ip::tcp::socket& sock) {
  asio::error_code ignored;
  sock.set_option(asio::socket_base::keep_alive(true), ignored);
  using idle = asio::detail::socket_option::integer<IPPROTO_TCP, TCP_KEEPIDLE>;
  using interval = asio::detail::socket_option::integer<IPPROTO_TCP, TCP_KEEPINTVL>;
  using probes = asio::detail::socket_option::integer<IPPROTO_TCP, TCP_KEEPCNT>;
  sock.set_option(idle(keepalive_idle_s), ignored);
  sock.set_option(interval(keepalive_interval_s), ignored);
  sock.set_option(probes(keepalive_probes_max), ignored);
}

/// "Connection refused" -> "connection refused", to fit in "...: reason".
std::string describe(const asio::error_code& ec) {
  std::string s = ec.message();
  if (!s.empty())
    s[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(s[0])));
  return s;
}

std::string strip_brackets(const std::string& host) {
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    return host.substr(1, host.size() - 2);
  return host;
}

std::string endpoint_text(const std::string& host, uint16_t port) {
  if (host.find(':') != std::string::npos && host.front() != '[')
    return "[" + host + "]:" + std::to_string(port);
  return host + ":" + std::to_string(port);
}

bool is_ip_literal(const std::string& host) {
  asio::error_code ec;
  asio::ip::make_address(strip_brackets(host), ec);
  return !ec;
}

connect_error classify(const asio::error_code& ec) {
  if (ec == asio::error::connection_refused)
    return connect_error::refused;
  if (ec == asio::error::host_unreachable
      || ec == asio::error::network_unreachable
      || ec == asio::error::host_not_found
      || ec == asio::error::host_not_found_try_again
      || ec == asio::error::no_data)
    return connect_error::unreachable;
  if (ec == asio::error::timed_out)
    return connect_error::timed_out;
  return connect_error::other;
}

tcp::socket& lowest(tcp::socket& s) {
  return s;
}

/// What a login proof on this connection signs (net/seam/io.hpp).
std::string channel_binding(tls_stream& s) {
  return s.export_keying_material(channel_binding_label, channel_binding_bytes);
}

tcp::socket& lowest(tls_stream& s) {
  return s.next_layer();
}

/// A buffer sequence viewing a range of the connection's reusable buffer
/// vector. asio copies the sequence into its write operation; copying a
/// std::vector there would allocate on every write, copying this does not.
struct buffer_span {
  using value_type = asio::const_buffer;
  using const_iterator = const asio::const_buffer*;
  const asio::const_buffer* first;
  const asio::const_buffer* last;
  const_iterator begin() const { return first; }
  const_iterator end() const { return last; }
};

/// TLS 1.3 only: every peer is our own software, so nothing older is needed.
void restrict_to_tls13(asio::ssl::context& ctx) {
  ctx.set_options(asio::ssl::context::default_workarounds
                  | asio::ssl::context::no_sslv2 | asio::ssl::context::no_sslv3
                  | asio::ssl::context::no_tlsv1 | asio::ssl::context::no_tlsv1_1
                  | asio::ssl::context::no_tlsv1_2
                  | asio::ssl::context::no_compression);
  SSL_CTX_set_min_proto_version(ctx.native_handle(), TLS1_3_VERSION);
  // AES-128-GCM first: TLS 1.3's mandatory suite, and ~6% faster here than
  // OpenSSL's default first choice, AES-256-GCM, on every byte of a tunnel.
  // The POP's order wins, so any client gets it.
  SSL_CTX_set_ciphersuites(ctx.native_handle(),
                           "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:"
                           "TLS_CHACHA20_POLY1305_SHA256");
  SSL_CTX_set_options(ctx.native_handle(), SSL_OP_CIPHER_SERVER_PREFERENCE);
}

class io_core;

// -- connections ---------------------------------------------------------------

/// What io_core needs from a connection, whatever its stream type. Every
/// method runs on the I/O thread.
/// Every connection's write queue, summed (drtp_write_queue_bytes): one
/// relaxed add per write and per completion.
std::atomic<uint64_t> write_queue_bytes_total{0};

class conn_base {
public:
  /// Holds the backend: completions of a connection can run after the
  /// asio_io object is gone (the loop scheduler outlives it).
  conn_base(std::shared_ptr<io_core> io, conn_id id)
    : keep_io_(std::move(io)), io_(*keep_io_), id_(id) {
  }
  virtual ~conn_base() = default;

  conn_id id() const noexcept { return id_; }
  bool is_closed() const noexcept { return closed_; }

  /// queue_bytes_max: the write queue's hard cap (0 = the seam's default).
  virtual void adopt(caf::actor owner, bool report_sent, uint64_t queue_bytes_max) = 0;
  virtual void write(chunk_list&& data) = 0;
  virtual void shutdown_write() = 0;
  virtual void close() = 0;
  virtual void abort() = 0;
  virtual void pause_read() = 0;
  virtual void resume_read() = 0;
  /// For stop() and failed handshakes: close now, report nothing.
  virtual void kill() = 0;

  /// Set once `accepted` or `connected` went out; before that the connection
  /// is still being set up and has no owner.
  bool established = false;
  /// Set by the verify callback when the pinned fingerprint did not match.
  bool pin_mismatch = false;
  /// Set when the setup deadline (TLS accept handshake) expired.
  bool deadline_hit = false;

protected:
  std::shared_ptr<io_core> keep_io_;
  io_core& io_;
  conn_id id_;
  bool closed_ = false; // `closed` went out (or kill); nothing is sent after
};

template <class Stream>
class connection final : public conn_base,
                         public std::enable_shared_from_this<connection<Stream>> {
public:
  static constexpr bool is_tls = std::is_same_v<Stream, tls_stream>;

  template <class... Ts>
  connection(std::shared_ptr<io_core> io, conn_id id, asio::io_context& ctx,
             Ts&&... xs);
  ~connection() override {
    write_queue_bytes_total.fetch_sub(queued_bytes_, std::memory_order_relaxed);
  }

  Stream& stream() { return stream_; }
  tcp::socket& socket() { return lowest(stream_); }
  asio::steady_timer& timer() { return timer_; }

  void adopt(caf::actor owner, bool report_sent, uint64_t queue_bytes_max) override {
    if (closed_)
      return;
    owner_ = std::move(owner);
    report_sent_ = report_sent;
    queue_bytes_max_ = queue_bytes_max != 0 ? queue_bytes_max : write_queue_bytes_default;
    reading_ = true;
    maybe_read();
  }

  void write(chunk_list&& data) override;

  void shutdown_write() override {
    if (closed_ || shutdown_requested_ || close_requested_)
      return;
    shutdown_requested_ = true;
    maybe_write(); // runs on_drained() if nothing is queued
  }

  void close() override {
    if (closed_ || close_requested_)
      return;
    close_requested_ = true;
    maybe_write();
  }

  void abort() override {
    if (closed_)
      return;
    asio::error_code ignored;
    // SO_LINGER {1, 0}: close() sends RST instead of FIN, so the peer sees a
    // reset and the kernel drops unsent bytes.
    socket().set_option(asio::socket_base::linger(true, 0), ignored);
    finish(close_reason::local, "");
  }

  void pause_read() override {
    paused_ = true; // a read in flight still completes and is delivered
  }

  void resume_read() override {
    if (closed_ || !paused_)
      return;
    paused_ = false;
    maybe_read();
  }

  void kill() override {
    closed_ = true;
    asio::error_code ignored;
    socket().close(ignored);
    timer_.cancel();
    if (!write_in_flight_)
      queue_.clear();
    owner_ = nullptr;
  }

private:
  void maybe_read();
  void on_read(const asio::error_code& ec, size_t n);
  void maybe_write();
  void on_write(const asio::error_code& ec, size_t n);
  void on_drained();
  void maybe_finish_peer();
  void fail_with(const asio::error_code& ec);
  /// Reports `closed` and closes the socket at once.
  void finish(close_reason reason, std::string what);
  /// close_req after the queue drained.
  void graceful_close();
  void linger_read();
  void end_linger();

  Stream stream_;
  /// Setup deadline (connect / accept handshake), later the TLS close timer;
  /// never two uses at once.
  asio::steady_timer timer_;
  caf::actor owner_;

  // The next read lands here; handed to the actors whole after a large read.
  chunk read_chunk_;
  char* read_ptr_ = nullptr;
  size_t read_size_ = small_read_copy_bytes; // grows to read_buffer_bytes
  bool reading_ = false; // adopted or connected: reads may run
  bool report_sent_ = true;
  bool paused_ = false;
  bool read_in_flight_ = false;
  bool eof_ = false; // read_closed went out

  std::deque<chunk> queue_;
  size_t queued_bytes_ = 0; // in write_queue_bytes_total too, until destroyed
  size_t in_flight_chunks_ = 0; // chunks the current write covers
  std::vector<asio::const_buffer> gather_;
  bool write_in_flight_ = false;
  /// The seam's hard cap (see net/seam/io.hpp): a peer that does not read
  /// costs at most this much.
  uint64_t queue_bytes_max_ = write_queue_bytes_default;
  bool shutdown_requested_ = false;
  bool write_shut_ = false; // our send side is shut
  bool close_requested_ = false;
  bool lingering_ = false; // plain TCP: closed, discarding input until EOF
};

/// The client side checks a pinned certificate here: only the leaf matters,
/// chain errors (self-signed, unknown issuer) are ignored on purpose.
struct pin_checker {
  conn_base* conn;
  std::string pin;
  bool operator()(bool, asio::ssl::verify_context& vc) const {
    X509_STORE_CTX* store = vc.native_handle();
    if (X509_STORE_CTX_get_error_depth(store) != 0)
      return true;
    X509* cert = X509_STORE_CTX_get_current_cert(store);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    bool ok = cert != nullptr && X509_digest(cert, EVP_sha256(), md, &len) == 1
              && len == pin.size()
              && CRYPTO_memcmp(md, pin.data(), len) == 0;
    if (!ok)
      conn->pin_mismatch = true;
    return ok;
  }
};

struct listener {
  explicit listener(asio::io_context& ctx) : acceptor(ctx), retry_timer(ctx) {
  }
  listener_id id = 0;
  caf::actor owner;
  bool tls = false;
  bool request_client_cert = false; // TLS: ask for a client certificate
  tcp::acceptor acceptor;
  asio::steady_timer retry_timer;
  // Filled by accept() itself: one getpeername less per visitor. One accept
  // is in flight per listener at a time.
  tcp::endpoint peer;
};

/// State of one connect_req until it is answered.
struct dial_state {
  dial_state(asio::io_context& ctx) : resolver(ctx) {
  }
  caf::actor owner;
  uint64_t tag = 0;
  uint32_t timeout_ms = 0;
  std::string what; // "connect to host:port"
  std::shared_ptr<const tls_client_config> tls;
  tcp::resolver resolver;
  bool report_sent = true;
  uint64_t write_queue_bytes_max = 0;
  bool done = false; // answered; late completions are ignored
};

// -- the backend ---------------------------------------------------------------

class io_core : public io_backend,
                public std::enable_shared_from_this<io_core> {
public:
  /// `shared`: the loop of the loop scheduler, already running; null = own
  /// context and thread.
  io_core(asio::io_context* shared, std::shared_ptr<tracer> trace,
          std::optional<tls_identity> server_identity);
  ~io_core() override;

  void start_thread();
  void stop();

  caf::actor handle;

  // -- io_backend: called from any thread, hops onto the I/O thread --------

  void on_listen(caf::actor sender, listen_req req) override {
    run_on_io([this, sender = std::move(sender), req = std::move(req)] {
      do_listen(sender, req);
    });
  }

  void on_stop_listen(stop_listen_req req) override {
    run_on_io([this, req] { do_stop_listen(req.id); });
  }

  void on_set_identity(caf::actor sender, set_identity_req req) override {
    run_on_io([this, sender = std::move(sender), req = std::move(req)] {
      auto what = do_set_identity(req);
      if (sender)
        caf::anon_send(sender, identity_set{what.empty(), what});
    });
  }

  void on_connect(caf::actor sender, connect_req req) override {
    run_on_io([this, sender = std::move(sender), req = std::move(req)] {
      do_connect(sender, req);
    });
  }

  void on_adopt(adopt_req req) override {
    run_on_io([this, req = std::move(req)]() mutable {
      if (auto* c = find(req.id))
        c->adopt(std::move(req.owner), req.report_sent, req.write_queue_bytes_max);
    });
  }

  void on_write(write_req req) override {
    run_on_io([this, req = std::move(req)]() mutable {
      if (auto* c = find(req.id))
        c->write(std::move(req.data));
    });
  }

  void on_shutdown_write(shutdown_write_req req) override {
    with_conn(req.id, [](conn_base& c) { c.shutdown_write(); });
  }

  void on_close(close_req req) override {
    with_conn(req.id, [](conn_base& c) { c.close(); });
  }

  void on_abort(abort_req req) override {
    with_conn(req.id, [](conn_base& c) { c.abort(); });
  }

  void on_pause_read(pause_read_req req) override {
    with_conn(req.id, [](conn_base& c) { c.pause_read(); });
  }

  void on_resume_read(resume_read_req req) override {
    with_conn(req.id, [](conn_base& c) { c.resume_read(); });
  }

  /// Runs `f` on the io thread for connection `id`, if it still exists.
  template <class F>
  void with_conn(conn_id id, F f) {
    run_on_io([this, id, f] {
      if (auto* c = find(id))
        f(*c);
    });
  }

  // -- used by connections (I/O thread) -------------------------------------

  asio::io_context& context() { return io_; }

  bool on_io_thread() const {
    return std::this_thread::get_id() == io_thread_id_;
  }

  void trace(const std::string& who, const std::string& what) {
    if (trace_)
      trace_->emit("io", who, what);
  }

  void forget(conn_id id) {
    conns_.erase(id);
  }

private:
  template <class F>
  void run_on_io(F&& f) {
    // After stop() nothing runs the context any more; drop the request
    // rather than queue it forever.
    if (stopping_.load(std::memory_order_relaxed))
      return;
    // Actors on the loop scheduler call from the I/O thread: no hop at all.
    if (on_io_thread()) {
      f();
      return;
    }
    // Checked again when it runs: a request that raced with stop() must not
    // open anything after close_all(), nor run on the stopping thread.
    // `keep`: the loop scheduler may run this after asio_io is gone.
    asio::post(io_, [this, keep = shared_from_this(),
                     f = std::forward<F>(f)]() mutable {
      if (!stopping_.load(std::memory_order_relaxed))
        f();
    });
  }

  conn_base* find(conn_id id) {
    DRTP_ASSERT(on_io_thread(), "a connection is touched only on its I/O thread");
    auto i = conns_.find(id);
    return i != conns_.end() && !i->second->is_closed() ? i->second.get()
                                                        : nullptr;
  }

  void do_listen(const caf::actor& owner, const listen_req& req);
  void do_stop_listen(listener_id id);
  void accept_next(const std::shared_ptr<listener>& l);
  void on_accepted(const std::shared_ptr<listener>& l, tcp::socket sock);
  void do_connect(const caf::actor& owner, const connect_req& req);
  template <class Stream>
  void dial(const std::shared_ptr<connection<Stream>>& c,
            const std::shared_ptr<dial_state>& st, const std::string& host,
            uint16_t port);
  template <class Stream>
  void on_tcp_connected(const std::shared_ptr<connection<Stream>>& c,
                        const std::shared_ptr<dial_state>& st,
                        const asio::error_code& ec);
  void dial_failed(conn_base& c, dial_state& st, connect_error reason,
                   const std::string& why);
  void dial_done(conn_base& c, dial_state& st, std::string channel_binding = {});
  asio::ssl::context* client_context(const tls_client_config& cfg,
                                     std::string& error);
  /// Empty, or why the identity was not taken (the old one stays).
  std::string do_set_identity(const set_identity_req& req);
  void close_all();

  // Declared first so it is destroyed last, after every socket and timer.
  std::unique_ptr<asio::ssl::context> server_ctx_;
  std::unordered_map<std::string, std::unique_ptr<asio::ssl::context>>
    client_ctxs_;
  std::unique_ptr<asio::io_context> own_io_; // null when shared
  asio::io_context& io_;                      // one thread runs it
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>>
    work_;
  std::thread thread_;
  std::thread::id io_thread_id_;
  std::promise<void> run_done_;
  std::atomic<bool> stopping_{false};
  std::mutex stop_mtx_;
  bool stopped_ = false;
  std::shared_ptr<tracer> trace_;

  // I/O thread only.
  uint64_t next_id_ = 0;
  /// Peer address -> TLS accept handshakes in progress (never zero).
  std::unordered_map<std::string, uint32_t> tls_accepting_;
  std::unordered_map<listener_id, std::shared_ptr<listener>> listeners_;
  std::unordered_map<conn_id, std::shared_ptr<conn_base>> conns_;
};

// -- connection implementation ---------------------------------------------------

template <class Stream>
template <class... Ts>
connection<Stream>::connection(std::shared_ptr<io_core> io, conn_id id,
                               asio::io_context& ctx,
                               Ts&&... xs)
  : conn_base(std::move(io), id), stream_(std::forward<Ts>(xs)...), timer_(ctx) {
  gather_.reserve(max_gather_chunks);
}

template <class Stream>
void connection<Stream>::maybe_read() {
  if (!reading_ || paused_ || read_in_flight_ || eof_ || closed_)
    return;
  DRTP_ASSERT(io_.on_io_thread(), "a connection is touched only on its I/O thread");
  if (!read_ptr_) // after a large read gave the buffer away
    read_chunk_ = chunk::allocate(read_size_, &read_ptr_);
  read_in_flight_ = true;
  stream_.async_read_some(asio::buffer(read_ptr_, read_size_),
                          [self = this->shared_from_this()](
                            const asio::error_code& ec, size_t n) {
                            self->on_read(ec, n);
                          });
}

template <class Stream>
void connection<Stream>::on_read(const asio::error_code& ec, size_t n) {
  read_in_flight_ = false;
  if (lingering_) {
    if (ec)
      end_linger();
    else
      linger_read();
    return;
  }
  if (closed_)
    return;
  asio::error_code more_ec = ec;
  if constexpr (is_tls) {
    // An SSL read returns one record (16 KiB at most): drain what is already
    // here, without waiting, so one message carries up to a whole buffer.
    // tls_stream keeps its socket non-blocking; no async operation is in
    // flight inside this handler.
    while (!more_ec && n > 0 && n < read_size_ && !paused_) {
      asio::error_code e2;
      auto k = stream_.read_some(asio::buffer(read_ptr_ + n, read_size_ - n), e2);
      n += k;
      if (e2) {
        if (e2 != asio::error::would_block && e2 != asio::error::try_again)
          more_ec = e2;
        break;
      }
      if (k == 0)
        break;
    }
  }
  if (n > 0) {
    DRTP_ASSERT(n <= read_size_, "a read returns at most the bytes asked for");
    chunk data;
    // Idle and chatty connections read into a small buffer; one that fills
    // it gets the large one for its next read (and gives it back when its
    // reads turn small again), so 10 000 idle connections hold little.
    bool full = n == read_size_;
    if (n <= small_read_copy_bytes) {
      data = chunk::copy_of(read_ptr_, n);
      if (!full && read_size_ > small_read_copy_bytes) {
        read_chunk_ = chunk{};
        read_ptr_ = nullptr;
        read_size_ = small_read_copy_bytes;
      }
    } else {
      // Hand the buffer itself to the actors: no copy.
      data = chunk::shrink(std::move(read_chunk_), n);
      read_chunk_ = chunk{};
      read_ptr_ = nullptr;
    }
    caf::anon_send(owner_, received{id_, std::move(data)});
    if (full && read_size_ < read_buffer_bytes) {
      read_chunk_ = chunk{};
      read_ptr_ = nullptr;
      read_size_ = read_buffer_bytes;
    }
  }
  if (!more_ec) {
    maybe_read();
    return;
  }
  // A TLS peer that shut its TCP send side without close_notify (our own
  // shutdown_write does that, see on_drained) shows up as stream_truncated.
  bool eof = more_ec == asio::error::eof;
  if constexpr (is_tls)
    eof = eof || more_ec == asio::ssl::error::stream_truncated;
  if (eof) {
    eof_ = true;
    caf::anon_send(owner_, read_closed{id_});
    maybe_finish_peer();
    return;
  }
  fail_with(more_ec);
}

template <class Stream>
void connection<Stream>::write(chunk_list&& data) {
  // Bytes after a half-close or close have nowhere to go.
  if (closed_ || shutdown_requested_ || close_requested_)
    return;
  for (auto& x : data) {
    if (x.empty())
      continue;
    queued_bytes_ += x.size();
    write_queue_bytes_total.fetch_add(x.size(), std::memory_order_relaxed);
    queue_.push_back(std::move(x));
  }
  if (queued_bytes_ > queue_bytes_max_) {
    // Never only a warning: a peer that takes nothing while its owner keeps
    // writing would grow the process without bound. The peer sees a reset.
    asio::error_code ignored;
    socket().set_option(asio::socket_base::linger(true, 0), ignored);
    finish(close_reason::error, "write queue over " + std::to_string(queue_bytes_max_)
                                  + " bytes: the peer does not read");
    return;
  }
  maybe_write();
}

template <class Stream>
void connection<Stream>::maybe_write() {
  if (write_in_flight_ || closed_)
    return;
  if (queue_.empty()) {
    on_drained();
    return;
  }
  write_in_flight_ = true;
  auto done = [self = this->shared_from_this()](const asio::error_code& ec,
                                                size_t n) {
    self->on_write(ec, n);
  };
  // Gather-write straight from the chunks; they stay in the queue (alive)
  // until the write completes.
  gather_.clear();
  size_t bytes = 0;
  for (auto& x : queue_) {
    if (gather_.size() == max_gather_chunks || bytes >= max_gather_bytes)
      break;
    gather_.emplace_back(x.data(), x.size());
    bytes += x.size();
  }
  in_flight_chunks_ = gather_.size();
  if constexpr (is_tls) {
    stream_.async_write(gather_.data(), gather_.size(), std::move(done));
  } else {
    buffer_span span{gather_.data(), gather_.data() + gather_.size()};
    asio::async_write(stream_, span, std::move(done));
  }
}

template <class Stream>
void connection<Stream>::on_write(const asio::error_code& ec, size_t n) {
  write_in_flight_ = false;
  if (closed_) {
    queue_.clear(); // kept alive until now for the aborted write
    return;
  }
  if (ec) {
    fail_with(ec);
    return;
  }
  DRTP_ASSERT(in_flight_chunks_ <= queue_.size(), "chunks in flight are still in the write queue");
  queue_.erase(queue_.begin(), queue_.begin() + in_flight_chunks_);
  in_flight_chunks_ = 0;
  DRTP_ASSERT(n <= queued_bytes_, "bytes written were queued");
  queued_bytes_ -= n;
  write_queue_bytes_total.fetch_sub(n, std::memory_order_relaxed);
  // Tell the owner before the next step: with the queue drained, that step
  // may finish the connection (an ordered close), and every byte the socket
  // took must be reported before `closed`, or an owner that counts
  // delivered bytes (a patch-panel session's final ack) waits forever.
  if (!closed_ && report_sent_)
    caf::anon_send(owner_, sent{id_, n});
  maybe_write();
}

template <class Stream>
void connection<Stream>::on_drained() {
  if (close_requested_) {
    graceful_close();
    return;
  }
  if (shutdown_requested_ && !write_shut_) {
    write_shut_ = true;
    // Half-close. Plain TCP: FIN. TLS: also just the TCP FIN, no
    // close_notify: tls_stream reports the bare FIN as stream_truncated,
    // which we take as EOF, and keeps its SSL object usable for the reply
    // (OpenSSL never sees the EOF). Truncation is therefore not detected at
    // this layer: the frame protocol above ends streams explicitly.
    asio::error_code ec;
    socket().shutdown(tcp::socket::shutdown_send, ec);
    if (ec && ec != asio::error::not_connected) {
      fail_with(ec);
      return;
    }
    maybe_finish_peer();
  }
}

template <class Stream>
void connection<Stream>::maybe_finish_peer() {
  if (eof_ && write_shut_ && !write_in_flight_ && queue_.empty())
    finish(close_reason::peer, "");
}

template <class Stream>
void connection<Stream>::fail_with(const asio::error_code& ec) {
  if (ec == asio::error::operation_aborted && closed_)
    return;
  close_reason reason = close_reason::error;
  if (ec == asio::error::connection_reset || ec == asio::error::broken_pipe)
    reason = close_reason::reset;
  else if (ec == asio::error::timed_out)
    reason = close_reason::timeout;
  finish(reason, describe(ec));
}

template <class Stream>
void connection<Stream>::finish(close_reason reason, std::string what) {
  if (closed_)
    return;
  // The map may hold the last reference; stay alive until this returns.
  auto self = this->shared_from_this();
  auto owner = std::move(owner_);
  kill();
  io_.forget(id_);
  caf::anon_send(owner, closed{id_, reason, std::move(what)});
}

template <class Stream>
void connection<Stream>::graceful_close() {
  if constexpr (is_tls) {
    if (!write_shut_) {
      // Send close_notify so the peer can tell a clean end from truncation.
      // async_shutdown then waits for the peer's close_notify (discarding
      // input, so closing cannot reset what we sent); the timer bounds that.
      // The owner hears `closed` now: the rest is cleanup.
      closed_ = true;
      auto owner = std::move(owner_);
      caf::anon_send(owner, closed{id_, close_reason::local, ""});
      auto self = this->shared_from_this();
      timer_.expires_after(close_linger_timeout);
      timer_.async_wait([self](const asio::error_code& ec) {
        if (!ec) {
          asio::error_code ignored;
          self->socket().close(ignored);
        }
      });
      stream_.async_shutdown([self](const asio::error_code&) {
        self->timer_.cancel();
        asio::error_code ignored;
        self->socket().close(ignored);
        // Stayed registered until now so stop() could cut this short.
        self->io_.forget(self->id_);
      });
      return;
    }
  } else {
    if (!eof_) {
      // close() on a socket with unread input makes Linux send RST and drop
      // what is still in our send buffer, so the peer could lose the tail of
      // what we wrote. Instead: FIN now, discard input until the peer's FIN
      // (or a timeout), then close. The owner hears `closed` now.
      asio::error_code ec;
      socket().shutdown(tcp::socket::shutdown_send, ec);
      if (!ec) {
        closed_ = true;
        lingering_ = true;
        auto owner = std::move(owner_);
        caf::anon_send(owner, closed{id_, close_reason::local, ""});
        timer_.expires_after(close_linger_timeout);
        timer_.async_wait(
          [self = this->shared_from_this()](const asio::error_code& ec) {
            if (!ec)
              self->end_linger();
          });
        if (!read_in_flight_)
          linger_read(); // else the read in flight continues the loop
        return;
      }
    }
  }
  finish(close_reason::local, "");
}

template <class Stream>
void connection<Stream>::linger_read() {
  if (!read_ptr_)
    read_chunk_ = chunk::allocate(read_size_, &read_ptr_);
  read_in_flight_ = true;
  stream_.async_read_some(asio::buffer(read_ptr_, read_size_),
                          [self = this->shared_from_this()](
                            const asio::error_code& ec, size_t n) {
                            self->on_read(ec, n);
                          });
}

template <class Stream>
void connection<Stream>::end_linger() {
  if (!lingering_)
    return;
  lingering_ = false;
  timer_.cancel();
  asio::error_code ignored;
  socket().close(ignored);
  // Stayed registered until now so stop() could cut this short.
  io_.forget(id_);
}

// -- io_core implementation ------------------------------------------------------

io_core::io_core(asio::io_context* shared, std::shared_ptr<tracer> trace,
                 std::optional<tls_identity> server_identity)
  : own_io_(shared ? nullptr : std::make_unique<asio::io_context>(1)),
    io_(shared ? *shared : *own_io_),
    trace_(std::move(trace)) {
  if (server_identity) {
    server_ctx_ = std::make_unique<asio::ssl::context>(
      asio::ssl::context::tls_server);
    restrict_to_tls13(*server_ctx_);
    // No session tickets: links are long-lived and never resume, and
    // tickets would cost bytes and a round of records after each handshake.
    SSL_CTX_set_num_tickets(server_ctx_->native_handle(), 0);
    server_ctx_->use_certificate_chain(
      asio::buffer(server_identity->cert_pem.data(),
                   server_identity->cert_pem.size()));
    server_ctx_->use_private_key(asio::buffer(server_identity->key_pem.data(),
                                              server_identity->key_pem.size()),
                                 asio::ssl::context::pem);
  }
}

io_core::~io_core() {
  stop();
}

std::string io_core::do_set_identity(const set_identity_req& req) {
  if (!server_ctx_)
    return "this process serves no TLS";
  // Tried on a scratch context first: a key that does not match the
  // certificate must not leave the live context half changed.
  auto load = [&](asio::ssl::context& ctx) {
    asio::error_code ec;
    ctx.use_certificate_chain(asio::buffer(req.cert_pem.data(), req.cert_pem.size()), ec);
    if (!ec)
      ctx.use_private_key(asio::buffer(req.key_pem.data(), req.key_pem.size()),
                          asio::ssl::context::pem, ec);
    if (!ec && SSL_CTX_check_private_key(ctx.native_handle()) != 1)
      return std::string("the key does not match the certificate");
    return ec ? "cannot use the certificate or key: " + describe(ec) : std::string{};
  };
  asio::ssl::context scratch{asio::ssl::context::tls_server};
  if (auto err = load(scratch); !err.empty())
    return err;
  // Each SSL object copies the context's certificate when it is made: links
  // accepted from now on present the new one, open links keep theirs.
  return load(*server_ctx_);
}

void io_core::start_thread() {
  if (!own_io_) {
    // The loop scheduler runs the context; learn its thread.
    std::promise<std::thread::id> id;
    asio::post(io_, [&id] { id.set_value(std::this_thread::get_id()); });
    io_thread_id_ = id.get_future().get();
    return;
  }
  work_.emplace(io_.get_executor());
  thread_ = std::thread([this] {
    for (;;) {
      try {
        io_.run();
        break;
      } catch (const std::exception& e) {
        // A throwing handler must not take the process down with it.
        trace("io", std::string("handler threw: ") + e.what());
      }
    }
    run_done_.set_value();
  });
  // Handlers read this only after a post, which orders it after this write.
  io_thread_id_ = thread_.get_id();
}

void io_core::stop() {
  std::lock_guard<std::mutex> guard{stop_mtx_};
  if (stopped_)
    return;
  stopped_ = true;
  stopping_.store(true);
  if (!own_io_) {
    // The loop goes on running actors until the system stops; only the
    // sockets and timers of this backend end here.
    if (on_io_thread()) {
      close_all();
    } else {
      auto done = std::make_shared<std::promise<void>>();
      asio::post(io_, [this, done] {
        close_all();
        done->set_value();
      });
      if (done->get_future().wait_for(stop_grace_period)
          != std::future_status::ready)
        trace("io", "I/O loop did not close its sockets in time");
    }
  } else if (thread_.joinable()) {
    DRTP_ASSERT(!on_io_thread(), "stop() is called from outside the I/O thread");
    asio::post(io_, [this] { close_all(); });
    work_.reset();
    // Every socket and timer is closed now, so run() returns once their
    // handlers ran. Only a name lookup in progress can hold it up.
    if (run_done_.get_future().wait_for(stop_grace_period)
        != std::future_status::ready) {
      trace("io", "I/O loop did not wind down; stopping it");
      io_.stop();
    }
    thread_.join();
    // A request that raced with stopping_ may still sit in the queue holding
    // actor handles: run it (it does nothing now) so they are released.
    io_.restart();
    io_.poll();
  }
  // Breaks the cycle io actor -> backend -> handle.
  handle = nullptr;
}

void io_core::close_all() {
  asio::error_code ignored;
  for (auto& [id, l] : listeners_) {
    l->acceptor.close(ignored);
    l->retry_timer.cancel();
  }
  listeners_.clear();
  auto conns = std::move(conns_);
  conns_.clear();
  for (auto& [id, c] : conns)
    c->kill();
}

void io_core::do_listen(const caf::actor& owner, const listen_req& req) {
  auto where = endpoint_text(req.host, req.port);
  auto failed = [&](const std::string& why) {
    caf::anon_send(owner,
                   listen_failed{req.tag, "cannot listen on " + where + ": " + why});
  };
  if (req.tls && !server_ctx_)
    return failed("TLS requested but no server certificate is configured");
  asio::error_code ec;
  tcp::endpoint ep;
  auto host = strip_brackets(req.host);
  if (host.empty()) {
    ep = tcp::endpoint(tcp::v4(), req.port);
  } else if (auto addr = asio::ip::make_address(host, ec); !ec) {
    ep = tcp::endpoint(addr, req.port);
  } else {
    // A name: resolve it here, blocking the I/O thread briefly. Listening
    // happens at startup and usually on an address literal.
    tcp::resolver resolver(io_);
    auto results = resolver.resolve(host, std::to_string(req.port),
                                    tcp::resolver::passive, ec);
    if (ec || results.empty())
      return failed(ec ? describe(ec) : "no address");
    ep = results.begin()->endpoint();
  }
  auto l = std::make_shared<listener>(io_);
  auto& acc = l->acceptor;
  acc.open(ep.protocol(), ec);
  if (!ec)
    acc.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec)
    acc.bind(ep, ec);
  if (!ec)
    acc.listen(asio::socket_base::max_listen_connections, ec);
  tcp::endpoint bound;
  if (!ec)
    bound = acc.local_endpoint(ec);
  if (ec)
    return failed(describe(ec));
  l->id = ++next_id_;
  l->owner = owner;
  l->tls = req.tls;
  l->request_client_cert = req.tls && req.request_client_cert;
  listeners_.emplace(l->id, l);
  caf::anon_send(owner, listening{req.tag, l->id, bound.port()});
  accept_next(l);
}

void io_core::do_stop_listen(listener_id id) {
  auto i = listeners_.find(id);
  if (i == listeners_.end())
    return;
  asio::error_code ignored;
  i->second->acceptor.close(ignored);
  i->second->retry_timer.cancel();
  listeners_.erase(i);
}

void io_core::accept_next(const std::shared_ptr<listener>& l) {
  l->acceptor.async_accept(l->peer, [this, keep = shared_from_this(),
                                     l](const asio::error_code& ec,
                                        tcp::socket sock) {
    if (!l->acceptor.is_open())
      return; // stop_listen or stop
    if (ec) {
      trace("listener#" + std::to_string(l->id), "accept failed: " + describe(ec));
      l->retry_timer.expires_after(accept_retry_delay);
      l->retry_timer.async_wait([this, keep, l](const asio::error_code& ec) {
        if (!ec && l->acceptor.is_open())
          accept_next(l);
      });
      return;
    }
    on_accepted(l, std::move(sock));
    accept_next(l);
  });
}

void io_core::on_accepted(const std::shared_ptr<listener>& l,
                          tcp::socket sock) {
  asio::error_code ec;
  auto peer = l->peer;
  sock.set_option(tcp::no_delay(true), ec);
  if (ec)
    return; // already gone again; nobody has heard of it
  set_keepalive(sock);
  auto peer_host = peer.address().to_string();
  auto peer_port = peer.port();
  auto id = ++next_id_;
  if (!l->tls) {
    auto c = std::make_shared<connection<tcp::socket>>(shared_from_this(), id, io_,
                                                       std::move(sock));
    c->established = true;
    conns_.emplace(id, c);
    caf::anon_send(l->owner, accepted{l->id, id, peer_host, peer_port});
    return;
  }
  auto& accepting = tls_accepting_[peer_host];
  if (accepting >= tls_accepts_per_source_max) {
    trace("listener#" + std::to_string(l->id),
          "refused " + endpoint_text(peer_host, peer_port)
            + ": too many TLS handshakes from this address");
    sock.close(ec);
    return;
  }
  ++accepting;
  auto c = std::make_shared<connection<tls_stream>>(shared_from_this(), id, io_,
                                                    std::move(sock),
                                                    *server_ctx_);
  if (l->request_client_cert) {
    // Asked for, not required (an agent without one logs in by secret),
    // and any chain passes here: the handshake proves the client holds the
    // certificate's key; the owner checks issuer and validity at its own
    // time (accepted::peer_cert_pem).
    SSL* ssl = c->stream().native_handle();
    SSL_set_verify(ssl, SSL_VERIFY_PEER, [](int, X509_STORE_CTX*) { return 1; });
    SSL_set_max_cert_list(ssl, static_cast<long>(client_cert_chain_bytes_max));
  }
  // Registered (unannounced) so stop() closes it mid-handshake.
  conns_.emplace(id, c);
  c->timer().expires_after(tls_accept_handshake_timeout);
  c->timer().async_wait([c](const asio::error_code& ec) {
    if (ec || c->established || c->is_closed())
      return;
    c->deadline_hit = true;
    asio::error_code ignored;
    c->socket().close(ignored); // fails the handshake
  });
  c->stream().async_handshake(
    tls_stream::server,
    [this, l, c, peer_host, peer_port](const asio::error_code& ec) {
      c->timer().cancel();
      if (auto i = tls_accepting_.find(peer_host); i != tls_accepting_.end()
                                                   && --i->second == 0)
        tls_accepting_.erase(i);
      if (c->is_closed())
        return; // stop()
      if (ec || !l->acceptor.is_open()) {
        if (ec)
          trace("listener#" + std::to_string(l->id),
                "TLS handshake with " + endpoint_text(peer_host, peer_port)
                  + " failed: "
                  + (c->deadline_hit ? std::string("timed out") : describe(ec)));
        c->kill();
        forget(c->id());
        return;
      }
      c->established = true;
      accepted ev{l->id, c->id(), peer_host, peer_port, channel_binding(c->stream())};
      if (l->request_client_cert)
        ev.peer_cert_pem = peer_certificate_pem(c->stream().native_handle(),
                                                peer_cert_pem_bytes_max);
      caf::anon_send(l->owner, std::move(ev));
    });
}

asio::ssl::context* io_core::client_context(const tls_client_config& cfg,
                                            std::string& error) {
  // The context depends only on how the chain is checked; the server name
  // and the pin are applied per connection.
  enum mode : char { no_verify = 'n', pinned = 'p', ca = 'c', system = 's' };
  char m = !cfg.verify                        ? no_verify
           : !cfg.fingerprint_sha256.empty() ? pinned
           : !cfg.ca_file.empty()            ? ca
                                              : system;
  std::string key(1, m);
  if (m == ca)
    key += cfg.ca_file;
  if (auto i = client_ctxs_.find(key); i != client_ctxs_.end())
    return i->second.get();
  auto ctx = std::make_unique<asio::ssl::context>(
    asio::ssl::context::tls_client);
  restrict_to_tls13(*ctx);
  asio::error_code ec;
  switch (m) {
    case no_verify:
      ctx->set_verify_mode(asio::ssl::verify_none, ec);
      break;
    case pinned:
      ctx->set_verify_mode(asio::ssl::verify_peer, ec);
      break;
    case ca:
      ctx->load_verify_file(cfg.ca_file, ec);
      if (ec) {
        error = "cannot load CA file " + cfg.ca_file + ": " + describe(ec);
        return nullptr;
      }
      ctx->set_verify_mode(asio::ssl::verify_peer, ec);
      break;
    default:
      ctx->set_default_verify_paths(ec);
      if (!ec)
        ctx->set_verify_mode(asio::ssl::verify_peer, ec);
  }
  if (ec) {
    error = "cannot set up TLS: " + describe(ec);
    return nullptr;
  }
  constexpr size_t max_client_contexts = 64;
  if (client_ctxs_.size() >= max_client_contexts)
    client_ctxs_.clear(); // streams keep their SSL_CTX referenced
  auto* result = ctx.get();
  client_ctxs_.emplace(std::move(key), std::move(ctx));
  return result;
}

void io_core::do_connect(const caf::actor& owner, const connect_req& req) {
  auto st = std::make_shared<dial_state>(io_);
  st->owner = owner;
  st->tag = req.tag;
  st->timeout_ms = req.timeout_ms;
  st->what = "connect to " + endpoint_text(req.host, req.port);
  st->tls = req.tls;
  st->report_sent = req.report_sent;
  st->write_queue_bytes_max = req.write_queue_bytes_max;
  auto id = ++next_id_;
  if (!req.tls) {
    auto c = std::make_shared<connection<tcp::socket>>(shared_from_this(), id, io_,
                                                       tcp::socket(io_));
    conns_.emplace(id, c);
    dial(c, st, req.host, req.port);
    return;
  }
  std::string error;
  auto* ctx = client_context(*req.tls, error);
  if (!ctx) {
    trace("io", st->what + ": " + error);
    caf::anon_send(owner, connect_failed{req.tag, connect_error::tls_failed,
                                         st->what + ": " + error});
    return;
  }
  auto c = std::make_shared<connection<tls_stream>>(shared_from_this(), id, io_,
                                                    tcp::socket(io_), *ctx);
  auto& cfg = *req.tls;
  SSL* ssl = c->stream().native_handle();
  if (!cfg.cert_pem.empty() || !cfg.key_pem.empty()) {
    // Per connection, not per context: an agent's certificate is renewed
    // while its context (how it checks POPs) stays.
    if (auto err = use_client_identity(ssl, cfg.cert_pem, cfg.key_pem); !err.empty()) {
      trace("io", st->what + ": " + err);
      c->kill();
      caf::anon_send(owner, connect_failed{req.tag, connect_error::tls_failed,
                                           st->what + ": " + err});
      return;
    }
  }
  if (!cfg.server_name.empty() && !is_ip_literal(cfg.server_name))
    SSL_set_tlsext_host_name(ssl, cfg.server_name.c_str());
  if (cfg.verify) {
    if (!cfg.fingerprint_sha256.empty()) {
      c->stream().set_verify_callback(pin_checker{c.get(),
                                                  cfg.fingerprint_sha256});
    } else if (!cfg.server_name.empty()) {
      // OpenSSL's own name check (IP literals included); a mismatch fails
      // the handshake with "hostname mismatch".
      SSL_set1_host(ssl, cfg.server_name.c_str());
    }
  }
  conns_.emplace(id, c);
  dial(c, st, req.host, req.port);
}

template <class Stream>
void io_core::dial(const std::shared_ptr<connection<Stream>>& c,
                   const std::shared_ptr<dial_state>& st,
                   const std::string& host, uint16_t port) {
  c->timer().expires_after(std::chrono::milliseconds(st->timeout_ms));
  c->timer().async_wait([this, c, st](const asio::error_code& ec) {
    if (ec || st->done || c->is_closed())
      return;
    dial_failed(*c, *st, connect_error::timed_out,
                "timed out after " + std::to_string(st->timeout_ms) + " ms");
  });
  asio::error_code ec;
  auto addr = asio::ip::make_address(strip_brackets(host), ec);
  if (!ec) {
    // An address literal needs no lookup (and no resolver thread hop).
    c->socket().async_connect(tcp::endpoint(addr, port),
                              [this, c, st](const asio::error_code& ec) {
                                on_tcp_connected(c, st, ec);
                              });
    return;
  }
  st->resolver.async_resolve(
    host, std::to_string(port), tcp::resolver::numeric_service,
    [this, c, st](const asio::error_code& ec,
                  tcp::resolver::results_type results) {
      if (st->done || c->is_closed())
        return;
      if (ec) {
        dial_failed(*c, *st, connect_error::unreachable,
                    "cannot resolve: " + describe(ec));
        return;
      }
      asio::async_connect(c->socket(), results,
                          [this, c, st](const asio::error_code& ec,
                                        const tcp::endpoint&) {
                            on_tcp_connected(c, st, ec);
                          });
    });
}

template <class Stream>
void io_core::on_tcp_connected(const std::shared_ptr<connection<Stream>>& c,
                               const std::shared_ptr<dial_state>& st,
                               const asio::error_code& ec) {
  if (st->done || c->is_closed())
    return;
  if (ec) {
    dial_failed(*c, *st, classify(ec), describe(ec));
    return;
  }
  asio::error_code ignored;
  c->socket().set_option(tcp::no_delay(true), ignored);
  set_keepalive(c->socket());
  if constexpr (std::is_same_v<Stream, tls_stream>) {
    c->stream().async_handshake(
      tls_stream::client,
      [this, c, st](const asio::error_code& ec) {
        if (st->done || c->is_closed())
          return;
        if (!ec) {
          c->timer().cancel();
          dial_done(*c, *st, channel_binding(c->stream()));
          return;
        }
        std::string why;
        long verify_result = SSL_get_verify_result(c->stream().native_handle());
        if (c->pin_mismatch)
          why = "certificate fingerprint does not match the pinned one";
        else if (st->tls->verify && verify_result != X509_V_OK)
          why = std::string("certificate verification failed: ")
                + X509_verify_cert_error_string(verify_result);
        else
          why = "TLS handshake failed: " + describe(ec);
        trace("io", st->what + ": " + why);
        dial_failed(*c, *st, connect_error::tls_failed, why);
      });
  } else {
    c->timer().cancel();
    dial_done(*c, *st);
  }
}

void io_core::dial_failed(conn_base& c, dial_state& st, connect_error reason,
                          const std::string& why) {
  st.done = true;
  st.resolver.cancel();
  c.kill();
  forget(c.id());
  caf::anon_send(st.owner, connect_failed{st.tag, reason, st.what + ": " + why});
  st.owner = nullptr;
}

void io_core::dial_done(conn_base& c, dial_state& st, std::string channel_binding) {
  st.done = true;
  c.established = true;
  caf::anon_send(st.owner, connected{st.tag, c.id(), std::move(channel_binding)});
  c.adopt(std::move(st.owner), st.report_sent, st.write_queue_bytes_max); // reads at once; events follow `connected`
}

} // namespace

// -- asio_io -----------------------------------------------------------------------

uint64_t asio_write_queue_bytes() {
  return write_queue_bytes_total.load(std::memory_order_relaxed);
}

struct asio_io::impl final : io_core {
  using io_core::io_core;
};

asio_io::asio_io(caf::actor_system& sys, std::shared_ptr<tracer> trace,
                 std::optional<tls_identity> server_identity)
  : impl_(std::make_shared<impl>(loop_context(sys), std::move(trace),
                                 std::move(server_identity))) {
  impl_->start_thread();
  impl_->handle = make_io_actor(sys, impl_);
}

asio_io::~asio_io() {
  stop();
}

const caf::actor& asio_io::handle() const {
  return impl_->handle;
}

void asio_io::stop() {
  impl_->stop();
}

} // namespace drtp::net
