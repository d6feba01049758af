#include "net/seam/entropy.hpp"

#include <random>

#include "net/seam/assert.hpp"

namespace drtp::net {

entropy::~entropy() = default;

uint64_t entropy::uniform(uint64_t bound) {
  DRTP_ASSERT(bound > 0, "a uniform draw needs a non-empty range");
  return next_u64() % bound;
}

namespace {

class seeded_entropy final : public entropy {
public:
  explicit seeded_entropy(uint64_t seed) : gen_(seed) {
  }
  std::string bytes(size_t n) override {
    std::string out(n, '\0');
    for (auto& c : out)
      c = static_cast<char>(gen_() & 0xff);
    return out;
  }
  uint64_t next_u64() override {
    return gen_();
  }

private:
  std::mt19937_64 gen_;
};

} // namespace

std::shared_ptr<entropy> make_seeded_entropy(uint64_t seed) {
  return std::make_shared<seeded_entropy>(seed);
}

} // namespace drtp::net
