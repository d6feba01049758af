#include "pop/config.hpp"

#include <algorithm>
#include <fstream>
#include <set>

#include <yaml-cpp/yaml.h>

#include "cli/args.hpp"
#include "cli/secrets.hpp"
#include "net/openssl_crypto.hpp"
#include "net/tls.hpp"
#include "net/wire/cidr.hpp"
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
/// would silently keep one of them: a second `public_key` must not go
/// unnoticed).
void check_keys(const std::string& path, const YAML::Node& map,
                const std::vector<std::string>& known, const std::string& what) {
  std::set<std::string> seen;
  for (auto kv : map) {
    auto key = key_name(path, kv.first);
    if (std::find(known.begin(), known.end(), key) == known.end())
      fail(path, kv.first, "unknown " + what + " '" + key + "'");
    if (!seen.insert(key).second)
      fail(path, kv.first, "'" + key + "' appears twice");
  }
}

/// The public key of a service or principal: written in the file, or
/// derived from its secret file (the secret and its private key are dropped
/// at once: the POP keeps only what checks proofs). `salt` names whose key.
std::string read_public_key(const std::string& path, const YAML::Node& n,
                            const std::string& what, const std::string& salt) {
  if (auto h = n["secret_sha256"])
    fail(path, h, "'secret_sha256' is no longer accepted (it could log in): "
                  "write 'public_key' instead (see `drtp-pop public-key`)");
  if (n["public_key"] && n["secret_file"])
    fail(path, n, what + " has both 'public_key' and 'secret_file': keep one");
  if (auto h = n["public_key"]) {
    std::string key;
    if (!parse_public_key(scalar(path, h, "public_key"), key))
      fail(path, h, "'public_key' must be ed25519: and 64 hex digits "
                    "(see `drtp-pop public-key`)");
    return key;
  }
  if (auto f = n["secret_file"]) {
    auto file = scalar(path, f, "secret_file");
    try {
      return net::derive_public_key(cli::read_secret(file, "DRTP_SECRET"), salt);
    } catch (const cli::error& e) {
      fail(path, f, e.what()); // the line of the config that names the file
    }
  }
  fail(path, n, what + " needs 'public_key' or 'secret_file'");
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
  check_keys(path, s,
             {"name", "public_key", "secret_file", "secret_sha256", "public", "allow",
              "allow_cidr", "gateway", "end_open_sessions"},
             "service key");
  service_config sc;
  if (!s["name"])
    fail(path, s, "service without 'name'");
  sc.name = scalar(path, s["name"], "name");
  if (sc.name.empty() || sc.name.size() > 128)
    fail(path, s["name"], "service name must be 1-128 characters");
  if (!names.insert(sc.name).second)
    fail(path, s["name"], "service '" + sc.name + "' is listed twice");
  sc.public_key = read_public_key(path, s, "service '" + sc.name + "'",
                                  net::service_salt(sc.name));
  if (s["public"]) {
    cli::parse_host_port(scalar(path, s["public"], "public"),
                         path + ": public port of '" + sc.name + "'",
                         sc.public_host, sc.public_port);
  } else {
    sc.is_public = false;
  }
  if (auto al = s["allow"]) {
    if (!al.IsSequence())
      fail(path, al, "'allow' must be a list of principals, group:NAME or org:NAME");
    for (auto x : al)
      sc.allow.push_back(scalar(path, x, "allow"));
  }
  if (auto ac = s["allow_cidr"]) {
    if (!ac.IsSequence())
      fail(path, ac, "'allow_cidr' must be a list of CIDR blocks");
    for (auto x : ac) {
      auto text = scalar(path, x, "allow_cidr");
      net::cidr block;
      std::string why;
      if (!net::parse_cidr(text, block, &why))
        fail(path, x, "allow_cidr of '" + sc.name + "': " + why);
      sc.allow_cidr.push_back(text);
    }
    if (sc.allow_cidr.size() > net::cidr_set_entries_max)
      fail(path, ac, "'allow_cidr' has more than "
                       + std::to_string(net::cidr_set_entries_max) + " blocks");
  }
  if (auto g = s["gateway"]) {
    sc.gateway = scalar(path, g, "gateway");
    if (sc.gateway.size() > 128)
      fail(path, g, "gateway name must be at most 128 characters");
  }
  if (auto e = s["end_open_sessions"]) {
    try {
      sc.end_open_sessions = e.as<bool>();
    } catch (const YAML::Exception&) {
      fail(path, e, "'end_open_sessions' must be true or false");
    }
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
  check_keys(path, p,
             {"name", "public_key", "secret_file", "secret_sha256", "groups", "org",
              "revoked"},
             "principal key");
  principal_config pc;
  pc.name = scalar(path, p["name"], "name");
  if (pc.name.empty() || pc.name.size() > 128 || !names.insert(pc.name).second)
    fail(path, p["name"], "principal names must be 1-128 characters and unique");
  pc.public_key = read_public_key(path, p, "principal '" + pc.name + "'",
                                  net::principal_salt(pc.name));
  if (auto g = p["groups"]) {
    if (!g.IsSequence())
      fail(path, g, "'groups' must be a list");
    for (auto x : g)
      pc.groups.push_back(scalar(path, x, "groups"));
  }
  if (auto o = p["org"]) {
    pc.org = scalar(path, o, "org");
    if (pc.org.empty() || pc.org.size() > 128)
      fail(path, o, "org must be 1-128 characters");
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

/// The optional 'limits' map, every key optional: admission before login
/// (actors/admission.hpp has those defaults and what each bounds), then the
/// limits on visitors, streams and links of authenticated peers
/// (pop_params, env.hpp). Each is a whole number in [min, max].
void parse_limits(const std::string& path, const YAML::Node& n, pop_params& pp) {
  if (!n.IsMap())
    fail(path, n, "'limits' must be a map");
  auto& adm = pp.admission;
  constexpr uint32_t big = 10'000'000;
  auto queue_bytes_max = static_cast<uint32_t>(
    std::min<uint64_t>(pp.e.limits.link_write_queue_bytes_max, 0xffffffffu));
  struct field {
    const char* key;
    uint32_t* value;
    uint32_t min;
    uint32_t max;
  };
  const field fields[] = {
    {"handshakes_max", &adm.handshakes_max, 1, 1000000},
    {"handshakes_per_source_max", &adm.handshakes_per_source_max, 1, 1000000},
    {"hello_deadline_ms", &adm.hello_deadline_ms, 1, 60000},
    {"auth_attempts_burst", &adm.auth_attempts_burst, 1, 100000},
    {"auth_attempt_interval_ms", &adm.auth_attempt_interval_ms, 1, 3600000},
    {"auth_failure_window_ms", &adm.auth_failure_window_ms, 1, 86400000},
    {"auth_delay_max_ms", &adm.auth_delay_max_ms, 1, 60000},
    {"prefixes_max", &adm.prefixes_max, 1, 10000000},
    {"visitors_per_source_max", &pp.visitors_per_source_max, 1, big},
    {"visitor_opens_per_source_per_s", &pp.visitor_opens_per_source_per_s, 1, big},
    {"visitor_opens_per_source_burst", &pp.visitor_opens_per_source_burst, 1, big},
    {"visitors_per_service_max", &pp.visitors_per_service_max, 1, big},
    {"streams_per_principal_max", &pp.streams_per_principal_max, 1, big},
    {"stream_opens_per_principal_per_s", &pp.stream_opens_per_principal_per_s, 1, big},
    {"stream_opens_per_principal_burst", &pp.stream_opens_per_principal_burst, 1, big},
    // At least a few windows, at most 4 GiB (held in 64 bits: see below).
    {"link_write_queue_bytes_max", &queue_bytes_max, 4u << 20, 0xffffffffu},
    {"pings_per_interval_max", &pp.e.limits.pings_per_interval_max, 2, 1000},
  };
  std::vector<std::string> keys;
  for (auto& f : fields)
    keys.emplace_back(f.key);
  check_keys(path, n, keys, "limit");
  for (auto& f : fields)
    if (auto v = n[f.key]) {
      try {
        std::string key = f.key;
        bool ms = key.size() > 3 && key.compare(key.size() - 3, 3, "_ms") == 0;
        *f.value = cli::parse_uint(scalar(path, v, key), "limits." + key, f.min, f.max,
                                   ms ? "ms" : "(a count)");
      } catch (const cli::error& e) {
        fail(path, v, e.what());
      }
    }
  if (n["link_write_queue_bytes_max"])
    pp.e.limits.link_write_queue_bytes_max = queue_bytes_max;
}

config parse_config(const std::string& path, const YAML::Node& root, bool services_required) {
  config cfg;
  if (!root.IsMap())
    fail(path, root, "expected a map with 'listen' and 'services'");
  check_keys(path, root,
             {"listen", "tls", "services", "principals", "limits", "idle_timeout_s"}, "key");
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
  if (auto l = root["limits"])
    parse_limits(path, l, cfg.limits);
  auto services = root["services"];
  if (services_required && (!services || !services.IsSequence() || services.size() == 0))
    fail(path, root, "'services' must list at least one service");
  if (services && !services.IsSequence())
    fail(path, services, "'services' must be a list");
  std::set<std::string> names;
  if (services)
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

std::string public_key_text(const std::string& public_key) {
  return "ed25519:" + net::to_hex(public_key);
}

bool parse_public_key(const std::string& text, std::string& public_key) {
  static const std::string prefix = "ed25519:";
  return text.compare(0, prefix.size(), prefix) == 0
         && net::from_hex(text.substr(prefix.size()), public_key)
         && public_key.size() == net::public_key_bytes;
}

config load_config(const std::string& path, bool services_required) {
  YAML::Node root = load_yaml(path);
  // Any conversion yaml-cpp still refuses becomes one line naming the file.
  try {
    return parse_config(path, root, services_required);
  } catch (const YAML::Exception& e) {
    throw cli::error(path + ":" + std::to_string(e.mark.line + 1) + ": "
                     + e.msg);
  }
}

void check_allow_lists(const config& cfg, const std::string& where) {
  std::set<std::string> names, groups, orgs;
  for (auto& p : cfg.principals) {
    names.insert(p.name);
    groups.insert(p.groups.begin(), p.groups.end());
    if (!p.org.empty())
      orgs.insert(p.org);
  }
  static const std::string group_prefix = "group:";
  static const std::string org_prefix = "org:";
  for (auto& s : cfg.services)
    for (auto& entry : s.allow) {
      bool is_group = entry.rfind(group_prefix, 0) == 0;
      bool is_org = entry.rfind(org_prefix, 0) == 0;
      if (is_group && !groups.count(entry.substr(group_prefix.size())))
        throw cli::error(where + ": service '" + s.name + "' allows '" + entry
                         + "', a group no principal belongs to");
      if (is_org && !orgs.count(entry.substr(org_prefix.size())))
        throw cli::error(where + ": service '" + s.name + "' allows '" + entry
                         + "', an org no principal belongs to");
      if (!is_group && !is_org && !names.count(entry))
        throw cli::error(where + ": service '" + s.name + "' allows '" + entry
                         + "', who is not among the principals");
    }
}

} // namespace drtp::pop
