#include "net/tls.hpp"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>
#include <stdexcept>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

namespace drtp::net {

namespace {

// Owning pointers so every early throw frees what was built so far.
struct openssl_free {
  void operator()(BIO* p) const { BIO_free(p); }
  void operator()(X509* p) const { X509_free(p); }
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
  void operator()(BIGNUM* p) const { BN_free(p); }
  void operator()(GENERAL_NAMES* p) const { GENERAL_NAMES_free(p); }
};
template <class T>
using owned = std::unique_ptr<T, openssl_free>;

/// The oldest queued OpenSSL error as one line; clears the queue so a later
/// failure does not report a stale reason.
std::string openssl_error() {
  unsigned long code = ERR_get_error();
  ERR_clear_error();
  if (code == 0)
    return "unknown OpenSSL error";
  char buf[256];
  ERR_error_string_n(code, buf, sizeof(buf));
  return buf;
}

[[noreturn]] void fail(const std::string& what) {
  throw std::runtime_error(what + ": " + openssl_error());
}

std::string bio_to_string(BIO* bio) {
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  return std::string(data, n > 0 ? static_cast<size_t>(n) : 0);
}

owned<BIO> bio_of(const std::string& pem) {
  owned<BIO> bio{BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()))};
  if (!bio)
    fail("BIO_new_mem_buf");
  return bio;
}

owned<X509> parse_cert(const std::string& pem) {
  auto bio = bio_of(pem);
  return owned<X509>{PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)};
}

/// Adds `name` to `names` as an IP entry if it is an address literal, else as
/// a DNS entry.
void add_alt_name(GENERAL_NAMES* names, const std::string& name) {
  GENERAL_NAME* gen = GENERAL_NAME_new();
  if (!gen)
    fail("GENERAL_NAME_new");
  if (ASN1_OCTET_STRING* ip = a2i_IPADDRESS(name.c_str())) {
    GENERAL_NAME_set0_value(gen, GEN_IPADD, ip);
  } else {
    ERR_clear_error(); // a2i_IPADDRESS queues an error for non-addresses
    ASN1_IA5STRING* dns = ASN1_IA5STRING_new();
    if (!dns || !ASN1_STRING_set(dns, name.data(), static_cast<int>(name.size()))) {
      ASN1_IA5STRING_free(dns);
      GENERAL_NAME_free(gen);
      fail("ASN1_STRING_set");
    }
    GENERAL_NAME_set0_value(gen, GEN_DNS, dns);
  }
  if (!sk_GENERAL_NAME_push(names, gen)) {
    GENERAL_NAME_free(gen);
    fail("sk_GENERAL_NAME_push");
  }
}

void add_ext(X509* cert, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, cert, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
  if (!ext)
    fail(std::string("cannot build extension ") + value);
  int ok = X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
  if (!ok)
    fail("X509_add_ext");
}

std::string read_file(const std::string& path, const char* kind) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    throw std::runtime_error(std::string("cannot read ") + kind + " file " + path
                             + ": " + std::strerror(errno));
  std::ostringstream out;
  out << in.rdbuf();
  if (in.bad())
    throw std::runtime_error(std::string("cannot read ") + kind + " file " + path
                             + ": read error");
  return out.str();
}

} // namespace

tls_identity make_self_signed(const std::string& common_name) {
  if (common_name.empty())
    throw std::runtime_error("make_self_signed: empty common name");
  owned<EVP_PKEY> key{EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256")};
  if (!key)
    fail("cannot generate an EC P-256 key");
  owned<X509> cert{X509_new()};
  if (!cert)
    fail("X509_new");
  if (!X509_set_version(cert.get(), X509_VERSION_3))
    fail("X509_set_version");
  // A random positive 159-bit serial, as RFC 5280 allows at most 20 octets.
  owned<BIGNUM> serial{BN_new()};
  if (!serial || !BN_rand(serial.get(), 159, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY)
      || !BN_to_ASN1_INTEGER(serial.get(), X509_get_serialNumber(cert.get())))
    fail("cannot make a serial number");
  constexpr long validity_seconds = 365L * 24 * 3600;
  if (!X509_gmtime_adj(X509_getm_notBefore(cert.get()), 0)
      || !X509_gmtime_adj(X509_getm_notAfter(cert.get()), validity_seconds))
    fail("cannot set validity");
  if (!X509_set_pubkey(cert.get(), key.get()))
    fail("X509_set_pubkey");
  X509_NAME* name = X509_get_subject_name(cert.get());
  if (!X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                                  reinterpret_cast<const unsigned char*>(
                                    common_name.c_str()),
                                  -1, -1, 0)
      || !X509_set_issuer_name(cert.get(), name))
    fail("cannot set the subject name");
  // subjectAltName: the common name plus loopback, so development setups
  // verify by name against localhost and 127.0.0.1 too.
  owned<GENERAL_NAMES> alt{GENERAL_NAMES_new()};
  if (!alt)
    fail("GENERAL_NAMES_new");
  add_alt_name(alt.get(), common_name);
  if (common_name != "localhost")
    add_alt_name(alt.get(), "localhost");
  if (common_name != "127.0.0.1")
    add_alt_name(alt.get(), "127.0.0.1");
  if (X509_add1_ext_i2d(cert.get(), NID_subject_alt_name, alt.get(), 0,
                    X509V3_ADD_DEFAULT)
      != 1)
    fail("cannot add subjectAltName");
  add_ext(cert.get(), NID_basic_constraints, "critical,CA:FALSE");
  add_ext(cert.get(), NID_key_usage, "critical,digitalSignature");
  add_ext(cert.get(), NID_ext_key_usage, "serverAuth,clientAuth");
  add_ext(cert.get(), NID_subject_key_identifier, "hash");
  if (X509_sign(cert.get(), key.get(), EVP_sha256()) <= 0)
    fail("cannot sign the certificate");
  owned<BIO> cert_bio{BIO_new(BIO_s_mem())};
  owned<BIO> key_bio{BIO_new(BIO_s_mem())};
  if (!cert_bio || !key_bio || !PEM_write_bio_X509(cert_bio.get(), cert.get())
      || !PEM_write_bio_PrivateKey(key_bio.get(), key.get(), nullptr, nullptr,
                                   0, nullptr, nullptr))
    fail("cannot write PEM");
  return tls_identity{bio_to_string(cert_bio.get()),
                      bio_to_string(key_bio.get())};
}

tls_identity load_identity(const std::string& cert_file,
                           const std::string& key_file) {
  tls_identity id{read_file(cert_file, "certificate"),
                  read_file(key_file, "key")};
  // Parse both now so a bad file is reported by name at startup rather than
  // as an obscure error on the first TLS accept.
  auto cert = parse_cert(id.cert_pem);
  if (!cert)
    throw std::runtime_error("certificate file " + cert_file
                             + " holds no PEM certificate: " + openssl_error());
  auto bio = bio_of(id.key_pem);
  owned<EVP_PKEY> key{
    PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr)};
  if (!key)
    throw std::runtime_error("key file " + key_file
                             + " holds no PEM private key: " + openssl_error());
  if (X509_check_private_key(cert.get(), key.get()) != 1)
    throw std::runtime_error("key file " + key_file
                             + " does not match certificate file " + cert_file);
  return id;
}

std::string use_client_identity(ssl_st* ssl, const std::string& cert_pem,
                                const std::string& key_pem) {
  auto cert = parse_cert(cert_pem);
  if (!cert)
    return "the client certificate is not a PEM certificate: " + openssl_error();
  auto bio = bio_of(key_pem);
  owned<EVP_PKEY> key{PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr)};
  if (!key)
    return "the client key is not a PEM private key: " + openssl_error();
  if (X509_check_private_key(cert.get(), key.get()) != 1) {
    ERR_clear_error();
    return "the client key does not match the client certificate";
  }
  // SSL_use_* take their own references.
  if (SSL_use_certificate(ssl, cert.get()) != 1 || SSL_use_PrivateKey(ssl, key.get()) != 1)
    return "cannot use the client certificate: " + openssl_error();
  return {};
}

std::string peer_certificate_pem(ssl_st* ssl, size_t pem_bytes_max) {
  owned<X509> cert{SSL_get1_peer_certificate(ssl)};
  if (!cert)
    return {};
  owned<BIO> bio{BIO_new(BIO_s_mem())};
  if (!bio || !PEM_write_bio_X509(bio.get(), cert.get())) {
    ERR_clear_error();
    return {};
  }
  auto pem = bio_to_string(bio.get());
  return pem.size() <= pem_bytes_max ? pem : std::string{};
}

std::string fingerprint_sha256(const std::string& cert_pem) {
  auto cert = parse_cert(cert_pem);
  if (!cert)
    fail("fingerprint_sha256: not a PEM certificate");
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  // X509_digest hashes the DER encoding, the same bytes the TLS client pins.
  if (!X509_digest(cert.get(), EVP_sha256(), md, &len))
    fail("X509_digest");
  return std::string(reinterpret_cast<const char*>(md), len);
}

} // namespace drtp::net
