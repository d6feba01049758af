// bench_control: the control plane's figures (issue 14), not a test.
//
// For each store (SQLite, then etcd on a real 3-member cluster) it starts
// the real drtp-control binary, creates N private DRTPConnections
// (publicPort 0) through several keep-alive API clients at once, then runs
// P POPs in this process on the real network (net::runtime): each a
// pop_server fed by its control/pop_follower, as drtp-pop runs them. Then
// it makes C changes one after the other (half: a new service with a
// publicPort, half: a private one given a publicPort) and times each from
// the API's answer to the moment each follower reports the change applied
// (pop_follower_event::applied naming the service). It prints p50/p99 per
// POP and for the last POP of each change (the change at every POP), the
// memory of drtp-control, and a POP's memory: one POP with one follower in
// a process of its own (this binary, `bench_control pop-child`), and the
// in-process growth per POP.
//
//   bench_control [--stores sqlite,etcd] [--pops 10] [--services 10000]
//                 [--changes 200] [--clients 8]

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>
#include <sys/stat.h>
#include <unistd.h>

#include "actors/http_client.hpp"
#include "actors/pop_server.hpp"
#include "caf/all.hpp"
#include "cli/args.hpp"
#include "control/auth.hpp"
#include "control/pop_follower.hpp"
#include "net/openssl_crypto.hpp"
#include "net/runtime.hpp"
#include "net/stderr_tracer.hpp"
#include "net/tls.hpp"
#include "tests/support/etcd_cluster.hpp"
#include "tests/support/proc.hpp"
#include "tests/support/sock.hpp"

namespace {

using namespace drtp;
using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

const char* usage = R"(bench_control - the control plane's figures (issue 14)

Usage:
  bench_control [--stores sqlite,etcd] [--pops N] [--services N] [--changes N]
                [--clients N]

  --stores    which stores, in order (default sqlite,etcd)
  --pops      POPs following the registry, in this process (default 10)
  --services  private DRTPConnections made first (default 10000)
  --changes   measured changes, one after the other (default 200)
  --clients   API clients making the services at once (default 8)
)";

constexpr const char* api = "/apis/drtp.dev/v1/drtpconnections";
/// A change not applied at a POP within this counts as missed.
constexpr auto change_wait_max = 20s;
/// A POP's first sync of every service.
constexpr auto sync_wait_max = 180s;

double ms_between(steady::time_point a, steady::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

std::string service_name(const char* prefix, size_t i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%s-%05zu", prefix, i);
  return buf;
}

std::string key_of(size_t i) {
  char buf[80];
  std::snprintf(buf, sizeof buf, "ed25519:%064zx", i + 1);
  return buf;
}

std::string connection_json(const std::string& name, size_t i, uint16_t public_port) {
  return R"({"apiVersion":"drtp.dev/v1","kind":"DRTPConnection","metadata":{"name":")" + name
         + R"("},"spec":{"protocol":"tcp","local":"127.0.0.1:5432","publicKey":")" + key_of(i)
         + R"(","publicPort":)" + std::to_string(public_port) + "}}";
}

void write_file(const std::string& path, const std::string& text, mode_t mode) {
  {
    std::ofstream out(path, std::ios::trunc);
    out << text;
  }
  ::chmod(path.c_str(), mode);
}

double percentile(std::vector<double> xs, double p) {
  if (xs.empty())
    return -1;
  std::sort(xs.begin(), xs.end());
  auto i = static_cast<size_t>(p / 100.0 * static_cast<double>(xs.size() - 1) + 0.5);
  return xs[std::min(i, xs.size() - 1)];
}

// -- what the followers say ------------------------------------------------------------

struct event_log {
  struct entry {
    control::pop_follower_event::kind_t kind;
    std::string what;
    steady::time_point at;
  };
  explicit event_log(size_t pops) : per_pop(pops) {}
  std::mutex m;
  std::condition_variable cv;
  std::vector<std::vector<entry>> per_pop;

  void add(size_t pop, const control::pop_follower_event& e) {
    {
      std::lock_guard<std::mutex> g(m);
      per_pop[pop].push_back({e.kind, e.what, steady::now()});
    }
    cv.notify_all();
  }

  /// When POP `pop` reported an event of `kind` whose text names `name`
  /// (or any, if empty), looking from entry `from` on; waits until
  /// `deadline`. nullopt on timeout.
  std::optional<steady::time_point> wait(size_t pop, control::pop_follower_event::kind_t kind,
                                         const std::string& name, size_t& from,
                                         steady::time_point deadline) {
    std::unique_lock<std::mutex> g(m);
    for (;;) {
      auto& v = per_pop[pop];
      for (; from < v.size(); ++from)
        if (v[from].kind == kind && (name.empty() || names(v[from].what, name)))
          return v[from++].at;
      if (cv.wait_until(g, deadline) == std::cv_status::timeout && from >= v.size())
        return std::nullopt;
    }
  }

  static bool names(const std::string& what, const std::string& name) {
    // The pop_server's answer: "N service(s); added: a, b; new public port: c; ..."
    for (auto at = what.find(name); at != std::string::npos; at = what.find(name, at + 1)) {
      bool left = at >= 2 && what[at - 1] == ' ' && (what[at - 2] == ':' || what[at - 2] == ',');
      auto end = at + name.size();
      bool right = end == what.size() || what[end] == ',' || what[end] == ';';
      if (left && right)
        return true;
    }
    return false;
  }
};

// -- one POP: a pop_server and its follower ------------------------------------------------

struct pop_unit {
  caf::actor server, follower, observer;
};

struct control_target {
  uint16_t port = 0;
  std::string pin_raw;    // SHA-256 of its certificate
  std::string fleet_seed; // the POP fleet's login seed
};

pop_unit spawn_pop(net::runtime& rt, const control_target& ct, const std::string& name,
                   const std::string& public_host, const std::string& pin_text,
                   const std::string& state_dir, caf::actor observer) {
  control::pop_follower_params fp;
  fp.e.io = rt.io();
  fp.e.trace = rt.trace();
  fp.e.rng = net::make_system_entropy();
  fp.e.crypto = net::make_openssl_crypto();
  fp.e.host = name;
  fp.e.clock = rt.clock();
  fp.http.e = fp.e;
  fp.http.host = "127.0.0.1";
  fp.http.port = ct.port;
  auto tls = std::make_shared<net::tls_client_config>();
  tls->fingerprint_sha256 = ct.pin_raw;
  fp.http.tls = tls;
  fp.fleet_seed = ct.fleet_seed;
  fp.name = name;
  fp.spec.region = "r" + std::to_string(std::hash<std::string>{}(name) % 3);
  fp.spec.tunnel_host = "127.0.0.1";
  fp.spec.tunnel_port = test::free_port();
  fp.spec.public_address = public_host;
  fp.spec.pin = pin_text;
  fp.spec.capacity_tunnels = 1000;
  fp.public_host = public_host;
  fp.observer = observer;
  // As drtp-pop keeps D/registry.json: a temporary file and a rename.
  auto snapshot_path = state_dir + "/" + name + ".registry.json";
  fp.persist = [snapshot_path](const std::string& text) {
    {
      std::ofstream out(snapshot_path + ".tmp", std::ios::trunc);
      out << text;
    }
    std::rename((snapshot_path + ".tmp").c_str(), snapshot_path.c_str());
  };
  std::string err;
  auto initial = control::pop_follower_initial_config(fp, err);
  pop_params pp;
  pp.e = fp.e;
  pp.tunnel_host = fp.spec.tunnel_host;
  pp.tunnel_port = fp.spec.tunnel_port;
  pp.services = std::move(initial.services);
  pp.principals = std::move(initial.principals);
  pop_unit u;
  u.observer = observer;
  u.server = spawn_pop_server(rt.sys(), std::move(pp));
  fp.pop = u.server;
  u.follower = control::spawn_pop_follower(rt.sys(), std::move(fp));
  return u;
}

caf::actor spawn_observer(caf::actor_system& sys, std::shared_ptr<event_log> log, size_t i) {
  return sys.spawn([log, i](caf::event_based_actor*) -> caf::behavior {
    return {[log, i](const control::pop_follower_event& e) { log->add(i, e); }};
  });
}

void stop_actors(std::vector<caf::actor> as) {
  for (auto& a : as)
    if (a)
      caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
}

// -- the control plane ---------------------------------------------------------------------

struct control_plane {
  std::string dir;
  std::string token;
  control_target target;
  std::string pin_text;
  std::unique_ptr<test::etcd_cluster> cluster;
  std::unique_ptr<test::process> proc;
  std::string store;

  /// Starts drtp-control on `store_kind` ("sqlite" or "etcd"); throws.
  explicit control_plane(const std::string& store_kind) : dir(test::make_temp_dir("bench-control")) {
    auto crypto = net::make_openssl_crypto();
    auto id = net::make_self_signed("drtp-control");
    write_file(dir + "/cert.pem", id.cert_pem, 0644);
    write_file(dir + "/key.pem", id.key_pem, 0600);
    pin_text = "sha256:" + net::to_hex(net::fingerprint_sha256(id.cert_pem));
    target.pin_raw = net::fingerprint_sha256(id.cert_pem);
    token = net::to_hex(net::make_system_entropy()->bytes(32));
    auto fleet_secret = net::to_hex(net::make_system_entropy()->bytes(32));
    write_file(dir + "/pops.secret", fleet_secret + "\n", 0600);
    auto fleet = net::derive_login_key(fleet_secret, control::pop_fleet_salt());
    target.fleet_seed = fleet.seed;
    if (store_kind == "etcd") {
      cluster = std::make_unique<test::etcd_cluster>(3);
      store = cluster->store_url();
    } else {
      store = "sqlite:" + dir + "/registry.db";
    }
    target.port = test::free_port();
    write_file(dir + "/control.yaml",
               "listen: 127.0.0.1:" + std::to_string(target.port) + "\ntls: {cert: " + dir
                 + "/cert.pem, key: " + dir + "/key.pem}\nstore: " + store
                 + "\nadmin_token_sha256: " + control::admin_token_digest(*crypto, token)
                 + "\npop_public_key: " + control::public_key_text(fleet.public_key) + "\n",
               0600);
    proc = std::make_unique<test::process>(
      std::vector<std::string>{test::bin_dir() + "/drtp-control", "--config",
                               dir + "/control.yaml"},
      test::process_options{{}, "", SIGTERM, 3000ms});
    if (!proc->wait_for("drtp-control: listening on", 20s))
      throw std::runtime_error("drtp-control did not start: " + proc->output());
  }
  ~control_plane() {
    proc.reset();
    cluster.reset();
    test::remove_tree(dir);
  }
  long rss_kib() const { return test::vm_rss_kib(proc->pid()); }
};

caf::actor spawn_api_client(net::runtime& rt, const control_plane& cp) {
  http_client_params hp;
  hp.e.io = rt.io();
  hp.e.trace = rt.trace();
  hp.e.rng = net::make_system_entropy();
  hp.e.crypto = net::make_openssl_crypto();
  hp.e.host = "bench";
  hp.e.clock = rt.clock();
  hp.host = "127.0.0.1";
  hp.port = cp.target.port;
  auto tls = std::make_shared<net::tls_client_config>();
  tls->fingerprint_sha256 = cp.target.pin_raw;
  hp.tls = tls;
  auto token = cp.token;
  hp.authorization = [token](const std::string&) { return "Bearer " + token; };
  hp.request_timeout_ms = 30000;
  hp.name = "bench-api";
  return spawn_http_client(rt.sys(), std::move(hp));
}

/// One API call; the status (0: no answer) and the answer's body.
int call(caf::scoped_actor& self, const caf::actor& client, const std::string& method,
         const std::string& target, const std::string& body, std::string* out = nullptr) {
  int status = 0;
  http_fetch f{method, target, {{"Content-Type", "application/json"}}, body};
  self->request(client, std::chrono::seconds(40), std::move(f))
    .receive(
      [&](http::response& r) {
        status = r.status;
        if (out)
          *out = std::move(r.body);
      },
      [&](caf::error& e) {
        if (out)
          *out = describe_http_error(e);
      });
  return status;
}

// -- the separate POP process --------------------------------------------------------------

/// `bench_control pop-child PORT PIN_HEX FLEET_SECRET_FILE NAME DIR`: one POP
/// with one follower, printing "applied N service(s)" lines; runs until
/// killed (at most 10 minutes); its snapshot in DIR.
int pop_child(int argc, char** argv) {
  if (argc != 7)
    return 2;
  control_target ct;
  ct.port = static_cast<uint16_t>(std::atoi(argv[2]));
  std::string pin_hex = argv[3];
  net::from_hex(pin_hex.substr(7), ct.pin_raw);
  std::ifstream in(argv[4]);
  std::string secret;
  std::getline(in, secret);
  ct.fleet_seed = net::derive_login_key(secret, control::pop_fleet_salt()).seed;
  net::runtime rt{net::make_stderr_tracer(0), net::make_self_signed("bench-pop"), 0};
  std::printf("pop-child: started, rss %ld KiB\n", test::vm_rss_kib(::getpid()));
  std::fflush(stdout);
  auto obs = rt.sys().spawn([](caf::event_based_actor*) -> caf::behavior {
    return {[](const control::pop_follower_event& e) {
      if (e.kind == control::pop_follower_event::applied) {
        std::printf("pop-child: applied %.40s\n", e.what.c_str());
        std::fflush(stdout);
      }
    }};
  });
  std::string dir = argv[6];
  auto u = spawn_pop(rt, ct, argv[5], "127.0.2.1", pin_hex, dir, obs);
  std::this_thread::sleep_for(600s);
  stop_actors({u.follower, u.server, obs});
  rt.stop();
  std::_Exit(0);
}

// -- one store's run -----------------------------------------------------------------------

struct options {
  std::vector<std::string> stores{"sqlite", "etcd"};
  size_t pops = 10, services = 10000, changes = 200, clients = 8;
  /// Made before the POPs start; the measured creates bring the registry
  /// to `services` (a POP takes at most 10 000: pop_follower_limits).
  size_t initial() const { return services - std::min(services, (changes + 1) / 2); }
};

struct figures {
  std::string store;
  double create_s = 0;
  size_t create_failed = 0;
  double sync_s = 0;
  std::vector<double> per_pop_ms, every_pop_ms, first_pop_ms;
  size_t missed = 0;
  size_t public_open = 0, public_checked = 0;
  long control_rss_before = 0, control_rss_services = 0, control_rss_end = 0;
  long pop_child_rss_start = 0, pop_child_rss = 0;
  long bench_rss_before_pops = 0, bench_rss_after_pops = 0;
};

void make_services(net::runtime& rt, const control_plane& cp, const options& o, figures& f) {
  std::vector<caf::actor> clients;
  for (size_t c = 0; c < o.clients; ++c)
    clients.push_back(spawn_api_client(rt, cp));
  std::atomic<size_t> next{0}, failed{0};
  std::string first_error;
  std::mutex m;
  auto t0 = steady::now();
  std::vector<std::thread> threads;
  for (size_t c = 0; c < o.clients; ++c)
    threads.emplace_back([&, c] {
      caf::scoped_actor self{rt.sys()};
      for (size_t i = next++; i < o.initial(); i = next++) {
        std::string out;
        auto st = call(self, clients[c], "POST", api,
                       connection_json(service_name("s", i), i, 0), &out);
        if (st != 201) {
          ++failed;
          std::lock_guard<std::mutex> g(m);
          if (first_error.empty())
            first_error = std::to_string(st) + " " + out.substr(0, 200);
        }
      }
    });
  for (auto& t : threads)
    t.join();
  f.create_s = ms_between(t0, steady::now()) / 1000;
  f.create_failed = failed;
  stop_actors(clients);
  std::printf("[%s] %zu private DRTPConnections created in %.1f s through %zu clients "
              "(%.0f/s), %zu failed%s%s\n",
              f.store.c_str(), o.initial(), f.create_s, o.clients,
              static_cast<double>(o.initial()) / f.create_s, f.create_failed,
              first_error.empty() ? "" : ": first ", first_error.c_str());
}

/// The measured changes, one at a time, each awaited at every POP.
void measure_changes(net::runtime& rt, const control_plane& cp, const options& o,
                     event_log& log, std::vector<size_t>& from, figures& f) {
  caf::scoped_actor self{rt.sys()};
  auto client = spawn_api_client(rt, cp);
  uint16_t last_port = 0;
  for (size_t j = 0; j < o.changes; ++j) {
    auto port = static_cast<uint16_t>(21000 + j);
    bool create = j % 2 == 0;
    auto idx = create ? o.initial() + j : (j * 7919) % o.initial();
    auto name = create ? service_name("m", j) : service_name("s", idx);
    std::string out;
    int st = create ? call(self, client, "POST", api, connection_json(name, idx, port), &out)
                    : call(self, client, "PUT", std::string(api) + "/" + name,
                           connection_json(name, idx, port), &out);
    auto answered = steady::now();
    if (st != 200 && st != 201) {
      std::printf("[%s] change %zu (%s): %d %s\n", f.store.c_str(), j, name.c_str(), st,
                  out.substr(0, 200).c_str());
      ++f.missed;
      continue;
    }
    last_port = port;
    double worst = 0, first = 1e12;
    bool all = true;
    for (size_t p = 0; p < o.pops; ++p) {
      auto at = log.wait(p, control::pop_follower_event::applied, name, from[p],
                         answered + change_wait_max);
      if (!at) {
        ++f.missed;
        all = false;
        continue;
      }
      // A watch may beat the API's answer to us: that is 0, not less.
      auto ms = std::max(0.0, ms_between(answered, *at));
      f.per_pop_ms.push_back(ms);
      worst = std::max(worst, ms);
      first = std::min(first, ms);
    }
    if (first < 1e12)
      f.first_pop_ms.push_back(first);
    if (all)
      f.every_pop_ms.push_back(worst);
  }
  // The last public service's listener, at every POP.
  for (size_t p = 0; p < o.pops && last_port != 0; ++p) {
    ++f.public_checked;
    auto host = "127.0.1." + std::to_string(p + 1);
    f.public_open += bool(sock::connect_tcp(host, last_port, 1000));
  }
  stop_actors({client});
}

void measure_pop_child(const control_plane& cp, const options& o, figures& f) {
  char self_path[4096];
  auto n = ::readlink("/proc/self/exe", self_path, sizeof self_path - 1);
  if (n <= 0)
    return;
  self_path[n] = '\0';
  test::process child({self_path, "pop-child", std::to_string(cp.target.port), cp.pin_text,
                       cp.dir + "/pops.secret", "pop-alone", cp.dir});
  if (!child.wait_for("pop-child: started", 20s)) {
    std::printf("[%s] the POP process did not start: %s\n", f.store.c_str(),
                child.output().c_str());
    return;
  }
  f.pop_child_rss_start = test::number_after(child.output(), "pop-child: started, rss ");
  auto want = "applied " + std::to_string(o.services) + " service(s)";
  if (!child.wait_for(want, sync_wait_max)) {
    std::printf("[%s] the POP process did not apply every service: %s\n", f.store.c_str(),
                child.output().substr(0, 400).c_str());
    return;
  }
  std::this_thread::sleep_for(1s); // let the first list's garbage go
  f.pop_child_rss = test::vm_rss_kib(child.pid());
}

figures run_store(net::runtime& rt, const std::string& store, const options& o) {
  figures f;
  f.store = store;
  control_plane cp(store);
  f.control_rss_before = cp.rss_kib();
  make_services(rt, cp, o, f);
  f.control_rss_services = cp.rss_kib();

  auto log = std::make_shared<event_log>(o.pops);
  f.bench_rss_before_pops = test::vm_rss_kib(::getpid());
  std::vector<pop_unit> pops;
  auto t0 = steady::now();
  for (size_t p = 0; p < o.pops; ++p)
    pops.push_back(spawn_pop(rt, cp.target, "pop-" + std::to_string(p),
                             "127.0.1." + std::to_string(p + 1), cp.pin_text, cp.dir,
                             spawn_observer(rt.sys(), log, p)));
  std::vector<size_t> from(o.pops, 0);
  size_t synced = 0;
  for (size_t p = 0; p < o.pops; ++p)
    synced += log.get()->wait(p, control::pop_follower_event::applied, "", from[p],
                              t0 + sync_wait_max)
                .has_value();
  f.sync_s = ms_between(t0, steady::now()) / 1000;
  std::this_thread::sleep_for(1s);
  f.bench_rss_after_pops = test::vm_rss_kib(::getpid());
  std::printf("[%s] %zu of %zu POPs applied the registry's %zu services in %.1f s\n",
              store.c_str(), synced, o.pops, o.initial(), f.sync_s);
  if (synced < o.pops) {
    f.missed = o.changes * o.pops;
    std::vector<caf::actor> all;
    for (auto& u : pops)
      all.insert(all.end(), {u.follower, u.server, u.observer});
    stop_actors(all);
    return f;
  }

  measure_changes(rt, cp, o, *log, from, f);
  f.control_rss_end = cp.rss_kib();
  std::vector<caf::actor> all;
  for (auto& u : pops)
    all.insert(all.end(), {u.follower, u.server, u.observer});
  stop_actors(all);
  measure_pop_child(cp, o, f);
  return f;
}

void print_table(const std::vector<figures>& fs, const options& o) {
  std::printf("\ncontrol plane figures: %zu POPs, %zu services, %zu changes (one at a time)\n",
              o.pops, o.services, o.changes);
  std::printf("%-7s %10s %10s %10s %10s %10s %10s %7s %9s %9s %9s %9s %9s %7s\n", "store",
              "first p50", "first p99", "pop p50", "pop p99", "every p50", "every p99", "missed", "ctl MiB", "ctl+10k", "ctl end",
              "pop MiB", "pop/proc", "create");
  for (auto& f : fs)
    std::printf("%-7s %8.1fms %8.1fms %8.1fms %8.1fms %8.1fms %8.1fms %7zu %9.1f %9.1f %9.1f "
                "%9.1f %9.1f %6.1fs\n",
                f.store.c_str(), percentile(f.first_pop_ms, 50), percentile(f.first_pop_ms, 99),
                percentile(f.per_pop_ms, 50), percentile(f.per_pop_ms, 99),
                percentile(f.every_pop_ms, 50), percentile(f.every_pop_ms, 99), f.missed,
                f.control_rss_before / 1024.0, f.control_rss_services / 1024.0,
                f.control_rss_end / 1024.0, f.pop_child_rss / 1024.0,
                (f.bench_rss_after_pops - f.bench_rss_before_pops) / 1024.0
                  / static_cast<double>(std::max<size_t>(1, o.pops)),
                f.create_s);
  std::printf("  first p50/p99: from the API's answer to the first POP that applied it (the "
              "%zu POPs share this process's one I/O loop, so the later ones wait for the "
              "earlier ones' CPU: first is what a POP on a machine of its own sees);\n",
              o.pops);
  std::printf("  pop p50/p99: from the API's answer to one POP's follower reporting it applied, "
              "over every (change, POP);\n  every p50/p99: to the last of the %zu POPs; "
              "ctl: drtp-control's RSS at start, after the services, at the end (10 POPs "
              "watching);\n  pop MiB: one POP with one follower in a process of its own, with "
              "every service applied;\n  pop/proc: the growth of this process per POP (10 in it)\n",
              o.pops);
  for (auto& f : fs)
    std::printf("  [%s] first sync of every POP %.1f s; POP process RSS at start %.1f MiB; "
                "last public port open at %zu of %zu POPs\n",
                f.store.c_str(), f.sync_s, f.pop_child_rss_start / 1024.0, f.public_open,
                f.public_checked);
}

size_t count_option(cli::args& a, const char* flag, size_t def, size_t max) {
  auto v = a.value(flag);
  return v ? cli::parse_uint(*v, flag, 1, static_cast<uint32_t>(max), "") : def;
}

int run(int argc, char** argv) {
  if (argc >= 2 && std::string(argv[1]) == "pop-child")
    return pop_child(argc, argv);
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  cli::args a{argc, argv, 1};
  if (a.flag("-h") || a.flag("--help")) {
    std::fputs(usage, stdout);
    return 0;
  }
  options o;
  if (auto s = a.value("--stores")) {
    o.stores.clear();
    std::string list = *s;
    for (size_t at = 0; at <= list.size();) {
      auto comma = std::min(list.find(',', at), list.size());
      auto one = list.substr(at, comma - at);
      if (one != "sqlite" && one != "etcd")
        throw cli::error("--stores: '" + one + "' is neither sqlite nor etcd");
      o.stores.push_back(one);
      at = comma + 1;
    }
  }
  o.pops = count_option(a, "--pops", o.pops, 50);
  o.services = count_option(a, "--services", o.services, 50000);
  o.changes = count_option(a, "--changes", o.changes, 2000);
  o.clients = count_option(a, "--clients", o.clients, 64);
  a.finish();
  net::runtime rt{net::make_stderr_tracer(0), net::make_self_signed("bench-pops"), 0};
  std::vector<figures> fs;
  for (auto& s : o.stores)
    fs.push_back(run_store(rt, s, o));
  print_table(fs, o);
  std::fflush(stdout);
  rt.stop();
  std::_Exit(0);
}

} // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_control: error: %s\n", e.what());
    return 1;
  }
}
