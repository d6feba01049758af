#include "control/enroller.hpp"

#include <algorithm>
#include <chrono>

#include <nlohmann/json.hpp>

#include "actors/http_client.hpp"
#include "actors/messages.hpp"
#include "actors/metrics_endpoint.hpp"
#include "caf/all.hpp"
#include "control/auth.hpp"
#include "control/resource.hpp"
#include "net/seam/assert.hpp"
#include "net/seam/crypto.hpp"
#include "net/seam/trace.hpp"
#include "net/wire/hex.hpp"

namespace drtp::control {

namespace {

using json = nlohmann::json;
using renew_atom = caf::atom_constant<caf::atom("enrenew")>;
using expiry_atom = caf::atom_constant<caf::atom("enexpiry")>;

/// What identity.json holds. The seed is the private key: it stays in this
/// process and that 0600 file.
struct identity {
  std::string seed; // net::seed_bytes
  std::string cert_pem;
  std::string ca_pem;
  int64_t received_s = 0; // when it arrived: renewal counts from here
  net::crypto::certificate_info info;
};

std::string answer_message(const http::response& r) {
  auto j = json::parse(r.body, nullptr, false);
  if (j.is_object() && j.contains("message") && j["message"].is_string())
    return net::escape_for_log(j["message"].get<std::string>().substr(0, 200));
  return net::escape_for_log(r.body.substr(0, 120));
}

class enroller final : public caf::event_based_actor {
public:
  enroller(caf::actor_config& cfg, enroller_params p)
    : caf::event_based_actor(cfg), p_(std::move(p)) {
    DRTP_ASSERT(p_.follower.http != nullptr, "the enroller signs in through an HTTP client");
    DRTP_ASSERT(p_.kind == kind_service || p_.kind == kind_principal,
                "only services and principals enroll");
    DRTP_ASSERT(p_.retry_initial_ms > 0 && p_.retry_max_ms >= p_.retry_initial_ms,
                "the enroller's backoff is positive and capped");
    subject_ = p_.kind + "/" + p_.name;
    secret_seed_ = p_.follower.agent.signing_key;
  }

  const char* name() const override {
    return "drtp.enroller";
  }

  caf::behavior make_behavior() override {
    backoff_ms_ = p_.retry_initial_ms;
    std::string why;
    identity saved;
    if (!p_.saved.empty() && read_saved(saved, why)) {
      adopt(std::move(saved), false);
      start_follower();
    } else if (!secret_seed_.empty()) {
      if (!p_.saved.empty())
        say("the saved certificate is not usable (" + why + "): enrolling by the secret");
      enroll_by_secret();
    } else {
      // The binary checks for a saved file or a secret before it starts.
      fatal("the saved certificate of " + subject_ + " is not usable (" + why
            + ") and there is no secret to enroll with (--secret-file or $DRTP_SECRET)");
    }
    p_.saved.clear();
    return {
      [this](renew_atom, uint64_t gen) {
        if (gen == timer_gen_ && !busy_)
          renew();
      },
      [this](expiry_atom, uint64_t gen) {
        if (gen == expiry_gen_)
          on_expired();
      },
      // The metrics endpoint's questions go to the follower (and its agent).
      [this](health_atom x) -> caf::result<health_report> {
        if (!follower_)
          return health_report{false, "enrolling"};
        auto rp = make_response_promise<health_report>();
        request(follower_, caf::infinite, x)
          .then([rp](health_report h) mutable { rp.deliver(std::move(h)); },
                [rp](caf::error&) mutable { rp.deliver(health_report{false, "restarting"}); });
        return rp;
      },
      [this](sessions_atom x) -> caf::result<std::string> {
        if (!follower_)
          return std::string("{}");
        auto rp = make_response_promise<std::string>();
        request(follower_, caf::infinite, x)
          .then([rp](std::string j) mutable { rp.deliver(std::move(j)); },
                [rp](caf::error&) mutable { rp.deliver(std::string("{}")); });
        return rp;
      },
      [this](follower_agent_atom) -> caf::result<caf::actor> {
        if (!follower_)
          return caf::actor{};
        auto rp = make_response_promise<caf::actor>();
        request(follower_, caf::infinite, follower_agent_atom::value)
          .then([rp](caf::actor a) mutable { rp.deliver(std::move(a)); },
                [rp](caf::error&) mutable { rp.deliver(caf::actor{}); });
        return rp;
      },
    };
  }

private:
  // -- the saved identity -------------------------------------------------------------

  int64_t now_s() {
    return p_.e.clock->unix_ms(clock()) / 1000;
  }

  /// Whether `id` is a certificate for us, signed by its CA, valid now,
  /// of the key `id.seed` holds; `why` says what is not.
  bool check(identity& id, std::string& why) {
    if (id.seed.size() != net::seed_bytes) {
      why = "no key";
      return false;
    }
    id.info = p_.e.crypto->verify_certificate(id.cert_pem, id.ca_pem, now_s());
    if (!id.info.error.empty()) {
      why = id.info.error;
      return false;
    }
    if (id.info.subject != subject_) {
      why = "it is for '" + net::escape_for_log(id.info.subject) + "', not '" + subject_ + "'";
      return false;
    }
    static const std::string probe = "drtp-identity-probe";
    if (!p_.e.crypto->verify(id.info.public_key, probe, p_.e.crypto->sign(id.seed, probe))) {
      why = "the saved key is not the certificate's";
      return false;
    }
    return true;
  }

  bool read_saved(identity& id, std::string& why) {
    auto j = json::parse(p_.saved, nullptr, false);
    if (!j.is_object() || !j.contains("seed") || !j["seed"].is_string()
        || !j.contains("certificate") || !j["certificate"].is_string() || !j.contains("ca")
        || !j["ca"].is_string()) {
      why = "not an identity file";
      return false;
    }
    if (!net::from_hex(j["seed"].get<std::string>(), id.seed)) {
      why = "a malformed key";
      return false;
    }
    id.cert_pem = j["certificate"].get<std::string>();
    id.ca_pem = j["ca"].get<std::string>();
    id.received_s = j.contains("received") && j["received"].is_number_integer()
                      ? j["received"].get<int64_t>()
                      : 0;
    return check(id, why);
  }

  void save(const identity& id) {
    if (!p_.save)
      return;
    json out;
    out["seed"] = net::to_hex(id.seed);
    out["certificate"] = id.cert_pem;
    out["ca"] = id.ca_pem;
    out["received"] = id.received_s;
    p_.save(out.dump(2) + "\n");
  }

  // -- signing in -----------------------------------------------------------------------

  void sign_in_by_secret() {
    auto crypto = p_.e.crypto;
    auto kind = p_.kind;
    auto name = p_.name;
    auto seed = secret_seed_;
    send(p_.follower.http,
         http_set_authorization{[crypto, kind, name, seed](const std::string& binding) {
           return auth_header(*crypto, kind, name, seed, binding);
         }});
  }

  void sign_in_by_certificate() {
    auto crypto = p_.e.crypto;
    auto kind = p_.kind;
    auto name = p_.name;
    auto seed = id_.seed;
    auto cert = id_.cert_pem;
    send(p_.follower.http,
         http_set_authorization{[crypto, cert, kind, name, seed](const std::string& binding) {
           return cert_auth_header(*crypto, cert, kind, name, seed, binding);
         }});
  }

  // -- requests -------------------------------------------------------------------------

  std::string certificate_target() const {
    return std::string(api_base)
           + (p_.kind == kind_service ? "/drtpconnections/" : "/principals/") + p_.name
           + "/certificate";
  }

  /// POST a CSR for a fresh key; `done` gets the identity (empty cert on
  /// failure), the HTTP status (0: no answer) and one line.
  template <class F>
  void request_certificate(F done) {
    DRTP_ASSERT(!busy_, "one certificate request at a time");
    busy_ = true;
    auto seed = p_.e.rng->bytes(net::seed_bytes);
    auto csr = p_.e.crypto->make_csr(seed, subject_);
    DRTP_ASSERT(!csr.empty(), "a CSR for our own fresh key is made");
    json body;
    body["csr"] = csr;
    request(p_.follower.http, caf::infinite,
            http_fetch{"POST", certificate_target(), {{"Content-Type", "application/json"}},
                       body.dump()})
      .then(
        [this, seed, done](http::response& r) mutable {
          busy_ = false;
          identity id;
          if (r.status != 200) {
            done(id, r.status, answer_message(r));
            return;
          }
          auto j = json::parse(r.body, nullptr, false);
          if (!j.is_object() || !j.contains("certificate") || !j["certificate"].is_string()
              || !j.contains("ca") || !j["ca"].is_string()) {
            done(id, 0, "an answer without a certificate");
            return;
          }
          id.seed = std::move(seed);
          id.cert_pem = j["certificate"].get<std::string>();
          id.ca_pem = j["ca"].get<std::string>();
          id.received_s = now_s();
          std::string why;
          if (!check(id, why)) {
            done(identity{}, 0, "the certificate it sent is not usable: " + why);
            return;
          }
          done(id, 200, "");
        },
        [this, done](caf::error& err) mutable {
          busy_ = false;
          done(identity{}, 0, describe_http_error(err));
        });
  }

  // -- enrollment by the secret ------------------------------------------------------------

  void enroll_by_secret() {
    DRTP_ASSERT(!secret_seed_.empty(), "enrolling by the secret needs one");
    sign_in_by_secret();
    request_certificate([this](identity id, int status, const std::string& why) {
      if (status == 200) {
        adopt(std::move(id), true);
        start_follower();
        return;
      }
      if (status == 401 || status == 403 || status == 404) {
        fatal("control plane: " + why);
        return;
      }
      if (status == 503 && why.find("no CA") != std::string::npos) {
        say("the control plane has no CA: " + subject_ + " logs in by its secret");
        start_follower();
        return;
      }
      // The service must not wait for the CA: it runs by the secret
      // meanwhile, and enrolls when the control plane answers.
      auto delay = next_backoff();
      say("enrollment of " + subject_ + " failed (" + why + "); by the secret meanwhile, again in "
          + std::to_string(delay / 1000) + " s");
      start_follower();
      arm_renewal(delay);
    });
  }

  // -- the identity in use ---------------------------------------------------------------

  /// From now on `id` is ours: saved, the HTTP client signs in by it, the
  /// agent (once running) moves to it; renewal and expiry armed.
  void adopt(identity id, bool fresh) {
    id_ = std::move(id);
    if (id_.received_s == 0 || id_.received_s > now_s())
      id_.received_s = std::min(now_s(), std::max(id_.info.not_before_s, int64_t{0}));
    if (fresh)
      save(id_);
    sign_in_by_certificate();
    backoff_ms_ = p_.retry_initial_ms;
    auto key_pem = p_.e.crypto->private_key_pem(id_.seed);
    DRTP_ASSERT(!key_pem.empty(), "our own key has a PEM");
    if (follower_) {
      send(follower_, agent_set_identity{id_.cert_pem, key_pem, id_.seed});
    } else {
      p_.follower.agent.client_cert_pem = id_.cert_pem;
      p_.follower.agent.client_key_pem = key_pem;
    }
    say((fresh ? "certificate for " : "saved certificate for ") + subject_ + " (serial "
        + id_.info.serial + ", valid until " + rfc3339(id_.info.not_after_s * 1000) + ")");
    // Two thirds of the lifetime it was given, from when it arrived.
    auto life_s = std::max<int64_t>(0, id_.info.not_after_s - id_.received_s);
    auto renew_at_s = id_.received_s + life_s * 2 / 3;
    arm_renewal(static_cast<uint64_t>(std::max<int64_t>(0, renew_at_s - now_s())) * 1000);
    ++expiry_gen_;
    auto left_ms = std::max<int64_t>(0, id_.info.not_after_s * 1000 - p_.e.clock->unix_ms(clock()));
    delayed_send(this, p_.e.clock->real_delay(std::chrono::milliseconds(left_ms)),
                 expiry_atom::value, expiry_gen_);
  }

  void arm_renewal(uint64_t delay_ms) {
    ++timer_gen_;
    delayed_send(this, p_.e.clock->real_delay(std::chrono::milliseconds(delay_ms)),
                 renew_atom::value, timer_gen_);
  }

  uint64_t next_backoff() {
    auto d = backoff_ms_;
    backoff_ms_ = std::min<uint64_t>(backoff_ms_ * 2, p_.retry_max_ms);
    return d;
  }

  /// Renewal (or, without a certificate yet, enrollment by the secret).
  void renew() {
    if (id_.cert_pem.empty()) {
      enroll_by_secret();
      return;
    }
    request_certificate([this](identity id, int status, const std::string& why) {
      if (status == 200) {
        adopt(std::move(id), true);
        return;
      }
      last_failure_ = why;
      if (status == 401 || status == 403 || status == 404) {
        if (!secret_seed_.empty() && !fell_back_) {
          fell_back_ = true;
          say("the control plane refused to renew " + subject_ + " (" + why
              + "): enrolling by the secret");
          enroll_by_secret();
          return;
        }
        fatal("the control plane refused to renew the certificate of " + subject_ + ": " + why);
        return;
      }
      // Keep the valid certificate; try again before it runs out.
      auto left_ms = std::max<int64_t>(
        0, id_.info.not_after_s * 1000 - p_.e.clock->unix_ms(clock()));
      auto delay = std::min<uint64_t>(next_backoff(),
                                      std::max<int64_t>(1000, left_ms / 2));
      say("renewal of " + subject_ + " failed (" + why + "); again in "
          + std::to_string(delay / 1000) + " s, the certificate is valid until "
          + rfc3339(id_.info.not_after_s * 1000));
      arm_renewal(delay);
    });
  }

  void on_expired() {
    fatal("the certificate of " + subject_ + " expired at "
          + rfc3339(id_.info.not_after_s * 1000) + " and the control plane did not renew it"
          + (last_failure_.empty() ? "" : " (" + last_failure_ + ")") + "; stopping");
  }

  // -- the follower --------------------------------------------------------------------

  void start_follower() {
    if (follower_)
      return;
    auto fp = p_.follower;
    follower_ = spawn_agent_follower(system(), std::move(fp));
    link_to(follower_);
  }

  void say(const std::string& what) {
    p_.e.trace->emit(p_.e.host, "enroller", what);
    if (p_.observer)
      send(p_.observer, agent_event{agent_event::note, what, 0});
  }

  void fatal(const std::string& what) {
    p_.e.trace->emit(p_.e.host, "enroller", what);
    if (p_.observer)
      send(p_.observer, agent_event{agent_event::fatal, what, 0});
    if (follower_)
      send_exit(follower_, caf::exit_reason::user_shutdown);
    quit();
  }

  void on_exit() override {
    follower_ = nullptr;
    p_ = {};
  }

  enroller_params p_;
  std::string subject_;
  std::string secret_seed_; // the secret's login seed; empty: none
  identity id_;
  caf::actor follower_;
  bool busy_ = false;       // a certificate request is out
  bool fell_back_ = false;  // a refused renewal went to the secret once
  uint64_t timer_gen_ = 0;  // the renewal timer that counts
  uint64_t expiry_gen_ = 0; // the expiry timer that counts
  uint64_t backoff_ms_ = 0;
  std::string last_failure_;
};

} // namespace

caf::actor spawn_enroller(caf::actor_system& sys, enroller_params p) {
  return sys.spawn<enroller>(std::move(p));
}

} // namespace drtp::control
