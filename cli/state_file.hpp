#pragma once
// A file in --state-dir that keeps what a binary last knew from the control
// plane, so that it starts from it when the control plane is down (static
// stability, docs/control-plane.md): drtp-pop's D/registry.json (the
// pop_follower's snapshot, public keys only), drtp serve/connect's
// D/bootstrap.json (the agent_follower's). Writes go through a thread of
// their own: the followers' callbacks run on the I/O loop, which must not
// wait for fsync.

#include <condition_variable>
#include <cstddef>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

namespace drtp::cli {

/// All of `fd` (not closed), at most `bytes_max`: false with `why` (the
/// errno text, or "over N bytes") otherwise. Shared by every bounded read
/// of a file the binaries take in.
bool read_bounded(int fd, size_t bytes_max, std::string& out, std::string& why);

class state_file {
public:
  /// `dir` is made (0700) if missing; throws cli::error if it cannot be.
  /// A file over `bytes_max` is refused at read. `program` starts the
  /// lines that say a write failed.
  state_file(const std::string& dir, const std::string& file_name, size_t bytes_max,
             std::string program);
  ~state_file(); // writes what is pending, then stops
  state_file(const state_file&) = delete;
  state_file& operator=(const state_file&) = delete;

  const std::string& path() const {
    return path_;
  }

  /// The file's text; empty if there is none. A file that cannot be read
  /// or is over bytes_max gives empty and `error` one line.
  std::string read(std::string& error) const;

  /// Hands a new snapshot to the writer thread; only the latest of a
  /// burst is written (tmp file, fsync, rename: never a torn file; 0600).
  void write(std::string text);

  /// Waits until what was handed is on disk.
  void flush();

private:
  void run();
  void write_now(const std::string& text);

  std::string dir_, path_, program_;
  size_t bytes_max_;
  std::string last_error_; // writer thread only: each new failure said once
  std::mutex mtx_;
  std::condition_variable cv_;
  std::optional<std::string> pending_;
  bool busy_ = false;
  bool stop_ = false;
  std::thread writer_;
};

} // namespace drtp::pop
