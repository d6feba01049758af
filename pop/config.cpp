#include "pop/config.hpp"

#include <fstream>
#include <set>

#include <yaml-cpp/yaml.h>

#include "net/handshake.hpp"
#include "net/tls.hpp"
#include "tools/cli_common.hpp"

namespace drtp::pop {

namespace {

[[noreturn]] void fail(const std::string& path, const YAML::Node& n,
                       const std::string& what) {
  auto m = n.Mark();
  std::string where = path;
  if (!m.is_null())
    where += ":" + std::to_string(m.line + 1);
  throw cli::error(where + ": " + what);
}

std::string scalar(const std::string& path, const YAML::Node& n,
                   const std::string& key) {
  if (!n.IsScalar())
    fail(path, n, "'" + key + "' must be a string");
  return n.as<std::string>();
}

} // namespace

config load_config(const std::string& path) {
  YAML::Node root;
  try {
    std::ifstream probe{path};
    if (!probe)
      throw cli::error("cannot read config file " + path);
    root = YAML::LoadFile(path);
  } catch (const YAML::Exception& e) {
    throw cli::error(path + ":" + std::to_string(e.mark.line + 1) + ": "
                     + e.msg);
  }
  config cfg;
  if (!root.IsMap())
    fail(path, root, "expected a map with 'listen' and 'services'");
  for (auto kv : root) {
    auto key = kv.first.as<std::string>();
    if (key != "listen" && key != "tls" && key != "services")
      fail(path, kv.first, "unknown key '" + key + "'");
  }
  if (auto n = root["listen"])
    cli::parse_host_port(scalar(path, n, "listen"), path + ": listen",
                         cfg.listen_host, cfg.listen_port);
  if (auto t = root["tls"]) {
    if (!t.IsMap() || !t["cert"] || !t["key"])
      fail(path, t, "'tls' needs 'cert' and 'key'");
    cfg.cert_file = scalar(path, t["cert"], "tls.cert");
    cfg.key_file = scalar(path, t["key"], "tls.key");
  }
  auto services = root["services"];
  if (!services || !services.IsSequence() || services.size() == 0)
    fail(path, root, "'services' must list at least one service");
  std::set<std::string> names;
  for (auto s : services) {
    if (!s.IsMap())
      fail(path, s, "each service must be a map");
    for (auto kv : s) {
      auto key = kv.first.as<std::string>();
      if (key != "name" && key != "secret_sha256" && key != "secret_file"
          && key != "public")
        fail(path, kv.first, "unknown service key '" + key + "'");
    }
    service_config sc;
    if (!s["name"])
      fail(path, s, "service without 'name'");
    sc.name = scalar(path, s["name"], "name");
    if (sc.name.empty() || sc.name.size() > 128)
      fail(path, s["name"], "service name must be 1-128 characters");
    if (!names.insert(sc.name).second)
      fail(path, s["name"], "service '" + sc.name + "' is listed twice");
    if (auto h = s["secret_sha256"]) {
      if (!net::from_hex(scalar(path, h, "secret_sha256"), sc.key)
          || sc.key.size() != net::key_bytes)
        fail(path, h, "'secret_sha256' must be 64 hex digits "
                      "(see `drtp-pop hash-secret`)");
    } else if (auto f = s["secret_file"]) {
      sc.key = net::derive_key(
        cli::read_secret(scalar(path, f, "secret_file"), "DRTP_SECRET"));
    } else {
      fail(path, s, "service '" + sc.name
                      + "' needs 'secret_sha256' or 'secret_file'");
    }
    if (!s["public"])
      fail(path, s, "service '" + sc.name + "' needs 'public: HOST:PORT'");
    cli::parse_host_port(scalar(path, s["public"], "public"),
                         path + ": public port of '" + sc.name + "'",
                         sc.public_host, sc.public_port);
    cfg.services.push_back(std::move(sc));
  }
  return cfg;
}

} // namespace drtp::pop
