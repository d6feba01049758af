// drtp: the agent side. `drtp serve` runs next to a private service and
// dials out to a POP, so nobody needs to open an inbound port.

#include <cstdio>
#include <cstring>
#include <optional>
#include <unistd.h>

#include "actors/agent.hpp"
#include "actors/messages.hpp"
#include "caf/all.hpp"
#include "net/stderr_tracer.hpp"
#include "net/openssl_crypto.hpp"
#include "net/wire/handshake.hpp"
#include "net/tls.hpp"
#include "cli/args.hpp"
#include "cli/secrets.hpp"
#include "cli/signals.hpp"
#include "net/runtime.hpp"
#include "net/seam/trace.hpp"

namespace {

const char* usage = R"(drtp - reverse tunnel proxy

Usage:
  drtp serve --pop HOST:PORT[@REGION][,fingerprint=SHA] [--pop ...]
             --service NAME --local HOST:PORT [options]
  drtp connect --pop HOST:PORT[@REGION][,fingerprint=SHA] [--pop ...] --service NAME
             --listen HOST:PORT --principal NAME [options]

drtp serve dials out to POPs over TLS and carries the visitors of the
service's public port at those POPs to HOST:PORT here. No inbound port needed.
Given several POPs, it holds tunnels to --tunnels of them, in distinct regions
where it can, and replaces a tunnel whose POP dies or drains.

Options:
  --pop HOST:PORT[@REGION][,fingerprint=SHA]
                           a POP's tunnel address; repeat for several POPs.
                           fingerprint=sha256:HEX pins that POP's own
                           certificate (each drtp-pop --dev has its own)
  --tunnels K              how many POPs to hold tunnels to (default 2, max 3)
  --service NAME           the service name the POP knows
  --local HOST:PORT        the local service (e.g. 127.0.0.1:5432)
  --secret-file FILE       the service secret (default: $DRTP_SECRET)
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
  --busy-poll-us N         after each event, keep polling up to N us before
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
    local, secret_file, ca, fp, server_name, agent_id;
  std::vector<std::string> pops, fps;
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
  o.verbosity = (a.flag("-v") || a.flag("--verbose")) ? 1 : 0;
  o.busy_poll_us = cli::busy_poll_us(a);
  a.finish();
  if (connect && (o.pops.empty() || !o.service || !o.listen || !o.principal))
    throw cli::error("connect needs --pop, --service, --listen and --principal "
                     "(see --help)");
  if (!connect && (o.pops.empty() || !o.service || !o.local))
    throw cli::error("serve needs --pop, --service and --local (see --help)");
  return o;
}

/// A pin: sha256: and 64 hex digits; throws naming `what`.
std::shared_ptr<net::tls_client_config> pin(const std::string& text,
                                            const std::string& what) {
  auto tls = std::make_shared<net::tls_client_config>();
  auto hex = text;
  if (hex.rfind("sha256:", 0) == 0)
    hex = hex.substr(7);
  if (!net::from_hex(hex, tls->fingerprint_sha256) || tls->fingerprint_sha256.size() != 32)
    throw cli::error(what + " must be sha256: and 64 hex digits");
  return tls;
}

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
    ep.tls = pin(opt.substr(fp_key.size()), "--pop " + addr + ": fingerprint");
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
    tls = pin(*o.fp, "--pop-fingerprint");
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
agent_params make_agent_params(const options& o) {
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
  if (o.local)
    cli::parse_host_port(*o.local, "--local", ap.local_host, ap.local_port);
  ap.service = *o.service;
  // scrypt once per process (tens of ms, 32 MiB): every tunnel signs with
  // it. The secret itself is wiped at once: the process keeps only the seed.
  auto secret = cli::read_secret(o.secret_file, "DRTP_SECRET");
  auto login = net::derive_login_key(secret, o.connect ? net::principal_salt(*o.principal)
                                                       : net::service_salt(*o.service));
  net::wipe(secret);
  ap.signing_key = login.seed;
  net::wipe(login.seed);
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

void announce(const options& o, const char* me, const agent_params& ap) {
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
int report_events(caf::scoped_actor& self, const char* me) {
  int rc = 0; // 1 once the agent reports a fatal error, which ends the loop
  while (rc == 0 && !cli::stop_requested()) {
    self->receive(
      [&](agent_event& ev) {
        if (ev.kind == agent_event::fatal) {
          std::fprintf(stderr, "%s: error: %s\n", me,
                       net::escape_for_log(ev.what).c_str());
          rc = 1;
        } else if (ev.kind == agent_event::up || ev.kind == agent_event::listening) {
          std::printf("%s: %s\n", me, net::escape_for_log(ev.what).c_str());
          std::fflush(stdout);
        }
      },
      caf::after(std::chrono::milliseconds(200)) >> [] {});
  }
  return rc;
}

int serve(cli::args& a, bool connect) {
  // Before the secret is read.
  cli::keep_secrets_out_of_core_dumps();
  auto o = parse_options(a, connect);
  auto ap = make_agent_params(o);

  cli::install_stop_signals();
  cli::ignore_hangup();
  net::runtime rt{net::make_stderr_tracer(o.verbosity), std::nullopt, o.busy_poll_us};
  caf::scoped_actor self{rt.sys()};
  ap.e.io = rt.io();
  ap.e.trace = rt.trace();
  ap.e.rng = net::make_system_entropy();
  ap.e.crypto = net::make_openssl_crypto();
  ap.e.host = "agent";
  ap.observer = self;
  const char* me = connect ? "drtp connect" : "drtp serve";
  announce(o, me, ap);
  spawn_agent(rt.sys(), std::move(ap));
  int rc = report_events(self, me);
  rt.stop();
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
