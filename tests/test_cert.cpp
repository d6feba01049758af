// The X.509 part of the crypto seam (net/openssl_crypto.cpp): the CA, the
// CSR, the issued certificate and its check at a given time, and that the
// key PEM and certificate make a TLS 1.3 client identity.

#include <gtest/gtest.h>

#include <cstdint>
#include <ctime>
#include <memory>
#include <string>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "net/openssl_crypto.hpp"

namespace {

using drtp::net::crypto;

constexpr int64_t t0_s = 1800000000; // 2027-01-15
constexpr int64_t ca_lifetime_s = int64_t{10} * 365 * 86400;
constexpr int64_t cert_lifetime_s = 86400;

std::string seed(char c) {
  return std::string(drtp::net::seed_bytes, c);
}

struct cert_test : ::testing::Test {
  std::shared_ptr<crypto> c = drtp::net::make_openssl_crypto();
  std::string ca_seed = seed('\x01');
  std::string ca =
    c->make_ca_certificate(ca_seed, "drtp-control CA", t0_s - 3600, ca_lifetime_s);
  std::string agent_seed = seed('\x02');
  std::string csr = c->make_csr(agent_seed, "ignored-by-the-ca");

  std::string issue(const std::string& subject = "service/joes-pg",
                    const std::string& serial = "1a2b3c") {
    return c->issue_certificate(ca_seed, ca, csr, subject, serial, t0_s - 60,
                                t0_s + cert_lifetime_s);
  }
};

TEST_F(cert_test, ca_csr_issue_verify) {
  ASSERT_FALSE(ca.empty());
  ASSERT_FALSE(csr.empty());
  auto req = c->read_csr(csr);
  EXPECT_EQ(req.error, "");
  EXPECT_EQ(req.subject, "ignored-by-the-ca");
  auto agent_pub = drtp::net::derive_public_key("x", "y"); // not the agent's
  EXPECT_EQ(req.public_key.size(), drtp::net::public_key_bytes);
  EXPECT_NE(req.public_key, agent_pub);

  auto cert = issue();
  ASSERT_FALSE(cert.empty());
  auto info = c->verify_certificate(cert, ca, t0_s);
  EXPECT_EQ(info.error, "");
  EXPECT_EQ(info.subject, "service/joes-pg");
  EXPECT_EQ(info.serial, "1a2b3c");
  EXPECT_EQ(info.public_key, req.public_key);
  EXPECT_EQ(info.not_before_s, t0_s - 60);
  EXPECT_EQ(info.not_after_s, t0_s + cert_lifetime_s);
  // The signature by the certificate's key checks with its public key:
  // what DRTP-Cert sign-in does.
  auto sig = c->sign(agent_seed, "message");
  EXPECT_TRUE(c->verify(info.public_key, "message", sig));
  std::printf("CA %zu bytes, CSR %zu bytes, certificate %zu bytes\n", ca.size(),
              csr.size(), cert.size());
}

TEST_F(cert_test, validity_in_the_callers_time) {
  auto cert = issue();
  EXPECT_EQ(c->verify_certificate(cert, ca, t0_s - 61).error, "not yet valid");
  EXPECT_EQ(c->verify_certificate(cert, ca, t0_s - 60).error, "");
  // OpenSSL counts notAfter itself as expired.
  EXPECT_EQ(c->verify_certificate(cert, ca, t0_s + cert_lifetime_s - 1).error, "");
  auto late = c->verify_certificate(cert, ca, t0_s + cert_lifetime_s + 1);
  EXPECT_EQ(late.error, "expired");
  // The fields are there even when it is refused (for the audit line).
  EXPECT_EQ(late.subject, "service/joes-pg");
  // A certificate inside its own validity but after the CA's.
  auto long_cert = c->issue_certificate(ca_seed, ca, csr, "principal/ann", "ff", t0_s,
                                        t0_s + 2 * ca_lifetime_s);
  ASSERT_FALSE(long_cert.empty());
  EXPECT_EQ(c->verify_certificate(long_cert, ca, t0_s - 3600 + ca_lifetime_s + 10).error,
            "expired");
}

TEST_F(cert_test, serials_are_canonical) {
  auto cert = c->issue_certificate(ca_seed, ca, csr, "service/a", "00ABcd", t0_s,
                                   t0_s + 10);
  ASSERT_FALSE(cert.empty());
  EXPECT_EQ(c->verify_certificate(cert, ca, t0_s).serial, "abcd");
  EXPECT_EQ(drtp::net::canonical_serial("00ABcd"), "abcd");
  EXPECT_EQ(drtp::net::canonical_serial("000"), "0");
  EXPECT_EQ(drtp::net::canonical_serial("xyz"), "");
  EXPECT_EQ(drtp::net::canonical_serial(std::string(41, 'a')), "");
  EXPECT_EQ(c->issue_certificate(ca_seed, ca, csr, "service/a", "not hex", t0_s, t0_s + 10),
            "");
  // A long name: "service/" + 63 characters is over X.509's usual 64.
  auto long_name = "service/" + std::string(63, 'n');
  auto long_cert = issue(long_name);
  ASSERT_FALSE(long_cert.empty());
  EXPECT_EQ(c->verify_certificate(long_cert, ca, t0_s).subject, long_name);
}

TEST_F(cert_test, wrong_ca) {
  auto cert = issue();
  auto other_ca = c->make_ca_certificate(seed('\x03'), "drtp-control CA", t0_s, ca_lifetime_s);
  ASSERT_FALSE(other_ca.empty());
  auto info = c->verify_certificate(cert, other_ca, t0_s);
  EXPECT_EQ(info.error, "not signed by the CA");
  // The CA's seed must be the CA certificate's.
  EXPECT_EQ(c->issue_certificate(seed('\x03'), ca, csr, "service/a", "1", t0_s, t0_s + 10),
            "");
  // The CA itself is no client certificate.
  EXPECT_NE(c->verify_certificate(ca, ca, t0_s).error, "");
}

/// `pem` with one byte of its DER changed at the first occurrence of `what`.
std::string tamper(const std::string& pem, const std::string& what, char to) {
  BIO* in = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  X509* x = PEM_read_bio_X509(in, nullptr, nullptr, nullptr);
  BIO_free(in);
  if (x == nullptr)
    return {};
  unsigned char* der = nullptr;
  int n = i2d_X509(x, &der);
  X509_free(x);
  std::string bytes(reinterpret_cast<char*>(der), static_cast<size_t>(n));
  OPENSSL_free(der);
  auto at = bytes.find(what);
  if (at == std::string::npos)
    return {};
  bytes[at] = to;
  auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  X509* y = d2i_X509(nullptr, &p, static_cast<long>(bytes.size()));
  if (y == nullptr)
    return {};
  BIO* out = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(out, y);
  X509_free(y);
  char* data = nullptr;
  long len = BIO_get_mem_data(out, &data);
  std::string text(data, static_cast<size_t>(len));
  BIO_free(out);
  return text;
}

TEST_F(cert_test, tampered_certificate) {
  auto cert = issue("service/joes-pg");
  auto bad = tamper(cert, "joes-pg", 'k');
  ASSERT_FALSE(bad.empty());
  auto info = c->verify_certificate(bad, ca, t0_s);
  EXPECT_EQ(info.subject, "service/koes-pg");
  EXPECT_EQ(info.error, "not signed by the CA");
}

TEST_F(cert_test, csr_with_a_wrong_signature) {
  // Build a CSR whose subject changed after it was signed.
  auto other = c->make_csr(agent_seed, "principal/aaa");
  BIO* in = BIO_new_mem_buf(other.data(), static_cast<int>(other.size()));
  X509_REQ* r = PEM_read_bio_X509_REQ(in, nullptr, nullptr, nullptr);
  BIO_free(in);
  ASSERT_NE(r, nullptr);
  unsigned char* der = nullptr;
  int n = i2d_X509_REQ(r, &der);
  X509_REQ_free(r);
  std::string bytes(reinterpret_cast<char*>(der), static_cast<size_t>(n));
  OPENSSL_free(der);
  bytes[bytes.find("aaa")] = 'b';
  auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  X509_REQ* bad = d2i_X509_REQ(nullptr, &p, static_cast<long>(bytes.size()));
  ASSERT_NE(bad, nullptr);
  BIO* out = BIO_new(BIO_s_mem());
  PEM_write_bio_X509_REQ(out, bad);
  X509_REQ_free(bad);
  char* data = nullptr;
  long len = BIO_get_mem_data(out, &data);
  std::string bad_pem(data, static_cast<size_t>(len));
  BIO_free(out);

  auto info = c->read_csr(bad_pem);
  EXPECT_NE(info.error, "");
  EXPECT_TRUE(info.public_key.empty());
  EXPECT_EQ(c->issue_certificate(ca_seed, ca, bad_pem, "service/a", "1", t0_s, t0_s + 10),
            "");
}

TEST_F(cert_test, garbage) {
  for (const std::string& g :
       {std::string{}, std::string{"garbage"}, std::string(20000, 'A'),
        std::string{"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"},
        std::string{"-----BEGIN CERTIFICATE REQUEST-----\n!!\n-----END CERTIFICATE "
                    "REQUEST-----\n"},
        csr.substr(0, csr.size() / 2)}) {
    EXPECT_NE(c->verify_certificate(g, ca, t0_s).error, "");
    EXPECT_NE(c->read_csr(g).error, "");
    EXPECT_EQ(c->issue_certificate(ca_seed, ca, g, "service/a", "1", t0_s, t0_s + 10), "");
    EXPECT_NE(c->verify_certificate(issue(), g, t0_s).error, "");
  }
  // A CSR where a certificate belongs, and the reverse.
  EXPECT_EQ(c->verify_certificate(csr, ca, t0_s).error, "malformed certificate");
  EXPECT_NE(c->read_csr(ca).error, "");
  // Bad arguments refuse, never throw.
  EXPECT_EQ(c->make_csr("short", "service/a"), "");
  EXPECT_EQ(c->make_csr(agent_seed, std::string("a\nb")), "");
  EXPECT_EQ(c->make_csr(agent_seed, std::string(300, 'a')), "");
  EXPECT_EQ(c->private_key_pem("short"), "");
  EXPECT_EQ(c->make_ca_certificate(ca_seed, "ca", t0_s, 0), "");
  EXPECT_EQ(c->issue_certificate(ca_seed, ca, csr, "service/a", "1", t0_s, t0_s - 1), "");
  EXPECT_EQ(c->issue_certificate(ca_seed, ca, csr, "", "1", t0_s, t0_s + 1), "");
  ERR_clear_error();
}

// -- TLS 1.3 with an Ed25519 client certificate, over memory BIOs --

struct ssl_free {
  void operator()(SSL* s) const { SSL_free(s); }
};
struct ssl_ctx_free {
  void operator()(SSL_CTX* c) const { SSL_CTX_free(c); }
};

bool use_identity(SSL_CTX* ctx, const std::string& cert_pem, const std::string& key_pem) {
  BIO* cb = BIO_new_mem_buf(cert_pem.data(), static_cast<int>(cert_pem.size()));
  X509* x = PEM_read_bio_X509(cb, nullptr, nullptr, nullptr);
  BIO_free(cb);
  BIO* kb = BIO_new_mem_buf(key_pem.data(), static_cast<int>(key_pem.size()));
  EVP_PKEY* k = PEM_read_bio_PrivateKey(kb, nullptr, nullptr, nullptr);
  BIO_free(kb);
  bool ok = x && k && SSL_CTX_use_certificate(ctx, x) == 1
            && SSL_CTX_use_PrivateKey(ctx, k) == 1 && SSL_CTX_check_private_key(ctx) == 1;
  X509_free(x);
  EVP_PKEY_free(k);
  return ok;
}

TEST_F(cert_test, tls13_client_presents_an_ed25519_certificate) {
  // Real time here: OpenSSL's handshake checks against the host clock.
  auto now = static_cast<int64_t>(std::time(nullptr));
  auto real_ca = c->make_ca_certificate(ca_seed, "drtp-control CA", now - 60, ca_lifetime_s);
  auto client_cert = c->issue_certificate(ca_seed, real_ca, csr, "service/joes-pg", "42",
                                          now - 60, now + cert_lifetime_s);
  auto server_seed = seed('\x05');
  auto server_cert = c->issue_certificate(ca_seed, real_ca,
                                          c->make_csr(server_seed, "pop"), "pop", "43",
                                          now - 60, now + cert_lifetime_s);
  auto client_key = c->private_key_pem(agent_seed);
  ASSERT_NE(client_key.find("BEGIN PRIVATE KEY"), std::string::npos);

  std::unique_ptr<SSL_CTX, ssl_ctx_free> sctx{SSL_CTX_new(TLS_server_method())};
  std::unique_ptr<SSL_CTX, ssl_ctx_free> cctx{SSL_CTX_new(TLS_client_method())};
  ASSERT_TRUE(sctx && cctx);
  SSL_CTX_set_min_proto_version(sctx.get(), TLS1_3_VERSION);
  SSL_CTX_set_min_proto_version(cctx.get(), TLS1_3_VERSION);
  ASSERT_TRUE(use_identity(sctx.get(), server_cert, c->private_key_pem(server_seed)));
  ASSERT_TRUE(use_identity(cctx.get(), client_cert, client_key));
  // The server asks for and checks the client's certificate against the CA.
  BIO* cab = BIO_new_mem_buf(real_ca.data(), static_cast<int>(real_ca.size()));
  X509* cax = PEM_read_bio_X509(cab, nullptr, nullptr, nullptr);
  BIO_free(cab);
  ASSERT_NE(cax, nullptr);
  X509_STORE_add_cert(SSL_CTX_get_cert_store(sctx.get()), cax);
  X509_free(cax);
  SSL_CTX_set_verify(sctx.get(), SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  SSL_CTX_set_verify(cctx.get(), SSL_VERIFY_NONE, nullptr);

  std::unique_ptr<SSL, ssl_free> server{SSL_new(sctx.get())};
  std::unique_ptr<SSL, ssl_free> client{SSL_new(cctx.get())};
  BIO* a = nullptr;
  BIO* b = nullptr;
  ASSERT_EQ(BIO_new_bio_pair(&a, 0, &b, 0), 1);
  SSL_set_bio(client.get(), a, a);
  SSL_set_bio(server.get(), b, b);
  SSL_set_connect_state(client.get());
  SSL_set_accept_state(server.get());
  bool client_done = false;
  bool server_done = false;
  for (int i = 0; i < 20 && !(client_done && server_done); ++i) {
    if (!client_done) {
      int r = SSL_do_handshake(client.get());
      client_done = r == 1;
      if (r != 1)
        ASSERT_EQ(SSL_get_error(client.get(), r), SSL_ERROR_WANT_READ);
    }
    if (!server_done) {
      int r = SSL_do_handshake(server.get());
      server_done = r == 1;
      if (r != 1)
        ASSERT_EQ(SSL_get_error(server.get(), r), SSL_ERROR_WANT_READ)
          << ERR_error_string(ERR_get_error(), nullptr);
    }
  }
  ASSERT_TRUE(client_done && server_done);
  // TLS 1.3 servers check the client certificate after the handshake
  // "finishes" on the client: read once to let the server's verdict arrive.
  char byte = 0;
  SSL_write(client.get(), "x", 1);
  ASSERT_EQ(SSL_read(server.get(), &byte, 1), 1);
  EXPECT_STREQ(SSL_get_version(server.get()), "TLSv1.3");
  EXPECT_EQ(SSL_get_verify_result(server.get()), X509_V_OK);
  X509* peer = SSL_get1_peer_certificate(server.get());
  ASSERT_NE(peer, nullptr);
  BIO* pb = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(pb, peer);
  X509_free(peer);
  char* data = nullptr;
  long len = BIO_get_mem_data(pb, &data);
  std::string peer_pem(data, static_cast<size_t>(len));
  BIO_free(pb);
  auto info = c->verify_certificate(peer_pem, real_ca, now);
  EXPECT_EQ(info.error, "");
  EXPECT_EQ(info.subject, "service/joes-pg");
  EXPECT_EQ(info.serial, "42");
}

} // namespace
