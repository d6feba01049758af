#include "ctl/create.hpp"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <optional>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "cli/secrets.hpp"
#include "control/auth.hpp"
#include "ctl/apply.hpp"
#include "ctl/print.hpp"
#include "net/openssl_crypto.hpp"
#include "net/wire/handshake.hpp"
#include "net/wire/hex.hpp"

namespace drtp::ctl {

const char* create_usage = R"(drtpctl create - register a service, a principal or an org

Usage:
  drtpctl create service NAME --local HOST:PORT [--protocol tcp]
                 [--public-port P] [--allow NAME|group:NAME]... [--org O]
                 [--tunnels K] [--secret-out FILE]
  drtpctl create principal NAME [--org O] [--group G]... [--secret-out FILE]
  drtpctl create org NAME [--display-name TEXT]
  drtpctl create gateway NAME --service S (--port P | --private)
                 [--allow-cidr CIDR]... [--allow-org O]...
                 [--allow-principal NAME|group:NAME]... [--end-open-sessions]

A service's or principal's secret is made on this machine; only its public
key goes to the control plane. The secret is printed once (or written to
FILE, mode 0600, never overwriting a file) and kept nowhere else: give it
to `drtp serve --secret-file` (or `drtp connect`).

Options:
  --local HOST:PORT     where the agent finds the service
  --protocol tcp        the only protocol today (default)
  --public-port P       the port visitors use on every POP (default: none,
                        patch panel only)
  --allow NAME          a principal, or group:NAME, that may reach the
                        service through drtp connect; repeatable
  --org O               the org that owns it
  --tunnels K           tunnels the agent keeps, in distinct regions (1-3,
                        default 2)
  --group G             a principal's group; repeatable
  --display-name TEXT   an org's name for people
  --secret-out FILE     write the secret to FILE instead of printing it
  --service S           a gateway's service (a DRTPConnection)
  --port P              a public gateway's port on every POP holding the
                        service's tunnels
  --private             a private gateway (patch panel only, no port)
  --allow-cidr CIDR     sources that may reach it (10.0.0.0/8, ::1/128);
                        repeatable; none: any source
  --allow-org O         every principal of org O may connect; repeatable
  --allow-principal P   a principal, or group:NAME, that may connect
  --end-open-sessions   a change that takes access away ends open sessions too
)";

namespace {

using ojson = nlohmann::ordered_json;

constexpr size_t secret_bytes = 32;

/// The flag that sets a spec field, for errors about what was typed.
std::string flag_of(const std::string& error) {
  static const std::pair<const char*, const char*> flags[] = {
    {"spec.local", "--local"},         {"spec.protocol", "--protocol"},
    {"spec.publicPort", "--public-port"}, {"spec.allow", "--allow"},
    {"spec.org", "--org"},             {"spec.tunnels", "--tunnels"},
    {"spec.groups", "--group"},        {"spec.displayName", "--display-name"},
    {"metadata.name", "NAME"},         {"spec.service", "--service"},
    {"spec.port", "--port"},           {"spec.allowCIDRs", "--allow-cidr"},
    {"spec.allowOrgs", "--allow-org"}, {"spec.allowPrincipals", "--allow-principal"},
  };
  for (auto& [field, flag] : flags)
    if (error.compare(0, std::strlen(field), field) == 0) {
      auto colon = error.find(": ");
      return std::string(flag) + (colon == std::string::npos ? "" : error.substr(colon));
    }
  return error;
}

bool exists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

struct plan {
  control::kind k = control::kind::org;
  std::string name;
  ojson object;
  std::string salt; // empty: no secret (an org)
  std::optional<std::string> secret_out;
};

ojson header(control::kind k, const std::string& name) {
  ojson j;
  j["apiVersion"] = control::api_version;
  j["kind"] = control::kind_name(k);
  j["metadata"] = ojson{{"name", name}};
  return j;
}

/// Every option of every create, read before the positional words (so
/// that no option's value is taken for one).
struct options {
  std::optional<std::string> protocol, local, public_port, org, tunnels, secret_out, display;
  std::vector<std::string> allow, groups;
  // A gateway's.
  std::optional<std::string> service, port;
  bool is_private = false, end_open_sessions = false;
  std::vector<std::string> allow_cidrs, allow_orgs, allow_principals;

  explicit options(cli::args& a)
    : protocol(a.value("--protocol")), local(a.value("--local")),
      public_port(a.value("--public-port")), org(a.value("--org")), tunnels(a.value("--tunnels")),
      secret_out(a.value("--secret-out")), display(a.value("--display-name")),
      allow(a.values("--allow")), groups(a.values("--group")), service(a.value("--service")),
      port(a.value("--port")), is_private(a.flag("--private")),
      end_open_sessions(a.flag("--end-open-sessions")), allow_cidrs(a.values("--allow-cidr")),
      allow_orgs(a.values("--allow-org")), allow_principals(a.values("--allow-principal")) {
  }

  bool any_gateway_flag() const {
    return service || port || is_private || end_open_sessions || !allow_cidrs.empty()
           || !allow_orgs.empty() || !allow_principals.empty();
  }
};

void refuse_other(bool given, const char* flag, const char* what) {
  if (given)
    throw cli::error(std::string(flag) + " does not go with create " + what
                     + " (see create --help)");
}

void read_service(const options& o, plan& p) {
  refuse_other(!o.groups.empty(), "--group", "service");
  refuse_other(o.display.has_value(), "--display-name", "service");
  if (!o.local)
    throw cli::error("create service needs --local HOST:PORT (where the agent finds it)");
  p.k = control::kind::connection;
  p.salt = net::service_salt(p.name);
  p.secret_out = o.secret_out;
  p.object = header(p.k, p.name);
  auto& spec = p.object["spec"] = ojson::object();
  spec["protocol"] = o.protocol ? *o.protocol : "tcp";
  spec["local"] = *o.local;
  if (o.public_port)
    spec["publicPort"] = cli::parse_uint(*o.public_port, "--public-port", 0, 65535, "");
  spec["allow"] = o.allow;
  if (o.org)
    spec["org"] = *o.org;
  if (o.tunnels)
    spec["tunnels"] = cli::parse_uint(*o.tunnels, "--tunnels", 1, 3, "tunnels");
}

void refuse_service_flags(const options& o, const char* what) {
  refuse_other(o.protocol.has_value(), "--protocol", what);
  refuse_other(o.local.has_value(), "--local", what);
  refuse_other(o.public_port.has_value(), "--public-port", what);
  refuse_other(!o.allow.empty(), "--allow", what);
  refuse_other(o.tunnels.has_value(), "--tunnels", what);
}

void read_principal(const options& o, plan& p) {
  refuse_service_flags(o, "principal");
  refuse_other(o.display.has_value(), "--display-name", "principal");
  p.k = control::kind::principal;
  p.salt = net::principal_salt(p.name);
  p.secret_out = o.secret_out;
  p.object = header(p.k, p.name);
  auto& spec = p.object["spec"] = ojson::object();
  if (o.org)
    spec["org"] = *o.org;
  spec["groups"] = o.groups;
}

void refuse_gateway_flags(const options& o, const char* what) {
  refuse_other(o.any_gateway_flag(),
               "--service, --port, --private, --allow-cidr, --allow-org, --allow-principal and "
               "--end-open-sessions",
               what);
}

void read_gateway(const options& o, plan& p) {
  refuse_service_flags(o, "gateway");
  refuse_other(o.org.has_value(), "--org", "gateway");
  refuse_other(!o.groups.empty(), "--group", "gateway");
  refuse_other(o.display.has_value(), "--display-name", "gateway");
  refuse_other(o.secret_out.has_value(), "--secret-out", "gateway (a gateway has no secret)");
  if (!o.service)
    throw cli::error("create gateway needs --service S (the service it exposes)");
  if (o.port.has_value() == o.is_private)
    throw cli::error("create gateway needs one of --port P (public) and --private");
  p.k = control::kind::gateway;
  p.object = header(p.k, p.name);
  auto& spec = p.object["spec"] = ojson::object();
  spec["service"] = *o.service;
  spec["type"] = o.is_private ? "private" : "public";
  if (o.port)
    spec["port"] = cli::parse_uint(*o.port, "--port", 1, 65535, "");
  spec["allowCIDRs"] = o.allow_cidrs;
  spec["allowOrgs"] = o.allow_orgs;
  spec["allowPrincipals"] = o.allow_principals;
  spec["endOpenSessions"] = o.end_open_sessions;
}

void read_org(const options& o, plan& p) {
  refuse_service_flags(o, "org");
  refuse_other(o.org.has_value(), "--org", "org");
  refuse_other(!o.groups.empty(), "--group", "org");
  refuse_other(o.secret_out.has_value(), "--secret-out", "org (an org has no secret)");
  p.k = control::kind::org;
  p.object = header(p.k, p.name);
  p.object["spec"] = ojson{{"displayName", o.display ? *o.display : ""}};
}

/// What was typed, checked as the registry will check it (with a
/// placeholder key: the real one is made only once all is well).
void check(plan& p) {
  if (!p.salt.empty())
    p.object["spec"]["publicKey"] = "ed25519:" + std::string(2 * net::public_key_bytes, '0');
  std::string spec, error;
  if (!canonical_spec(p.k, p.object.dump(), spec, error))
    throw cli::error("create " + std::string(control::kind_name(p.k)) + ": " + flag_of(error));
  if (p.secret_out && exists(*p.secret_out))
    throw cli::error("--secret-out " + *p.secret_out + ": the file exists (not overwritten)");
}

void print_created(const plan& p, const std::string& answer) {
  auto j = ojson::parse(answer, nullptr, false);
  std::printf("%s created\n", object_ref(p.k, p.name).c_str());
  if (!j.is_object() || !j.contains("spec") || !j["spec"].is_object())
    return;
  for (auto& [key, value] : j["spec"].items()) {
    std::string text;
    if (value.is_array()) {
      for (auto& e : value)
        text += (text.empty() ? "" : ", ") + (e.is_string() ? e.get<std::string>() : e.dump());
    } else {
      text = value.is_string() ? value.get<std::string>() : value.dump();
    }
    if (text.empty())
      continue;
    std::printf("  %-11s %s\n", (key + ":").c_str(), text.c_str());
  }
}

} // namespace

int create(cli::args& a, const std::function<client&()>& connect) {
  options o(a);
  auto words = a.positional();
  a.finish();
  if (!words.empty() && words.front() == "create")
    words.erase(words.begin());
  if (words.size() != 2)
    throw cli::error("create needs service NAME, principal NAME, org NAME or gateway NAME (see "
                     "create --help)");
  plan p;
  p.name = words[1];
  auto k = control::parse_kind(words[0]);
  if (k && *k != control::kind::gateway)
    refuse_gateway_flags(o, words[0].c_str());
  if (k == control::kind::connection)
    read_service(o, p);
  else if (k == control::kind::principal)
    read_principal(o, p);
  else if (k == control::kind::org)
    read_org(o, p);
  else if (k == control::kind::gateway)
    read_gateway(o, p);
  else
    throw cli::error("create " + words[0] + ": expected service, principal, org or gateway "
                     "(a DRTPServer registers itself, or comes from apply)");
  check(p);
  auto& c = connect();
  std::string secret;
  if (!p.salt.empty()) {
    secret = net::to_hex(net::make_system_entropy()->bytes(secret_bytes));
    p.object["spec"]["publicKey"] =
      control::public_key_text(net::derive_public_key(secret, p.salt));
    if (p.secret_out)
      cli::write_new_file(*p.secret_out, secret + "\n", 0600);
  }
  auto r = c.fetch("POST", api_path(p.k), p.object.dump());
  if (r.status != 201) {
    if (p.secret_out && !secret.empty())
      ::unlink(p.secret_out->c_str()); // the secret of nothing
    net::wipe(secret);
    throw failure("create " + object_ref(p.k, p.name) + ": " + error_message(r) + " (HTTP "
                  + std::to_string(r.status) + ")");
  }
  print_created(p, r.body);
  if (!secret.empty()) {
    if (p.secret_out) {
      std::printf("secret written to %s (mode 0600); it is shown nowhere and the control "
                  "plane keeps only its public key\n",
                  p.secret_out->c_str());
    } else {
      std::printf("secret: %s\n", secret.c_str());
      std::printf("  (shown once: the control plane keeps only its public key; save it to a "
                  "file for --secret-file)\n");
    }
    if (p.k == control::kind::connection) {
      auto pin = c.pin().empty() ? std::string() : " --control-pin " + c.pin();
      std::printf("next: drtp serve --control %s%s --service %s --secret-file %s\n",
                  c.url().c_str(), pin.c_str(), p.name.c_str(),
                  p.secret_out ? p.secret_out->c_str() : "FILE");
    }
  }
  net::wipe(secret);
  return 0;
}

} // namespace drtp::ctl
