#include "net/tls_stream.hpp"

#include <algorithm>
#include <climits>
#include <cstring>
#include <new>
#include <utility>

#include <asio/post.hpp>
#include <asio/ssl/error.hpp>
#include <asio/write.hpp>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "net/seam/assert.hpp"

namespace drtp::net {

namespace {

/// A TLS 1.3 record carries at most 16 KiB of plaintext plus its overhead:
/// the input buffer always has room for one whole record.
constexpr size_t record_plaintext_bytes = 16 * 1024;
constexpr size_t record_bytes_max = record_plaintext_bytes + 256;
static_assert(tls_stream::in_bytes_min >= record_bytes_max);
static_assert(tls_stream::in_bytes_max >= tls_stream::in_bytes_min);

int ex_data_index() {
  static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr,
                                                nullptr);
  return index;
}

template <class F>
F take(F& f) {
  F out = std::move(f);
  f = nullptr;
  return out;
}

} // namespace

BIO_METHOD* tls_stream::bio_method() {
  static BIO_METHOD* method = [] {
    auto* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK,
                           "drtp-tls");
    if (m == nullptr)
      throw std::bad_alloc();
    BIO_meth_set_write(m, &tls_stream::bio_write);
    BIO_meth_set_read(m, &tls_stream::bio_read);
    BIO_meth_set_ctrl(m, &tls_stream::bio_ctrl);
    return m;
  }();
  return method;
}

tls_stream::tls_stream(asio::ip::tcp::socket sock, asio::ssl::context& ctx)
  : sock_(std::move(sock)) {
  ssl_ = SSL_new(ctx.native_handle());
  BIO* bio = BIO_new(bio_method());
  if (ssl_ == nullptr || bio == nullptr) {
    SSL_free(ssl_);
    BIO_free(bio);
    throw std::bad_alloc();
  }
  BIO_set_data(bio, this);
  BIO_set_init(bio, 1);
  SSL_set_bio(ssl_, bio, bio); // the SSL owns the BIO now
}

tls_stream::~tls_stream() {
  *alive_ = false;
  SSL_free(ssl_);
}

// -- BIO: OpenSSL reads `in_` and appends to `out_` -----------------------------

int tls_stream::bio_write(BIO* b, const char* data, int len) {
  auto* self = static_cast<tls_stream*>(BIO_get_data(b));
  BIO_clear_retry_flags(b);
  if (len <= 0)
    return 0;
  self->out_.insert(self->out_.end(), data, data + len);
  return len;
}

int tls_stream::bio_read(BIO* b, char* data, int len) {
  auto* self = static_cast<tls_stream*>(BIO_get_data(b));
  BIO_clear_retry_flags(b);
  size_t avail = self->in_end_ - self->in_begin_;
  if (avail == 0) {
    // Never EOF, even after the TCP end: OpenSSL 3 treats an unexpected EOF
    // as fatal and would refuse to write afterwards, but after a half-close
    // the reply must still go out. ssl_error() reports the end instead.
    BIO_set_retry_read(b);
    return -1;
  }
  size_t n = std::min(avail, static_cast<size_t>(std::max(len, 0)));
  std::memcpy(data, self->in_.data() + self->in_begin_, n);
  self->in_begin_ += n;
  return static_cast<int>(n);
}

long tls_stream::bio_ctrl(BIO* b, int cmd, long, void*) {
  auto* self = static_cast<tls_stream*>(BIO_get_data(b));
  switch (cmd) {
    case BIO_CTRL_FLUSH:
      return 1; // flush() sends on its own schedule
    case BIO_CTRL_PENDING:
      return static_cast<long>(self->in_end_ - self->in_begin_);
    default:
      return 0;
  }
}

// -- certificate check ----------------------------------------------------------

void tls_stream::set_verify_callback(verify_callback f) {
  verify_ = std::move(f);
  SSL_set_ex_data(ssl_, ex_data_index(), this);
  SSL_set_verify(ssl_, SSL_get_verify_mode(ssl_), &tls_stream::on_verify);
}

int tls_stream::on_verify(int preverified, X509_STORE_CTX* store) {
  auto* ssl = static_cast<SSL*>(
    X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx()));
  auto* self = ssl ? static_cast<tls_stream*>(SSL_get_ex_data(ssl, ex_data_index()))
                   : nullptr;
  if (self == nullptr || !self->verify_)
    return preverified;
  asio::ssl::verify_context vc(store);
  return self->verify_(preverified != 0, vc) ? 1 : 0;
}

std::string tls_stream::export_keying_material(const char* label, size_t bytes) {
  std::string out(bytes, '\0');
  if (SSL_export_keying_material(ssl_, reinterpret_cast<unsigned char*>(out.data()),
                                 out.size(), label, std::strlen(label), nullptr, 0, 0)
      != 1)
    out.clear();
  return out;
}

// -- errors ---------------------------------------------------------------------

asio::error_code tls_stream::ssl_error(int ret) {
  switch (SSL_get_error(ssl_, ret)) {
    case SSL_ERROR_WANT_READ:
      // TCP ended without close_notify. Our own half-close does that on
      // purpose (see asio_io's on_drained); the frame protocol above detects
      // truncation.
      if (sock_eof_)
        return asio::ssl::error::stream_truncated;
      return asio::error::would_block;
    case SSL_ERROR_ZERO_RETURN:
      return asio::error::eof; // close_notify: a clean end
    default:
      break;
  }
  unsigned long err = ERR_get_error();
  if (err == 0)
    return asio::ssl::error::unexpected_result;
  return {static_cast<int>(err), asio::error::get_ssl_category()};
}

// -- reading --------------------------------------------------------------------

size_t tls_stream::ssl_read(asio::mutable_buffer buf, asio::error_code& ec) {
  ERR_clear_error();
  int want = static_cast<int>(std::min<size_t>(buf.size(), INT_MAX));
  int r = SSL_read(ssl_, buf.data(), want);
  if (!out_.empty())
    flush(nullptr); // alerts or a key update answer
  if (r > 0) {
    ec = {};
    return static_cast<size_t>(r);
  }
  ec = ssl_error(r);
  return 0;
}

void tls_stream::prepare_input() {
  if (in_begin_ == in_end_)
    in_begin_ = in_end_ = 0;
  if (in_.empty()) {
    in_.resize(in_bytes_min);
  } else if (in_filled_ && in_.size() < in_bytes_max) {
    // The socket had more than we could take: read more per call.
    in_.resize(std::min(in_.size() * 2, in_bytes_max));
    in_filled_ = false;
  }
  if (in_begin_ > 0 && in_.size() - in_end_ < record_bytes_max) {
    // Only a partial record is left: move it to the front.
    std::memmove(in_.data(), in_.data() + in_begin_, in_end_ - in_begin_);
    in_end_ -= in_begin_;
    in_begin_ = 0;
  }
  DRTP_ASSERT(in_end_ < in_.size(), "the read buffer has room before a read");
}

void tls_stream::release_if_idle() {
  bool grown = in_.size() > in_bytes_min || sending_.capacity() > out_keep_bytes
               || out_.capacity() > out_keep_bytes;
  if (!grown)
    return;
  auto now = std::chrono::steady_clock::now();
  if (now - last_busy_ < std::chrono::milliseconds(idle_release_ms))
    return;
  // Not while a socket read targets `in_`.
  if (!pumping_ && in_begin_ == in_end_ && in_.size() > in_bytes_min) {
    std::vector<char>().swap(in_);
    in_begin_ = in_end_ = 0;
    in_filled_ = false;
  }
  if (!sending_now_) {
    for (auto* v : {&sending_, &out_})
      if (v->empty() && v->capacity() > out_keep_bytes)
        std::vector<char>().swap(*v);
  }
}

void tls_stream::pump(done_handler then) {
  DRTP_ASSERT(!pumping_ && !sock_eof_, "one socket read at a time, none after EOF");
  release_if_idle(); // about to wait: a quiet link gives back its buffers
  prepare_input();
  pumping_ = true;
  size_t room = in_.size() - in_end_;
  sock_.async_read_some(
    asio::buffer(in_.data() + in_end_, room),
    [this, alive = alive_, room, then = std::move(then)](asio::error_code ec,
                                                           size_t n) {
      if (!*alive)
        return;
      pumping_ = false;
      in_end_ += n;
      in_filled_ = n == room;
      if (in_filled_)
        last_busy_ = std::chrono::steady_clock::now();
      if (ec == asio::error::eof) {
        sock_eof_ = true; // ssl_error() reports it once `in_` is used up
        ec = {};
      }
      then(ec);
    });
}

void tls_stream::async_read_some(asio::mutable_buffer buf, read_handler h) {
  DRTP_ASSERT(!read_h_ && !hs_h_ && !pumping_, "one TLS operation waits at a time");
  asio::error_code ec;
  size_t n = ssl_read(buf, ec);
  if (ec != asio::error::would_block) {
    asio::post(sock_.get_executor(),
               [h = std::move(h), ec, n] { h(ec, n); });
    return;
  }
  read_buf_ = buf;
  read_h_ = std::move(h);
  pump([this](const asio::error_code& e) { continue_read(e); });
}

void tls_stream::continue_read(const asio::error_code& ec) {
  if (shutdown_h_) {
    // The owner closed meanwhile and no longer wants this read.
    read_h_ = nullptr;
    if (ec)
      finish_shutdown(ec);
    else
      drain_for_close();
    return;
  }
  if (ec) {
    take(read_h_)(ec, 0);
    return;
  }
  asio::error_code e2;
  size_t n = ssl_read(read_buf_, e2);
  if (e2 == asio::error::would_block) {
    pump([this](const asio::error_code& e) { continue_read(e); });
    return;
  }
  take(read_h_)(e2, n);
}

size_t tls_stream::read_some(asio::mutable_buffer buf, asio::error_code& ec) {
  DRTP_ASSERT(!read_h_, "one read waits at a time");
  size_t n = ssl_read(buf, ec);
  // A socket read that did not fill the buffer drained the socket: asking
  // again now would cost a syscall that finds nothing.
  if (ec != asio::error::would_block || pumping_ || sock_eof_ || !in_filled_)
    return n;
  prepare_input();
  size_t room = in_.size() - in_end_;
  asio::error_code e2;
  size_t k = sock_.read_some(asio::buffer(in_.data() + in_end_, room), e2);
  if (e2 == asio::error::eof) {
    sock_eof_ = true;
  } else if (e2) {
    if (e2 != asio::error::would_block && e2 != asio::error::try_again)
      ec = e2;
    return 0;
  }
  in_end_ += k;
  in_filled_ = k == room;
  if (in_filled_)
    last_busy_ = std::chrono::steady_clock::now();
  return ssl_read(buf, ec);
}

// -- writing --------------------------------------------------------------------

bool tls_stream::seal(const char* data, size_t size, asio::error_code& ec) {
  DRTP_ASSERT(size > 0 && size <= INT_MAX, "a TLS write is non-empty and fits OpenSSL's int");
  ERR_clear_error();
  // Our BIO never refuses bytes, so one call encrypts all of it.
  int r = SSL_write(ssl_, data, static_cast<int>(size));
  if (r <= 0) {
    ec = ssl_error(r);
    return false;
  }
  DRTP_ASSERT(static_cast<size_t>(r) == size, "OpenSSL takes a whole write into our BIO");
  return true;
}

bool tls_stream::seal_staging(asio::error_code& ec) {
  if (staging_.empty())
    return true;
  bool ok = seal(staging_.data(), staging_.size(), ec);
  staging_.clear();
  return ok;
}

void tls_stream::async_write(const asio::const_buffer* bufs, size_t count,
                             read_handler h) {
  // A frame is a 12-byte header chunk and its payload chunk. Sealing each as
  // it comes would make a record of 12 bytes; copying everything would cost
  // a memcpy per byte. So: top up the partial record with the next bytes,
  // and seal whole records straight from the chunk.
  size_t total = 0;
  asio::error_code ec;
  for (size_t i = 0; i < count && !ec; ++i) {
    auto* p = static_cast<const char*>(bufs[i].data());
    size_t left = bufs[i].size();
    total += left;
    while (left > 0) {
      if (!staging_.empty() || left < record_plaintext_bytes) {
        size_t take = std::min(left, record_plaintext_bytes - staging_.size());
        staging_.insert(staging_.end(), p, p + take);
        p += take;
        left -= take;
        if (staging_.size() == record_plaintext_bytes && !seal_staging(ec))
          break;
      } else {
        size_t whole = left - left % record_plaintext_bytes;
        if (!seal(p, whole, ec))
          break;
        p += whole;
        left -= whole;
      }
    }
  }
  if (!ec)
    seal_staging(ec);
  if (ec) {
    staging_.clear();
    asio::post(sock_.get_executor(), [h = std::move(h), ec] { h(ec, 0); });
    return;
  }
  flush([h = std::move(h), total](const asio::error_code& e) {
    h(e, e ? 0 : total);
  });
}

void tls_stream::flush(done_handler then) {
  if (then) {
    DRTP_ASSERT(!flush_waiter_, "one flush waits at a time");
    flush_waiter_ = std::move(then);
  }
  if (sending_now_)
    return; // the send in flight continues with `out_`
  if (!send_error_ && !out_.empty()) {
    // Not at once: what the other sessions write in this turn of the loop
    // (their opens, data and closes) joins the same send. With 32 visitors
    // connecting at a time, this is about 10% less CPU per connection on
    // both ends of the tunnel, and one wake-up of the peer instead of many.
    sending_now_ = true;
    asio::post(sock_.get_executor(), [this, alive = alive_] {
      if (!*alive)
        return;
      DRTP_ASSERT(!out_.empty(), "a flush in progress has bytes to send");
      start_send();
    });
    return;
  }
  if (flush_waiter_)
    asio::post(sock_.get_executor(),
               [w = take(flush_waiter_), ec = send_error_] { w(ec); });
}

void tls_stream::start_send() {
  sending_.swap(out_);
  out_.clear();
  if (sending_.size() > out_keep_bytes)
    last_busy_ = std::chrono::steady_clock::now();
  sending_now_ = true;
  asio::async_write(sock_, asio::buffer(sending_),
                    [this, alive = alive_](const asio::error_code& ec, size_t) {
                      if (!*alive)
                        return;
                      sending_now_ = false;
                      sending_.clear();
                      if (ec)
                        send_error_ = ec;
                      else if (!out_.empty()) {
                        start_send();
                        return;
                      }
                      release_if_idle();
                      if (flush_waiter_)
                        take(flush_waiter_)(send_error_);
                    });
}

// -- handshake and shutdown -------------------------------------------------------

void tls_stream::async_handshake(handshake_type type, done_handler h) {
  DRTP_ASSERT(!hs_h_ && !read_h_, "the handshake runs alone");
  // read_some() relies on it: a synchronous read must never wait. The
  // socket is open by now on both sides (accepted, or dialed).
  asio::error_code ignored;
  sock_.non_blocking(true, ignored);
  hs_h_ = std::move(h);
  if (type == server)
    SSL_set_accept_state(ssl_);
  else
    SSL_set_connect_state(ssl_);
  continue_handshake();
}

void tls_stream::continue_handshake() {
  ERR_clear_error();
  int r = SSL_do_handshake(ssl_);
  if (r == 1) {
    flush([this](const asio::error_code& ec) { take(hs_h_)(ec); });
    return;
  }
  auto ec = ssl_error(r);
  if (ec == asio::error::would_block) {
    flush(nullptr);
    pump([this](const asio::error_code& e) {
      if (e)
        take(hs_h_)(e);
      else
        continue_handshake();
    });
    return;
  }
  // Send the alert, so the peer learns why, then report.
  flush([this, ec](const asio::error_code&) { take(hs_h_)(ec); });
}

void tls_stream::async_shutdown(done_handler h) {
  DRTP_ASSERT(!shutdown_h_ && !hs_h_, "one shutdown, never during the handshake");
  shutdown_h_ = std::move(h);
  ERR_clear_error();
  SSL_shutdown(ssl_); // queues close_notify in `out_`
  flush(nullptr);
  if (!pumping_)
    drain_for_close(); // else the read in flight goes on in continue_read
}

void tls_stream::drain_for_close() {
  char scratch[16 * 1024];
  for (;;) {
    asio::error_code ec;
    ssl_read(asio::buffer(scratch), ec);
    if (!ec)
      continue;
    if (ec == asio::error::would_block) {
      pump([this](const asio::error_code& e) {
        if (e)
          finish_shutdown(e);
        else
          drain_for_close();
      });
      return;
    }
    finish_shutdown(ec == asio::error::eof ? asio::error_code{} : ec);
    return;
  }
}

void tls_stream::finish_shutdown(const asio::error_code& ec) {
  // The close_notify must be out before the owner closes the socket.
  if (flush_waiter_) {
    take(shutdown_h_)(ec);
    return;
  }
  flush([this, ec](const asio::error_code& e) {
    take(shutdown_h_)(ec ? ec : e);
  });
}

} // namespace drtp::net
