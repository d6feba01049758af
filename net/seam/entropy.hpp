#pragma once
// Randomness handed to actors: real runs use the OS generator
// (net/openssl_crypto.hpp), the simulator a seeded one so that runs replay.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace drtp::net {

class entropy {
public:
  virtual ~entropy();
  virtual std::string bytes(size_t n) = 0;
  virtual uint64_t next_u64() = 0;
  /// Uniform in [0, bound) (bound > 0).
  uint64_t uniform(uint64_t bound);
};

/// A deterministic generator: the same seed gives the same bytes.
std::shared_ptr<entropy> make_seeded_entropy(uint64_t seed);

} // namespace drtp::net
