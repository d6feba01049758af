#include "net/openssl_crypto.hpp"

#include <stdexcept>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "net/seam/assert.hpp"
#include "net/wire/handshake.hpp"

namespace drtp::net {

namespace {

class openssl_crypto final : public crypto {
public:
  std::string hmac_sha256(const std::string& key,
                          const std::string& message) override {
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (!HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
              reinterpret_cast<const unsigned char*>(message.data()),
              message.size(), mac, &len))
      throw std::runtime_error("HMAC-SHA256 failed");
    DRTP_ASSERT(len == 32, "HMAC-SHA256 gives 32 bytes");
    return std::string(reinterpret_cast<char*>(mac), len);
  }

  // -- X25519 (the patch panel's session key) --
  std::string x25519_public(const std::string& private_key) override {
    DRTP_ASSERT(private_key.size() == x25519_key_bytes, "an X25519 private key is 32 bytes");
    auto* k = EVP_PKEY_new_raw_private_key(
      EVP_PKEY_X25519, nullptr, reinterpret_cast<const unsigned char*>(private_key.data()),
      private_key.size());
    if (k == nullptr)
      throw std::runtime_error("X25519 key failed");
    std::string out(x25519_key_bytes, '\0');
    size_t n = out.size();
    int ok = EVP_PKEY_get_raw_public_key(k, reinterpret_cast<unsigned char*>(out.data()), &n);
    EVP_PKEY_free(k);
    if (ok != 1 || n != x25519_key_bytes)
      throw std::runtime_error("X25519 public key failed");
    return out;
  }

  std::string x25519_shared(const std::string& private_key,
                            const std::string& peer_public) override {
    DRTP_ASSERT(private_key.size() == x25519_key_bytes, "an X25519 private key is 32 bytes");
    if (peer_public.size() != x25519_key_bytes)
      return {};
    auto* mine = EVP_PKEY_new_raw_private_key(
      EVP_PKEY_X25519, nullptr, reinterpret_cast<const unsigned char*>(private_key.data()),
      private_key.size());
    auto* peer = EVP_PKEY_new_raw_public_key(
      EVP_PKEY_X25519, nullptr, reinterpret_cast<const unsigned char*>(peer_public.data()),
      peer_public.size());
    auto* ctx = mine ? EVP_PKEY_CTX_new(mine, nullptr) : nullptr;
    std::string out(x25519_key_bytes, '\0');
    size_t n = out.size();
    // OpenSSL refuses a low-order peer point (an all-zero secret) in derive.
    bool ok = peer && ctx && EVP_PKEY_derive_init(ctx) == 1
              && EVP_PKEY_derive_set_peer(ctx, peer) == 1
              && EVP_PKEY_derive(ctx, reinterpret_cast<unsigned char*>(out.data()), &n) == 1
              && n == x25519_key_bytes;
    EVP_PKEY_CTX_free(ctx);
    EVP_PKEY_free(peer);
    EVP_PKEY_free(mine);
    if (!ok) {
      OPENSSL_cleanse(out.data(), out.size());
      return {};
    }
    return out;
  }
  // -- end of X25519 --
};

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

} // namespace

std::shared_ptr<crypto> make_openssl_crypto() {
  return std::make_shared<openssl_crypto>();
}

std::shared_ptr<entropy> make_system_entropy() {
  return std::make_shared<system_entropy>();
}

std::string derive_key(const std::string& secret) {
  static const std::string label = "drtp-service-key-v1";
  std::string in = label + secret;
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(in.data(), in.size(), md, &len, EVP_sha256(), nullptr) != 1)
    throw std::runtime_error("SHA-256 failed");
  OPENSSL_cleanse(in.data(), in.size());
  DRTP_ASSERT(len == key_bytes, "a service key is 32 bytes");
  return std::string(reinterpret_cast<char*>(md), len);
}

} // namespace drtp::net
