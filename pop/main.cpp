// drtp-pop: the point of presence. Agents dial in over TLS; visitors connect
// to each service's public port and are carried through a tunnel.

#include <csignal>
#include <cstdio>
#include <iostream>
#include <iterator>
#include <sys/stat.h>
#include <thread>

#include "actors/messages.hpp"
#include "actors/admin.hpp"
#include "actors/pop_server.hpp"
#include "caf/all.hpp"
#include "net/stderr_tracer.hpp"
#include "net/openssl_crypto.hpp"
#include "net/wire/handshake.hpp"
#include "net/tls.hpp"
#include "pop/config.hpp"
#include "cli/args.hpp"
#include "cli/secrets.hpp"
#include "cli/signals.hpp"
#include "net/runtime.hpp"

namespace {

const char* usage = R"(drtp-pop - a DRTP point of presence

Agents (drtp serve) dial in over TLS; visitors connect to a service's public
port and reach the service through an agent's tunnel.

Usage:
  drtp-pop --config FILE [options]
  drtp-pop --service NAME --public HOST:PORT [--secret-file FILE] [options]
  drtp-pop hash-secret          read a secret on stdin, print its secret_sha256
  drtp-pop gen-cert --cert FILE --key FILE [--name NAME]
                                write a self-signed certificate, print its
                                fingerprint (for --pop-fingerprint)

Options:
  --config FILE           YAML: listen, tls {cert, key}, services (see README)
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
  --admin HOST:PORT        operator commands, one per connection: `drain`
                           or `status` (no authentication: keep it on
                           loopback), e.g. echo drain | nc 127.0.0.1 7001
  --busy-poll-us N         after each event, keep polling up to N us before
                           sleeping (default 0 = off; 100 saves most wake-ups
                           on VMs with cores to spare, at a CPU cost)
  -v, --verbose           log every session
  -h, --help              this text

SIGTERM drains the POP: its listeners close, agents get goaway and move to
other POPs, open sessions run to their end (at most the grace period), then
it exits. A second SIGTERM, or SIGINT, stops it at once.
)";

int run(int argc, char** argv) {
  using namespace drtp;
  if (argc >= 2 && std::string(argv[1]) == "hash-secret") {
    std::string secret{std::istreambuf_iterator<char>(std::cin), {}};
    while (!secret.empty() && (secret.back() == '\n' || secret.back() == '\r'))
      secret.pop_back();
    if (secret.empty())
      throw cli::error("no secret on standard input");
    std::printf("%s\n", net::to_hex(net::derive_key(secret)).c_str());
    return 0;
  }
  if (argc >= 2 && std::string(argv[1]) == "gen-cert") {
    cli::args g{argc, argv, 2};
    auto cert = g.value("--cert");
    auto key = g.value("--key");
    auto name = g.value("--name");
    g.finish();
    if (!cert || !key)
      throw cli::error("gen-cert needs --cert FILE and --key FILE");
    auto id = net::make_self_signed(name ? *name : "drtp-pop");
    auto write = [](const std::string& path, const std::string& text) {
      FILE* f = std::fopen(path.c_str(), "w");
      if (!f || std::fwrite(text.data(), 1, text.size(), f) != text.size())
        throw cli::error("cannot write " + path);
      std::fclose(f);
    };
    write(*cert, id.cert_pem);
    write(*key, id.key_pem);
    chmod(key->c_str(), 0600);
    std::printf("sha256:%s\n",
                net::to_hex(net::fingerprint_sha256(id.cert_pem)).c_str());
    return 0;
  }
  cli::args a{argc, argv, 1};
  if (a.flag("-h") || a.flag("--help")) {
    std::fputs(usage, stdout);
    return 0;
  }
  auto config_file = a.value("--config");
  auto listen = a.value("--listen");
  auto cert = a.value("--cert");
  auto key = a.value("--key");
  bool dev = a.flag("--dev");
  auto fp_out = a.value("--fingerprint-out");
  auto service = a.value("--service");
  auto public_addr = a.value("--public");
  auto secret_file = a.value("--secret-file");
  auto grace = a.value("--drain-grace");
  auto admin = a.value("--admin");
  std::string admin_host;
  uint16_t admin_port = 0;
  if (admin)
    cli::parse_host_port(*admin, "--admin", admin_host, admin_port);
  bool is_private = a.flag("--private");
  auto allows = a.values("--allow");
  auto principal_specs = a.values("--principal");
  int verbosity = (a.flag("-v") || a.flag("--verbose")) ? 1 : 0;
  auto busy_poll_us = cli::busy_poll_us(a);
  auto extra = a.positional();
  if (!extra.empty())
    throw cli::error("unexpected argument '" + extra.front() + "' (see --help)");
  a.finish();

  pop::config cfg;
  if (config_file) {
    cfg = pop::load_config(*config_file);
    if (service)
      throw cli::error("use either --config or --service, not both");
  } else if (service) {
    if (!public_addr && !is_private)
      throw cli::error("--service needs --public HOST:PORT (or --private)");
    service_config sc;
    sc.name = *service;
    sc.key = net::derive_key(cli::read_secret(secret_file, "DRTP_SECRET"));
    if (is_private) {
      sc.is_public = false;
      if (public_addr)
        throw cli::error("--private and --public exclude each other");
    } else {
      cli::parse_host_port(*public_addr, "--public", sc.public_host,
                           sc.public_port);
    }
    sc.allow = allows;
    cfg.services.push_back(std::move(sc));
  } else {
    throw cli::error("no services: pass --config FILE or --service NAME "
                     "(see --help)");
  }
  if (listen)
    cli::parse_host_port(*listen, "--listen", cfg.listen_host, cfg.listen_port);
  for (auto& spec : principal_specs) {
    auto eq = spec.find('=');
    if (eq == std::string::npos || eq == 0)
      throw cli::error("--principal must be NAME=SECRET_FILE, got '" + spec + "'");
    principal_config pc;
    pc.name = spec.substr(0, eq);
    pc.key = net::derive_key(cli::read_secret(spec.substr(eq + 1), "DRTP_SECRET"));
    cfg.principals.push_back(std::move(pc));
  }
  if (cert || key) {
    if (!cert || !key)
      throw cli::error("--cert and --key go together");
    cfg.cert_file = *cert;
    cfg.key_file = *key;
  }

  net::tls_identity identity;
  if (dev) {
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
  auto fp = "sha256:" + net::to_hex(net::fingerprint_sha256(identity.cert_pem));
  if (dev) {
    std::printf("drtp-pop: development mode, self-signed certificate %s\n",
                fp.c_str());
    if (fp_out) {
      FILE* f = std::fopen(fp_out->c_str(), "w");
      if (!f)
        throw cli::error("cannot write " + *fp_out);
      std::fprintf(f, "%s\n", fp.c_str());
      std::fclose(f);
    }
  }

  cli::install_stop_signals();
  net::runtime rt{net::make_stderr_tracer(verbosity), identity, busy_poll_us};
  caf::scoped_actor self{rt.sys()};
  pop_params pp;
  pp.e.io = rt.io();
  pp.e.trace = rt.trace();
  pp.e.rng = net::make_system_entropy();
  pp.e.crypto = net::make_openssl_crypto();
  pp.e.host = "pop";
  pp.tunnel_host = cfg.listen_host;
  pp.tunnel_port = cfg.listen_port;
  pp.services = cfg.services;
  pp.principals = cfg.principals;
  pp.observer = self;
  if (grace)
    pp.drain_grace_ms = cli::parse_uint(*grace, "--drain-grace", 0, 3600, "seconds")
                        * 1000;
  auto admin_env = pp.e;
  auto pop = spawn_pop_server(rt.sys(), std::move(pp));
  if (admin)
    spawn_admin(rt.sys(), admin_env, admin_host, admin_port, pop, self);
  int rc = 0;
  bool ready = false;
  self->receive(
    [&](pop_ready& r) {
      ready = true;
      std::printf("drtp-pop: agents dial %s:%u (TLS)\n", cfg.listen_host.c_str(),
                  r.tunnel_port);
      for (auto& s : cfg.services)
        if (s.is_public)
          std::printf("drtp-pop: service '%s' public on %s:%u\n", s.name.c_str(),
                      s.public_host.c_str(), r.public_ports[s.name]);
        else
          std::printf("drtp-pop: service '%s' private (patch panel only)\n",
                      s.name.c_str());
      std::fflush(stdout);
    },
    [&](pop_failed& f) {
      std::fprintf(stderr, "drtp-pop: error: %s\n", f.what.c_str());
      rc = 1;
    },
    caf::after(std::chrono::seconds(10)) >> [&] {
      std::fprintf(stderr, "drtp-pop: error: listeners not ready after 10 s\n");
      rc = 1;
    });
  bool draining = false;
  bool drained = false;
  while (ready && !drained) {
    if (cli::stop_requested()) {
      if (cli::stop_signal() == SIGTERM && !draining) {
        std::fprintf(stderr, "drtp-pop: SIGTERM: draining (again to stop now)\n");
        draining = true;
        cli::clear_stop_signal();
        self->send(pop, drain_atom::value);
      } else {
        std::fprintf(stderr, "drtp-pop: stopping now (signal %d)\n",
                     cli::stop_signal());
        break;
      }
    }
    self->receive(
      [&](const pop_drained& d) {
        drained = true;
        std::fprintf(stderr, "drtp-pop: drained, %u session(s) cut; exiting\n",
                     d.sessions_cut);
      },
      [&](const pop_failed& f) {
        std::fprintf(stderr, "drtp-pop: error: %s\n", f.what.c_str());
        rc = 1;
        drained = true; // stop
      },
      [](const caf::message&) {},
      caf::after(std::chrono::milliseconds(100)) >> [] {});
  }
  if (drained)
    std::this_thread::sleep_for(std::chrono::milliseconds(100)); // last answers out
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
