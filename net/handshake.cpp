#include "net/handshake.hpp"

#include <cassert>
#include <random>
#include <stdexcept>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

namespace drtp::net {

namespace {

void append_len(std::string& out, size_t n) {
  for (int i = 3; i >= 0; --i)
    out.push_back(static_cast<char>((n >> (8 * i)) & 0xff));
}

} // namespace

std::string derive_key(const std::string& secret) {
  static const std::string label = "drtp-service-key-v1";
  std::string in = label + secret;
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(in.data(), in.size(), md, &len, EVP_sha256(), nullptr) != 1)
    throw std::runtime_error("SHA-256 failed");
  OPENSSL_cleanse(in.data(), in.size());
  assert(len == key_bytes);
  return std::string(reinterpret_cast<char*>(md), len);
}

std::string make_proof(const std::string& key, const chunk& hello_payload,
                       const chunk& challenge_payload) {
  std::string transcript = "drtp-proof-v1";
  append_len(transcript, hello_payload.size());
  transcript.append(hello_payload.data(), hello_payload.size());
  append_len(transcript, challenge_payload.size());
  transcript.append(challenge_payload.data(), challenge_payload.size());
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (!HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
            reinterpret_cast<const unsigned char*>(transcript.data()),
            transcript.size(), mac, &len))
    throw std::runtime_error("HMAC-SHA256 failed");
  return std::string(reinterpret_cast<char*>(mac), len);
}

bool equal_ct(const std::string& a, const std::string& b) noexcept {
  if (a.size() != b.size())
    return false;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

entropy::~entropy() = default;

uint64_t entropy::uniform(uint64_t bound) {
  assert(bound > 0);
  return next_u64() % bound;
}

namespace {

class system_entropy final : public entropy {
public:
  std::string bytes(size_t n) override {
    std::string out(n, '\0');
    if (RAND_bytes(reinterpret_cast<unsigned char*>(out.data()),
                   static_cast<int>(n)) != 1)
      throw std::runtime_error("the OS random generator failed");
    return out;
  }
  uint64_t next_u64() override {
    uint64_t x = 0;
    auto s = bytes(sizeof(x));
    for (auto c : s)
      x = (x << 8) | static_cast<unsigned char>(c);
    return x;
  }
};

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

std::shared_ptr<entropy> make_system_entropy() {
  return std::make_shared<system_entropy>();
}

std::shared_ptr<entropy> make_seeded_entropy(uint64_t seed) {
  return std::make_shared<seeded_entropy>(seed);
}

} // namespace drtp::net
