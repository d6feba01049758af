#pragma once
// A read-only slice of a reference-counted byte buffer. Payload bytes travel
// between actors as chunks: passing one on never copies the bytes.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace drtp::net {

class chunk {
public:
  chunk() = default;

  /// Takes ownership of `bytes` without copying.
  static chunk adopt(std::vector<char>&& bytes);
  /// Copies `n` bytes from `data` (for small control frames and tests).
  static chunk copy_of(const void* data, size_t n);
  /// A fresh buffer of `n` bytes; `*out` points at it for the one writer
  /// that fills it before the chunk is shared.
  static chunk allocate(size_t n, char** out);
  /// The first `n` bytes of `c` (a buffer filled only partly).
  static chunk shrink(chunk c, size_t n);
  static chunk copy_of(const std::string& s) {
    return copy_of(s.data(), s.size());
  }

  const char* data() const noexcept {
    return buf_ ? buf_.get() + offset_ : nullptr;
  }
  size_t size() const noexcept { return size_; }
  bool empty() const noexcept { return size_ == 0; }

  /// A sub-slice [offset, offset + n) of this chunk; shares the buffer.
  chunk slice(size_t offset, size_t n) const;

  std::string to_string() const { return std::string(data(), size_); }

private:
  std::shared_ptr<const char> buf_;
  size_t offset_ = 0;
  size_t size_ = 0;
};

using chunk_list = std::vector<chunk>;

size_t total_size(const chunk_list& xs) noexcept;

} // namespace drtp::net
