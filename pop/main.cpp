// drtp-pop: the point of presence. Agents dial in over TLS; visitors connect
// to each service's public port and are carried through a tunnel.

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <iterator>
#include <optional>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>

#include "actors/admin.hpp"
#include "actors/messages.hpp"
#include "actors/pop_server.hpp"
#include "caf/all.hpp"
#include "cli/args.hpp"
#include "cli/control_endpoint.hpp"
#include "cli/secrets.hpp"
#include "cli/signals.hpp"
#include "cli/state_file.hpp"
#include "control/auth.hpp"
#include "control/pop_follower.hpp"
#include "net/openssl_crypto.hpp"
#include "net/runtime.hpp"
#include "net/seam/trace.hpp"
#include "net/stderr_tracer.hpp"
#include "net/tls.hpp"
#include "net/wire/handshake.hpp"
#include "net/wire/hex.hpp"
#include "pop/admin_token.hpp"
#include "cli/metrics_option.hpp"
#include "pop/config.hpp"
#include "net/seam/assert.hpp"

namespace {

const char* usage = R"(drtp-pop - a DRTP point of presence

Agents (drtp serve) dial in over TLS; visitors connect to a service's public
port and reach the service through an agent's tunnel.

Usage:
  drtp-pop --config FILE [options]
  drtp-pop --service NAME --public HOST:PORT [--secret-file FILE] [options]
  drtp-pop --control https://HOST:PORT (--control-pin sha256:HEX | --control-ca FILE)
           --name NAME --region R --pop-secret-file F --public-address A
           [--state-dir D] [--config FILE] [options]
  drtp-pop public-key (--service NAME | --principal NAME)
                                read a secret on stdin, print the config's
                                public_key line for it (never the secret)
  drtp-pop gen-secret --out FILE (--service NAME | --principal NAME)
                                write a new random secret to FILE (0600, never
                                overwritten), print only its public_key line
  drtp-pop gen-cert --cert FILE --key FILE [--name NAME]
                                write a self-signed certificate, print its
                                fingerprint (for --pop-fingerprint)

Options:
  --config FILE           YAML: listen, tls {cert, key}, services (see README);
                          with --control it may list no services
  --listen HOST:PORT      where agents dial in (default 0.0.0.0:7000)
  --cert FILE --key FILE  TLS certificate and key (PEM)
  --dev                   development mode: a fresh self-signed certificate;
                          its SHA-256 fingerprint is printed for the agents
  --fingerprint-out FILE  also write that fingerprint to FILE
  --service NAME          one service without a config file, with
  --public HOST:PORT      its public port, and its secret from
  --secret-file FILE      a file (or the DRTP_SECRET environment variable)
  --private               with --service: no public port, patch panel only
  --allow NAME            with --service: a principal (or group:NAME) that may
                          reach it through drtp connect; repeatable
  --principal NAME=FILE   a principal and its secret file; repeatable
  --drain-grace SECONDS    how long a drain lets sessions run (default 30)
  --idle-timeout SECONDS   close a session with no bytes either way for this
                           long (default 7200; 0 = never; overrides the
                           config's idle_timeout_s)
  --admin HOST:PORT        operator commands, one per connection, each line
                           starting with the admin token: `TOKEN drain` or
                           `TOKEN status` (keep it on loopback), e.g.
                           echo "$(cat F) status" | nc 127.0.0.1 7001
  --admin-token-file F     with --admin: the token, in a file only its owner
                           may read; created with a random token if missing
)" DRTP_METRICS_HELP R"(  --busy-poll-us N         after each event, keep polling up to N us before
                           sleeping (default 0 = off; 100 saves most wake-ups
                           on VMs with cores to spare, at a CPU cost)
  -v, --verbose           log every session

Following a control plane (drtp-control; --config is then optional):
  --control URL           https://HOST:PORT of drtp-control: the POP registers
                          its DRTPServer, renews its lease and serves the
                          registry's services and principals, live
  --control-pin sha256:HEX   the control plane's certificate pin, or
  --control-ca FILE       a CA file to verify it by (and its host name)
  --name NAME             this POP's DRTPServer name (a DNS label)
  --region R              its region (agents pick distinct regions)
  --pop-secret-file F     the POP fleet secret (drtp-control gen-secret --pop,
                          or --dev's pops.secret); only a key derived from it
                          signs in, the secret never leaves the POP
  --public-address A      the address or DNS name visitors use
  --advertise HOST:PORT   the tunnel address agents dial (default: the
                          --listen host, or --public-address when that is
                          0.0.0.0, with the port actually bound)
  --public-host H         where registry services' public ports listen
                          (default 0.0.0.0)
  --state-dir D           keeps what the POP last knew in D/registry.json and
                          starts from it when the control plane is down
  The certificate's SHA-256 is published as the pin agents verify. With the
  control plane unreachable (or refusing the pin or the secret) the POP says
  so in one line, serves what it last knew and tries again with backoff.
  -h, --help              this text

SIGHUP reloads the config file (services, principals, allow lists, the
certificate for new links; not listen; with --control the registry's part
stays): unchanged services keep their tunnels and sessions, a removed
service's tunnels close, a service with a new secret loses its tunnels; a bad
file is refused with one line and the old config kept.

SIGTERM drains the POP: its listeners close, agents get goaway and move to
other POPs, open sessions run to their end (at most the grace period), then
it exits. A second SIGTERM, or SIGINT, stops it at once.
)";

using namespace drtp;

/// The scrypt salt named by --service NAME or --principal NAME: the login
/// key of a secret depends on whose it is.
std::string salt_from_flags(cli::args& g, const char* command) {
  auto service = g.value("--service");
  auto principal = g.value("--principal");
  if (service.has_value() == principal.has_value())
    throw cli::error(std::string(command) + " needs --service NAME or --principal NAME");
  return service ? net::service_salt(*service) : net::principal_salt(*principal);
}

/// What the POP's config holds for a secret: its public key, which checks
/// proofs but cannot make one.
void print_public_key_line(const std::string& secret, const std::string& salt) {
  std::printf("public_key: %s\n",
              pop::public_key_text(net::derive_public_key(secret, salt)).c_str());
}

int public_key_command(int argc, char** argv) {
  cli::args g{argc, argv, 2};
  auto salt = salt_from_flags(g, "public-key");
  g.finish();
  auto secret = cli::read_secret_from(STDIN_FILENO, "the secret on standard input");
  if (secret.empty())
    throw cli::error("no secret on standard input");
  print_public_key_line(secret, salt);
  return 0;
}

int gen_cert(int argc, char** argv) {
  cli::args g{argc, argv, 2};
  auto cert = g.value("--cert");
  auto key = g.value("--key");
  auto name = g.value("--name");
  g.finish();
  if (!cert || !key)
    throw cli::error("gen-cert needs --cert FILE and --key FILE");
  auto id = net::make_self_signed(name ? *name : "drtp-pop");
  cli::write_new_file(*key, id.key_pem, 0600);
  cli::write_new_file(*cert, id.cert_pem, 0644);
  std::printf("sha256:%s\n", net::to_hex(net::fingerprint_sha256(id.cert_pem)).c_str());
  return 0;
}

/// 32 random bytes, written as 64 hex digits to a new 0600 file; only the
/// public key is printed, so the secret goes nowhere but the file.
int gen_secret(int argc, char** argv) {
  cli::args g{argc, argv, 2};
  auto out = g.value("--out");
  auto salt = salt_from_flags(g, "gen-secret");
  g.finish();
  if (!out)
    throw cli::error("gen-secret needs --out FILE");
  auto secret = net::to_hex(net::make_system_entropy()->bytes(32));
  cli::write_new_file(*out, secret + "\n", 0600);
  print_public_key_line(secret, salt);
  return 0;
}

/// The command line of `drtp-pop` (not public-key, gen-secret or gen-cert).
struct options {
  std::optional<std::string> config_file, listen, cert, key, fp_out, service,
    public_addr, secret_file, grace, admin, admin_token_file, idle_timeout, metrics;
  // --control and what goes with it
  std::optional<std::string> control, control_pin, control_ca, pop_name, region,
    pop_secret_file, public_address, advertise, state_dir;
  std::string public_host = "0.0.0.0";
  bool dev = false;
  bool is_private = false;
  std::string admin_host;
  uint16_t admin_port = 0;
  std::vector<std::string> allows, principal_specs;
  int verbosity = 0;
  uint32_t busy_poll_us = 0;
};

options parse_options(cli::args& a) {
  options o;
  o.config_file = a.value("--config");
  o.listen = a.value("--listen");
  o.cert = a.value("--cert");
  o.key = a.value("--key");
  o.dev = a.flag("--dev");
  o.fp_out = a.value("--fingerprint-out");
  o.service = a.value("--service");
  o.public_addr = a.value("--public");
  o.secret_file = a.value("--secret-file");
  o.grace = a.value("--drain-grace");
  o.idle_timeout = a.value("--idle-timeout");
  o.admin = a.value("--admin");
  o.metrics = a.value("--metrics");
  o.admin_token_file = a.value("--admin-token-file");
  if (o.admin)
    cli::parse_host_port(*o.admin, "--admin", o.admin_host, o.admin_port);
  if (o.admin && !o.admin_token_file)
    throw cli::error("--admin needs --admin-token-file FILE (each command line "
                     "starts with the token it holds)");
  if (o.admin_token_file && !o.admin)
    throw cli::error("--admin-token-file goes with --admin HOST:PORT");
  o.control = a.value("--control");
  o.control_pin = a.value("--control-pin");
  o.control_ca = a.value("--control-ca");
  o.pop_name = a.value("--name");
  o.region = a.value("--region");
  o.pop_secret_file = a.value("--pop-secret-file");
  o.public_address = a.value("--public-address");
  o.advertise = a.value("--advertise");
  o.state_dir = a.value("--state-dir");
  if (auto h = a.value("--public-host"))
    o.public_host = *h;
  if (o.control) {
    if (!o.pop_name || !o.region || !o.pop_secret_file || !o.public_address)
      throw cli::error("--control needs --name NAME, --region R, --pop-secret-file F "
                       "and --public-address A (see --help)");
    if (!control::valid_name(*o.pop_name))
      throw cli::error("--name '" + *o.pop_name + "' is not a DNS label ([a-z0-9-], at "
                       "most 63)");
  } else {
    for (auto* f : {&o.control_pin, &o.control_ca, &o.pop_name, &o.region, &o.pop_secret_file,
                    &o.public_address, &o.advertise, &o.state_dir})
      if (f->has_value())
        throw cli::error("--control-pin, --control-ca, --name, --region, --pop-secret-file, "
                         "--public-address, --advertise and --state-dir go with --control URL");
  }
  o.is_private = a.flag("--private");
  o.allows = a.values("--allow");
  o.principal_specs = a.values("--principal");
  o.verbosity = (a.flag("-v") || a.flag("--verbose")) ? 1 : 0;
  o.busy_poll_us = cli::busy_poll_us(a);
  auto extra = a.positional();
  if (!extra.empty())
    throw cli::error("unexpected argument '" + extra.front() + "' (see --help)");
  a.finish();
  return o;
}

/// --service NAME with --public or --private: one service, no config file.
service_config service_from_flags(const options& o) {
  if (!o.public_addr && !o.is_private)
    throw cli::error("--service needs --public HOST:PORT (or --private)");
  service_config sc;
  sc.name = *o.service;
  sc.public_key = net::derive_public_key(cli::read_secret(o.secret_file, "DRTP_SECRET"),
                                         net::service_salt(sc.name));
  if (o.is_private) {
    sc.is_public = false;
    if (o.public_addr)
      throw cli::error("--private and --public exclude each other");
  } else {
    cli::parse_host_port(*o.public_addr, "--public", sc.public_host, sc.public_port);
  }
  sc.allow = o.allows;
  return sc;
}

principal_config principal_from_flag(const std::string& spec) {
  auto eq = spec.find('=');
  if (eq == std::string::npos || eq == 0)
    throw cli::error("--principal must be NAME=SECRET_FILE, got '" + spec + "'");
  principal_config pc;
  pc.name = spec.substr(0, eq);
  pc.public_key = net::derive_public_key(
    cli::read_secret(spec.substr(eq + 1), "DRTP_SECRET"), net::principal_salt(pc.name));
  return pc;
}

/// The config file, or the one service of the flags; the flags override.
pop::config load_config(const options& o) {
  pop::config cfg;
  if (o.config_file) {
    cfg = pop::load_config(*o.config_file, !o.control);
    if (o.service)
      throw cli::error("use either --config or --service, not both");
  } else if (o.service) {
    cfg.services.push_back(service_from_flags(o));
  } else if (!o.control) {
    throw cli::error("no services: pass --config FILE, --service NAME or --control URL "
                     "(see --help)");
  }
  if (o.listen)
    cli::parse_host_port(*o.listen, "--listen", cfg.listen_host, cfg.listen_port);
  for (auto& spec : o.principal_specs)
    cfg.principals.push_back(principal_from_flag(spec));
  if (o.cert || o.key) {
    if (!o.cert || !o.key)
      throw cli::error("--cert and --key go together");
    cfg.cert_file = *o.cert;
    cfg.key_file = *o.key;
  }
  pop::check_allow_lists(cfg, o.config_file ? *o.config_file : "--allow");
  return cfg;
}

/// The TLS identity; in development mode a fresh one, whose fingerprint the
/// agents need, so it is printed (and written to --fingerprint-out).
net::tls_identity load_identity(const options& o, const pop::config& cfg) {
  net::tls_identity identity;
  if (o.dev) {
    identity = net::make_self_signed("drtp-pop");
  } else if (!cfg.cert_file.empty()) {
    try {
      identity = net::load_identity(cfg.cert_file, cfg.key_file);
    } catch (const std::exception& e) {
      throw cli::error(e.what());
    }
  } else {
    throw cli::error("no TLS certificate: pass --cert/--key, a 'tls' section "
                     "in the config, or --dev for a self-signed one");
  }
  if (!o.dev)
    return identity;
  auto fp = "sha256:" + net::to_hex(net::fingerprint_sha256(identity.cert_pem));
  std::printf("drtp-pop: development mode, self-signed certificate %s\n", fp.c_str());
  if (o.fp_out) {
    FILE* f = std::fopen(o.fp_out->c_str(), "w");
    if (!f)
      throw cli::error("cannot write " + *o.fp_out);
    std::fprintf(f, "%s\n", fp.c_str());
    std::fclose(f);
  }
  return identity;
}

// -- following the control plane ---------------------------------------------------

/// What D/registry.json may weigh at start (10 000 services take about
/// 2 MiB).
constexpr size_t registry_file_bytes_max = 32 * 1024 * 1024;

bool wildcard_host(const std::string& h) {
  return h.empty() || h == "0.0.0.0" || h == "::" || h == "[::]";
}

/// --control https://HOST:PORT and how its certificate is checked.
http_client_params control_http(const options& o) {
  auto cp = cli::parse_control_endpoint(*o.control, o.control_pin, o.control_ca);
  http_client_params hp;
  hp.host = cp.host;
  hp.port = cp.port;
  hp.tls = cp.tls;
  hp.name = "control-http";
  return hp;
}

/// Everything the follower needs but the running POP (its actor, the
/// tunnel port it bound, the env): flags, secret, certificate pin, snapshot.
control::pop_follower_params follower_params(const options& o, const pop::config& cfg,
                                             const net::tls_identity& identity,
                                             const std::shared_ptr<cli::state_file>& file) {
  control::pop_follower_params fp;
  fp.http = control_http(o);
  auto secret = cli::read_secret(o.pop_secret_file, "DRTP_POP_SECRET");
  if (secret.empty())
    throw cli::error("--pop-secret-file " + *o.pop_secret_file + " is empty");
  fp.fleet_seed = net::derive_login_key(secret, control::pop_fleet_salt()).seed;
  fp.name = *o.pop_name;
  fp.spec.region = *o.region;
  fp.spec.public_address = *o.public_address;
  fp.spec.pin = "sha256:" + net::to_hex(net::fingerprint_sha256(identity.cert_pem));
  fp.public_host = o.public_host;
  fp.static_services = cfg.services;
  fp.static_principals = cfg.principals;
  if (file) {
    std::string error;
    fp.snapshot = file->read(error);
    if (!error.empty())
      std::fprintf(stderr, "drtp-pop: error: %s; starting from the static config\n",
                   error.c_str());
    fp.persist = [file](const std::string& snapshot) { file->write(snapshot); };
  }
  return fp;
}

/// The tunnel address the DRTPServer publishes: --advertise, else the
/// listen host (the public address when that is a wildcard) and the bound port.
void set_tunnel_address(control::server_spec& spec, const options& o, const pop::config& cfg,
                        uint16_t bound_port) {
  if (o.advertise) {
    cli::parse_host_port(*o.advertise, "--advertise", spec.tunnel_host, spec.tunnel_port);
    return;
  }
  spec.tunnel_host = wildcard_host(cfg.listen_host) ? *o.public_address : cfg.listen_host;
  spec.tunnel_port = bound_port;
}

/// The follower's tracer: drtp-pop prints one line per follower event
/// itself, so at level 0 the follower's own copy of that line and its HTTP
/// client's (which the event repeats) are dropped; the rest of what it
/// says (an object it ignores, a lease it could not renew) passes, and -v
/// passes everything. Matching the follower's texts only costs a
/// duplicated line if they change.
class follower_tracer final : public net::tracer {
public:
  explicit follower_tracer(std::shared_ptr<net::tracer> inner) : inner_(std::move(inner)) {
  }

  void emit(const std::string& host, const std::string& who,
            const std::string& what) override {
    if (!inner_->verbose() && (who == "pop-follower-http" || (who == "pop-follower" && echoed(what))))
      return;
    inner_->emit(host, who, what);
  }
  bool verbose() const override {
    return inner_->verbose();
  }
  void audit(const std::string& host, const std::string& what, bool authenticated) override {
    inner_->audit(host, what, authenticated);
  }

private:
  static bool echoed(const std::string& what) {
    auto ends_with = [&](const std::string& tail) {
      return what.size() >= tail.size()
             && what.compare(what.size() - tail.size(), tail.size(), tail) == 0;
    };
    auto digits = what.find_first_not_of("0123456789");
    return ends_with(" or so") || what.find(" registered, lease ") != std::string::npos
           || what.find(" principal(s) at resourceVersion ") != std::string::npos
           || (digits > 0 && digits != std::string::npos
               && what.compare(digits, 11, " service(s)") == 0); // applied: the POP's answer
  }

  std::shared_ptr<net::tracer> inner_;
};

/// The offline event's reason, without the follower's "; serving what it
/// last knew" (drtp-pop's line says it first), with a hint for the two
/// mistakes an operator makes: the pin and the fleet secret.
std::string offline_reason(const std::string& what) {
  static const std::string serving = "; serving what it last knew";
  auto at = what.find(serving);
  auto reason = what.substr(0, at);
  auto tail = at == std::string::npos ? "" : what.substr(at + serving.size());
  if (reason.find("HTTP 401") != std::string::npos)
    reason += " (is --pop-secret-file the fleet secret whose key the control plane holds?)";
  else if (reason.find("fingerprint does not match") != std::string::npos)
    reason += " (check --control-pin)";
  return reason + tail;
}

/// The leading count of a pop_server's reconfigure answer ("3 service(s);
/// ..."), else `old`.
size_t services_in(const std::string& answer, size_t old) {
  size_t n = 0, i = 0;
  while (i < answer.size() && answer[i] >= '0' && answer[i] <= '9' && i < 9)
    n = n * 10 + static_cast<size_t>(answer[i++] - '0');
  return i > 0 && answer.compare(i, 11, " service(s)") == 0 ? n : old;
}

pop_params make_pop_params(net::runtime& rt, const caf::actor& observer,
                           const pop::config& cfg, const options& o) {
  // The config's limits (defaults when it has none), then the rest.
  pop_params pp = cfg.limits;
  pp.e.io = rt.io();
  pp.e.trace = rt.trace();
  pp.e.rng = net::make_system_entropy();
  pp.e.crypto = net::make_openssl_crypto();
  pp.e.clock = rt.clock(); // certificates are checked against the wall clock
  pp.e.host = "pop";
  pp.tunnel_host = cfg.listen_host;
  pp.tunnel_port = cfg.listen_port;
  pp.services = cfg.services;
  pp.principals = cfg.principals;
  pp.observer = observer;
  // Without a control plane the config is the operator's own: a taken
  // public port stops the POP at start, as a taken tunnel port does.
  pp.public_listen_failure_fatal = !o.control;
  pp.e.limits.session_idle_timeout_ms =
    o.idle_timeout ? cli::parse_uint(*o.idle_timeout, "--idle-timeout", 0,
                                     pop::idle_timeout_s_max, "seconds")
                       * 1000
                   : cfg.session_idle_timeout_ms;
  if (o.grace)
    pp.drain_grace_ms = cli::parse_uint(*o.grace, "--drain-grace", 0, 3600, "seconds")
                        * 1000;
  return pp;
}

/// Waits for the listeners; prints where agents and visitors go. False if
/// they failed or did not come up in time.
bool wait_ready(caf::scoped_actor& self, const pop::config& cfg,
                const std::vector<service_config>& services, uint16_t& tunnel_port) {
  bool ready = false;
  self->receive(
    [&](pop_ready& r) {
      ready = true;
      tunnel_port = r.tunnel_port;
      std::printf("drtp-pop: agents dial %s:%u (TLS)\n", cfg.listen_host.c_str(),
                  r.tunnel_port);
      for (auto& s : services)
        if (s.is_public && r.public_ports.count(s.name))
          std::printf("drtp-pop: service '%s' public on %s:%u\n", s.name.c_str(),
                      s.public_host.c_str(), r.public_ports[s.name]);
        else if (s.is_public)
          continue; // its port is taken: the POP said so in one line
        else
          std::printf("drtp-pop: service '%s' private (patch panel only)\n",
                      s.name.c_str());
      std::fflush(stdout);
    },
    [&](pop_failed& f) {
      std::fprintf(stderr, "drtp-pop: error: %s\n", f.what.c_str());
    },
    caf::after(std::chrono::seconds(10)) >> [&] {
      std::fprintf(stderr, "drtp-pop: error: listeners not ready after 10 s\n");
    });
  return ready;
}

/// The POP while it serves: a first SIGTERM (or the admin's `drain`) drains
/// it, a second signal or SIGINT stops it at once.
///   serving -> draining -> drained
///   serving | draining -> drained (the POP reports it drained, or failed)
///   serving | draining -> stopped (a signal that does not drain)
enum class serve_state { serving, draining, drained, stopped };

class server_loop {
public:
  /// `follower`: null without --control; `services`: how many it serves.
  server_loop(caf::scoped_actor& self, caf::actor pop, caf::actor io, caf::actor follower,
              size_t services, const options& o)
    : self_(self), pop_(std::move(pop)), io_(std::move(io)), follower_(std::move(follower)),
      services_(services), o_(o) {
  }

  /// Serves until drained or stopped; the exit code.
  int run() {
    while (state_ == serve_state::serving || state_ == serve_state::draining) {
      if (cli::stop_requested())
        on_signal();
      if (state_ == serve_state::stopped)
        break;
      if (cli::reload_requested())
        reload();
      receive();
    }
    if (state_ == serve_state::drained)
      std::this_thread::sleep_for(std::chrono::milliseconds(100)); // last answers out
    return rc_;
  }

private:
  void to(serve_state next) {
    DRTP_ASSERT(state_ == serve_state::serving || state_ == serve_state::draining,
                "a POP that is drained or stopped stays so");
    DRTP_ASSERT(next != serve_state::draining || state_ == serve_state::serving,
                "only a serving POP starts to drain");
    state_ = next;
  }

  void on_signal() {
    if (cli::stop_signal() == SIGTERM && state_ == serve_state::serving) {
      std::fprintf(stderr, "drtp-pop: SIGTERM: draining (again to stop now)\n");
      to(serve_state::draining);
      cli::clear_stop_signal();
      self_->send(pop_, drain_atom::value);
    } else {
      std::fprintf(stderr, "drtp-pop: stopping now (signal %d)\n", cli::stop_signal());
      to(serve_state::stopped);
    }
  }

  /// SIGHUP: the config file (and secret files) read again and handed to
  /// the POP server; a bad one is refused with one line, the old one kept.
  void reload() {
    pop::config cfg;
    std::string pin;
    try {
      cfg = load_config(o_);
      if (!o_.dev && !cfg.cert_file.empty()) {
        auto id = net::load_identity(cfg.cert_file, cfg.key_file);
        set_identity(id, cfg.cert_file);
        pin = "sha256:" + net::to_hex(net::fingerprint_sha256(id.cert_pem));
      }
    } catch (const std::exception& e) {
      std::fprintf(stderr, "drtp-pop: SIGHUP: config not reloaded, the old one stays: %s\n",
                   e.what());
      return;
    }
    // With a control plane the follower merges the YAML's part with the
    // registry's and applies both through the same pop_reconfigure.
    auto answer = follower_
                    ? self_->request(follower_, std::chrono::seconds(6),
                                     control::pop_follower_static{cfg.services, cfg.principals,
                                                                  pin})
                    : self_->request(pop_, std::chrono::seconds(5),
                                     pop_reconfigure{cfg.services, cfg.principals});
    answer.receive(
        [](const std::string& what) {
          std::fprintf(stderr, "drtp-pop: SIGHUP: config reloaded: %s\n", what.c_str());
        },
        [](const caf::error&) {
          std::fprintf(stderr, "drtp-pop: SIGHUP: the POP did not answer the reload\n");
        });
  }

  /// The certificate for links accepted from now on; throws if the io
  /// refuses it (the old one stays).
  void set_identity(const net::tls_identity& id, const std::string& file) {
    self_->send(io_, net::set_identity_req{id.cert_pem, id.key_pem});
    std::string error = "no answer from the network loop";
    self_->receive(
      [&](const net::identity_set& r) { error = r.ok ? "" : r.what; },
      caf::after(std::chrono::seconds(5)) >> [] {});
    if (!error.empty())
      throw cli::error("certificate " + file + ": " + error);
  }

  void receive() {
    self_->receive(
      [&](const pop_drained& d) {
        std::fprintf(stderr, "drtp-pop: drained, %u session(s) cut; exiting\n",
                     d.sessions_cut);
        to(serve_state::drained);
      },
      [&](const pop_failed& f) {
        std::fprintf(stderr, "drtp-pop: error: %s\n", f.what.c_str());
        rc_ = 1;
        to(serve_state::drained); // stop
      },
      [&](const control::pop_follower_event& ev) { on_follower(ev); },
      [](const caf::message&) {},
      caf::after(std::chrono::milliseconds(100)) >> [] {});
  }

  /// One line per event of the control plane's follower.
  void on_follower(const control::pop_follower_event& ev) {
    using ev_t = control::pop_follower_event;
    // The text may quote the control plane's answers: escaped like every
    // line a tracer writes.
    auto what = net::escape_for_log(ev.what);
    switch (ev.kind) {
      case ev_t::registered:
        std::printf("drtp-pop: control plane: registered: %s\n", what.c_str());
        break;
      case ev_t::synced:
        std::printf("drtp-pop: control plane: synced: %s\n", what.c_str());
        break;
      case ev_t::applied:
        services_ = services_in(ev.what, services_);
        std::printf("drtp-pop: control plane: applied: %s\n", what.c_str());
        break;
      case ev_t::offline:
        std::printf("drtp-pop: control plane unreachable, serving what it last knew "
                    "(%zu service(s)): %s\n",
                    services_, offline_reason(what).c_str());
        break;
    }
    std::fflush(stdout);
  }

  caf::scoped_actor& self_;
  caf::actor pop_;
  caf::actor io_;
  caf::actor follower_;
  size_t services_ = 0;
  const options& o_;
  serve_state state_ = serve_state::serving;
  int rc_ = 0;
};

int run(int argc, char** argv) {
  // Before any secret or key is read.
  cli::keep_secrets_out_of_core_dumps();
  if (argc >= 2 && std::string(argv[1]) == "hash-secret")
    throw cli::error("hash-secret is gone: its output could log in; use "
                     "`drtp-pop public-key --service NAME` (or --principal NAME)");
  if (argc >= 2 && std::string(argv[1]) == "public-key")
    return public_key_command(argc, argv);
  if (argc >= 2 && std::string(argv[1]) == "gen-secret")
    return gen_secret(argc, argv);
  if (argc >= 2 && std::string(argv[1]) == "gen-cert")
    return gen_cert(argc, argv);
  cli::args a{argc, argv, 1};
  if (a.flag("-h") || a.flag("--help")) {
    std::fputs(usage, stdout);
    return 0;
  }
  auto o = parse_options(a);
  auto cfg = load_config(o);
  auto identity = load_identity(o, cfg);
  std::shared_ptr<cli::state_file> reg_file;
  std::optional<control::pop_follower_params> fp;
  std::vector<service_config> services = cfg.services;
  std::vector<principal_config> principals = cfg.principals;
  if (o.control) {
    if (o.state_dir)
      reg_file = std::make_shared<cli::state_file>(*o.state_dir, "registry.json",
                                                  registry_file_bytes_max, "drtp-pop");
    fp = follower_params(o, cfg, identity, reg_file);
    std::string error;
    auto initial = control::pop_follower_initial_config(*fp, error);
    if (!error.empty())
      std::fprintf(stderr, "drtp-pop: error: %s: %s; serving the static config until the "
                           "control plane answers\n",
                   reg_file->path().c_str(), error.c_str());
    else if (!fp->snapshot.empty())
      std::printf("drtp-pop: %zu service(s) from %s\n",
                  initial.services.size() - cfg.services.size(), reg_file->path().c_str());
    services = std::move(initial.services);
    principals = std::move(initial.principals);
  }
  std::string admin_token;
  if (o.admin) {
    bool created = false;
    admin_token = pop::load_or_create_admin_token(*o.admin_token_file, created);
    if (created)
      std::printf("drtp-pop: new admin token written to %s\n", o.admin_token_file->c_str());
  }

  cli::install_stop_signals();
  cli::install_reload_signal();
  net::runtime rt{net::make_stderr_tracer(o.verbosity), identity, o.busy_poll_us};
  caf::scoped_actor self{rt.sys()};
  auto pp = make_pop_params(rt, self, cfg, o);
  pp.services = services;
  pp.principals = principals;
  auto admin_env = pp.e;
  auto pop = spawn_pop_server(rt.sys(), std::move(pp));
  if (o.admin) {
    admin_params ap;
    ap.e = admin_env;
    ap.host = o.admin_host;
    ap.port = o.admin_port;
    ap.token = std::move(admin_token);
    ap.pop = pop;
    ap.observer = self;
    spawn_admin(rt.sys(), std::move(ap));
  }
  if (o.metrics)
    cli::start_metrics(rt.sys(), admin_env, *o.metrics, pop, "drtp-pop");
  int rc = 1;
  uint16_t tunnel_port = 0;
  if (wait_ready(self, cfg, services, tunnel_port)) {
    caf::actor follower;
    if (fp) {
      set_tunnel_address(fp->spec, o, cfg, tunnel_port);
      fp->e = admin_env;
      fp->e.clock = rt.clock(); // the lease's wall time is the system's
      fp->e.trace = std::make_shared<follower_tracer>(fp->e.trace);
      fp->http.e = fp->e;
      fp->pop = pop;
      fp->observer = self;
      std::printf("drtp-pop: following the control plane %s as '%s' (region %s, tunnels "
                  "%s:%u)\n",
                  o.control->c_str(), fp->name.c_str(), fp->spec.region.c_str(),
                  fp->spec.tunnel_host.c_str(), fp->spec.tunnel_port);
      std::fflush(stdout);
      follower = control::spawn_pop_follower(rt.sys(), std::move(*fp));
    }
    rc = server_loop{self, pop, rt.io(), follower, services.size(), o}.run();
  }
  if (reg_file)
    reg_file->flush();
  rt.stop();
  std::fflush(nullptr);
  std::_Exit(rc); // actors may still hold sockets' handles; nothing to flush
}

} // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const drtp::cli::error& e) {
    std::fprintf(stderr, "drtp-pop: error: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "drtp-pop: error: %s\n", e.what());
    return 1;
  }
}
