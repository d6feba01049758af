#include "pop/config.hpp"

#include <algorithm>
#include <fstream>
#include <set>

#include <yaml-cpp/yaml.h>

#include "cli/args.hpp"
#include "cli/secrets.hpp"
#include "net/openssl_crypto.hpp"
#include "net/tls.hpp"
#include "net/wire/handshake.hpp"

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

/// A mapping key: a plain scalar, or the file is wrong (a key such as
/// "[a, b]" must not escape as an exception without the file's name).
std::string key_name(const std::string& path, const YAML::Node& k) {
  if (!k.IsScalar())
    fail(path, k, "a key must be a plain word");
  return k.Scalar();
}

/// Every key of `map` is one of `known`, and none appears twice (yaml-cpp
/// would silently keep one of them: a second `secret_sha256` must not go
/// unnoticed).
void check_keys(const std::string& path, const YAML::Node& map,
                std::initializer_list<const char*> known, const std::string& what) {
  std::set<std::string> seen;
  for (auto kv : map) {
    auto key = key_name(path, kv.first);
    if (std::find(known.begin(), known.end(), key) == known.end())
      fail(path, kv.first, "unknown " + what + " '" + key + "'");
    if (!seen.insert(key).second)
      fail(path, kv.first, "'" + key + "' appears twice");
  }
}

std::string read_key(const std::string& path, const YAML::Node& n,
                     const std::string& what) {
  std::string key;
  if (auto h = n["secret_sha256"]) {
    if (!net::from_hex(scalar(path, h, "secret_sha256"), key)
        || key.size() != net::key_bytes)
      fail(path, h, "'secret_sha256' must be 64 hex digits "
                    "(see `drtp-pop hash-secret`)");
    return key;
  }
  if (auto f = n["secret_file"]) {
    auto file = scalar(path, f, "secret_file");
    try {
      return net::derive_key(cli::read_secret(file, "DRTP_SECRET"));
    } catch (const cli::error& e) {
      fail(path, f, e.what()); // the line of the config that names the file
    }
  }
  fail(path, n, what + " needs 'secret_sha256' or 'secret_file'");
}

YAML::Node load_yaml(const std::string& path) {
  try {
    std::ifstream probe{path};
    if (!probe)
      throw cli::error("cannot read config file " + path);
    return YAML::LoadFile(path);
  } catch (const YAML::Exception& e) {
    throw cli::error(path + ":" + std::to_string(e.mark.line + 1) + ": "
                     + e.msg);
  }
}

/// One entry of 'services'; `names` holds the names seen so far.
service_config parse_service(const std::string& path, const YAML::Node& s,
                             std::set<std::string>& names) {
  if (!s.IsMap())
    fail(path, s, "each service must be a map");
  check_keys(path, s, {"name", "secret_sha256", "secret_file", "public", "allow"},
             "service key");
  service_config sc;
  if (!s["name"])
    fail(path, s, "service without 'name'");
  sc.name = scalar(path, s["name"], "name");
  if (sc.name.empty() || sc.name.size() > 128)
    fail(path, s["name"], "service name must be 1-128 characters");
  if (!names.insert(sc.name).second)
    fail(path, s["name"], "service '" + sc.name + "' is listed twice");
  sc.key = read_key(path, s, "service '" + sc.name + "'");
  if (s["public"]) {
    cli::parse_host_port(scalar(path, s["public"], "public"),
                         path + ": public port of '" + sc.name + "'",
                         sc.public_host, sc.public_port);
  } else {
    sc.is_public = false;
  }
  if (auto al = s["allow"]) {
    if (!al.IsSequence())
      fail(path, al, "'allow' must be a list of principals or group:NAME");
    for (auto x : al)
      sc.allow.push_back(scalar(path, x, "allow"));
  }
  if (!sc.is_public && sc.allow.empty())
    fail(path, s, "service '" + sc.name
                    + "' has no 'public' port and no 'allow' list: nobody "
                      "could reach it");
  return sc;
}

/// One entry of 'principals'; `names` holds the names seen so far.
principal_config parse_principal(const std::string& path, const YAML::Node& p,
                                 std::set<std::string>& names) {
  if (!p.IsMap() || !p["name"])
    fail(path, p, "each principal needs a 'name'");
  check_keys(path, p, {"name", "secret_sha256", "secret_file", "groups", "revoked"},
             "principal key");
  principal_config pc;
  pc.name = scalar(path, p["name"], "name");
  if (pc.name.empty() || pc.name.size() > 128 || !names.insert(pc.name).second)
    fail(path, p["name"], "principal names must be 1-128 characters and unique");
  pc.key = read_key(path, p, "principal '" + pc.name + "'");
  if (auto g = p["groups"]) {
    if (!g.IsSequence())
      fail(path, g, "'groups' must be a list");
    for (auto x : g)
      pc.groups.push_back(scalar(path, x, "groups"));
  }
  if (auto r = p["revoked"]) {
    try {
      pc.revoked = r.as<bool>();
    } catch (const YAML::Exception&) {
      fail(path, r, "'revoked' must be true or false");
    }
  }
  return pc;
}

config parse_config(const std::string& path, const YAML::Node& root) {
  config cfg;
  if (!root.IsMap())
    fail(path, root, "expected a map with 'listen' and 'services'");
  check_keys(path, root, {"listen", "tls", "services", "principals", "idle_timeout_s"},
             "key");
  if (auto n = root["idle_timeout_s"])
    cfg.session_idle_timeout_ms =
      cli::parse_uint(scalar(path, n, "idle_timeout_s"), path + ": idle_timeout_s", 0,
                      idle_timeout_s_max, "seconds")
      * 1000;
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
  for (auto s : services)
    cfg.services.push_back(parse_service(path, s, names));
  std::set<std::string> principal_names;
  if (auto ps = root["principals"]) {
    if (!ps.IsSequence())
      fail(path, ps, "'principals' must be a list");
    for (auto p : ps)
      cfg.principals.push_back(parse_principal(path, p, principal_names));
  }
  return cfg;
}

} // namespace

config load_config(const std::string& path) {
  YAML::Node root = load_yaml(path);
  // Any conversion yaml-cpp still refuses becomes one line naming the file.
  try {
    return parse_config(path, root);
  } catch (const YAML::Exception& e) {
    throw cli::error(path + ":" + std::to_string(e.mark.line + 1) + ": "
                     + e.msg);
  }
}

void check_allow_lists(const config& cfg, const std::string& where) {
  std::set<std::string> names, groups;
  for (auto& p : cfg.principals) {
    names.insert(p.name);
    groups.insert(p.groups.begin(), p.groups.end());
  }
  static const std::string group_prefix = "group:";
  for (auto& s : cfg.services)
    for (auto& entry : s.allow) {
      bool is_group = entry.rfind(group_prefix, 0) == 0;
      if (is_group && !groups.count(entry.substr(group_prefix.size())))
        throw cli::error(where + ": service '" + s.name + "' allows '" + entry
                         + "', a group no principal belongs to");
      if (!is_group && !names.count(entry))
        throw cli::error(where + ": service '" + s.name + "' allows '" + entry
                         + "', who is not among the principals");
    }
}

} // namespace drtp::pop
