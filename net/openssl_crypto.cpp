#include "net/openssl_crypto.hpp"

#include <memory>
#include <stdexcept>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "net/seam/assert.hpp"

namespace drtp::net {

namespace {

struct pkey_free {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct md_ctx_free {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};
using pkey_ptr = std::unique_ptr<EVP_PKEY, pkey_free>;
using md_ctx_ptr = std::unique_ptr<EVP_MD_CTX, md_ctx_free>;

EVP_PKEY* private_key(const std::string& seed) {
  auto* k = EVP_PKEY_new_raw_private_key(
    EVP_PKEY_ED25519, nullptr, reinterpret_cast<const unsigned char*>(seed.data()),
    seed.size());
  if (k == nullptr)
    throw std::runtime_error("Ed25519 key from seed failed");
  return k;
}

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

  login_key derive_login_key(const std::string& secret,
                             const std::string& salt) override {
    return net::derive_login_key(secret, salt);
  }

  std::string sign(const std::string& seed, const std::string& message) override {
    DRTP_ASSERT(seed.size() == seed_bytes, "an Ed25519 seed is 32 bytes");
    pkey_ptr key{private_key(seed)};
    md_ctx_ptr ctx{EVP_MD_CTX_new()};
    std::string sig(signature_bytes, '\0');
    size_t len = sig.size();
    if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, nullptr, nullptr, key.get()) != 1
        || EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &len,
                          reinterpret_cast<const unsigned char*>(message.data()),
                          message.size())
             != 1)
      throw std::runtime_error("Ed25519 signing failed");
    DRTP_ASSERT(len == signature_bytes, "an Ed25519 signature is 64 bytes");
    return sig;
  }

  bool verify(const std::string& public_key, const std::string& message,
              const std::string& signature) override {
    if (public_key.size() != public_key_bytes || signature.size() != signature_bytes)
      return false;
    pkey_ptr key{EVP_PKEY_new_raw_public_key(
      EVP_PKEY_ED25519, nullptr, reinterpret_cast<const unsigned char*>(public_key.data()),
      public_key.size())};
    md_ctx_ptr ctx{EVP_MD_CTX_new()};
    if (!key || !ctx
        || EVP_DigestVerifyInit(ctx.get(), nullptr, nullptr, nullptr, key.get()) != 1)
      return false;
    return EVP_DigestVerify(ctx.get(),
                            reinterpret_cast<const unsigned char*>(signature.data()),
                            signature.size(),
                            reinterpret_cast<const unsigned char*>(message.data()),
                            message.size())
           == 1;
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

login_key derive_login_key(const std::string& secret, const std::string& salt) {
  login_key out;
  out.seed.assign(seed_bytes, '\0');
  if (EVP_PBE_scrypt(secret.data(), secret.size(),
                     reinterpret_cast<const unsigned char*>(salt.data()), salt.size(),
                     scrypt_n, scrypt_r, scrypt_p, scrypt_maxmem_bytes,
                     reinterpret_cast<unsigned char*>(out.seed.data()), out.seed.size())
      != 1)
    throw std::runtime_error("scrypt failed");
  pkey_ptr key{private_key(out.seed)};
  out.public_key.assign(public_key_bytes, '\0');
  size_t len = out.public_key.size();
  if (EVP_PKEY_get_raw_public_key(key.get(),
                                  reinterpret_cast<unsigned char*>(out.public_key.data()),
                                  &len)
        != 1
      || len != public_key_bytes)
    throw std::runtime_error("Ed25519 public key failed");
  return out;
}

std::string derive_public_key(std::string secret, const std::string& salt) {
  auto key = derive_login_key(secret, salt);
  OPENSSL_cleanse(secret.data(), secret.size());
  OPENSSL_cleanse(key.seed.data(), key.seed.size());
  return key.public_key;
}

void wipe(std::string& s) noexcept {
  if (!s.empty())
    OPENSSL_cleanse(s.data(), s.size());
  s.clear();
}

} // namespace drtp::net
