// drtp: the agent side. `drtp serve` runs next to a private service and
// dials out to a POP, so nobody needs to open an inbound port.

#include <cstdio>
#include <cstring>
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

namespace {

const char* usage = R"(drtp - reverse tunnel proxy

Usage:
  drtp serve --pop HOST:PORT[@REGION] [--pop ...] --service NAME
             --local HOST:PORT [options]
  drtp connect --pop HOST:PORT[@REGION] [--pop ...] --service NAME
             --listen HOST:PORT --principal NAME [options]

drtp serve dials out to POPs over TLS and carries the visitors of the
service's public port at those POPs to HOST:PORT here. No inbound port needed.
Given several POPs, it holds tunnels to --tunnels of them, in distinct regions
where it can, and replaces a tunnel whose POP dies or drains.

Options:
  --pop HOST:PORT[@REGION] a POP's tunnel address; repeat for several POPs
  --tunnels K              how many POPs to hold tunnels to (default 2, max 3)
  --service NAME           the service name the POP knows
  --local HOST:PORT        the local service (e.g. 127.0.0.1:5432)
  --secret-file FILE       the service secret (default: $DRTP_SECRET)
  --ca FILE                trust POP certificates signed by this CA (PEM)
  --pop-fingerprint SHA    trust exactly this POP certificate
                           (sha256:HEX, as drtp-pop --dev prints it)
  --server-name NAME       expected name in the POP certificate (with --ca)
  --insecure               do not verify the POP certificate (testing only)
  --agent-id ID            how the POP names this agent (default: hostname)
  --listen HOST:PORT       connect: where the service appears locally
  --principal NAME         connect: who you are to the POP
  --resume-timeout SECONDS how long a patch-panel session waits for a new
                           path, at either end (default 30)
  --busy-poll-us N         after each event, keep polling up to N us before
                           sleeping (default 0 = off; 100 saves most wake-ups
                           on VMs with cores to spare, at a CPU cost)
  -v, --verbose            log every session
  -h, --help               this text

The POP certificate is verified by default: give --ca or --pop-fingerprint.

drtp connect (the patch panel) makes a service appear on --listen here, even
a private one with no public port anywhere. It authenticates as --principal
with that principal's secret (--secret-file or $DRTP_SECRET), holds tunnels
to --tunnels POPs (default 2), and carries each connection as a session that
survives the death of the POP carrying it: it resumes through another POP
without losing a byte, for up to --resume-timeout seconds (default 30).
)";

int serve(drtp::cli::args& a, bool connect) {
  using namespace drtp;
  auto listen = connect ? a.value("--listen") : std::nullopt;
  auto principal = connect ? a.value("--principal") : std::nullopt;
  auto resume_timeout = a.value("--resume-timeout");
  auto pops = a.values("--pop");
  auto tunnels = a.value("--tunnels");
  auto service = a.value("--service");
  auto local = connect ? std::nullopt : a.value("--local");
  auto secret_file = a.value("--secret-file");
  auto ca = a.value("--ca");
  auto fp = a.value("--pop-fingerprint");
  auto server_name = a.value("--server-name");
  bool insecure = a.flag("--insecure");
  auto agent_id = a.value("--agent-id");
  int verbosity = (a.flag("-v") || a.flag("--verbose")) ? 1 : 0;
  auto busy_poll_us = cli::busy_poll_us(a);
  a.finish();
  if (connect && (pops.empty() || !service || !listen || !principal))
    throw cli::error("connect needs --pop, --service, --listen and --principal "
                     "(see --help)");
  if (!connect && (pops.empty() || !service || !local))
    throw cli::error("serve needs --pop, --service and --local (see --help)");
  agent_params ap;
  ap.client = connect;
  if (connect) {
    cli::parse_host_port(*listen, "--listen", ap.listen_host, ap.listen_port);
    ap.agent_id = *principal;
  }
  if (resume_timeout)
    ap.resume_timeout_ms =
      cli::parse_uint(*resume_timeout, "--resume-timeout", 1, 3600, "seconds") * 1000;
  for (auto& spec : pops) {
    pop_endpoint ep;
    auto at = spec.find('@');
    cli::parse_host_port(spec.substr(0, at), "--pop", ep.host, ep.port);
    if (at != std::string::npos)
      ep.region = spec.substr(at + 1);
    ep.name = spec.substr(0, at);
    ap.pops.push_back(std::move(ep));
  }
  if (tunnels)
    ap.tunnels_target =
      cli::parse_uint(*tunnels, "--tunnels", 1, tunnels_target_max, "POPs");
  if (local)
    cli::parse_host_port(*local, "--local", ap.local_host, ap.local_port);
  ap.service = *service;
  ap.key = net::derive_key(cli::read_secret(secret_file, "DRTP_SECRET"));
  auto tls = std::make_shared<net::tls_client_config>();
  if (insecure) {
    tls->verify = false;
  } else if (fp) {
    auto hex = *fp;
    if (hex.rfind("sha256:", 0) == 0)
      hex = hex.substr(7);
    if (!net::from_hex(hex, tls->fingerprint_sha256)
        || tls->fingerprint_sha256.size() != 32)
      throw cli::error("--pop-fingerprint must be sha256: and 64 hex digits");
  } else if (ca) {
    if (access(ca->c_str(), R_OK) != 0)
      throw cli::error("cannot read CA file " + *ca + ": " + std::strerror(errno));
    tls->ca_file = *ca;
    if (server_name)
      tls->server_name = *server_name; // else each POP's own host name
  } else {
    throw cli::error("cannot verify the POP: pass --ca FILE or "
                     "--pop-fingerprint sha256:HEX (or --insecure for tests)");
  }
  ap.tls = tls;
  if (connect) {
    // the principal is the identity
  } else if (agent_id) {
    ap.agent_id = *agent_id;
  } else {
    char host[256] = {};
    gethostname(host, sizeof(host) - 1);
    ap.agent_id = host;
  }

  cli::install_stop_signals();
  net::runtime rt{net::make_stderr_tracer(verbosity), std::nullopt, busy_poll_us};
  caf::scoped_actor self{rt.sys()};
  ap.e.io = rt.io();
  ap.e.trace = rt.trace();
  ap.e.rng = net::make_system_entropy();
  ap.e.crypto = net::make_openssl_crypto();
  ap.e.host = "agent";
  ap.observer = self;
  std::string via;
  for (auto& ep : ap.pops)
    via += (via.empty() ? "" : ", ") + ep.name;
  const char* me = connect ? "drtp connect" : "drtp serve";
  if (connect)
    std::printf("%s: service '%s' as principal '%s', via POP %s\n", me,
                service->c_str(), principal->c_str(), via.c_str());
  else
    std::printf("%s: service '%s' -> %s, via POP %s\n", me, service->c_str(),
                local->c_str(), via.c_str());
  std::fflush(stdout);
  spawn_agent(rt.sys(), std::move(ap));
  int rc = 0;
  bool running = true;
  while (running && !cli::stop_requested()) {
    self->receive(
      [&](agent_event& ev) {
        if (ev.kind == agent_event::fatal) {
          std::fprintf(stderr, "%s: error: %s\n", me, ev.what.c_str());
          rc = 1;
          running = false;
        } else if (ev.kind == agent_event::up || ev.kind == agent_event::listening) {
          std::printf("%s: %s\n", me, ev.what.c_str());
          std::fflush(stdout);
        }
      },
      caf::after(std::chrono::milliseconds(200)) >> [] {});
  }
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
