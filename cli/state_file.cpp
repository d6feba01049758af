#include "cli/state_file.hpp"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/error.hpp"

namespace drtp::cli {

bool read_bounded(int fd, size_t bytes_max, std::string& out, std::string& why) {
  char buf[65536];
  for (;;) {
    auto n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      why = std::strerror(errno);
      return false;
    }
    if (n == 0)
      return true;
    if (out.size() + static_cast<size_t>(n) > bytes_max) {
      why = "over " + std::to_string(bytes_max) + " bytes";
      return false;
    }
    out.append(buf, static_cast<size_t>(n));
  }
}

state_file::state_file(const std::string& dir, const std::string& file_name, size_t bytes_max,
                       std::string program)
  : dir_(dir), path_(dir + "/" + file_name), program_(std::move(program)), bytes_max_(bytes_max) {
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST)
    throw cli::error("--state-dir " + dir + ": " + std::strerror(errno));
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
    throw cli::error("--state-dir " + dir + " is not a directory");
  writer_ = std::thread([this] { run(); });
}

state_file::~state_file() {
  {
    std::lock_guard<std::mutex> g{mtx_};
    stop_ = true;
  }
  cv_.notify_all();
  writer_.join();
}

std::string state_file::read(std::string& error) const {
  int fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    if (errno != ENOENT)
      error = path_ + ": " + std::strerror(errno);
    return {};
  }
  std::string out, why;
  if (!read_bounded(fd, bytes_max_, out, why)) {
    error = path_ + ": " + why;
    out.clear();
  }
  ::close(fd);
  return out;
}

void state_file::write(std::string text) {
  {
    std::lock_guard<std::mutex> g{mtx_};
    pending_ = std::move(text);
  }
  cv_.notify_all();
}

void state_file::flush() {
  std::unique_lock<std::mutex> g{mtx_};
  cv_.wait(g, [this] { return !pending_ && !busy_; });
}

void state_file::run() {
  std::unique_lock<std::mutex> g{mtx_};
  for (;;) {
    cv_.wait(g, [this] { return stop_ || pending_; });
    if (!pending_)
      return; // stopping, nothing left
    auto text = std::move(*pending_);
    pending_.reset();
    busy_ = true;
    g.unlock();
    write_now(text);
    g.lock();
    busy_ = false;
    cv_.notify_all();
  }
}

void state_file::write_now(const std::string& text) {
  auto tmp = path_ + ".tmp";
  auto fail = [&](const char* what) {
    auto line = std::string(what) + " " + tmp + ": " + std::strerror(errno);
    if (line != last_error_) // a full disk fails every write: say it once
      std::fprintf(stderr, "%s: error: %s (the last one written stays)\n", program_.c_str(),
                   line.c_str());
    last_error_ = line;
  };
  ::unlink(tmp.c_str()); // a leftover of a crash; O_EXCL below refuses links
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0)
    return fail("cannot create");
  size_t off = 0;
  while (off < text.size()) {
    auto n = ::write(fd, text.data() + off, text.size() - off);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      fail("cannot write");
      ::close(fd);
      ::unlink(tmp.c_str());
      return;
    }
    off += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) {
    fail("cannot fsync");
    ::close(fd);
    ::unlink(tmp.c_str());
    return;
  }
  ::close(fd);
  if (::rename(tmp.c_str(), path_.c_str()) != 0) {
    fail("cannot rename");
    ::unlink(tmp.c_str());
    return;
  }
  last_error_.clear();
  // The rename itself reaches the disk with the directory.
  int dfd = ::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

} // namespace drtp::pop
