// drtp-control: the control plane's registry (docs/control-plane.md). The
// API's logic is control/registry, an actors/http_server handler over a
// store actor; this binary reads the config, opens the store, serves the
// API over TLS on net::runtime, and stops cleanly on SIGTERM or SIGINT.

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <algorithm>
#include <fstream>
#include <optional>
#include <set>
#include <sys/stat.h>
#include <unistd.h>

#include <yaml-cpp/yaml.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "actors/http_server.hpp"
#include "caf/all.hpp"
#include "cli/args.hpp"
#include "cli/metrics_option.hpp"
#include "cli/secrets.hpp"
#include "cli/signals.hpp"
#include "control/auth.hpp"
#include "control/etcd_store.hpp"
#include "control/registry.hpp"
#include "control/sqlite_store.hpp"
#include "net/openssl_crypto.hpp"
#include "net/runtime.hpp"
#include "net/stderr_tracer.hpp"
#include "net/tls.hpp"
#include "net/wire/handshake.hpp"

namespace {

const char* usage = R"(drtp-control - the DRTP control plane (registry and API)

Usage:
  drtp-control --config FILE [--listen HOST:PORT] [-v]
  drtp-control --dev [--state-dir DIR] [--listen HOST:PORT] [-v]
  drtp-control gen-admin-token --out FILE
                        write a new random admin token to FILE (0600, never
                        overwritten); print the config's admin_token_sha256
  drtp-control gen-secret --pop --out FILE
                        write a new POP fleet secret to FILE (0600); print the
                        config's pop_public_key (every POP reads FILE)
  drtp-control gen-secret (--service NAME | --principal NAME) --out FILE
                        a service's or principal's secret; print its publicKey

Config (YAML):
  listen: 0.0.0.0:7443                  where the API is served (TLS)
  tls: {cert: cert.pem, key: key.pem}   the server certificate and key (PEM)
  store: sqlite:/var/lib/drtp/registry.db
         (or etcd:http://10.0.0.1:2379,http://10.0.0.2:2379)
  admin_token_sha256: sha256:HEX        from gen-admin-token
  pop_public_key: ed25519:HEX           from gen-secret --pop (optional)
  lease_duration_s: 30                  a POP's lease when it does not say
  ca: {cert: ca.pem, key: ca.key}       the enrollment CA (Ed25519, PEM;
                                        optional: without it no certificates)
  cert_lifetime_s: 86400                issued certificates' lifetime (60..2592000)

Options:
  --config FILE         the config above
  --dev                 development mode, no config: a self-signed certificate,
                        a SQLite store, an admin token, a POP fleet secret and
                        an enrollment CA (ca.pem, ca.key), all kept in the state directory (reused when present);
                        prints the certificate's pin and where the token is
  --state-dir DIR       with --dev: where (default: a new /tmp/drtp-control-*)
  --listen HOST:PORT    overrides the config's listen (port 0: any free port;
                        the ready line says which)
  --cert-lifetime S     overrides cert_lifetime_s (60..2592000; e.g. 60 for a
                        demo in which renewals happen while you watch)
)" DRTP_METRICS_HELP R"(  -v, --verbose         log every connection
  -h, --help            this text

Once serving it prints one line:
  drtp-control: listening on HOST:PORT (store sqlite:PATH)
SIGTERM or SIGINT stops it.
)";

using namespace drtp;

constexpr uint32_t lease_duration_s_max = 600;

struct config {
  std::string listen_host = "127.0.0.1";
  uint16_t listen_port = 7443;
  std::string cert_file, key_file;
  std::string store = "";          // "sqlite:PATH" or "etcd:URLS"
  std::string admin_token_sha256;  // "sha256:HEX"
  std::string pop_public_key;      // raw, or empty
  uint32_t lease_duration_s = 30;
  bool dev = false;
  std::optional<net::tls_identity> identity; // --dev: made or read here
  // The enrollment CA (issue 15): --dev makes it in the state directory,
  // a config names it (ca: {cert, key}); none: no enrollment.
  std::string ca_seed;
  std::string ca_cert_pem;
  uint32_t cert_lifetime_s = 86400;
  std::optional<std::string> metrics; // --metrics HOST:PORT
};

/// Issued certificates live at least this long (a demo) and at most 30 days.
constexpr uint32_t cert_lifetime_s_min = 60;
constexpr uint32_t cert_lifetime_s_max = 30 * 86400;
/// The CA made by --dev is valid this long.
constexpr int64_t ca_lifetime_s = int64_t{10} * 365 * 86400;

std::string read_small_file(const std::string& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in)
    throw cli::error("cannot read " + file + ": " + std::strerror(errno));
  std::string out(net::pem_bytes_max + 1, '\0');
  in.read(out.data(), static_cast<std::streamsize>(out.size()));
  out.resize(static_cast<size_t>(in.gcount()));
  if (out.size() > net::pem_bytes_max)
    throw cli::error(file + ": longer than " + std::to_string(net::pem_bytes_max) + " bytes");
  return out;
}

/// The CA's seed from its key file: the PKCS#8 PEM of an Ed25519 key (what
/// --dev writes, and `openssl genpkey -algorithm ed25519`).
std::string read_ca_seed(const std::string& file) {
  auto pem = read_small_file(file);
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  EVP_PKEY* key = bio ? PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr) : nullptr;
  BIO_free(bio);
  net::wipe(pem);
  std::string seed(net::seed_bytes, '\0');
  size_t n = seed.size();
  bool ok = key && EVP_PKEY_get_id(key) == EVP_PKEY_ED25519
            && EVP_PKEY_get_raw_private_key(key, reinterpret_cast<unsigned char*>(seed.data()),
                                            &n)
                 == 1
            && n == net::seed_bytes;
  EVP_PKEY_free(key);
  ERR_clear_error();
  if (!ok)
    throw cli::error(file + ": not an Ed25519 private key in PEM");
  return seed;
}

/// Loads the CA and checks that its key is its certificate's (by issuing
/// one throwaway certificate).
void load_ca(config& c, const std::string& cert_file, const std::string& key_file) {
  c.ca_cert_pem = read_small_file(cert_file);
  c.ca_seed = read_ca_seed(key_file);
  auto crypto = net::make_openssl_crypto();
  auto probe_seed = net::make_system_entropy()->bytes(net::seed_bytes);
  auto now_s = static_cast<int64_t>(std::time(nullptr));
  if (crypto->issue_certificate(c.ca_seed, c.ca_cert_pem, crypto->make_csr(probe_seed, "probe"),
                                "probe", "1", now_s, now_s + 60)
        .empty())
    throw cli::error(cert_file + ": not a CA certificate of the key in " + key_file);
  net::wipe(probe_seed);
}

// -- the config file -----------------------------------------------------------

[[noreturn]] void fail(const std::string& path, const YAML::Node& n, const std::string& what) {
  auto m = n.Mark();
  std::string where = path;
  if (!m.is_null())
    where += ":" + std::to_string(m.line + 1);
  throw cli::error(where + ": " + what);
}

std::string scalar(const std::string& path, const YAML::Node& n, const std::string& key) {
  if (!n.IsScalar())
    fail(path, n, "'" + key + "' must be a string");
  return n.Scalar();
}

/// Every key of `map` is one of `known` and appears once (yaml-cpp would
/// keep one of two silently).
void check_keys(const std::string& path, const YAML::Node& map,
                const std::vector<std::string>& known, const std::string& what) {
  std::set<std::string> seen;
  for (auto kv : map) {
    if (!kv.first.IsScalar())
      fail(path, kv.first, "a key must be a plain word");
    auto key = kv.first.Scalar();
    if (std::find(known.begin(), known.end(), key) == known.end())
      fail(path, kv.first, "unknown " + what + " '" + key + "'");
    if (!seen.insert(key).second)
      fail(path, kv.first, "'" + key + "' appears twice");
  }
}

YAML::Node load_yaml(const std::string& path) {
  std::ifstream probe{path};
  if (!probe)
    throw cli::error("cannot read config file " + path + ": " + std::strerror(errno));
  try {
    return YAML::LoadFile(path);
  } catch (const YAML::Exception& e) {
    throw cli::error(path + ":" + std::to_string(e.mark.line + 1) + ": " + e.msg);
  }
}

/// "sqlite:PATH" or "etcd:http://h:p,..." (checked here, so a typo is a
/// config error with its line, not a failure later).
void check_store(const std::string& path, const YAML::Node& n, const std::string& store) {
  if (store.rfind("sqlite:", 0) == 0) {
    if (store.size() == 7)
      fail(path, n, "'store' sqlite: needs a path (sqlite:/var/lib/drtp/registry.db)");
    return;
  }
  if (store.rfind("etcd:", 0) == 0) {
    std::vector<control::etcd_member> members;
    std::string error;
    if (!control::parse_etcd_url(store, members, error))
      fail(path, n, "'store': " + error);
    return;
  }
  fail(path, n, "'store' must be sqlite:PATH or etcd:http://HOST:PORT,...");
}

void read_top_keys(const std::string& path, const YAML::Node& root, config& c) {
  if (auto n = root["listen"])
    try {
      cli::parse_host_port(scalar(path, n, "listen"), "'listen'", c.listen_host, c.listen_port);
    } catch (const cli::error& e) {
      fail(path, n, e.what());
    }
  if (auto n = root["store"]) {
    c.store = scalar(path, n, "store");
    check_store(path, n, c.store);
  } else {
    fail(path, root, "'store' is missing (sqlite:PATH or etcd:http://HOST:PORT,...)");
  }
  if (auto n = root["admin_token_sha256"]) {
    c.admin_token_sha256 = scalar(path, n, "admin_token_sha256");
    std::string raw;
    if (c.admin_token_sha256.rfind("sha256:", 0) != 0
        || !net::from_hex(c.admin_token_sha256.substr(7), raw) || raw.size() != 32)
      fail(path, n, "'admin_token_sha256' must be sha256: and 64 hex digits "
                    "(see drtp-control gen-admin-token)");
    c.admin_token_sha256 = "sha256:" + net::to_hex(raw); // lowercase, as computed
  } else {
    fail(path, root, "'admin_token_sha256' is missing (see drtp-control gen-admin-token)");
  }
  if (auto n = root["pop_public_key"])
    if (!control::parse_public_key(scalar(path, n, "pop_public_key"), c.pop_public_key))
      fail(path, n, "'pop_public_key' must be ed25519: and 64 hex digits "
                    "(see drtp-control gen-secret --pop)");
  if (auto n = root["lease_duration_s"])
    try {
      c.lease_duration_s = cli::parse_uint(scalar(path, n, "lease_duration_s"),
                                           "'lease_duration_s'", 1, lease_duration_s_max,
                                           "seconds");
    } catch (const cli::error& e) {
      fail(path, n, e.what());
    }
}

config load_config(const std::string& path) {
  auto root = load_yaml(path);
  if (!root.IsMap())
    fail(path, root, "the config must be a map of keys (see --help)");
  check_keys(path, root,
             {"listen", "tls", "store", "admin_token_sha256", "pop_public_key",
              "lease_duration_s", "ca", "cert_lifetime_s"},
             "key");
  config c;
  read_top_keys(path, root, c);
  auto tls = root["tls"];
  if (!tls)
    fail(path, root, "'tls' is missing ({cert: FILE, key: FILE}; or run --dev)");
  if (!tls.IsMap())
    fail(path, tls, "'tls' must be a map {cert: FILE, key: FILE}");
  check_keys(path, tls, {"cert", "key"}, "tls key");
  if (!tls["cert"] || !tls["key"])
    fail(path, tls, "'tls' needs both 'cert' and 'key'");
  c.cert_file = scalar(path, tls["cert"], "tls.cert");
  c.key_file = scalar(path, tls["key"], "tls.key");
  try {
    c.identity = net::load_identity(c.cert_file, c.key_file);
  } catch (const std::exception& e) {
    fail(path, tls, e.what());
  }
  if (auto ca = root["ca"]) {
    if (!ca.IsMap())
      fail(path, ca, "'ca' must be a map {cert: FILE, key: FILE}");
    check_keys(path, ca, {"cert", "key"}, "ca key");
    if (!ca["cert"] || !ca["key"])
      fail(path, ca, "'ca' needs both 'cert' and 'key'");
    try {
      load_ca(c, scalar(path, ca["cert"], "ca.cert"), scalar(path, ca["key"], "ca.key"));
    } catch (const cli::error& e) {
      fail(path, ca, e.what());
    }
  }
  if (auto n = root["cert_lifetime_s"])
    try {
      c.cert_lifetime_s = cli::parse_uint(scalar(path, n, "cert_lifetime_s"),
                                          "'cert_lifetime_s'", cert_lifetime_s_min,
                                          cert_lifetime_s_max, "seconds");
    } catch (const cli::error& e) {
      fail(path, n, e.what());
    }
  return c;
}

// -- secrets and development mode ------------------------------------------------

std::string random_hex(size_t bytes) {
  return net::to_hex(net::make_system_entropy()->bytes(bytes));
}

bool file_exists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}


/// --dev: everything in `dir`, made on the first run, reused after (so a
/// restart keeps the pin, the token and the data).
config dev_config(const std::string& dir) {
  config c;
  c.dev = true;
  auto cert = dir + "/cert.pem", key = dir + "/key.pem";
  if (!file_exists(cert) || !file_exists(key)) {
    auto id = net::make_self_signed("drtp-control");
    cli::write_new_file(key, id.key_pem, 0600);
    cli::write_new_file(cert, id.cert_pem, 0644);
  }
  c.identity = net::load_identity(cert, key);
  auto token_file = dir + "/admin.token";
  if (!file_exists(token_file))
    cli::write_new_file(token_file, random_hex(32) + "\n", 0600);
  auto crypto = net::make_openssl_crypto();
  auto token = cli::read_secret(token_file, "DRTP_TOKEN");
  c.admin_token_sha256 = control::admin_token_digest(*crypto, token);
  net::wipe(token);
  auto pops = dir + "/pops.secret";
  if (!file_exists(pops))
    cli::write_new_file(pops, random_hex(32) + "\n", 0600);
  c.pop_public_key = net::derive_public_key(cli::read_secret(pops, "DRTP_SECRET"),
                                            control::pop_fleet_salt());
  c.store = "sqlite:" + dir + "/registry.db";
  auto ca_cert = dir + "/ca.pem", ca_key = dir + "/ca.key";
  if (!file_exists(ca_cert) || !file_exists(ca_key)) {
    auto seed = net::make_system_entropy()->bytes(net::seed_bytes);
    auto key_pem = crypto->private_key_pem(seed);
    auto cert_pem = crypto->make_ca_certificate(
      seed, "drtp-control CA", static_cast<int64_t>(std::time(nullptr)) - 300, ca_lifetime_s);
    net::wipe(seed);
    if (key_pem.empty() || cert_pem.empty())
      throw cli::error("cannot make the enrollment CA");
    cli::write_new_file(ca_key, key_pem, 0600);
    net::wipe(key_pem);
    cli::write_new_file(ca_cert, cert_pem, 0644);
  }
  load_ca(c, ca_cert, ca_key);
  std::printf("drtp-control: enrollment CA in %s (key %s)\n", ca_cert.c_str(), ca_key.c_str());
  auto pin = "sha256:" + net::to_hex(net::fingerprint_sha256(c.identity->cert_pem));
  if (!file_exists(dir + "/pin"))
    cli::write_new_file(dir + "/pin", pin + "\n", 0644);
  std::printf("drtp-control: development mode, state in %s\n", dir.c_str());
  std::printf("drtp-control: certificate pin %s (also in %s/pin)\n", pin.c_str(), dir.c_str());
  std::printf("drtp-control: admin token in %s (drtpctl --token-file)\n", token_file.c_str());
  std::printf("drtp-control: POP fleet secret in %s, pop_public_key %s\n", pops.c_str(),
              control::public_key_text(c.pop_public_key).c_str());
  return c;
}

std::string dev_state_dir(const std::optional<std::string>& given) {
  if (given) {
    if (::mkdir(given->c_str(), 0700) != 0 && errno != EEXIST)
      throw cli::error("cannot make state directory " + *given + ": " + std::strerror(errno));
    return *given;
  }
  char tmpl[] = "/tmp/drtp-control-XXXXXX";
  if (!::mkdtemp(tmpl))
    throw cli::error(std::string("cannot make a state directory in /tmp: ")
                     + std::strerror(errno));
  return tmpl;
}

int gen_admin_token(int argc, char** argv) {
  cli::args g{argc, argv, 2};
  if (g.flag("-h") || g.flag("--help")) {
    std::fputs("drtp-control gen-admin-token --out FILE\n"
               "  writes a random admin token to FILE (0600, never overwritten) and\n"
               "  prints the config's admin_token_sha256 line (never the token)\n", stdout);
    return 0;
  }
  auto out = g.value("--out");
  g.finish();
  if (!out)
    throw cli::error("gen-admin-token needs --out FILE");
  auto token = random_hex(32);
  cli::write_new_file(*out, token + "\n", 0600);
  std::printf("admin_token_sha256: %s\n",
              control::admin_token_digest(*net::make_openssl_crypto(), token).c_str());
  net::wipe(token);
  return 0;
}

int gen_secret(int argc, char** argv) {
  cli::args g{argc, argv, 2};
  if (g.flag("-h") || g.flag("--help")) {
    std::fputs("drtp-control gen-secret (--pop | --service NAME | --principal NAME) --out FILE\n"
               "  writes a random secret to FILE (0600, never overwritten) and prints\n"
               "  only its public key: pop_public_key for the config (--pop), or the\n"
               "  publicKey of a DRTPConnection or Principal\n", stdout);
    return 0;
  }
  auto out = g.value("--out");
  bool pop = g.flag("--pop");
  auto service = g.value("--service");
  auto principal = g.value("--principal");
  g.finish();
  if (!out)
    throw cli::error("gen-secret needs --out FILE");
  if (int(pop) + int(service.has_value()) + int(principal.has_value()) != 1)
    throw cli::error("gen-secret needs one of --pop, --service NAME, --principal NAME");
  auto salt = pop ? control::pop_fleet_salt()
                  : service ? net::service_salt(*service) : net::principal_salt(*principal);
  auto secret = random_hex(32);
  cli::write_new_file(*out, secret + "\n", 0600);
  auto key = control::public_key_text(net::derive_public_key(std::move(secret), salt));
  std::printf(pop ? "pop_public_key: %s\n" : "publicKey: %s\n", key.c_str());
  return 0;
}

// -- serving ----------------------------------------------------------------------

struct services {
  caf::actor store, registry, server;
};

/// The store the config names, or a cli::error saying why not.
caf::actor open_store(net::runtime& rt, const env& e, const config& c) {
  if (c.store.rfind("sqlite:", 0) == 0) {
    control::sqlite_store_params sp;
    sp.path = c.store.substr(7);
    std::string error;
    auto store = control::spawn_sqlite_store(rt.sys(), sp, error);
    if (!store)
      throw cli::error(error);
    return store;
  }
  control::etcd_store_params ep;
  ep.e = e;
  ep.e.host = "control-etcd";
  std::string error;
  if (!control::parse_etcd_url(c.store, ep.members, error))
    throw cli::error("store: " + error);
  return control::spawn_etcd_store(rt.sys(), std::move(ep));
}

/// Spawns the store, the registry and the HTTP server; waits until it
/// listens and prints the ready line. Throws cli::error.
services start(net::runtime& rt, caf::scoped_actor& self, const config& c) {
  env e;
  e.io = rt.io();
  e.trace = rt.trace();
  e.rng = net::make_system_entropy();
  e.crypto = net::make_openssl_crypto();
  e.host = "control";
  e.clock = rt.clock();
  services s;
  s.store = open_store(rt, e, c);
  control::registry_params rp;
  rp.e = e;
  rp.store = s.store;
  rp.admin_token_digest = c.admin_token_sha256;
  rp.pop_public_key = c.pop_public_key;
  rp.lease_duration_s = c.lease_duration_s;
  rp.ca_seed = c.ca_seed;
  rp.ca_cert_pem = c.ca_cert_pem;
  rp.cert_lifetime_s = c.cert_lifetime_s;
  s.registry = control::spawn_registry(rt.sys(), std::move(rp));
  http_server_params hp;
  hp.e = e;
  hp.host = c.listen_host;
  hp.port = c.listen_port;
  hp.tls = true;
  hp.handler = s.registry;
  hp.observer = self;
  hp.name = "control";
  s.server = spawn_http_server(rt.sys(), std::move(hp));
  std::string failed = "the API did not listen within 10 s";
  uint16_t port = 0;
  self->receive([&](const http_listening& l) { port = l.port; },
                [&](const http_listen_failed& f) { failed = f.what; },
                caf::after(std::chrono::seconds(10)) >> [] {});
  if (port == 0)
    throw cli::error("cannot listen on " + c.listen_host + ":"
                     + std::to_string(c.listen_port) + ": " + failed);
  std::printf("drtp-control: listening on %s:%u (store %s)\n", c.listen_host.c_str(), port,
              c.store.c_str());
  std::fflush(stdout);
  if (c.metrics)
    cli::start_metrics(rt.sys(), e, *c.metrics, nullptr, "drtp-control");
  return s;
}

void stop(caf::scoped_actor& self, services& s) {
  // The server first (no new requests), then the registry, then the store,
  // which closes its file; acknowledged writes are on disk already.
  for (auto* a : {&s.server, &s.registry, &s.store}) {
    if (!*a)
      continue;
    self->monitor(*a);
    self->send_exit(*a, caf::exit_reason::user_shutdown);
    self->receive([](const caf::down_msg&) {}, caf::after(std::chrono::seconds(2)) >> [] {});
  }
}

int run(int argc, char** argv) {
  cli::keep_secrets_out_of_core_dumps();
  std::string sub = argc >= 2 ? argv[1] : "";
  if (sub == "gen-admin-token")
    return gen_admin_token(argc, argv);
  if (sub == "gen-secret")
    return gen_secret(argc, argv);
  cli::args a{argc, argv, 1};
  if (a.flag("-h") || a.flag("--help")) {
    std::fputs(usage, stdout);
    return 0;
  }
  auto config_file = a.value("--config");
  bool dev = a.flag("--dev");
  auto state_dir = a.value("--state-dir");
  auto listen = a.value("--listen");
  auto cert_lifetime = a.value("--cert-lifetime");
  auto metrics = a.value("--metrics");
  int verbosity = (a.flag("-v") || a.flag("--verbose")) ? 1 : 0;
  auto extra = a.positional();
  if (!extra.empty())
    throw cli::error("unexpected argument '" + extra.front() + "' (see --help)");
  a.finish();
  if (dev == config_file.has_value())
    throw cli::error("pass --config FILE or --dev (see --help)");
  if (state_dir && !dev)
    throw cli::error("--state-dir goes with --dev");
  auto c = dev ? dev_config(dev_state_dir(state_dir)) : load_config(*config_file);
  if (listen)
    cli::parse_host_port(*listen, "--listen", c.listen_host, c.listen_port);
  c.metrics = metrics;
  if (cert_lifetime)
    c.cert_lifetime_s = cli::parse_uint(*cert_lifetime, "--cert-lifetime", cert_lifetime_s_min,
                                        cert_lifetime_s_max, "seconds");
  cli::install_stop_signals();
  net::runtime rt{net::make_stderr_tracer(verbosity), c.identity, 0};
  int rc = 0;
  {
    caf::scoped_actor self{rt.sys()};
    services s;
    try {
      s = start(rt, self, c);
      while (!cli::stop_requested())
        self->receive([](const caf::message&) {},
                      caf::after(std::chrono::milliseconds(100)) >> [] {});
      std::fprintf(stderr, "drtp-control: stopping (signal %d)\n", cli::stop_signal());
    } catch (const cli::error& e) {
      std::fprintf(stderr, "drtp-control: error: %s\n", e.what());
      rc = 1;
    }
    stop(self, s);
  }
  rt.stop();
  std::fflush(nullptr);
  std::_Exit(rc); // actors may still hold sockets' handles; nothing to flush
}

} // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const drtp::cli::error& e) {
    std::fprintf(stderr, "drtp-control: error: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "drtp-control: error: %s\n", e.what());
    return 1;
  }
}
