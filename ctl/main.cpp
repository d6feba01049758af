// drtpctl: the operator's CLI for the control plane (docs/control-plane.md,
// "The binaries"). ctl/client speaks HTTPS through actors/http_client on
// the real network, ctl/apply and ctl/create write, ctl/print shows.

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <functional>
#include <memory>
#include <set>
#include <unistd.h>

#include "cli/args.hpp"
#include "cli/state_file.hpp"
#include "cli/secrets.hpp"
#include "ctl/apply.hpp"
#include "ctl/client.hpp"
#include "ctl/create.hpp"
#include "ctl/export.hpp"
#include "ctl/print.hpp"

namespace {

using namespace drtp;

const char* usage = R"(drtpctl - the DRTP control plane's command line

Usage:
  drtpctl [CONNECTION] apply -f FILE       create or update every document of
                                           FILE (multi-document YAML; - is stdin)
  drtpctl [CONNECTION] get KIND [NAME] [-o table|yaml|json]
  drtpctl [CONNECTION] describe KIND NAME
  drtpctl [CONNECTION] delete KIND NAME
  drtpctl [CONNECTION] create service NAME --local HOST:PORT [--protocol tcp]
                 [--public-port P] [--allow NAME]... [--org O] [--tunnels K]
                 [--secret-out FILE]
  drtpctl [CONNECTION] create principal NAME [--org O] [--group G]...
                 [--secret-out FILE]
  drtpctl [CONNECTION] create org NAME [--display-name TEXT]
  drtpctl [CONNECTION] create gateway NAME --service S (--port P | --private)
                 [--allow-cidr CIDR]... [--allow-org O]...
                 [--allow-principal NAME]... [--end-open-sessions]
  drtpctl export crds                      CustomResourceDefinitions for the
                                           registry's kinds (no connection needed)
  drtpctl [CONNECTION] export gateway NAME [--gateway-class C] [-n NAMESPACE]
                                           the Gateway API objects for a gateway
  drtpctl COMMAND --help                   more about one command

Connection (flags, or the environment variables in brackets):
  --control https://HOST:PORT   the control plane [DRTP_CONTROL]
  --pin sha256:HEX              its certificate's pin, as drtp-control --dev
                                prints it [DRTP_CONTROL_PIN]
  --ca FILE                     or a CA bundle (PEM) that signed it
  --token-file FILE             the admin token [DRTP_TOKEN_FILE, or the token
                                itself in DRTP_TOKEN]; it is sent only in the
                                Authorization header, never printed
  -v, --verbose                 the network's traces on stderr

KIND: drtpserver (drtpservers, server, servers), drtpconnection
(drtpconnections, service, services, connection), principal (principals),
org (orgs), gateway (gateways, gw).

Exit status: 0 done; 1 the control plane refused, could not be reached or
could not be verified, or FILE is not valid; 2 a usage error.
)";

const char* apply_usage = R"(drtpctl apply -f FILE

Every document of FILE (YAML, documents separated by ---; - reads stdin),
each with apiVersion: drtp.dev/v1, kind, metadata.name and spec, is created,
or updated if it exists and differs (status and resourceVersion are the
registry's and ignored; a List document, as get -o yaml prints, stands for
its items). Every document is checked first: a file with a mistake changes
nothing. One line per document:
  drtpconnection/joes-pg created | configured | unchanged
Errors name the file, the document, its line and the field:
  drtpctl: svc.yaml: document 2 (line 14): spec.local: expected host:port
)";

const char* get_usage = R"(drtpctl get KIND [NAME] [-o table|yaml|json]

Lists the objects of KIND (or shows one) as a table, or as the API's
objects in YAML or JSON. Columns: servers NAME REGION READY TUNNELS AGE;
services NAME PROTOCOL LOCAL PUBLIC-PORT POPS AGENTS AGE; principals NAME
ORG GROUPS REVOKED AGE; orgs NAME DISPLAY-NAME AGE; gateways NAME SERVICE
TYPE PORT ADDRESSES (pop=address:port, where it is reachable now) AGE.
)";

const char* describe_usage = R"(drtpctl describe KIND NAME

One object for people: its name, age and version, its spec and its status.
)";

const char* delete_usage = R"(drtpctl delete KIND NAME

Deletes one object (a deleted service's agents are told to go away by the
POPs).
)";

const char* export_usage = R"(drtpctl export crds
drtpctl [CONNECTION] export gateway NAME [--gateway-class CLASS] [-n NAMESPACE]

crds: one CustomResourceDefinition (apiextensions.k8s.io/v1) per registry
kind, group drtp.dev, version v1, scope Cluster (the registry's names are
one flat space per kind): drtpservers, drtpconnections, principals, orgs,
gateways. kubectl apply -f - takes them.

gateway NAME: reads gateways/NAME, its drtpconnection and the drtpservers,
and prints a Gateway (gateway.networking.k8s.io/v1, class CLASS, default
drtp), a TCPRoute (UDPRoute for a udp service), the selector-less Service
the route points at, and one EndpointSlice per address family listing the
public addresses of the POPs that hold the service's tunnels now. Run it
again (kubectl apply --prune -l drtp.dev/gateway=NAME) to follow the POPs.
A private gateway has no external port: nothing to export, exit status 1.
)";

int export_command(const std::vector<std::string>& words, const std::string& gateway_class,
                   const std::string& ns, const std::function<ctl::client&()>& connect) {
  if (words.size() == 2 && words[1] == "crds") {
    std::fputs(ctl::export_crds().c_str(), stdout);
    return 0;
  }
  if (words.size() != 3 || words[1] != "gateway")
    throw cli::error("export needs crds or gateway NAME (see export --help)");
  if (!control::valid_name(words[2]))
    throw cli::error("gateway name '" + words[2] + "': expected a DNS label");
  if (!gateway_class.empty() && !control::valid_name(gateway_class))
    throw cli::error("--gateway-class " + gateway_class + ": expected a DNS label");
  if (!ns.empty() && !control::valid_name(ns))
    throw cli::error("-n " + ns + ": expected a DNS label");
  auto& c = connect();
  auto gw = c.fetch("GET", ctl::api_path(control::kind::gateway, words[2]));
  if (gw.status != 200)
    throw ctl::failure(ctl::error_message(gw) + " (HTTP " + std::to_string(gw.status) + ")");
  auto service = ctl::gateway_service(gw.body);
  auto conn = c.fetch("GET", ctl::api_path(control::kind::connection, service));
  if (conn.status != 200)
    throw ctl::failure("drtpconnection/" + service + ": " + ctl::error_message(conn) + " (HTTP "
                       + std::to_string(conn.status) + ")");
  auto servers = c.fetch("GET", ctl::api_path(control::kind::server));
  if (servers.status != 200)
    throw ctl::failure(ctl::error_message(servers) + " (HTTP " + std::to_string(servers.status)
                       + ")");
  ctl::gateway_export_options o;
  if (!gateway_class.empty())
    o.gateway_class = gateway_class;
  o.ns = ns;
  std::fputs(ctl::export_gateway(gw.body, conn.body, servers.body, o).c_str(), stdout);
  return 0;
}

/// Every option that takes a value: needed to find the command word before
/// its options are read (a value is never the command).
const std::set<std::string> global_values = {
  "--control", "--pin",  "--ca",           "--token-file", "-o",           "-f",
  "--protocol", "--local", "--public-port", "--allow",      "--org",        "--tunnels",
  "--secret-out", "--group", "--display-name", "--service", "--port", "--allow-cidr",
  "--allow-org", "--allow-principal", "--gateway-class", "-n", "--namespace"};

std::string find_command(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    std::string w = argv[i];
    if (global_values.count(w)) {
      ++i;
      continue;
    }
    if (w.empty() || w[0] != '-')
      return w;
  }
  return "";
}

control::kind kind_arg(const std::string& word) {
  auto k = control::parse_kind(word);
  if (!k)
    throw cli::error("unknown kind '" + word
                     + "' (drtpserver, drtpconnection or service, principal, org, gateway)");
  return *k;
}

/// The whole of a file or stdin, bounded (a resource file is small).
std::string read_input(const std::string& file) {
  constexpr size_t input_bytes_max = 16 * 1024 * 1024;
  int fd = file == "-" ? STDIN_FILENO : ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    throw drtp::ctl::failure("cannot read " + file + ": " + std::strerror(errno));
  std::string text, why;
  bool ok = cli::read_bounded(fd, input_bytes_max, text, why);
  if (fd != STDIN_FILENO)
    ::close(fd);
  if (!ok)
    throw drtp::ctl::failure("cannot read " + file + ": " + why);
  return text;
}

/// A GET or DELETE answered other than 200: one line, exit status 1.
[[noreturn]] void refused(const ctl::reply& r) {
  throw ctl::failure(ctl::error_message(r) + " (HTTP " + std::to_string(r.status) + ")");
}

int get(ctl::client& c, control::kind k, const std::vector<std::string>& words,
        const std::string& output) {
  auto r = c.fetch("GET", ctl::api_path(k, words.size() > 2 ? words[2] : ""));
  if (r.status != 200)
    refused(r);
  if (output == "json")
    std::fputs(ctl::as_json(r.body).c_str(), stdout);
  else if (output == "yaml")
    std::fputs(ctl::as_yaml(r.body).c_str(), stdout);
  else
    std::fputs(ctl::table(k, r.body).c_str(), stdout);
  return 0;
}

struct session {
  std::optional<std::string> url, pin, ca, token_file;
  int verbosity = 0;
  std::unique_ptr<ctl::client> c;

  ctl::client& connect() {
    if (!c)
      c = std::make_unique<ctl::client>(
        ctl::resolve_options(url, pin, ca, token_file, verbosity));
    return *c;
  }
};

const char* help_of(const std::string& command) {
  if (command == "apply")
    return apply_usage;
  if (command == "get")
    return get_usage;
  if (command == "describe")
    return describe_usage;
  if (command == "delete")
    return delete_usage;
  if (command == "create")
    return ctl::create_usage;
  if (command == "export")
    return export_usage;
  return usage;
}

int dispatch(cli::args& a, session& s, const std::string& command) {
  if (command == "create")
    return ctl::create(a, [&]() -> ctl::client& { return s.connect(); });
  auto file = command == "apply" ? a.value("-f") : std::nullopt;
  auto output = command == "get" ? a.value("-o") : std::nullopt;
  std::optional<std::string> gateway_class, ns;
  if (command == "export") {
    gateway_class = a.value("--gateway-class");
    ns = a.value("-n");
    if (!ns)
      ns = a.value("--namespace");
  }
  auto words = a.positional();
  a.finish();
  if (command == "export")
    return export_command(words, gateway_class.value_or(""), ns.value_or(""),
                          [&]() -> ctl::client& { return s.connect(); });
  if (command == "apply") {
    if (!file || words.size() != 1)
      throw cli::error("apply needs -f FILE (see apply --help)");
    auto text = read_input(*file);
    return ctl::apply(s.connect(), *file == "-" ? "stdin" : *file, text);
  }
  if (output && *output != "yaml" && *output != "json" && *output != "table")
    throw cli::error("-o " + *output + ": expected table, yaml or json");
  bool one = command != "get";
  if (words.size() < 2 || words.size() > 3 || (one && words.size() != 3))
    throw cli::error(command + " needs KIND" + (one ? " NAME" : " [NAME]") + " (see " + command
                     + " --help)");
  auto k = kind_arg(words[1]);
  if (command == "get")
    return get(s.connect(), k, words, output.value_or("table"));
  auto& c = s.connect();
  if (command == "describe") {
    auto r = c.fetch("GET", ctl::api_path(k, words[2]));
    if (r.status != 200)
      refused(r);
    std::fputs(ctl::describe(k, r.body).c_str(), stdout);
    return 0;
  }
  auto r = c.fetch("DELETE", ctl::api_path(k, words[2]));
  if (r.status != 200 && r.status != 204)
    refused(r);
  std::printf("%s deleted\n", ctl::object_ref(k, words[2]).c_str());
  return 0;
}

int run(int argc, char** argv) {
  cli::keep_secrets_out_of_core_dumps();
  auto command = find_command(argc, argv);
  cli::args a{argc, argv, 1};
  bool help = a.flag("-h") || a.flag("--help");
  if (command.empty()) {
    if (!help)
      throw cli::error("a command is needed: apply, get, describe, delete, create or export (see --help)");
    std::fputs(usage, stdout);
    return 0;
  }
  if (help) {
    std::fputs(help_of(command), stdout);
    return 0;
  }
  static const std::set<std::string> commands = {"apply", "get", "describe", "delete", "create",
                                                 "export"};
  if (!commands.count(command))
    throw cli::error("unknown command '" + command + "' (see --help)");
  // Never destroyed: the process ends with _Exit while actors may still
  // run (as in drtp-control).
  static session s;
  s.url = a.value("--control");
  s.pin = a.value("--pin");
  s.ca = a.value("--ca");
  s.token_file = a.value("--token-file");
  s.verbosity = (a.flag("-v") || a.flag("--verbose")) ? 1 : 0;
  if (s.pin && s.ca)
    throw cli::error("pass --pin or --ca, not both");
  return dispatch(a, s, command);
}

} // namespace

int main(int argc, char** argv) {
  int rc = 0;
  try {
    rc = run(argc, argv);
  } catch (const drtp::cli::error& e) {
    std::fprintf(stderr, "drtpctl: %s\n", e.what());
    rc = 2;
  } catch (const drtp::ctl::failure& e) {
    std::fprintf(stderr, "drtpctl: %s\n", e.what());
    rc = 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "drtpctl: %s\n", e.what());
    rc = 1;
  }
  std::fflush(nullptr);
  // Actors may still hold the network's handles; nothing is left to flush.
  std::_Exit(rc);
}
