#include "net/openssl_crypto.hpp"

#include <climits>
#include <cstdint>
#include <ctime>
#include <memory>
#include <stdexcept>

#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "net/seam/assert.hpp"
#include "net/wire/civil_time.hpp"

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

// -- X.509 helpers: RAII, bounded PEM in and out --------------------------

struct bio_free {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct x509_free {
  void operator()(X509* x) const { X509_free(x); }
};
struct req_free {
  void operator()(X509_REQ* r) const { X509_REQ_free(r); }
};
struct store_free {
  void operator()(X509_STORE* s) const { X509_STORE_free(s); }
};
struct store_ctx_free {
  void operator()(X509_STORE_CTX* c) const { X509_STORE_CTX_free(c); }
};
struct bn_free {
  void operator()(BIGNUM* b) const { BN_free(b); }
};
using bio_ptr = std::unique_ptr<BIO, bio_free>;
using x509_ptr = std::unique_ptr<X509, x509_free>;
using req_ptr = std::unique_ptr<X509_REQ, req_free>;
using store_ptr = std::unique_ptr<X509_STORE, store_free>;
using store_ctx_ptr = std::unique_ptr<X509_STORE_CTX, store_ctx_free>;
using bn_ptr = std::unique_ptr<BIGNUM, bn_free>;

/// A read-only BIO over `pem`, or null when it is empty or too long.
bio_ptr pem_in(const std::string& pem) {
  if (pem.empty() || pem.size() > pem_bytes_max)
    return nullptr;
  return bio_ptr{BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()))};
}

std::string bio_text(BIO* b) {
  char* data = nullptr;
  long n = BIO_get_mem_data(b, &data);
  if (n <= 0 || data == nullptr)
    return {};
  return std::string(data, static_cast<size_t>(n));
}

x509_ptr read_cert(const std::string& pem) {
  auto in = pem_in(pem);
  if (!in)
    return nullptr;
  x509_ptr out{PEM_read_bio_X509(in.get(), nullptr, nullptr, nullptr)};
  ERR_clear_error();
  return out;
}

req_ptr read_req(const std::string& pem) {
  auto in = pem_in(pem);
  if (!in)
    return nullptr;
  req_ptr out{PEM_read_bio_X509_REQ(in.get(), nullptr, nullptr, nullptr)};
  ERR_clear_error();
  return out;
}

std::string cert_pem(X509* x) {
  bio_ptr out{BIO_new(BIO_s_mem())};
  if (!out || PEM_write_bio_X509(out.get(), x) != 1)
    return {};
  return bio_text(out.get());
}

/// A subject we write or accept: printable ASCII, bounded.
bool good_subject(const std::string& s) {
  if (s.empty() || s.size() > cert_subject_bytes_max)
    return false;
  for (char c : s)
    if (c < 0x20 || c > 0x7e)
      return false;
  return true;
}

/// A name with one CN. UTF8String set directly: OpenSSL's table would
/// refuse a CN over 64 characters, and "service/" + a 63-character name is
/// longer.
bool set_cn(X509_NAME* name, const std::string& cn) {
  return X509_NAME_add_entry_by_NID(name, NID_commonName, V_ASN1_UTF8STRING,
                                    reinterpret_cast<const unsigned char*>(cn.data()),
                                    static_cast<int>(cn.size()), -1, 0)
         == 1;
}

/// The (first) CN of `name`, empty when there is none or it is not one we
/// would write.
std::string get_cn(X509_NAME* name) {
  int i = name ? X509_NAME_get_index_by_NID(name, NID_commonName, -1) : -1;
  if (i < 0)
    return {};
  auto* data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i));
  if (data == nullptr)
    return {};
  std::string out(reinterpret_cast<const char*>(ASN1_STRING_get0_data(data)),
                  static_cast<size_t>(ASN1_STRING_length(data)));
  return good_subject(out) ? out : std::string{};
}

/// The raw 32 bytes of an Ed25519 key, empty for any other kind.
std::string ed25519_raw(EVP_PKEY* k) {
  if (k == nullptr || EVP_PKEY_get_id(k) != EVP_PKEY_ED25519)
    return {};
  std::string out(public_key_bytes, '\0');
  size_t n = out.size();
  if (EVP_PKEY_get_raw_public_key(k, reinterpret_cast<unsigned char*>(out.data()), &n) != 1
      || n != public_key_bytes)
    return {};
  return out;
}

bool unix_seconds(const ASN1_TIME* t, int64_t& out) {
  struct tm tm {};
  if (t == nullptr || ASN1_TIME_to_tm(t, &tm) != 1)
    return false;
  out = days_from_civil(int64_t{tm.tm_year} + 1900, static_cast<unsigned>(tm.tm_mon + 1),
                        static_cast<unsigned>(tm.tm_mday))
          * 86400
        + tm.tm_hour * 3600 + tm.tm_min * 60 + tm.tm_sec;
  return true;
}

bool set_times(X509* x, int64_t not_before_s, int64_t not_after_s) {
  if (not_before_s < 0 || not_after_s < not_before_s)
    return false;
  return ASN1_TIME_set(X509_getm_notBefore(x), static_cast<time_t>(not_before_s)) != nullptr
         && ASN1_TIME_set(X509_getm_notAfter(x), static_cast<time_t>(not_after_s)) != nullptr;
}

bool set_serial(X509* x, const std::string& hex) {
  auto canon = canonical_serial(hex);
  if (canon.empty())
    return false;
  BIGNUM* raw = nullptr;
  if (BN_hex2bn(&raw, canon.c_str()) == 0)
    return false;
  bn_ptr bn{raw};
  auto* serial = X509_get_serialNumber(x);
  return BN_to_ASN1_INTEGER(bn.get(), serial) != nullptr;
}

std::string get_serial(X509* x) {
  bn_ptr bn{ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), nullptr)};
  if (!bn || BN_is_negative(bn.get()))
    return {};
  char* hex = BN_bn2hex(bn.get());
  if (hex == nullptr)
    return {};
  std::string out = canonical_serial(hex);
  OPENSSL_free(hex);
  return out;
}

/// Adds extension `nid` = `value` (OpenSSL's config syntax), with `issuer`
/// and `subject` in the context for the key identifiers.
bool add_ext(X509* x, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, x, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
  if (ext == nullptr)
    return false;
  int ok = X509_add_ext(x, ext, -1);
  X509_EXTENSION_free(ext);
  return ok == 1;
}

/// The CSR's subject and key once its self-signature checks; error says
/// why not.
crypto::certificate_info check_req(X509_REQ* req) {
  crypto::certificate_info out;
  if (req == nullptr) {
    out.error = "malformed certificate request";
    return out;
  }
  EVP_PKEY* key = X509_REQ_get0_pubkey(req);
  out.public_key = ed25519_raw(key);
  if (out.public_key.empty()) {
    out.error = "malformed certificate request: the key is not Ed25519";
    return out;
  }
  if (X509_REQ_verify(req, key) != 1) {
    ERR_clear_error();
    out.error = "malformed certificate request: its signature does not check";
    out.public_key.clear();
    return out;
  }
  out.subject = get_cn(X509_REQ_get_subject_name(req));
  return out;
}

/// `v` in hex, for a serial.
std::string canonical_hex(int64_t v) {
  static const char digits[] = "0123456789abcdef";
  auto u = static_cast<uint64_t>(v);
  std::string out;
  do {
    out.insert(out.begin(), digits[u & 0xf]);
    u >>= 4;
  } while (u != 0);
  return out;
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

  // -- X.509 (enrollment: docs/control-plane.md) --
  std::string private_key_pem(const std::string& seed) override {
    if (seed.size() != seed_bytes)
      return {};
    pkey_ptr key{private_key(seed)};
    bio_ptr out{BIO_new(BIO_s_mem())};
    // PKCS#8, unencrypted: what SSL_CTX_use_PrivateKey and
    // PEM_read_bio_PrivateKey read.
    if (!out
        || PEM_write_bio_PrivateKey(out.get(), key.get(), nullptr, nullptr, 0, nullptr,
                                    nullptr)
             != 1)
      return {};
    return bio_text(out.get());
  }

  std::string make_csr(const std::string& seed, const std::string& subject) override {
    if (seed.size() != seed_bytes || !good_subject(subject))
      return {};
    pkey_ptr key{private_key(seed)};
    req_ptr req{X509_REQ_new()};
    if (!req || X509_REQ_set_version(req.get(), 0) != 1
        || !set_cn(X509_REQ_get_subject_name(req.get()), subject)
        || X509_REQ_set_pubkey(req.get(), key.get()) != 1
        // Ed25519 hashes inside the signature: no digest.
        || X509_REQ_sign(req.get(), key.get(), nullptr) <= 0) {
      ERR_clear_error();
      return {};
    }
    bio_ptr out{BIO_new(BIO_s_mem())};
    if (!out || PEM_write_bio_X509_REQ(out.get(), req.get()) != 1)
      return {};
    return bio_text(out.get());
  }

  std::string make_ca_certificate(const std::string& seed, const std::string& name,
                                  int64_t now_s, int64_t lifetime_s) override {
    if (seed.size() != seed_bytes || !good_subject(name) || lifetime_s <= 0
        || now_s > INT64_MAX - lifetime_s)
      return {};
    pkey_ptr key{private_key(seed)};
    x509_ptr x{X509_new()};
    // The serial only has to differ between CAs of one name: the start time.
    bool ok = x && X509_set_version(x.get(), 2) == 1
              && set_serial(x.get(), canonical_hex(now_s)) && set_times(x.get(), now_s, now_s + lifetime_s)
              && set_cn(X509_get_subject_name(x.get()), name)
              && X509_set_issuer_name(x.get(), X509_get_subject_name(x.get())) == 1
              && X509_set_pubkey(x.get(), key.get()) == 1
              && add_ext(x.get(), x.get(), NID_basic_constraints, "critical,CA:TRUE,pathlen:0")
              && add_ext(x.get(), x.get(), NID_key_usage, "critical,keyCertSign,cRLSign")
              && add_ext(x.get(), x.get(), NID_subject_key_identifier, "hash")
              && X509_sign(x.get(), key.get(), nullptr) > 0;
    ERR_clear_error();
    return ok ? cert_pem(x.get()) : std::string{};
  }

  certificate_info read_csr(const std::string& csr_pem) override {
    auto req = read_req(csr_pem);
    return check_req(req.get());
  }

  std::string issue_certificate(const std::string& ca_seed, const std::string& ca_cert_pem,
                                const std::string& csr_pem, const std::string& subject,
                                const std::string& serial, int64_t not_before_s,
                                int64_t not_after_s) override {
    if (ca_seed.size() != seed_bytes || !good_subject(subject))
      return {};
    auto ca = read_cert(ca_cert_pem);
    auto req = read_req(csr_pem);
    if (!ca || !req || !check_req(req.get()).error.empty())
      return {};
    pkey_ptr ca_key{private_key(ca_seed)};
    if (X509_check_private_key(ca.get(), ca_key.get()) != 1) {
      ERR_clear_error();
      return {}; // the seed is not this CA's
    }
    x509_ptr x{X509_new()};
    bool ok = x && X509_set_version(x.get(), 2) == 1 && set_serial(x.get(), serial)
              && set_times(x.get(), not_before_s, not_after_s)
              && set_cn(X509_get_subject_name(x.get()), subject)
              && X509_set_issuer_name(x.get(), X509_get_subject_name(ca.get())) == 1
              && X509_set_pubkey(x.get(), X509_REQ_get0_pubkey(req.get())) == 1
              && add_ext(x.get(), ca.get(), NID_basic_constraints, "critical,CA:FALSE")
              && add_ext(x.get(), ca.get(), NID_key_usage, "critical,digitalSignature")
              && add_ext(x.get(), ca.get(), NID_ext_key_usage, "clientAuth")
              && add_ext(x.get(), ca.get(), NID_subject_key_identifier, "hash")
              && add_ext(x.get(), ca.get(), NID_authority_key_identifier, "keyid:always")
              && X509_sign(x.get(), ca_key.get(), nullptr) > 0;
    ERR_clear_error();
    return ok ? cert_pem(x.get()) : std::string{};
  }

  certificate_info verify_certificate(const std::string& cert_pem_in,
                                      const std::string& ca_cert_pem,
                                      int64_t now_s) override {
    certificate_info out;
    auto x = read_cert(cert_pem_in);
    if (!x) {
      out.error = "malformed certificate";
      return out;
    }
    out.subject = get_cn(X509_get_subject_name(x.get()));
    out.serial = get_serial(x.get());
    out.public_key = ed25519_raw(X509_get0_pubkey(x.get()));
    if (!unix_seconds(X509_get0_notBefore(x.get()), out.not_before_s)
        || !unix_seconds(X509_get0_notAfter(x.get()), out.not_after_s)) {
      out.error = "malformed certificate: bad validity times";
      return out;
    }
    if (out.subject.empty() || out.serial.empty()) {
      out.error = "malformed certificate: no usable subject or serial";
      return out;
    }
    if (out.public_key.empty()) {
      out.error = "malformed certificate: the key is not Ed25519";
      return out;
    }
    if (X509_check_ca(x.get()) != 0) {
      out.error = "not a client certificate (it is a CA)";
      return out;
    }
    auto ca = read_cert(ca_cert_pem);
    store_ptr store{X509_STORE_new()};
    store_ctx_ptr ctx{X509_STORE_CTX_new()};
    if (!ca || !store || !ctx || X509_STORE_add_cert(store.get(), ca.get()) != 1
        || X509_STORE_CTX_init(ctx.get(), store.get(), x.get(), nullptr) != 1) {
      ERR_clear_error();
      out.error = "malformed CA certificate";
      return out;
    }
    // The caller's clock (virtual in the simulator), not the host's.
    X509_STORE_CTX_set_time(ctx.get(), 0, static_cast<time_t>(now_s));
    X509_STORE_CTX_set_purpose(ctx.get(), X509_PURPOSE_SSL_CLIENT);
    int ok = X509_verify_cert(ctx.get());
    int err = X509_STORE_CTX_get_error(ctx.get());
    ERR_clear_error();
    if (ok == 1)
      return out;
    switch (err) {
      case X509_V_ERR_CERT_HAS_EXPIRED:
        out.error = "expired";
        break;
      case X509_V_ERR_CERT_NOT_YET_VALID:
        out.error = "not yet valid";
        break;
      case X509_V_ERR_CERT_SIGNATURE_FAILURE:
      case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
      case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
      case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
      case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
      case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
      case X509_V_ERR_AKID_SKID_MISMATCH:
        out.error = "not signed by the CA";
        break;
      default:
        out.error = std::string{"refused: "} + X509_verify_cert_error_string(err);
    }
    return out;
  }
  // -- end of X.509 --
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
