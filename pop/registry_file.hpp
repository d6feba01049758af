#pragma once
// D/registry.json: what a POP last knew from the control plane (the
// follower's snapshot, public keys only), so that a POP restarted while the
// control plane is down still serves it (docs/control-plane.md, "The
// binaries"). Writes go through a thread of their own: the follower's
// persist callback runs on the I/O loop, which must not wait for fsync.

#include <condition_variable>
#include <cstddef>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

namespace drtp::pop {

/// A snapshot larger than this is refused at start (10 000 services take
/// about 2 MiB).
constexpr size_t registry_file_bytes_max = 32 * 1024 * 1024;

class registry_file {
public:
  /// `dir` is made (0700) if missing; throws cli::error if it cannot be.
  explicit registry_file(const std::string& dir);
  ~registry_file(); // writes what is pending, then stops
  registry_file(const registry_file&) = delete;
  registry_file& operator=(const registry_file&) = delete;

  const std::string& path() const {
    return path_;
  }

  /// The file's text; empty if there is none. A file that cannot be read
  /// or is over registry_file_bytes_max gives empty and `error` one line.
  std::string read(std::string& error) const;

  /// Hands a new snapshot to the writer thread; only the latest of a
  /// burst is written (tmp file, fsync, rename: never a torn file; 0600).
  void write(std::string text);

  /// Waits until what was handed is on disk.
  void flush();

private:
  void run();
  void write_now(const std::string& text);

  std::string dir_, path_;
  std::mutex mtx_;
  std::condition_variable cv_;
  std::optional<std::string> pending_;
  bool busy_ = false;
  bool stop_ = false;
  std::thread writer_;
};

} // namespace drtp::pop
