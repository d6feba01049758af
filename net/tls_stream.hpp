#pragma once
// TLS over one TCP socket, with our own record batching. asio::ssl::stream
// moves ciphertext through a 17 KiB buffer, so every TLS record cost one
// send() and one recv(). Here OpenSSL reads from and writes to our buffers
// through a custom BIO: a 64 KiB write becomes four records and one send(),
// and one recv() brings as many records as the socket holds (up to
// `in_bytes_max`). Used by net/asio_io for tunnel links; I/O thread only.
//
// The interface is the subset of asio's stream that net/asio_io uses; every
// completion handler runs from the io_context, never inline.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <asio/ip/tcp.hpp>
#include <asio/ssl/context.hpp>
#include <asio/ssl/verify_context.hpp>

namespace drtp::net {

class tls_stream {
public:
  using read_handler = std::function<void(const asio::error_code&, size_t)>;
  using done_handler = std::function<void(const asio::error_code&)>;
  using verify_callback = std::function<bool(bool, asio::ssl::verify_context&)>;
  enum handshake_type { client, server };

  /// The input buffer starts at `in_bytes_min` and doubles up to
  /// `in_bytes_max` while reads fill it.
  static constexpr size_t in_bytes_min = 17 * 1024;
  static constexpr size_t in_bytes_max = 256 * 1024;
  /// Buffers that a burst grew past these sizes are given back once the
  /// link has been quiet for `idle_release_ms`: 10 000 idle tunnels must not
  /// each hold the peak of their last burst.
  static constexpr size_t out_keep_bytes = 64 * 1024;
  static constexpr uint32_t idle_release_ms = 1000;

  tls_stream(asio::ip::tcp::socket sock, asio::ssl::context& ctx);
  ~tls_stream();
  tls_stream(const tls_stream&) = delete;
  tls_stream& operator=(const tls_stream&) = delete;

  asio::ip::tcp::socket& next_layer() { return sock_; }
  SSL* native_handle() { return ssl_; }

  /// After the handshake: `bytes` of the TLS exporter for `label` (RFC 8446
  /// section 7.5, no context), equal at both ends of this connection only.
  /// Empty if OpenSSL refuses (a proof over it then fails: the peer's differs).
  std::string export_keying_material(const char* label, size_t bytes);

  /// Replaces OpenSSL's verdict on each certificate of the chain.
  void set_verify_callback(verify_callback f);

  void async_handshake(handshake_type type, done_handler h);

  /// Delivers at least one byte of plaintext, or an error: asio::error::eof
  /// after the peer's close_notify, asio::ssl::error::stream_truncated on a
  /// TCP end without it.
  void async_read_some(asio::mutable_buffer buf, read_handler h);

  /// Plaintext already here or readable without blocking; would_block if
  /// none. Only while no async read runs.
  size_t read_some(asio::mutable_buffer buf, asio::error_code& ec);

  /// Encrypts all of `bufs[0..count)` and sends it; the handler sees the
  /// sum of their sizes or an error. One write at a time. Small buffers are
  /// gathered into full 16 KiB records, large ones encrypted in place.
  void async_write(const asio::const_buffer* bufs, size_t count,
                   read_handler h);

  /// Sends close_notify, then waits for the peer's (or the TCP end).
  void async_shutdown(done_handler h);

private:
  static BIO_METHOD* bio_method();
  static int bio_write(BIO* b, const char* data, int len);
  static int bio_read(BIO* b, char* data, int len);
  static long bio_ctrl(BIO* b, int cmd, long num, void* ptr);
  static int on_verify(int preverified, X509_STORE_CTX* store);

  /// One SSL_read into `buf`; would_block if it needs more ciphertext.
  size_t ssl_read(asio::mutable_buffer buf, asio::error_code& ec);
  /// Turns the last failed SSL call into an error code.
  asio::error_code ssl_error(int ret);
  /// Makes room in `in_` for the next socket read.
  void prepare_input();
  /// One socket read into `in_`; `then` sees its error (eof is recorded).
  void pump(done_handler then);
  void continue_read(const asio::error_code& ec);
  void continue_handshake();
  /// Discards input until the peer's close_notify or TCP end.
  void drain_for_close();
  void finish_shutdown(const asio::error_code& ec);
  /// Sends what OpenSSL wrote; `then` (if any) runs once `out_` is empty.
  void flush(done_handler then);
  void start_send();
  /// Gives back grown buffers if the link has been quiet long enough.
  void release_if_idle();
  /// Encrypts `staging_` as one record; false on an SSL error.
  bool seal_staging(asio::error_code& ec);
  bool seal(const char* data, size_t size, asio::error_code& ec);

  asio::ip::tcp::socket sock_;
  SSL* ssl_ = nullptr;
  /// Socket completions can outlive this object (they run after close):
  /// they check this first.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  verify_callback verify_;

  std::vector<char> in_; // ciphertext received, [in_begin_, in_end_) unread
  size_t in_begin_ = 0;
  size_t in_end_ = 0;
  bool in_filled_ = false; // the last socket read filled the free space
  bool sock_eof_ = false;  // the peer ended TCP
  bool pumping_ = false;   // a socket read is in flight
  /// Last time a read filled `in_` or a send was large.
  std::chrono::steady_clock::time_point last_busy_{};

  std::vector<char> staging_; // plaintext gathered into one record
  std::vector<char> out_;     // ciphertext OpenSSL wrote, not yet sending
  std::vector<char> sending_; // ciphertext in the socket write in flight
  bool sending_now_ = false;
  asio::error_code send_error_;
  done_handler flush_waiter_;

  // The one operation waiting for input: a read, handshake or shutdown.
  asio::mutable_buffer read_buf_;
  read_handler read_h_;
  handshake_type hs_type_ = client;
  done_handler hs_h_;
  done_handler shutdown_h_;
};

} // namespace drtp::net
