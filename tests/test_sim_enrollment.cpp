// Enrollment, the mutual-TLS side, in the simulator: an agent logs in by a
// client certificate from the control plane's CA (no secret), a certificate
// of another service is refused, a revoked serial drops the tunnel at the
// reconfigure, the POP drops a tunnel at its certificate's notAfter and
// refuses the agent afterwards, and a renewal (agent_set_identity) before
// expiry moves the agent to the new certificate without losing a session.
// Virtual time (the sim epoch, 2026-01-01) decides validity.

#include <gtest/gtest.h>

#include <cstdio>
#include <string>
#include <vector>

#include "actors/agent.hpp"
#include "actors/pop_server.hpp"
#include "caf/all.hpp"
#include "net/seam/crypto.hpp"
#include "net/seam/host_clock.hpp"
#include "sim/apps.hpp"
#include "sim/rig.hpp"

using namespace drtp;

namespace {

constexpr uint16_t tunnel_port = 7000;
constexpr uint16_t public_port = 8000;
constexpr uint16_t service_port = 5432;
constexpr int64_t epoch_s = net::host_clock::sim_epoch_unix_ms / 1000;

/// Until the crypto does X.509 (net/openssl_crypto), a stand-in with the
/// same contract: text "certificates" the simulator carries as it would
/// PEM (it trusts possession), checked here by issuer, time and fields.
/// Everything else goes to the real crypto.
class stand_in_x509 final : public net::crypto {
public:
  explicit stand_in_x509(std::shared_ptr<net::crypto> real) : real_(std::move(real)) {}
  std::string hmac_sha256(const std::string& k, const std::string& m) override {
    return real_->hmac_sha256(k, m);
  }
  net::login_key derive_login_key(const std::string& s, const std::string& salt) override {
    return real_->derive_login_key(s, salt);
  }
  std::string sign(const std::string& seed, const std::string& m) override {
    return real_->sign(seed, m);
  }
  bool verify(const std::string& k, const std::string& m, const std::string& sig) override {
    return real_->verify(k, m, sig);
  }
  std::string x25519_public(const std::string& k) override { return real_->x25519_public(k); }
  std::string x25519_shared(const std::string& k, const std::string& p) override {
    return real_->x25519_shared(k, p);
  }
  std::string private_key_pem(const std::string& seed) override {
    return "STAND-IN KEY " + std::to_string(seed.size()) + "\n";
  }
  std::string make_csr(const std::string&, const std::string& subject) override {
    return "STAND-IN CSR\n" + subject + "\n";
  }
  std::string make_ca_certificate(const std::string&, const std::string& name, int64_t,
                                  int64_t) override {
    return "STAND-IN CA\n" + name + "\n";
  }
  std::string issue_certificate(const std::string&, const std::string& ca_cert_pem,
                                const std::string&, const std::string& subject,
                                const std::string& serial, int64_t nb, int64_t na) override {
    return "STAND-IN CERT\n" + subject + "\n" + serial + "\n" + std::to_string(nb) + "\n"
           + std::to_string(na) + "\n" + ca_cert_pem;
  }
  certificate_info verify_certificate(const std::string& cert_pem,
                                      const std::string& ca_cert_pem, int64_t now_s) override {
    certificate_info out;
    std::vector<std::string> f;
    size_t at = 0;
    for (int i = 0; i < 5; ++i) {
      auto nl = cert_pem.find('\n', at);
      if (nl == std::string::npos)
        break;
      f.push_back(cert_pem.substr(at, nl - at));
      at = nl + 1;
    }
    if (f.size() != 5 || f[0] != "STAND-IN CERT") {
      out.error = "malformed";
      return out;
    }
    out.subject = f[1];
    out.serial = f[2];
    out.not_before_s = std::stoll(f[3]);
    out.not_after_s = std::stoll(f[4]);
    if (cert_pem.substr(at) != ca_cert_pem)
      out.error = "not signed by the CA";
    else if (now_s < out.not_before_s)
      out.error = "not yet valid";
    else if (now_s > out.not_after_s)
      out.error = "expired";
    return out;
  }

private:
  std::shared_ptr<net::crypto> real_;
};

/// A certificate and its key, as the control plane hands them out.
struct issued {
  std::string cert_pem;
  std::string key_pem;
  std::string serial;
  std::string seed; // the key's: signs an in-band renewal
};

struct enrollment : sim::rig {
  explicit enrollment(uint64_t seed) : rig(seed) {
    auto& w = d.net();
    sim::link_params link;
    link.latency_us = 2000;
    link.jitter_us = 500;
    w.set_default_link(link);
    for (auto h : {"pop", "agent", "visitors"})
      w.add_host(h);
    sim::spawn_app_service(d.sys(), w.io("agent"), service_port, 0x5a);
    ca_seed = std::string(net::seed_bytes, '\x11');
    ca_pem = crypto->make_ca_certificate(ca_seed, "drtp test CA", epoch_s - 3600,
                                         365 * 86400);
    if (ca_pem.empty()) {
      std::printf("the crypto does no X.509 yet: a stand-in checks certificates\n");
      crypto = std::make_shared<stand_in_x509>(crypto);
      ca_pem = crypto->make_ca_certificate(ca_seed, "drtp test CA", epoch_s - 3600,
                                           365 * 86400);
    }
  }

  /// A certificate for `subject`, valid [epoch + from_s, epoch + to_s].
  issued issue(const std::string& subject, const std::string& serial, int64_t from_s,
               int64_t to_s, char key_byte) {
    std::string seed(net::seed_bytes, key_byte);
    auto csr = crypto->make_csr(seed, subject);
    issued out;
    out.cert_pem = crypto->issue_certificate(ca_seed, ca_pem, csr, subject, serial,
                                             epoch_s + from_s, epoch_s + to_s);
    out.key_pem = crypto->private_key_pem(seed);
    out.serial = serial;
    out.seed = seed;
    return out;
  }

  service_config echo_service() const {
    // The secret's key is still configured (agents without certificates);
    // this agent never uses it.
    return service("echo", "the secret", public_port);
  }

  void start_pop() {
    pop_params pp;
    pp.e = make_env("pop", 1);
    pp.tunnel_port = tunnel_port;
    pp.services.push_back(echo_service());
    pp.client_ca_pem = ca_pem;
    pop = spawn_pop_server(d.sys(), std::move(pp));
    d.net().register_actor("pop", pop);
  }

  void start_agent(const issued& id) {
    auto ap = agent("agent", "echo", "unused", {pop_endpoint{"pop", "pop", tunnel_port, "eu"}},
                    service_port, 100);
    ap.signing_key.clear(); // no secret at all: the certificate logs in
    ap.client_cert_pem = id.cert_pem;
    ap.client_key_pem = id.key_pem;
    ap.tunnels_target = 1;
    ap.reject_set_aside_ms = 5000;
    agent_actor = spawn_agent(d.sys(), std::move(ap));
    d.net().register_actor("agent", agent_actor);
  }

  bool echo_through(uint64_t seed, uint64_t bytes = 20000) {
    auto r = visit("visitors", "pop", public_port, bytes, seed, 0x5a);
    d.run_until([&] { return r->done; }, 10'000'000);
    return r->done && r->ok;
  }

  /// The first trace line containing `needle`, or "".
  std::string line_with(const std::string& needle) const {
    for (auto& l : d.trace_lines())
      if (l.find(needle) != std::string::npos)
        return l;
    return {};
  }

  std::string ca_seed;
  std::string ca_pem;
  caf::actor pop;
  caf::actor agent_actor;
};

bool x509_available(enrollment& s) {
  return !s.ca_pem.empty();
}

} // namespace

TEST(sim_enrollment, an_agent_logs_in_by_its_certificate_and_visitors_pass) {
  enrollment s{1};
  if (!x509_available(s))
    GTEST_SKIP();
  auto id = s.issue("service/echo", "0a01", -60, 86400, '\x21');
  ASSERT_FALSE(id.cert_pem.empty());
  s.start_pop();
  s.start_agent(id);
  ASSERT_TRUE(s.d.run_until([&] { return s.trace_has("service 'echo' now has 1 tunnel(s)"); },
                            3'000'000));
  EXPECT_TRUE(s.trace_has("certificate login of agent 'joe' for service 'echo'"));
  EXPECT_TRUE(s.echo_through(1));
  EXPECT_TRUE(s.echo_through(2, 200000));
}

TEST(sim_enrollment, a_certificate_of_another_service_is_refused_with_one_line) {
  enrollment s{2};
  if (!x509_available(s))
    GTEST_SKIP();
  auto id = s.issue("service/other", "0a02", -60, 86400, '\x22');
  s.start_pop();
  s.start_agent(id);
  s.d.run_for(2'000'000);
  auto line = s.line_with("rejected service 'echo': certificate refused");
  std::printf("at the agent: %s\n", line.c_str());
  EXPECT_NE(line.find("the certificate is for 'service/other', not 'service/echo'"),
            std::string::npos)
    << line;
  EXPECT_TRUE(s.trace_has("denied certificate login of agent 'joe' for service 'echo'"));
  EXPECT_FALSE(s.trace_has("now has 1 tunnel(s)"));
}

TEST(sim_enrollment, a_revoked_serial_drops_the_tunnel_at_the_reconfigure) {
  enrollment s{3};
  if (!x509_available(s))
    GTEST_SKIP();
  auto id = s.issue("service/echo", "0a03", -60, 86400, '\x23');
  s.start_pop();
  s.start_agent(id);
  ASSERT_TRUE(s.d.run_until([&] { return s.trace_has("service 'echo' now has 1 tunnel(s)"); },
                            3'000'000));
  ASSERT_TRUE(s.echo_through(3));
  pop_reconfigure rc;
  rc.services.push_back(s.echo_service());
  rc.services[0].revoked_serials = {"0A03"}; // any case
  rc.client_ca_pem = s.ca_pem;
  auto sent_us = s.d.now_us();
  caf::anon_send(s.pop, std::move(rc));
  ASSERT_TRUE(s.d.run_until([&] { return s.trace_has("closed the tunnel of agent"); },
                            1'000'000));
  auto closed_us = s.d.now_us() - sent_us;
  ASSERT_TRUE(s.d.run_until([&] { return s.trace_has("0 of 1 up"); }, 1'000'000));
  std::printf("revocation: the POP closed the tunnel %llu us after the reconfigure arrived;"
              " the agent saw it gone %llu us after\n",
              static_cast<unsigned long long>(closed_us),
              static_cast<unsigned long long>(s.d.now_us() - sent_us));
  EXPECT_TRUE(s.trace_has("for service 'echo': certificate revoked"));
  // And refused afterwards.
  ASSERT_TRUE(s.d.run_until(
    [&] { return s.trace_has("rejected service 'echo': certificate refused: certificate revoked"); },
    5'000'000));
  std::printf("at the agent: %s\n", s.line_with("rejected service 'echo': certificate refused").c_str());
  EXPECT_FALSE(s.echo_through(4, 1000));
}

TEST(sim_enrollment, the_pop_drops_a_tunnel_at_expiry_and_refuses_it_afterwards) {
  enrollment s{4};
  if (!x509_available(s))
    GTEST_SKIP();
  auto id = s.issue("service/echo", "0a04", -60, 30, '\x24');
  s.start_pop();
  s.start_agent(id);
  ASSERT_TRUE(s.d.run_until([&] { return s.trace_has("service 'echo' now has 1 tunnel(s)"); },
                            3'000'000));
  ASSERT_TRUE(s.d.run_until([&] { return s.trace_has("expired: tunnel closed"); },
                            40'000'000));
  auto expired_at_us = s.d.now_us();
  std::printf("tunnel closed at %.3f s of virtual time; notAfter is 30 s\n",
              static_cast<double>(expired_at_us) / 1e6);
  EXPECT_GE(expired_at_us, 30'000'000u);
  ASSERT_TRUE(s.d.run_until(
    [&] { return s.trace_has("rejected service 'echo': certificate refused"); }, 10'000'000));
  std::printf("at the agent: %s\n",
              s.line_with("rejected service 'echo': certificate refused").c_str());
  EXPECT_FALSE(s.echo_through(5, 1000));
}

TEST(sim_enrollment, a_renewal_before_expiry_moves_the_open_tunnel_in_band_losing_nothing) {
  enrollment s{5};
  if (!x509_available(s))
    GTEST_SKIP();
  auto old_id = s.issue("service/echo", "0b01", -60, 30, '\x25');
  auto new_id = s.issue("service/echo", "0b02", 15, 3600, '\x26');
  s.start_pop();
  s.start_agent(old_id);
  ASSERT_TRUE(s.d.run_until([&] { return s.trace_has("service 'echo' now has 1 tunnel(s)"); },
                            3'000'000));
  s.d.run_until([&] { return s.d.now_us() >= 20'000'000; }, 20'000'000);
  // A session that spans the renewal and the old certificate's notAfter.
  auto spanning = s.visit("visitors", "pop", public_port, 4000, 6, 0x5a,
                          sim::workload_kind::request_response, 200);
  s.d.run_for(50'000);
  caf::anon_send(s.agent_actor, agent_set_identity{new_id.cert_pem, new_id.key_pem, new_id.seed});
  ASSERT_TRUE(s.d.run_until([&] { return s.trace_has("renewed certificate of agent"); },
                            2'000'000));
  std::printf("at the POP: %s\n", s.line_with("renewed certificate of agent").c_str());
  EXPECT_TRUE(s.trace_has("(serial b02"));
  // Past the old notAfter (30 s): the same tunnel carries on.
  s.d.run_until([&] { return s.d.now_us() >= 40'000'000; }, 20'000'000);
  ASSERT_TRUE(s.d.run_until([&] { return spanning->done; }, 20'000'000));
  EXPECT_TRUE(spanning->ok) << spanning->error;
  EXPECT_FALSE(spanning->corrupt);
  EXPECT_FALSE(s.trace_has("expired: tunnel closed"));
  EXPECT_EQ(s.trace_count("now has 1 tunnel(s)"), 1u);
  EXPECT_TRUE(s.echo_through(7));
  EXPECT_FALSE(s.trace_has("certificate refused"));
}

TEST(sim_enrollment, a_renewal_signed_by_another_key_is_refused_and_the_old_one_holds) {
  enrollment s{6};
  if (!x509_available(s))
    GTEST_SKIP();
  auto old_id = s.issue("service/echo", "0c01", -60, 30, '\x27');
  auto new_id = s.issue("service/echo", "0c02", 0, 3600, '\x28');
  s.start_pop();
  s.start_agent(old_id);
  ASSERT_TRUE(s.d.run_until([&] { return s.trace_has("service 'echo' now has 1 tunnel(s)"); },
                            3'000'000));
  // The certificate is good, the key that signs is not its key.
  caf::anon_send(s.agent_actor,
                 agent_set_identity{new_id.cert_pem, new_id.key_pem, old_id.seed});
  ASSERT_TRUE(s.d.run_until([&] { return s.trace_has("refused renewed certificate of agent"); },
                            2'000'000));
  std::printf("at the POP: %s\n", s.line_with("refused renewed certificate").c_str());
  EXPECT_TRUE(s.echo_through(8));
  // The old certificate's notAfter still ends that tunnel.
  ASSERT_TRUE(s.d.run_until([&] { return s.trace_has("expired: tunnel closed"); },
                            40'000'000));
}
