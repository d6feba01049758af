#include "net/seam/chunk.hpp"

#include <cstring>

#include "net/seam/assert.hpp"

namespace drtp::net {

chunk chunk::adopt(std::vector<char>&& bytes) {
  chunk c;
  c.size_ = bytes.size();
  auto owner = std::make_shared<std::vector<char>>(std::move(bytes));
  // Aliasing constructor: shares ownership of the vector, points at its bytes.
  c.buf_ = std::shared_ptr<const char>(owner, owner->data());
  return c;
}

chunk chunk::allocate(size_t n, char** out) {
  // new char[n] leaves the bytes uninitialised: the writer fills them, and
  // zeroing 64 KiB per socket read showed up in profiles.
  std::shared_ptr<char> buf(new char[n], std::default_delete<char[]>());
  *out = buf.get();
  chunk c;
  c.size_ = n;
  c.buf_ = std::move(buf);
  return c;
}

chunk chunk::shrink(chunk c, size_t n) {
  DRTP_ASSERT(n <= c.size_, "a chunk shrinks, never grows");
  c.size_ = n;
  return c;
}

chunk chunk::copy_of(const void* data, size_t n) {
  std::vector<char> v(n);
  if (n > 0)
    std::memcpy(v.data(), data, n);
  return adopt(std::move(v));
}

chunk chunk::slice(size_t offset, size_t n) const {
  DRTP_ASSERT(offset + n <= size_, "a slice lies inside its chunk");
  chunk c;
  c.buf_ = buf_;
  c.offset_ = offset_ + offset;
  c.size_ = n;
  return c;
}

size_t total_size(const chunk_list& xs) noexcept {
  size_t n = 0;
  for (auto& x : xs)
    n += x.size();
  return n;
}

} // namespace drtp::net
