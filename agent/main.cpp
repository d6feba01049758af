// drtp: the agent side. `drtp serve` runs next to a private service and
// dials out to a POP, so nobody needs to open an inbound port.

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <unistd.h>

#include "actors/agent.hpp"
#include "actors/http_client.hpp"
#include "actors/messages.hpp"
#include "caf/all.hpp"
#include "control/agent_follower.hpp"
#include "control/auth.hpp"
#include "control/enroller.hpp"
#include "net/stderr_tracer.hpp"
#include "net/openssl_crypto.hpp"
#include "net/wire/handshake.hpp"
#include "net/tls.hpp"
#include "cli/args.hpp"
#include "cli/metrics_option.hpp"
#include "cli/status.hpp"
#include "cli/control_endpoint.hpp"
#include "cli/state_file.hpp"
#include "cli/secrets.hpp"
#include "cli/signals.hpp"
#include "net/runtime.hpp"
#include "net/seam/trace.hpp"

namespace {

const char* usage = R"(drtp - reverse tunnel proxy

Usage:
  drtp serve --control URL (--control-pin SHA | --control-ca FILE)
             --service NAME --secret-file FILE [--local HOST:PORT] [--region R]
             [--state-dir DIR] [options]
  drtp connect --control URL (--control-pin SHA | --control-ca FILE)
             --service NAME --principal NAME --secret-file FILE
             --listen HOST:PORT [--region R] [--state-dir DIR] [options]
  drtp serve --pop HOST:PORT[@REGION][,fingerprint=SHA] [--pop ...]
             --service NAME --local HOST:PORT [options]
  drtp connect --pop HOST:PORT[@REGION][,fingerprint=SHA] [--pop ...] --service NAME
             --listen HOST:PORT --principal NAME [options]
  drtp status [--metrics HOST:PORT] [--wide] [--json]

drtp serve dials out to POPs over TLS and carries the visitors of the
service's public port at those POPs to HOST:PORT here. No inbound port needed.
Given several POPs, it holds tunnels to --tunnels of them, in distinct regions
where it can, and replaces a tunnel whose POP dies or drains.

With --control, drtp signs in to the control plane (drtp-control) as
service/NAME (serve) or principal/NAME (connect) with the same secret, and
learns from it the POPs to dial (ready ones, distinct regions first, nearest
first), how to verify each, and (serve) the service's local address and K.
It follows the POP list live and reports its tunnels to the registry.

drtp status asks a running drtp serve, drtp connect or drtp-pop, started with
--metrics HOST:PORT (default for status: $DRTP_METRICS), what it holds: its
tunnels, and each live session with the POP carrying it, its age, bytes each
way, resumes, resent bytes and stall, the round trip of this end's hop and of
the other end's (a patch-panel session's two ends tell each other in band),
and, for a session that moved, which POPs carried it and when. The session id
is the same at both ends and at the POP (--wide prints it whole; --json the
endpoint's /debug/sessions as it is).

With --state-dir it also enrolls (if the control plane has a CA): it makes a
private key that never leaves DIR, sends a certificate request signed in by
the secret, and from then on logs in to the control plane and to every POP
by that certificate (mutual TLS). It renews at two thirds of the lifetime
without dropping a tunnel; with the control plane unreachable it keeps the
valid certificate and retries with backoff; at expiry without a renewal it
stops with one line. A POP that does not know the CA yet is dialed by the
secret, when there is one.

Options:
  --control URL            https://HOST:PORT of the control plane
  --control-pin SHA        trust exactly this control-plane certificate
                           (sha256:HEX, as drtp-control --dev prints it)
  --control-ca FILE        or: trust control-plane certificates of this CA
  --region R               with --control: the region this agent is in;
                           its POPs come first (default: by measured RTT)
  --state-dir DIR          with --control: keep what the control plane said
                           in DIR/bootstrap.json; with the control plane
                           down, drtp starts from it (static stability).
                           And enroll: DIR/identity.json (0600) keeps a
                           private key made here and the short-lived
                           certificate the control plane's CA signed for
                           it; later starts need no secret
  --pop HOST:PORT[@REGION][,fingerprint=SHA]
                           a POP's tunnel address; repeat for several POPs.
                           fingerprint=sha256:HEX pins that POP's own
                           certificate (each drtp-pop --dev has its own)
  --tunnels K              how many POPs to hold tunnels to (default 2, max 3;
                           with --control serve: the service's tunnels)
  --service NAME           the service name the POP knows
  --local HOST:PORT        the local service (e.g. 127.0.0.1:5432); with
                           --control, default: the registered one
  --secret-file FILE       the service secret (default: $DRTP_SECRET); with
                           --state-dir holding a valid certificate, optional
  --ca FILE                trust POP certificates signed by this CA (PEM)
  --pop-fingerprint SHA    trust exactly this certificate at every POP
                           without a fingerprint= of its own (sha256:HEX,
                           as drtp-pop --dev prints it); give it once
  --server-name NAME       expected name in the POP certificate (with --ca)
  --insecure               do not verify the POP certificate (testing only)
  --agent-id ID            how the POP names this agent (default: hostname)
  --listen HOST:PORT       connect: where the service appears locally
  --principal NAME         connect: who you are to the POP
  --idle-timeout SECONDS   serve: close a session with no bytes either way
                           for this long (default 7200; 0 = never)
  --resume-timeout SECONDS how long a patch-panel session waits for a new
                           path, at either end (default 30)
)" DRTP_METRICS_HELP R"(  --busy-poll-us N         after each event, keep polling up to N us before
                           sleeping (default 0 = off; 100 saves most wake-ups
                           on VMs with cores to spare, at a CPU cost)
  -v, --verbose            log every session
  -h, --help               this text

The POP certificate is verified by default: give --ca or --pop-fingerprint,
or pin each POP: --pop 10.0.0.1:7000@eu,fingerprint=sha256:HEX. A POP's own
fingerprint= wins over --pop-fingerprint and --ca for that POP.

A POP that rejects the service (or the principal) for good is set aside and
said so in one line; the tunnels to other POPs carry on, and it is tried
again a minute later. drtp stops, with one line, once every POP rejects.

The secret is stretched once at startup (scrypt, 32 MiB) into the key that
signs each login; a POP stores only its public half (drtp-pop public-key).

drtp connect (the patch panel) makes a service appear on --listen here, even
a private one with no public port anywhere. It authenticates as --principal
with that principal's secret (--secret-file or $DRTP_SECRET), holds tunnels
to --tunnels POPs (default 2), and carries each connection as a session that
survives the death of the POP carrying it: it resumes through another POP
without losing a byte, for up to --resume-timeout seconds (default 30).
)";

using namespace drtp;

/// The command line of `drtp serve` and `drtp connect`.
struct options {
  bool connect = false;
  std::optional<std::string> listen, principal, resume_timeout, idle_timeout, tunnels,
    service,
    local, secret_file, ca, fp, server_name, agent_id, metrics;
  std::vector<std::string> pops, fps;
  /// --control mode: the control plane's URL and how to verify it.
  std::optional<std::string> control, control_pin, control_ca, region, state_dir;
  bool insecure = false;
  int verbosity = 0;
  uint32_t busy_poll_us = 0;
};

options parse_options(cli::args& a, bool connect) {
  options o;
  o.connect = connect;
  o.listen = connect ? a.value("--listen") : std::nullopt;
  o.principal = connect ? a.value("--principal") : std::nullopt;
  o.resume_timeout = a.value("--resume-timeout");
  o.idle_timeout = connect ? std::nullopt : a.value("--idle-timeout");
  o.pops = a.values("--pop");
  o.tunnels = a.value("--tunnels");
  o.service = a.value("--service");
  o.local = connect ? std::nullopt : a.value("--local");
  o.secret_file = a.value("--secret-file");
  o.ca = a.value("--ca");
  o.fps = a.values("--pop-fingerprint");
  if (o.fps.size() > 1)
    throw cli::error("--pop-fingerprint given " + std::to_string(o.fps.size())
                     + " times: it pins every POP alike; pin each POP with "
                       "--pop HOST:PORT,fingerprint=sha256:HEX");
  if (!o.fps.empty())
    o.fp = o.fps.front();
  o.server_name = a.value("--server-name");
  o.insecure = a.flag("--insecure");
  o.agent_id = a.value("--agent-id");
  o.metrics = a.value("--metrics");
  o.verbosity = (a.flag("-v") || a.flag("--verbose")) ? 1 : 0;
  o.busy_poll_us = cli::busy_poll_us(a);
  o.control = a.value("--control");
  o.control_pin = a.value("--control-pin");
  o.control_ca = a.value("--control-ca");
  o.region = a.value("--region");
  o.state_dir = a.value("--state-dir");
  a.finish();
  if (o.control) {
    const char* cmd = connect ? "connect" : "serve";
    if (!o.pops.empty())
      throw cli::error("--control and --pop exclude each other: with --control the "
                       "control plane names the POPs");
    if (!o.service)
      throw cli::error(std::string(cmd) + " --control needs --service NAME (see --help)");
    if (connect && (!o.listen || !o.principal))
      throw cli::error("connect --control needs --listen and --principal (see --help)");
    return o;
  }
  const std::pair<const char*, bool> control_only[] = {{"--control-pin", !!o.control_pin},
                                                       {"--control-ca", !!o.control_ca},
                                                       {"--region", !!o.region},
                                                       {"--state-dir", !!o.state_dir}};
  for (auto& [flag, given] : control_only)
    if (given)
      throw cli::error(std::string(flag) + " goes with --control URL");
  if (connect && (o.pops.empty() || !o.service || !o.listen || !o.principal))
    throw cli::error("connect needs --pop (or --control), --service, --listen and "
                     "--principal (see --help)");
  if (!connect && (o.pops.empty() || !o.service || !o.local))
    throw cli::error("serve needs --pop, --service and --local, or --control URL and "
                     "--service (see --help)");
  return o;
}

/// A pin: sha256: and 64 hex digits; throws naming `what`.
/// HOST:PORT[@REGION][,fingerprint=sha256:HEX]
pop_endpoint parse_pop(const std::string& spec) {
  pop_endpoint ep;
  auto comma = spec.find(',');
  auto addr = spec.substr(0, comma);
  if (comma != std::string::npos) {
    auto opt = spec.substr(comma + 1);
    static const std::string fp_key = "fingerprint=";
    if (opt.rfind(fp_key, 0) != 0 || opt.find(',') != std::string::npos)
      throw cli::error("--pop " + addr + ": after the address only ,fingerprint=sha256:HEX "
                       "may follow, got '," + opt + "'");
    ep.tls = cli::pinned_tls(opt.substr(fp_key.size()), "--pop " + addr + ": fingerprint");
  }
  auto at = addr.find('@');
  cli::parse_host_port(addr.substr(0, at), "--pop", ep.host, ep.port);
  if (at != std::string::npos)
    ep.region = addr.substr(at + 1);
  ep.name = addr.substr(0, at);
  return ep;
}

/// How the POP's certificate is checked: one of --insecure,
/// --pop-fingerprint or --ca, in that order of precedence.
std::shared_ptr<net::tls_client_config> make_tls_config(const options& o,
                                                        const std::vector<pop_endpoint>& pops) {
  auto tls = std::make_shared<net::tls_client_config>();
  if (o.insecure) {
    tls->verify = false;
  } else if (o.fp) {
    tls = cli::pinned_tls(*o.fp, "--pop-fingerprint");
  } else if (o.ca) {
    if (access(o.ca->c_str(), R_OK) != 0)
      throw cli::error("cannot read CA file " + *o.ca + ": " + std::strerror(errno));
    tls->ca_file = *o.ca;
    if (o.server_name)
      tls->server_name = *o.server_name; // else each POP's own host name
  } else {
    for (auto& ep : pops)
      if (!ep.tls)
        throw cli::error("cannot verify the POP " + ep.name + ": pass --ca FILE, "
                         "--pop-fingerprint sha256:HEX or --pop " + ep.name
                         + ",fingerprint=sha256:HEX (or --insecure for tests)");
    return nullptr; // every POP has its own pin
  }
  return tls;
}

/// Everything of the agent's parameters that the command line decides.
agent_params make_agent_params(const options& o, bool secret_optional) {
  agent_params ap;
  ap.client = o.connect;
  if (o.connect) {
    cli::parse_host_port(*o.listen, "--listen", ap.listen_host, ap.listen_port);
    ap.agent_id = *o.principal;
  }
  if (o.resume_timeout)
    ap.resume_timeout_ms =
      cli::parse_uint(*o.resume_timeout, "--resume-timeout", 1, 3600, "seconds") * 1000;
  if (o.idle_timeout)
    ap.e.limits.session_idle_timeout_ms =
      cli::parse_uint(*o.idle_timeout, "--idle-timeout", 0, 7 * 24 * 3600, "seconds")
      * 1000;
  for (auto& spec : o.pops)
    ap.pops.push_back(parse_pop(spec));
  if (o.tunnels)
    ap.tunnels_target =
      cli::parse_uint(*o.tunnels, "--tunnels", 1, tunnels_target_max, "POPs");
  else if (o.control && !o.connect)
    ap.tunnels_target = 0; // the registered service's tunnels (its K)
  if (o.local)
    cli::parse_host_port(*o.local, "--local", ap.local_host, ap.local_port);
  ap.service = *o.service;
  // scrypt once per process (tens of ms, 32 MiB): every tunnel signs with
  // it. The secret itself is wiped at once: the process keeps only the seed.
  if (!secret_optional || o.secret_file || std::getenv("DRTP_SECRET") != nullptr) {
    auto secret = cli::read_secret(o.secret_file, "DRTP_SECRET");
    auto login = net::derive_login_key(secret, o.connect ? net::principal_salt(*o.principal)
                                                         : net::service_salt(*o.service));
    net::wipe(secret);
    ap.signing_key = login.seed;
    net::wipe(login.seed);
  }
  ap.tls = make_tls_config(o, ap.pops);
  if (o.connect) {
    // the principal is the identity
  } else if (o.agent_id) {
    ap.agent_id = *o.agent_id;
  } else {
    char host[256] = {};
    gethostname(host, sizeof(host) - 1);
    ap.agent_id = host;
  }
  return ap;
}

// -- --control: the control plane names the POPs ------------------------------------

/// Bytes of DIR/bootstrap.json read at start (the follower's own bound).
constexpr size_t snapshot_bytes_max = 1024 * 1024;

/// The follower's own lines reach the main loop tagged, so that its refusal
/// reads as the control plane's, not a POP's.
using control_event_atom = caf::atom_constant<caf::atom("ctlevent")>;

caf::behavior relay_control_events(caf::event_based_actor* self, caf::actor to) {
  return {[self, to](agent_event& ev) { self->send(to, control_event_atom::value, ev); }};
}

void announce(const options& o, const char* me, const agent_params& ap) {
  if (o.control) {
    if (o.connect)
      std::printf("%s: service '%s' as principal '%s', via control plane %s\n", me,
                  o.service->c_str(), o.principal->c_str(), o.control->c_str());
    else
      std::printf("%s: service '%s' -> %s, via control plane %s\n", me, o.service->c_str(),
                  o.local ? o.local->c_str() : "its registered local address",
                  o.control->c_str());
    std::fflush(stdout);
    return;
  }
  std::string via;
  for (auto& ep : ap.pops)
    via += (via.empty() ? "" : ", ") + ep.name;
  if (o.connect)
    std::printf("%s: service '%s' as principal '%s', via POP %s\n", me,
                o.service->c_str(), o.principal->c_str(), via.c_str());
  else
    std::printf("%s: service '%s' -> %s, via POP %s\n", me, o.service->c_str(),
                o.local->c_str(), via.c_str());
  std::fflush(stdout);
}

/// Prints the agent's news until a signal or a fatal error; the exit code.
/// `who` (service/NAME or principal/P) names the caller in a refusal by
/// the control plane.
int report_events(caf::scoped_actor& self, const char* me, const std::string& who) {
  int rc = 0; // 1 once the agent reports a fatal error, which ends the loop
  while (rc == 0 && !cli::stop_requested()) {
    self->receive(
      [&](agent_event& ev) {
        if (ev.kind == agent_event::fatal) {
          std::fprintf(stderr, "%s: error: %s\n", me,
                       net::escape_for_log(ev.what).c_str());
          rc = 1;
        } else if (ev.kind == agent_event::up || ev.kind == agent_event::listening
                   || ev.kind == agent_event::note) {
          std::printf("%s: %s\n", me, net::escape_for_log(ev.what).c_str());
          std::fflush(stdout);
        }
      },
      [&](control_event_atom, agent_event& ev) {
        auto what = net::escape_for_log(ev.what);
        if (ev.kind != agent_event::fatal) {
          std::printf("%s: %s\n", me, what.c_str());
          std::fflush(stdout);
          return;
        }
        // The follower's only fatal answers from the control plane (401,
        // 403, 404) start so; its others are about this side.
        static const std::string answered = "control plane: ";
        if (what.rfind(answered, 0) == 0)
          std::fprintf(stderr, "drtp: the control plane refused %s: %s\n", who.c_str(),
                       what.substr(answered.size()).c_str());
        else
          std::fprintf(stderr, "%s: error: %s\n", me, what.c_str());
        rc = 1;
      },
      caf::after(std::chrono::milliseconds(200)) >> [] {});
  }
  return rc;
}

/// --control: the HTTP client signed in as `kind`/`name`, and the follower
/// that bootstraps, follows and spawns the agent.
caf::actor start_with_control(net::runtime& rt, caf::scoped_actor& self, const options& o,
                              const cli::control_endpoint& cp, agent_params ap,
                              const std::shared_ptr<cli::state_file>& state,
                              const std::shared_ptr<cli::state_file>& identity,
                              const std::string& saved_identity) {
  env e;
  e.io = rt.io();
  // The follower says what matters in one line each (to report_events);
  // its traces and its HTTP client's would say it again, so only with -v.
  e.trace = o.verbosity > 0 ? rt.trace() : net::make_null_tracer();
  e.rng = net::make_system_entropy();
  e.crypto = ap.e.crypto;
  e.clock = rt.clock();
  e.host = "agent";
  e.stats = ap.e.stats; // one registry per process

  http_client_params hp;
  hp.e = e;
  hp.host = cp.host;
  hp.port = cp.port;
  hp.tls = cp.tls;
  hp.name = "control-client";
  std::string kind = o.connect ? control::kind_principal : control::kind_service;
  std::string name = o.connect ? *o.principal : *o.service;
  auto crypto = ap.e.crypto;
  auto seed = ap.signing_key;
  if (!seed.empty()) // else the enroller signs in by the saved certificate
    hp.authorization = [crypto, kind, name, seed](const std::string& binding) {
      return control::auth_header(*crypto, kind, name, seed, binding);
    };

  control::agent_follower_params fp;
  fp.e = e;
  fp.http = spawn_http_client(rt.sys(), std::move(hp));
  if (o.region)
    fp.region = *o.region;
  if (state) {
    std::string error;
    fp.snapshot = state->read(error);
    if (!error.empty())
      std::fprintf(stderr, "%s: ignoring %s\n", o.connect ? "drtp connect" : "drtp serve",
                   error.c_str());
    fp.save_snapshot = [state](const std::string& text) { state->write(text); };
  }
  fp.observer = rt.sys().spawn(relay_control_events, caf::actor_cast<caf::actor>(self));
  fp.agent = std::move(ap);
  if (!identity)
    return control::spawn_agent_follower(rt.sys(), std::move(fp));
  control::enroller_params ep;
  ep.e = e;
  ep.observer = fp.observer;
  ep.follower = std::move(fp);
  ep.kind = kind;
  ep.name = name;
  ep.saved = saved_identity;
  ep.save = [identity](const std::string& text) { identity->write(text); };
  return control::spawn_enroller(rt.sys(), std::move(ep));
}

int serve(cli::args& a, bool connect) {
  // Before the secret is read.
  cli::keep_secrets_out_of_core_dumps();
  auto o = parse_options(a, connect);
  const char* me = connect ? "drtp connect" : "drtp serve";
  // What can fail on the command line fails before anything runs.
  cli::control_endpoint cp;
  std::shared_ptr<cli::state_file> state, identity;
  std::string saved_identity;
  if (o.control) {
    cp = cli::parse_control_endpoint(*o.control, o.control_pin, o.control_ca);
    if (o.state_dir) {
      state = std::make_shared<cli::state_file>(*o.state_dir, "bootstrap.json",
                                                snapshot_bytes_max, me);
      identity = std::make_shared<cli::state_file>(*o.state_dir, "identity.json",
                                                   control::identity_bytes_max, me);
      std::string error;
      saved_identity = identity->read(error);
      if (!error.empty())
        std::fprintf(stderr, "%s: ignoring %s\n", me, error.c_str());
    }
  }
  // An enrolled agent starts by its saved certificate: the secret is only
  // needed to enroll (the enroller says so if the certificate is unusable).
  auto ap = make_agent_params(o, !saved_identity.empty());
  if (identity && saved_identity.empty() && ap.signing_key.empty())
    throw cli::error("no certificate saved in " + identity->path()
                     + " yet: give --secret-file FILE (or $DRTP_SECRET) to enroll");

  cli::install_stop_signals();
  cli::ignore_hangup();
  net::runtime rt{net::make_stderr_tracer(o.verbosity), std::nullopt, o.busy_poll_us};
  caf::scoped_actor self{rt.sys()};
  ap.e.io = rt.io();
  ap.e.trace = rt.trace();
  ap.e.rng = net::make_system_entropy();
  ap.e.crypto = net::make_openssl_crypto();
  ap.e.clock = rt.clock(); // as the POP: wall time for certificates
  ap.e.host = "agent";
  ap.observer = self;
  announce(o, me, ap);
  auto metrics_env = ap.e;
  // Held until the end: the follower (and through it the agent) lives
  // while this handle does.
  caf::actor top = o.control
                     ? start_with_control(rt, self, o, cp, std::move(ap), state, identity,
                                          saved_identity)
                     : spawn_agent(rt.sys(), std::move(ap));
  if (o.metrics)
    cli::start_metrics(rt.sys(), metrics_env, *o.metrics, top, me);
  int rc = report_events(self, me,
                         connect ? "principal/" + o.principal.value_or("")
                                 : "service/" + o.service.value_or(""));
  rt.stop();
  if (state)
    state->flush(); // _Exit runs no destructor: the last snapshot first
  if (identity)
    identity->flush();
  std::fflush(nullptr);
  std::_Exit(rc);
}

} // namespace

int main(int argc, char** argv) {
  try {
    if (argc < 2 || !std::strcmp(argv[1], "-h") || !std::strcmp(argv[1], "--help")) {
      std::fputs(usage, argc < 2 ? stderr : stdout);
      return argc < 2 ? 2 : 0;
    }
    std::string cmd = argv[1];
    drtp::cli::args a{argc, argv, 2};
    if (cmd == "status") {
      if (a.flag("-h") || a.flag("--help")) {
        std::fputs(usage, stdout);
        return 0;
      }
      auto endpoint = a.value("--metrics");
      bool wide = a.flag("--wide");
      bool raw = a.flag("--json");
      a.finish();
      if (!endpoint && std::getenv("DRTP_METRICS"))
        endpoint = std::getenv("DRTP_METRICS");
      if (!endpoint)
        throw drtp::cli::error("status: --metrics HOST:PORT is needed (the address the running "
                               "process was given with --metrics), or $DRTP_METRICS");
      auto body = drtp::cli::http_get(*endpoint, "/debug/sessions", 3000);
      std::fputs(raw ? (body + "\n").c_str() : drtp::cli::render_status(body, wide).c_str(),
                 stdout);
      return 0;
    }
    if (cmd == "serve" || cmd == "connect") {
      if (a.flag("-h") || a.flag("--help")) {
        std::fputs(usage, stdout);
        return 0;
      }
      return serve(a, cmd == "connect");
    }
    throw drtp::cli::error("unknown command '" + cmd + "' (try: drtp --help)");
  } catch (const drtp::cli::error& e) {
    std::fprintf(stderr, "drtp: error: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "drtp: error: %s\n", e.what());
    return 1;
  }
}
