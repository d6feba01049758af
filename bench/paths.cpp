#include "bench/paths.hpp"

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <functional>
#include <sys/resource.h>
#include <sys/stat.h>

#include "bench/system.hpp"
#include "net/loop_coordinator.hpp"

namespace drtp::bench {

namespace {

using namespace std::chrono_literals;
using test::free_port;
using test::number_after;
using test::process;
using test::wait_accepts;

/// A child whose log stays in the run's directory; stopped (`sig`, then
/// SIGKILL after 3 s) when the run ends, in reverse order of start.
process& spawn(setup_ctx& c, const std::vector<std::string>& argv,
               const std::string& log, std::vector<std::string> env = {},
               int sig = SIGTERM) {
  c.children->push_back(std::make_unique<process>(
    argv, test::process_options{std::move(env), c.dir + "/" + log, sig}));
  return *c.children->back();
}

/// A throwaway certificate and key in DIR/{prefix}c.pem, DIR/{prefix}k.pem;
/// their "sha256:..." fingerprint, or "" with p.na set.
std::string gen_cert(setup_ctx& c, path& p, const std::string& prefix) {
  process gen({c.bin + "/drtp-pop", "gen-cert", "--cert",
               c.dir + "/" + prefix + "c.pem", "--key", c.dir + "/" + prefix + "k.pem"},
              test::process_options{{}, c.dir + "/" + prefix + "gen.log", SIGTERM});
  if (!gen.wait_for("sha256:", 10s)) {
    p.na = "gen-cert failed: " + last_line(gen.output());
    return "";
  }
  auto out = gen.output();
  return out.substr(0, out.find('\n'));
}

/// The limits of a benchmark's POP. The bench is one source that opens
/// thousands of connections a second and holds 10 000 at once: it measures
/// what the path carries, so the defaults that stop one source from taking
/// a service down (actors/pop_server.hpp) are lifted here, not in the POP.
const char* const bench_limits =
  "limits:\n"
  "  visitors_per_source_max: 10000000\n"
  "  visitor_opens_per_source_per_s: 10000000\n"
  "  visitor_opens_per_source_burst: 10000000\n"
  "  visitors_per_service_max: 10000000\n"
  "  streams_per_principal_max: 10000000\n"
  "  stream_opens_per_principal_per_s: 10000000\n"
  "  stream_opens_per_principal_burst: 10000000\n";

/// The public path: visitor -> drtp-pop -> TLS tunnel -> drtp serve ->
/// service. `prefix` keeps the files of two such paths apart.
void setup_drtp(setup_ctx& c, path& p, const std::string& prefix,
                uint32_t busy_poll_us) {
  auto fp = gen_cert(c, p, prefix);
  if (fp.empty())
    return;
  auto poll = std::to_string(busy_poll_us);
  write_text(c.dir + "/" + prefix + "bench.secret", "bench-secret\n");
  auto config = c.dir + "/" + prefix + "pop.yaml";
  write_text(config, "listen: 127.0.0.1:0\ntls:\n  cert: " + c.dir + "/" + prefix
                       + "c.pem\n  key: " + c.dir + "/" + prefix
                       + "k.pem\nservices:\n  - name: bench\n    secret_file: " + c.dir
                       + "/" + prefix + "bench.secret\n    public: 127.0.0.1:0\n"
                       + bench_limits);
  // SIGINT: stop at once (SIGTERM would drain).
  auto& pop = spawn(c, {c.bin + "/drtp-pop", "--config", config, "--busy-poll-us", poll},
                    prefix + "pop.log", {}, SIGINT);
  if (!pop.wait_for("public on", 10s)) {
    p.na = "drtp-pop did not start: " + last_line(pop.output());
    return;
  }
  auto pop_out = pop.output();
  auto tunnel_port = number_after(pop_out, "agents dial 127.0.0.1:");
  auto public_port = number_after(pop_out, "public on 127.0.0.1:");
  auto& agent = spawn(c,
                      {c.bin + "/drtp", "serve", "--pop",
                       "127.0.0.1:" + std::to_string(tunnel_port), "--service",
                       "bench", "--local",
                       "127.0.0.1:" + std::to_string(c.service_port),
                       "--pop-fingerprint", fp, "--busy-poll-us", poll},
                      prefix + "agent.log", {"DRTP_SECRET=bench-secret"}, SIGINT);
  if (!agent.wait_for("tunnel up", 10s)) {
    p.na = "drtp serve did not connect: " + last_line(agent.output());
    return;
  }
  p.port = static_cast<uint16_t>(public_port);
  p.procs = {{"pop", pop.pid()}, {"agent", agent.pid()}};
}

/// The patch panel: visitor -> `drtp connect` (a local listener) -> POP
/// (splice) -> `drtp serve` -> service; a private service with no public
/// port, on a POP of its own so that its processes count apart.
void setup_patch_panel(setup_ctx& c, path& p) {
  auto fp = gen_cert(c, p, "p");
  if (fp.empty())
    return;
  write_text(c.dir + "/joe.secret", "bench service secret\n");
  write_text(c.dir + "/sam.secret", "bench principal secret\n");
  auto config = c.dir + "/ppop.yaml";
  write_text(config, "listen: 127.0.0.1:0\ntls:\n  cert: " + c.dir + "/pc.pem\n  key: "
                       + c.dir + "/pk.pem\nservices:\n  - name: bench\n    secret_file: "
                       + c.dir + "/joe.secret\n    allow: [sam]\nprincipals:\n"
                       + "  - name: sam\n    secret_file: " + c.dir + "/sam.secret\n"
                       + bench_limits);
  auto& pop = spawn(c, {c.bin + "/drtp-pop", "--config", config}, "ppop.log", {}, SIGINT);
  if (!pop.wait_for("private", 10s)) {
    p.na = "drtp-pop (private service) did not start: " + last_line(pop.output());
    return;
  }
  auto tunnel = "127.0.0.1:"
                + std::to_string(number_after(pop.output(), "agents dial 127.0.0.1:"));
  auto& agent = spawn(c,
                      {c.bin + "/drtp", "serve", "--pop", tunnel, "--service",
                       "bench", "--local",
                       "127.0.0.1:" + std::to_string(c.service_port),
                       "--secret-file", c.dir + "/joe.secret", "--pop-fingerprint",
                       fp, "--tunnels", "1"},
                      "pagent.log", {}, SIGINT);
  if (!agent.wait_for(" up", 10s)) {
    p.na = "drtp serve did not connect: " + last_line(agent.output());
    return;
  }
  auto port = free_port();
  auto& conn = spawn(c,
                     {c.bin + "/drtp", "connect", "--pop", tunnel, "--service",
                      "bench", "--listen", "127.0.0.1:" + std::to_string(port),
                      "--principal", "sam", "--secret-file", c.dir + "/sam.secret",
                      "--pop-fingerprint", fp, "--tunnels", "1"},
                     "connect.log", {}, SIGINT);
  if (!conn.wait_for(" up", 10s) || !wait_accepts(port, 10s, &conn)) {
    p.na = "drtp connect did not come up: " + last_line(conn.output());
    return;
  }
  p.port = port;
  p.procs = {{"connect", conn.pid()}, {"pop", pop.pid()}, {"agent", agent.pid()}};
}

std::string haproxy_exe(path& p) {
  auto exe = find_program({"/usr/sbin/haproxy", "/usr/bin/haproxy",
                           "/usr/local/sbin/haproxy"});
  if (exe.empty())
    p.na = "haproxy not installed (scripts/bench.sh installs it)";
  return exe;
}

/// One haproxy in TCP mode relaying `bind` to `server` (haproxy's own
/// syntax, TLS options included); the process, or nullptr with p.na set.
process* spawn_haproxy(setup_ctx& c, path& p, const std::string& exe,
                     const std::string& name, uint16_t port,
                     const std::string& bind, const std::string& server,
                     bool busy_polling = false) {
  auto cfg = c.dir + "/" + name + ".cfg";
  rlimit r{};
  getrlimit(RLIMIT_NOFILE, &r);
  // Two descriptors a session; haproxy refuses a maxconn it cannot back.
  auto maxconn = std::min<rlim_t>(30000, (r.rlim_cur - 100) / 2);
  if (maxconn < static_cast<rlim_t>(c.sessions_max) && !c.told_fd_limit) {
    c.told_fd_limit = true;
    std::fprintf(stderr,
                 "drtp-bench: a haproxy relay holds at most %llu sessions here: "
                 "two descriptors each, and the descriptor limit is %llu\n",
                 static_cast<unsigned long long>(maxconn),
                 static_cast<unsigned long long>(r.rlim_cur));
  }
  write_text(cfg, "global\n"
                  "  maxconn " + std::to_string(maxconn) + "\n"
                  + (busy_polling ? "  busy-polling\n" : "") +
                  "defaults\n"
                  "  mode tcp\n"
                  "  timeout connect 5s\n"
                  "  timeout client 1h\n"
                  "  timeout server 1h\n"
                  "frontend bench\n"
                  "  bind " + bind + "\n"
                  "  default_backend echo\n"
                  "backend echo\n"
                  "  server echo " + server + "\n");
  auto& h = spawn(c, {exe, "-f", cfg, "-db"}, name + ".log");
  if (!wait_accepts(port, 5s, &h)) {
    p.na = name + " did not start: " + last_line(h.output());
    return nullptr;
  }
  return &h;
}

void setup_haproxy(setup_ctx& c, path& p, bool busy_polling) {
  auto exe = haproxy_exe(p);
  if (exe.empty())
    return;
  auto port = free_port();
  auto* h = spawn_haproxy(c, p, exe, busy_polling ? "haproxy-poll" : "haproxy",
                          port, "127.0.0.1:" + std::to_string(port),
                          "127.0.0.1:" + std::to_string(c.service_port),
                          busy_polling);
  if (!h)
    return;
  p.port = port;
  p.procs = {{"haproxy", h->pid()}};
}

/// DRTP's shape built from haproxy: an edge relay in front of an inner relay
/// next to the service, two processes like POP and agent, but one TCP
/// connection per visitor instead of one tunnel. With `tls` the hop between
/// them is TLS 1.3 (haproxy-tls); without, it is plain TCP (haproxy-2): the
/// cost of the second relay alone, the floor of any two-relay design.
void setup_haproxy_pair(setup_ctx& c, path& p, bool tls) {
  auto exe = haproxy_exe(p);
  if (exe.empty())
    return;
  std::string prefix = tls ? "haproxy-" : "haproxy2-";
  std::string inner_opts, edge_opts;
  if (tls) {
    if (gen_cert(c, p, "h").empty())
      return;
    write_text(c.dir + "/hboth.pem",
               read_text(c.dir + "/hc.pem") + read_text(c.dir + "/hk.pem"));
    inner_opts = " ssl crt " + c.dir + "/hboth.pem ssl-min-ver TLSv1.3";
    edge_opts = " ssl verify none ssl-min-ver TLSv1.3";
  }
  auto inner_port = free_port();
  auto* inner = spawn_haproxy(
    c, p, exe, prefix + "inner", inner_port,
    "127.0.0.1:" + std::to_string(inner_port) + inner_opts,
    "127.0.0.1:" + std::to_string(c.service_port));
  if (!inner)
    return;
  auto edge_port = free_port();
  auto* edge = spawn_haproxy(c, p, exe, prefix + "edge", edge_port,
                             "127.0.0.1:" + std::to_string(edge_port),
                             "127.0.0.1:" + std::to_string(inner_port)
                               + edge_opts);
  if (!edge)
    return;
  p.port = edge_port;
  p.procs = {{"edge", edge->pid()}, {"inner", inner->pid()}};
}

void setup_ssh(setup_ctx& c, path& p) {
  auto sshd = find_program({"/usr/sbin/sshd"});
  auto ssh = find_program({"/usr/bin/ssh"});
  auto keygen = find_program({"/usr/bin/ssh-keygen"});
  if (sshd.empty() || ssh.empty() || keygen.empty()) {
    p.na = "openssh-server/-client not installed (scripts/bench.sh installs them)";
    return;
  }
  auto d = c.dir + "/ssh";
  ::mkdir(d.c_str(), 0700);
  ::mkdir("/run/sshd", 0755); // privilege separation directory
  for (auto& [key, type] : {std::pair<std::string, std::string>{"host_key", "ed25519"},
                            {"user_key", "ed25519"}}) {
    process g({keygen, "-q", "-N", "", "-t", type, "-f", d + "/" + key},
              test::process_options{{}, d + "/keygen.log", SIGTERM});
    if (g.wait_exit(60s) != 0) {
      p.na = "ssh-keygen failed: " + last_line(read_text(d + "/keygen.log"));
      return;
    }
  }
  write_text(d + "/authorized_keys", read_text(d + "/user_key.pub"));
  ::chmod((d + "/authorized_keys").c_str(), 0600);
  auto sport = free_port();
  write_text(d + "/sshd_config",
             "ListenAddress 127.0.0.1:" + std::to_string(sport) + "\n"
             "HostKey " + d + "/host_key\n"
             "AuthorizedKeysFile " + d + "/authorized_keys\n"
             "PidFile " + d + "/sshd.pid\n"
             "StrictModes no\n"
             "UsePAM no\n"
             "PermitRootLogin prohibit-password\n"
             "PasswordAuthentication no\n"
             "KbdInteractiveAuthentication no\n"
             "AllowTcpForwarding yes\n"
             "GatewayPorts no\n"
             "Ciphers aes128-gcm@openssh.com\n"
             "MaxStartups 100:30:200\n"
             "LogLevel ERROR\n");
  auto& server = spawn(c, {sshd, "-D", "-f", d + "/sshd_config", "-e"}, "sshd.log");
  if (!wait_accepts(sport, 5s, &server)) {
    p.na = "sshd did not start: " + last_line(server.output());
    return;
  }
  auto fport = free_port();
  auto& client = spawn(
    c,
    {ssh, "-N", "-F", "/dev/null", "-o", "StrictHostKeyChecking=no", "-o",
     "UserKnownHostsFile=/dev/null", "-o", "ExitOnForwardFailure=yes", "-o",
     "BatchMode=yes", "-o", "LogLevel=ERROR", "-i", d + "/user_key", "-p",
     std::to_string(sport), "-c", "aes128-gcm@openssh.com", "-R",
     "127.0.0.1:" + std::to_string(fport) + ":127.0.0.1:"
       + std::to_string(c.service_port),
     "root@127.0.0.1"},
    "ssh.log");
  if (!wait_accepts(fport, 10s, &client)) {
    p.na = "ssh -R did not come up: " + last_line(client.output() + server.output());
    return;
  }
  p.port = fport;
  p.procs = {{"sshd", server.pid()}, {"ssh", client.pid()}};
}

} // namespace

std::vector<path> setup_paths(setup_ctx& ctx, const std::set<std::string>& want) {
  std::vector<path> paths;
  auto add = [&](const char* key, const char* name,
                 std::function<void(setup_ctx&, path&)> setup) {
    if (!want.count(key))
      return;
    path p;
    p.key = key;
    p.name = name;
    if (setup)
      setup(ctx, p);
    else
      p.port = ctx.service_port;
    paths.push_back(std::move(p));
    std::fprintf(stderr, "drtp-bench: %-8s %s\n", key,
                 paths.back().na.empty()
                   ? ("on 127.0.0.1:" + std::to_string(paths.back().port)).c_str()
                   : ("n/a: " + paths.back().na).c_str());
  };
  add("direct", "direct loopback", nullptr);
  add("drtp", "DRTP public (TLS tunnel)", [](setup_ctx& c, path& p) {
    setup_drtp(c, p, "", net::busy_poll_us_default);
  });
  add("drtp-poll", "DRTP public, --busy-poll-us 100", [](setup_ctx& c, path& p) {
    p.variant = true;
    setup_drtp(c, p, "b", net::busy_poll_us_suggested);
  });
  add("panel", "DRTP patch panel (drtp connect)", setup_patch_panel);
  add("haproxy", "haproxy (TCP mode)",
      [](setup_ctx& c, path& p) { setup_haproxy(c, p, false); });
  add("haproxy-poll", "haproxy, busy-polling", [](setup_ctx& c, path& p) {
    p.variant = true;
    setup_haproxy(c, p, true);
  });
  add("haproxy-2", "haproxy edge -> haproxy inner (plain)",
      [](setup_ctx& c, path& p) { setup_haproxy_pair(c, p, false); });
  add("haproxy-tls", "haproxy edge -> TLS -> haproxy inner",
      [](setup_ctx& c, path& p) { setup_haproxy_pair(c, p, true); });
  add("ssh", "ssh -R (aes128-gcm)", setup_ssh);
  return paths;
}

} // namespace drtp::bench
