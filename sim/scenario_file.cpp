#include "sim/scenario_file.hpp"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <map>
#include <set>
#include <sstream>

#include <yaml-cpp/yaml.h>

#include "actors/agent.hpp"

namespace drtp::sim {

namespace {

/// All visitors run on this host; links may name it, POPs and agents may not.
constexpr const char* visitors_host = "visitors";
constexpr uint64_t workload_count_max = 100000;

// -- errors ------------------------------------------------------------------------

std::string line_of(const std::string& file, const YAML::Mark& m) {
  if (m.is_null())
    return file;
  return file + ":" + std::to_string(m.line + 1);
}

[[noreturn]] void fail(const std::string& file, const YAML::Mark& m,
                       const std::string& key, const std::string& what) {
  std::string msg = line_of(file, m) + ": ";
  if (!key.empty())
    msg += "key '" + key + "': ";
  throw scenario_error(msg + what);
}

// -- scalars -------------------------------------------------------------------------

std::string trim(const std::string& s) {
  auto b = s.find_first_not_of(" \t");
  if (b == std::string::npos)
    return "";
  auto e = s.find_last_not_of(" \t");
  return s.substr(b, e - b + 1);
}

/// "12.345" times `scale` exactly (no binary floating point on the way, so
/// "1.1s" is 1100000 us, not 1099999). False if not a plain decimal or if the
/// result is not whole or overflows.
bool scaled_decimal(const std::string& num, uint64_t scale, uint64_t& out,
                    std::string& why) {
  if (num.empty() || num == ".") {
    why = "expected a number";
    return false;
  }
  if (num[0] == '-') {
    why = "must not be negative";
    return false;
  }
  uint64_t whole = 0;
  size_t i = 0;
  bool digits = false;
  for (; i < num.size() && num[i] >= '0' && num[i] <= '9'; ++i) {
    digits = true;
    auto d = static_cast<uint64_t>(num[i] - '0');
    if (whole > (std::numeric_limits<uint64_t>::max() - d) / 10) {
      why = "is too large";
      return false;
    }
    whole = whole * 10 + d;
  }
  // The fraction as num/den, then times `scale`: exact for any scale
  // (1024 is not a power of ten).
  unsigned __int128 frac_num = 0, frac_den = 1;
  if (i < num.size() && num[i] == '.') {
    ++i;
    for (int k = 0; i < num.size() && num[i] >= '0' && num[i] <= '9'; ++i, ++k) {
      digits = true;
      if (k >= 24) {
        if (num[i] != '0') {
          why = "has too many digits";
          return false;
        }
        continue;
      }
      frac_num = frac_num * 10 + static_cast<unsigned>(num[i] - '0');
      frac_den *= 10;
    }
  }
  unsigned __int128 frac_total = frac_num * scale;
  if (frac_total % frac_den != 0) {
    why = "is finer than the smallest unit";
    return false;
  }
  auto frac_scaled = static_cast<uint64_t>(frac_total / frac_den);
  if (i != num.size() || !digits) {
    why = "expected a number";
    return false;
  }
  if (whole > (std::numeric_limits<uint64_t>::max() - frac_scaled) / scale) {
    why = "is too large";
    return false;
  }
  out = whole * scale + frac_scaled;
  return true;
}

/// Splits "1.5s" into "1.5" and "s".
void split_unit(const std::string& text, std::string& num, std::string& unit) {
  size_t i = 0;
  while (i < text.size()
         && ((text[i] >= '0' && text[i] <= '9') || text[i] == '.' || text[i] == '-'
             || text[i] == '+'))
    ++i;
  num = text.substr(0, i);
  unit = trim(text.substr(i));
}

/// Shortest exact "<n><unit>" of `v` among the units (largest first).
std::string format_units(uint64_t v,
                         std::initializer_list<std::pair<uint64_t, const char*>> units,
                         const char* base) {
  for (auto& [scale, name] : units)
    if (v != 0 && v % scale == 0)
      return std::to_string(v / scale) + name;
  return std::to_string(v) + base;
}

/// Strings that YAML would read as something other than the same plain
/// string get double quotes.
std::string quote(const std::string& s) {
  bool plain = !s.empty() && s.size() < 200;
  for (char c : s)
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
          || c == '_' || c == '-' || c == '.'))
      plain = false;
  if (plain && (s[0] == '-' || s[0] == '.'))
    plain = false;
  if (plain) {
    std::string lower;
    for (char c : s)
      lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    static const std::set<std::string> special{"null", "true", "false", "yes", "no",
                                               "on", "off", "y", "n", "nan", "inf"};
    if (special.count(lower))
      plain = false;
  }
  if (plain)
    return s;
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      case '\r': out += "\\r"; break;
      default:
        if (c < 0x20 || c == 0x7f) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\x%02x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out + "\"";
}

std::string format_fraction(double v) {
  // The shortest spelling that reads back as the same double.
  for (int digits = 6; digits <= 17; ++digits) {
    char buf[40];
    std::snprintf(buf, sizeof(buf), "%.*g", digits, v);
    if (std::strtod(buf, nullptr) == v)
      return buf;
  }
  return "0";
}

// -- maps ----------------------------------------------------------------------------

/// One YAML map: checks its keys once (unknown, duplicate, clock skew) and
/// hands out typed values with errors that point at the right line.
class fields {
public:
  fields(const std::string& file, const YAML::Node& n, const std::string& what,
         std::initializer_list<const char*> allowed, const std::string& parent_key = "")
    : file_(file), mark_(n.Mark()) {
    if (!n.IsMap())
      fail(file, n.Mark(), parent_key, what + " must be a map of keys");
    std::string expected;
    for (auto a : allowed)
      expected += std::string(expected.empty() ? "" : ", ") + a;
    for (auto it = n.begin(); it != n.end(); ++it) {
      if (!it->first.IsScalar())
        fail(file, it->first.Mark(), "", "a key in " + what + " must be a plain word");
      auto key = it->first.Scalar();
      if (std::find_if(allowed.begin(), allowed.end(),
                       [&](const char* a) { return key == a; })
          == allowed.end())
        fail(file, it->first.Mark(), key,
             "unknown key in " + what + " (expected one of: " + expected + ")");
      if (!entries_.emplace(key, entry{it->first.Mark(), it->second}).second)
        fail(file, it->first.Mark(), key, "given twice in " + what);
    }
  }

  bool has(const std::string& key) const {
    return entries_.count(key) > 0;
  }

  const YAML::Node& node(const std::string& key) const {
    return entries_.at(key).value;
  }

  const YAML::Mark& mark(const std::string& key) const {
    auto i = entries_.find(key);
    return i == entries_.end() ? mark_ : i->second.mark;
  }

  const YAML::Mark& where() const {
    return mark_;
  }

  [[noreturn]] void bad(const std::string& key, const std::string& what) const {
    fail(file_, mark(key), key, what);
  }

  void require(const std::string& key, const std::string& what) const {
    if (!has(key))
      fail(file_, mark_, key, "missing: " + what);
  }

  std::string str(const std::string& key) const {
    auto& n = node(key);
    if (!n.IsScalar())
      bad(key, "must be a string");
    return n.Scalar();
  }

  /// Host, POP, service and agent names: they become addresses and words in
  /// trace lines, so no spaces or punctuation.
  std::string name(const std::string& key) const {
    return name_of(node(key), key);
  }

  std::string name_of(const YAML::Node& n, const std::string& key) const {
    if (!n.IsScalar())
      fail(file_, n.Mark(), key, "must be a name");
    auto s = n.Scalar();
    bool good = !s.empty() && s.size() <= 64;
    for (char c : s)
      if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
            || c == '_' || c == '-' || c == '.'))
        good = false;
    if (!good)
      fail(file_, n.Mark(), key,
           "'" + s + "' is not a name (1-64 letters, digits, '_', '-', '.')");
    return s;
  }

  std::vector<std::string> names(const std::string& key) const {
    auto& n = node(key);
    if (!n.IsSequence())
      bad(key, "must be a list of names, e.g. [pop1, pop2]");
    std::vector<std::string> out;
    for (auto it = n.begin(); it != n.end(); ++it)
      out.push_back(name_of(*it, key));
    return out;
  }

  std::pair<std::string, std::string> pair(const std::string& key) const {
    auto& n = node(key);
    if (!n.IsSequence() || n.size() != 2)
      bad(key, "must name two hosts, e.g. [joe, pop1]");
    auto a = name_of(n[0], key);
    auto b = name_of(n[1], key);
    if (a == b)
      bad(key, "names '" + a + "' twice; a link joins two different hosts");
    return {a, b};
  }

  uint64_t uint(const std::string& key, uint64_t min, uint64_t max) const {
    auto& n = node(key);
    if (!n.IsScalar())
      bad(key, "must be a whole number");
    auto s = trim(n.Scalar());
    uint64_t v = 0;
    std::string why;
    if (s.find('.') != std::string::npos || !scaled_decimal(s, 1, v, why))
      bad(key, "must be a whole number, got '" + s + "'"
                 + (s.size() > 0 && s[0] == '-' ? " (negative)" : ""));
    if (v < min || v > max)
      bad(key, "must be between " + std::to_string(min) + " and "
                 + std::to_string(max) + ", got " + std::to_string(v));
    return v;
  }

  bool boolean(const std::string& key) const {
    auto& n = node(key);
    auto s = n.IsScalar() ? n.Scalar() : "";
    if (s == "true" || s == "yes")
      return true;
    if (s == "false" || s == "no")
      return false;
    bad(key, "must be true or false");
  }

  uint64_t duration(const std::string& key, uint64_t max_us = UINT64_MAX) const {
    auto& n = node(key);
    if (!n.IsScalar())
      bad(key, "must be a duration such as 250ms, 3s, 1.5s, 2m or 500us");
    uint64_t us = 0;
    std::string why;
    if (!parse_duration_us(n.Scalar(), us, why))
      bad(key, why);
    if (us > max_us)
      bad(key, "'" + n.Scalar() + "' is too long (at most " + format_duration(max_us)
                 + ")");
    return us;
  }

  uint32_t duration_ms(const std::string& key) const {
    auto us = duration(key, uint64_t{UINT32_MAX} * 1000);
    if (us % 1000 != 0)
      bad(key, "must be whole milliseconds");
    return static_cast<uint32_t>(us / 1000);
  }

  uint64_t size(const std::string& key) const {
    auto& n = node(key);
    if (!n.IsScalar())
      bad(key, "must be a size such as 1000, 64KiB or 1MiB");
    uint64_t bytes = 0;
    std::string why;
    if (!parse_size_bytes(n.Scalar(), bytes, why))
      bad(key, why);
    return bytes;
  }

  /// A chance: 0.05 or 5%.
  double number(const std::string& key) const {
    auto& n = node(key);
    auto txt = n.IsScalar() ? trim(n.Scalar()) : std::string{};
    char* end = nullptr;
    errno = 0;
    double v = txt.empty() ? NAN : std::strtod(txt.c_str(), &end);
    if (txt.empty() || errno != 0 || *end != '\0' || !std::isfinite(v))
      bad(key, "must be a number, got '" + txt + "'");
    return v;
  }

  double fraction(const std::string& key) const {
    auto& n = node(key);
    if (!n.IsScalar())
      bad(key, "must be a fraction between 0 and 1, e.g. 0.05 or 5%");
    auto s = trim(n.Scalar());
    bool percent = !s.empty() && s.back() == '%';
    auto num = percent ? trim(s.substr(0, s.size() - 1)) : s;
    char* end = nullptr;
    errno = 0;
    double v = num.empty() ? NAN : std::strtod(num.c_str(), &end);
    if (num.empty() || errno != 0 || *end != '\0' || !std::isfinite(v))
      bad(key, "must be a fraction between 0 and 1, e.g. 0.05 or 5%, got '" + s + "'");
    if (percent)
      v /= 100;
    if (v < 0 || v > 1)
      bad(key, "must be between 0 and 1 (or 0% and 100%), got '" + s + "'");
    return v;
  }

private:
  struct entry {
    YAML::Mark mark;
    YAML::Node value;
  };
  std::string file_;
  YAML::Mark mark_;
  std::map<std::string, entry> entries_;
};

/// A list under `key` of `f`, or an empty one if the key is absent.
std::vector<YAML::Node> list(const std::string& file, const fields& f,
                             const std::string& key) {
  std::vector<YAML::Node> out;
  if (!f.has(key))
    return out;
  auto& n = f.node(key);
  if (n.IsNull())
    return out;
  if (!n.IsSequence())
    f.bad(key, "must be a list (one '- ...' entry per item)");
  for (auto it = n.begin(); it != n.end(); ++it)
    out.push_back(*it);
  return out;
}

// -- the parser ----------------------------------------------------------------------

class parser {
public:
  explicit parser(std::string file) : file_(std::move(file)) {
  }

  scenario_spec parse(const YAML::Node& root) {
    if (!root.IsDefined() || root.IsNull())
      fail(file_, root.Mark(), "", "the scenario is empty (see scenarios/README.md)");
    fields top{file_, root, "the scenario",
               {"name", "duration", "quiet", "drain_grace", "resume_timeout", "limits",
                "links", "control", "pops", "principals", "services", "agents",
                "clients", "workload", "faults", "expect"}};
    if (top.has("name"))
      s_.name = top.name("name");
    if (top.has("duration"))
      s_.duration_us = top.duration("duration");
    if (top.has("quiet"))
      s_.quiet_us = top.duration("quiet");
    if (top.has("drain_grace"))
      s_.drain_grace_ms = top.duration_ms("drain_grace");
    if (top.has("resume_timeout")) {
      s_.resume_timeout_ms = top.duration_ms("resume_timeout");
      if (s_.resume_timeout_ms == 0)
        top.bad("resume_timeout", "must be at least 1ms");
    }
    if (top.has("limits"))
      parse_limits(top);
    top.require("pops", "list the POPs, e.g. pops: [{name: pop1, region: eu}]");
    top.require("services", "list the services, e.g. services: [{name: pg}]");
    if (top.has("control")) {
      fields f{file_, top.node("control"), "the control plane", {"name"}, "control"};
      f.require("name", "the control plane's host name, e.g. control: {name: control}");
      s_.control.name = f.name("name");
      add_host(f, "name", s_.control.name);
    }
    parse_pops(top);
    parse_principals(top);
    parse_services(top);
    parse_agents(top);
    parse_clients(top);
    if (top.has("links"))
      parse_links(top);
    parse_workload(top);
    parse_faults(top);
    parse_expect(top);
    // The checks above point at the line; this one catches whatever they
    // missed, in the engine's own words.
    auto why = validate(s_);
    if (!why.empty())
      fail(file_, top.where(), "", why);
    return s_;
  }

private:
  void parse_limits(const fields& top) {
    fields f{file_, top.node("limits"), "limits",
             {"heartbeat_interval", "heartbeat_misses", "handshake_timeout",
              "connect_timeout", "window", "streams_per_tunnel"},
             "limits"};
    auto& l = s_.limits;
    auto positive_ms = [&](const std::string& key, uint32_t& out) {
      if (!f.has(key))
        return;
      out = f.duration_ms(key);
      if (out == 0)
        f.bad(key, "must be at least 1ms");
    };
    positive_ms("heartbeat_interval", l.heartbeat_interval_ms);
    positive_ms("handshake_timeout", l.handshake_timeout_ms);
    positive_ms("connect_timeout", l.connect_timeout_ms);
    if (f.has("heartbeat_misses"))
      l.heartbeat_misses_max = static_cast<uint32_t>(f.uint("heartbeat_misses", 1, 1000));
    if (f.has("window")) {
      auto w = f.size("window");
      if (w < 1024 || w > UINT32_MAX)
        f.bad("window", "must be between 1KiB and 4GiB");
      l.window_bytes = static_cast<uint32_t>(w);
    }
    if (f.has("streams_per_tunnel"))
      l.streams_per_tunnel_max =
        static_cast<uint32_t>(f.uint("streams_per_tunnel", 1, 1'000'000));
  }

  link_params parse_link(const fields& f, link_params p) {
    if (f.has("latency"))
      p.latency_us = static_cast<uint32_t>(f.duration("latency", UINT32_MAX));
    if (f.has("jitter"))
      p.jitter_us = static_cast<uint32_t>(f.duration("jitter", UINT32_MAX));
    if (f.has("bandwidth")) {
      auto& n = f.node("bandwidth");
      auto text = n.IsScalar() ? trim(n.Scalar()) : "";
      if (text == "unlimited") {
        p.bandwidth_bytes_per_s = 0;
      } else {
        // "100MiB" and "100MiB/s" both mean per second.
        if (text.size() > 2 && text.compare(text.size() - 2, 2, "/s") == 0)
          text = text.substr(0, text.size() - 2);
        std::string why;
        if (!n.IsScalar() || !parse_size_bytes(text, p.bandwidth_bytes_per_s, why))
          f.bad("bandwidth", "must be bytes per second such as 100MiB, 10MB/s or "
                             "unlimited");
      }
    }
    if (f.has("loss"))
      p.loss = f.fraction("loss");
    return p;
  }

  void parse_pops(const fields& top) {
    auto items = list(file_, top, "pops");
    if (items.empty())
      top.bad("pops", "a scenario needs at least one POP");
    for (auto& n : items) {
      fields f{file_, n, "a POP", {"name", "region", "control"}, "pops"};
      f.require("name", "every POP needs a name");
      pop_spec p;
      p.name = f.name("name");
      if (f.has("region"))
        p.region = f.name("region");
      if (f.has("control")) {
        p.control = f.boolean("control");
        if (p.control && s_.control.name.empty())
          f.bad("control", "there is no control plane to follow (add control: {name: ...})");
      }
      add_host(f, "name", p.name);
      pops_.insert(p.name);
      s_.pops.push_back(p);
    }
  }

  void parse_services(const fields& top) {
    auto items = list(file_, top, "services");
    if (items.empty())
      top.bad("services", "a scenario needs at least one service");
    std::set<uint64_t> ports;
    for (auto& n : items) {
      fields f{file_, n, "a service",
               {"name", "secret", "public_port", "public", "allow", "registered"}, "services"};
      f.require("name", "every service needs a name");
      service_spec svc;
      svc.name = f.name("name");
      if (!services_.insert(svc.name).second)
        f.bad("name", "service '" + svc.name + "' is listed twice");
      if (f.has("secret"))
        svc.secret = f.str("secret");
      if (f.has("public_port")) {
        auto port = f.uint("public_port", 1, 65535);
        // The POPs' tunnel listener sits on 7000 in the simulator.
        if (port == 7000)
          f.bad("public_port", "7000 is the POPs' tunnel port; pick another");
        svc.public_port = static_cast<uint16_t>(port);
      }
      if (!ports.insert(svc.public_port).second)
        f.bad(f.has("public_port") ? "public_port" : "name",
              "public port " + std::to_string(svc.public_port)
                + " is taken by another service");
      if (f.has("public"))
        svc.is_public = f.boolean("public");
      if (f.has("allow"))
        svc.allow = parse_allow(f);
      if (f.has("registered")) {
        svc.registered = f.boolean("registered");
        if (s_.control.name.empty())
          f.bad("registered", "only with a control plane (control: {name: ...})");
      }
      s_.services.push_back(svc);
    }
  }

  void parse_agents(const fields& top) {
    for (auto& n : list(file_, top, "agents")) {
      fields f{file_, n, "an agent",
               {"name", "service", "tunnels", "pops", "secret", "control"}, "agents"};
      f.require("name", "every agent needs a name (its host name)");
      f.require("service", "which service the agent serves");
      agent_spec a;
      a.name = f.name("name");
      add_host(f, "name", a.name);
      a.service = f.name("service");
      if (!services_.count(a.service))
        f.bad("service", "unknown service '" + a.service + "'");
      if (f.has("tunnels"))
        a.tunnels = static_cast<uint32_t>(f.uint("tunnels", 1, tunnels_target_max));
      if (f.has("pops")) {
        a.pops = f.names("pops");
        for (auto& p : a.pops)
          if (!pops_.count(p))
            f.bad("pops", "unknown POP '" + p + "'");
        if (a.pops.empty())
          f.bad("pops", "leave 'pops' out to use every POP; an empty list means none");
      }
      if (f.has("secret")) {
        a.secret = f.str("secret");
        if (a.secret.empty())
          f.bad("secret", "must not be empty (leave it out to use the service's)");
      }
      if (f.has("control")) {
        a.control = f.boolean("control");
        if (a.control && s_.control.name.empty())
          f.bad("control", "there is no control plane to follow (add control: {name: ...})");
        if (a.control && f.has("pops"))
          f.bad("pops", "an agent of the control plane takes its POPs from the registry");
      }
      s_.agents.push_back(a);
    }
  }

  /// `allow: [sam, group:partners]`: declared principals, or groups some
  /// declared principal is in (anything else is a typo that would quietly
  /// lock everyone out).
  std::vector<std::string> parse_allow(const fields& f) {
    auto& n = f.node("allow");
    if (!n.IsSequence())
      f.bad("allow", "must be a list of principals and groups, e.g. "
                     "[sam, \"group:partners\"]");
    std::vector<std::string> out;
    std::set<std::string> seen;
    for (auto it = n.begin(); it != n.end(); ++it) {
      if (!it->IsScalar())
        fail(file_, it->Mark(), "allow", "must be a principal name or group:NAME");
      auto entry = it->Scalar();
      const std::string prefix = "group:";
      if (entry.compare(0, prefix.size(), prefix) == 0) {
        auto g = entry.substr(prefix.size());
        bool good = !g.empty() && g.size() <= 64;
        for (char c : g)
          if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
                || c == '_' || c == '-' || c == '.'))
            good = false;
        if (!good)
          fail(file_, it->Mark(), "allow",
               "'" + g + "' is not a group name (1-64 letters, digits, '_', '-', '.')");
        if (!groups_.count(g))
          fail(file_, it->Mark(), "allow",
               "no principal is in group '" + g + "' (see 'principals')");
      } else {
        auto name = f.name_of(*it, "allow");
        if (!principals_.count(name))
          fail(file_, it->Mark(), "allow",
               "unknown principal '" + name + "' (see 'principals'; groups are "
               "written group:NAME)");
      }
      if (!seen.insert(entry).second)
        fail(file_, it->Mark(), "allow", "'" + entry + "' is listed twice");
      out.push_back(entry);
    }
    return out;
  }

  void parse_principals(const fields& top) {
    for (auto& n : list(file_, top, "principals")) {
      fields f{file_, n, "a principal", {"name", "secret", "groups", "revoked"},
               "principals"};
      f.require("name", "every principal needs a name");
      principal_spec p;
      p.name = f.name("name");
      if (!principals_.insert(p.name).second)
        f.bad("name", "principal '" + p.name + "' is listed twice");
      if (f.has("secret"))
        p.secret = f.str("secret");
      if (f.has("groups")) {
        p.groups = f.names("groups");
        std::set<std::string> mine;
        for (auto& g : p.groups)
          if (!mine.insert(g).second)
            f.bad("groups", "group '" + g + "' is listed twice");
        groups_.insert(p.groups.begin(), p.groups.end());
      }
      if (f.has("revoked"))
        p.revoked = f.boolean("revoked");
      s_.principals.push_back(p);
    }
  }

  void parse_clients(const fields& top) {
    for (auto& n : list(file_, top, "clients")) {
      fields f{file_, n, "a client",
               {"name", "service", "principal", "secret", "tunnels", "pops",
                "listen_port"},
               "clients"};
      f.require("name", "every client needs a name (its host name)");
      f.require("service", "which service the client connects to");
      f.require("principal", "who the client authenticates as");
      client_spec c;
      c.name = f.name("name");
      add_host(f, "name", c.name);
      c.service = f.name("service");
      if (!services_.count(c.service))
        f.bad("service", "unknown service '" + c.service + "'");
      c.principal = f.name("principal");
      if (!principals_.count(c.principal))
        f.bad("principal", "unknown principal '" + c.principal
                             + "' (declare it under 'principals'; one on no allow "
                               "list plays a stranger)");
      if (f.has("secret")) {
        c.secret = f.str("secret");
        if (c.secret.empty())
          f.bad("secret", "must not be empty (leave it out to use the principal's)");
      }
      if (f.has("tunnels"))
        c.tunnels = static_cast<uint32_t>(f.uint("tunnels", 1, tunnels_target_max));
      if (f.has("pops")) {
        c.pops = f.names("pops");
        for (auto& p : c.pops)
          if (!pops_.count(p))
            f.bad("pops", "unknown POP '" + p + "'");
        if (c.pops.empty())
          f.bad("pops", "leave 'pops' out to use every POP; an empty list means none");
      }
      if (f.has("listen_port"))
        c.listen_port = static_cast<uint16_t>(f.uint("listen_port", 1, 65535));
      clients_[c.name] = c.service;
      s_.clients.push_back(c);
    }
  }

  void parse_links(const fields& top) {
    fields links{file_, top.node("links"), "links", {"default", "overrides"}, "links"};
    if (links.has("default")) {
      fields d{file_, links.node("default"), "the default link",
               {"latency", "jitter", "bandwidth", "loss"}, "default"};
      s_.default_link = parse_link(d, s_.default_link);
    }
    for (auto& n : list(file_, links, "overrides")) {
      fields f{file_, n, "a link override",
               {"between", "latency", "jitter", "bandwidth", "loss"}, "overrides"};
      f.require("between", "the two hosts, e.g. between: [joe, pop1]");
      link_spec l;
      std::tie(l.a, l.b) = f.pair("between");
      for (auto& h : {l.a, l.b})
        if (!hosts_.count(h))
          f.bad("between", "unknown host '" + h
                             + "' (POPs, agents, clients and 'visitors')");
      // Unset fields are the default link's.
      l.p = parse_link(f, s_.default_link);
      s_.links.push_back(l);
    }
  }

  void parse_workload(const fields& top) {
    for (auto& n : list(file_, top, "workload")) {
      fields f{file_, n, "a workload",
               {"service", "kind", "count", "start", "every", "bytes", "rounds", "pop",
                "via"},
               "workload"};
      workload_spec w;
      if (f.has("via")) {
        w.via = f.name("via");
        auto c = clients_.find(w.via);
        if (c == clients_.end())
          f.bad("via", "unknown client '" + w.via + "' (see 'clients')");
        if (f.has("pop"))
          f.bad("pop", "a workload goes through a POP's public port ('pop') or "
                       "through a client ('via'), not both");
        // The service is the client's; naming it is optional.
        w.service = c->second;
        if (f.has("service") && f.name("service") != w.service)
          f.bad("service", "client '" + w.via + "' connects to service '" + w.service
                             + "', not '" + f.name("service") + "'");
      } else {
        f.require("service", "which service the visitors call");
        w.service = f.name("service");
        if (!services_.count(w.service))
          f.bad("service", "unknown service '" + w.service + "'");
      }
      if (f.has("kind")) {
        auto k = f.str("kind");
        if (k == "echo")
          w.kind = workload_kind::echo;
        else if (k == "upload")
          w.kind = workload_kind::upload;
        else if (k == "download")
          w.kind = workload_kind::download;
        else if (k == "request-response" || k == "request_response")
          w.kind = workload_kind::request_response;
        else
          f.bad("kind", "'" + k
                          + "' is not one of echo, upload, download, request-response");
      }
      if (f.has("count"))
        w.count = static_cast<uint32_t>(f.uint("count", 0, workload_count_max));
      if (f.has("start"))
        w.start_us = f.duration("start");
      if (f.has("every"))
        w.spacing_us = f.duration("every");
      if (f.has("bytes"))
        w.bytes = f.size("bytes");
      if (f.has("rounds"))
        w.rounds = static_cast<uint32_t>(f.uint("rounds", 1, 1'000'000));
      if (f.has("pop")) {
        w.pop = f.name("pop");
        if (!pops_.count(w.pop))
          f.bad("pop", "unknown POP '" + w.pop + "'");
      }
      s_.workload.push_back(w);
    }
  }

  void parse_faults(const fields& top) {
    uint64_t last_at = 0;
    for (auto& n : list(file_, top, "faults")) {
      fields f{file_, n, "a fault",
               {"at", "crash", "crash_silent", "restart", "drain", "partition", "heal",
                "latency_spike", "loss_burst", "clock_skew", "create_service",
                "delete_service", "one_way", "for", "latency", "loss", "rate"},
               "faults"};
      f.require("at", "when the fault happens, e.g. at: 20s");
      fault_spec fs;
      fs.at_us = f.duration("at");
      // Expectations name faults by their place in the list, and the engine
      // applies them in time order: the two must agree.
      if (fs.at_us < last_at)
        f.bad("at", "faults must be listed in time order ("
                      + format_duration(fs.at_us) + " comes after "
                      + format_duration(last_at) + ")");
      last_at = fs.at_us;
      auto kind_key = parse_fault_kind(f, fs);
      bool pair = parse_fault_hosts(f, fs, kind_key);
      parse_fault_options(f, fs, pair);
      s_.faults.push_back(fs);
    }
  }

  /// The one key that names the fault's kind; sets fs.kind.
  std::string parse_fault_kind(const fields& f, fault_spec& fs) {
    static const std::pair<const char*, fault_kind> kinds[] = {
      {"crash", fault_kind::crash},
      {"crash_silent", fault_kind::crash_silent},
      {"restart", fault_kind::restart},
      {"drain", fault_kind::drain},
      {"partition", fault_kind::partition},
      {"heal", fault_kind::heal},
      {"latency_spike", fault_kind::latency_spike},
      {"loss_burst", fault_kind::loss_burst},
      {"clock_skew", fault_kind::clock_skew},
      {"create_service", fault_kind::create_service},
      {"delete_service", fault_kind::delete_service},
    };
    std::string kind_key;
    for (auto& [key, kind] : kinds) {
      if (!f.has(key))
        continue;
      if (!kind_key.empty())
        f.bad(key, "a fault has one kind, but '" + kind_key + "' and '" + key
                     + "' are both given");
      kind_key = key;
      fs.kind = kind;
    }
    if (kind_key.empty())
      fail(file_, f.where(), "", "a fault needs one of crash, crash_silent, "
                                 "restart, drain, partition, heal, latency_spike, "
                                 "loss_burst, clock_skew, create_service, "
                                 "delete_service");
    return kind_key;
  }

  /// The host (or the two hosts) the fault hits; whether it takes two.
  bool parse_fault_hosts(const fields& f, fault_spec& fs, const std::string& kind_key) {
    bool pair = fs.kind == fault_kind::partition || fs.kind == fault_kind::heal
                || fs.kind == fault_kind::latency_spike
                || fs.kind == fault_kind::loss_burst;
    if (pair) {
      std::tie(fs.a, fs.b) = f.pair(kind_key);
      for (auto& h : {fs.a, fs.b})
        if (!hosts_.count(h))
          f.bad(kind_key, "unknown host '" + h
                            + "' (POPs, agents, clients and 'visitors')");
    } else if (fs.kind == fault_kind::create_service
               || fs.kind == fault_kind::delete_service) {
      fs.a = f.name(kind_key);
      if (s_.control.name.empty())
        f.bad(kind_key, "only with a control plane (control: {name: ...})");
      if (!services_.count(fs.a))
        f.bad(kind_key, "unknown service '" + fs.a + "'");
    } else {
      fs.a = f.name(kind_key);
      if (fs.kind == fault_kind::drain && !pops_.count(fs.a))
        f.bad(kind_key, "'" + fs.a + "' is not a POP; only POPs drain");
      if (fs.a == visitors_host || !hosts_.count(fs.a))
        f.bad(kind_key, "unknown host '" + fs.a + "' (a POP, an agent or a client)");
    }
    return pair;
  }

  /// one_way, for, and the figure each kind needs (and no other takes).
  void parse_fault_options(const fields& f, fault_spec& fs, bool pair) {
    if (f.has("one_way")) {
      if (!pair)
        f.bad("one_way", "only for partition (and the other two-host faults)");
      fs.both_ways = !f.boolean("one_way");
    }
    if (f.has("for"))
      fs.duration_us = f.duration("for");
    if (f.has("latency") != (fs.kind == fault_kind::latency_spike))
      f.bad("latency", fs.kind == fault_kind::latency_spike
                         ? "missing: how long a latency spike makes the link, "
                           "e.g. latency: 200ms"
                         : "only for latency_spike");
    if (f.has("latency"))
      fs.latency_us = static_cast<uint32_t>(f.duration("latency", UINT32_MAX));
    if (f.has("loss") != (fs.kind == fault_kind::loss_burst))
      f.bad("loss", fs.kind == fault_kind::loss_burst
                      ? "missing: the loss during the burst, e.g. loss: 0.2"
                      : "only for loss_burst");
    if (f.has("loss"))
      fs.loss = f.fraction("loss");
    if (f.has("rate") != (fs.kind == fault_kind::clock_skew))
      f.bad("rate", fs.kind == fault_kind::clock_skew
                      ? "missing: how fast the host's clock runs, e.g. rate: 1.05"
                      : "only for clock_skew");
    if (f.has("rate")) {
      fs.rate = f.number("rate");
      if (!(fs.rate >= 0.5 && fs.rate <= 2.0))
        f.bad("rate", "must be between 0.5 and 2 (1 is true time)");
    }
  }


  void parse_expect(const fields& top) {
    for (auto& n : list(file_, top, "expect")) {
      fields f{file_, n, "an expectation",
               {"sessions_failed_max", "tunnels_restored_within", "reachable_within",
                "after_fault"},
               "expect"};
      expectation_spec e;
      int kinds = 0;
      for (auto key : {"sessions_failed_max", "tunnels_restored_within",
                       "reachable_within"}) {
        if (!f.has(key))
          continue;
        if (++kinds > 1)
          f.bad(key, "an expectation checks one thing; write one entry per check");
        std::string k = key;
        if (k == "sessions_failed_max") {
          e.kind = expectation_kind::sessions_failed_max;
          e.value = f.uint(key, 0, workload_count_max * 1000);
        } else {
          e.kind = k == "tunnels_restored_within" ? expectation_kind::tunnels_restored_within
                                                  : expectation_kind::reachable_within;
          e.value = f.duration(key);
        }
      }
      if (kinds == 0)
        fail(file_, f.where(), "", "an expectation needs one of sessions_failed_max, "
                                   "tunnels_restored_within, reachable_within");
      if (e.kind == expectation_kind::sessions_failed_max) {
        if (f.has("after_fault"))
          f.bad("after_fault", "only for tunnels_restored_within and reachable_within");
      } else {
        f.require("after_fault", "which fault the clock starts at (0 is the first "
                                 "in 'faults')");
        if (s_.faults.empty())
          f.bad("after_fault", "there are no faults");
        e.fault = static_cast<size_t>(f.uint("after_fault", 0, s_.faults.size() - 1));
      }
      s_.expectations.push_back(e);
    }
  }

  void add_host(const fields& f, const std::string& key, const std::string& name) {
    if (name == visitors_host)
      f.bad(key, "'visitors' is the host every visitor runs on; pick another name");
    if (!hosts_.insert(name).second)
      f.bad(key, "'" + name
                   + "' is used twice (POP, agent and client names share one space)");
  }

  std::string file_;
  scenario_spec s_;
  std::set<std::string> hosts_{visitors_host};
  std::set<std::string> pops_;
  std::set<std::string> services_;
  std::set<std::string> principals_;
  std::set<std::string> groups_;
  std::map<std::string, std::string> clients_; // name -> service
};

// -- the writer ----------------------------------------------------------------------

std::string link_fields(const link_params& p) {
  return "latency: " + format_duration(p.latency_us)
         + ", jitter: " + format_duration(p.jitter_us)
         + ", bandwidth: "
         + (p.bandwidth_bytes_per_s == 0 ? std::string{"unlimited"}
                                         : format_size(p.bandwidth_bytes_per_s))
         + ", loss: " + format_fraction(p.loss);
}

/// Secrets are always quoted: an empty one must stay an empty string.
std::string quoted_secret(const std::string& s) {
  std::string q = quote(s);
  if (q.empty() || q[0] != '"')
    q = "\"" + q + "\"";
  return q;
}

std::string name_list(const std::vector<std::string>& names) {
  std::string out = "[";
  for (size_t i = 0; i < names.size(); ++i)
    out += (i ? ", " : "") + quote(names[i]);
  return out + "]";
}

const char* kind_key(fault_kind k) {
  switch (k) {
    case fault_kind::crash: return "crash";
    case fault_kind::crash_silent: return "crash_silent";
    case fault_kind::restart: return "restart";
    case fault_kind::drain: return "drain";
    case fault_kind::partition: return "partition";
    case fault_kind::heal: return "heal";
    case fault_kind::latency_spike: return "latency_spike";
    case fault_kind::loss_burst: return "loss_burst";
    case fault_kind::clock_skew: return "clock_skew";
    case fault_kind::create_service: return "create_service";
    case fault_kind::delete_service: return "delete_service";
  }
  return "crash";
}

// -- sweep randomness: splitmix64, the same on every platform ------------------------

struct splitmix {
  uint64_t state;
  uint64_t next() {
    uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  /// Uniform in [0, n).
  uint64_t below(uint64_t n) {
    return n == 0 ? 0 : next() % n;
  }
};

} // namespace

// -- units ---------------------------------------------------------------------------

bool parse_duration_us(const std::string& text, uint64_t& us, std::string& why) {
  auto t = trim(text);
  std::string num, unit;
  split_unit(t, num, unit);
  static const std::pair<const char*, uint64_t> units[] = {
    {"us", 1}, {"ms", 1000}, {"s", 1'000'000}, {"m", 60'000'000}, {"h", 3'600'000'000ull},
  };
  const std::string hint = " (write e.g. 250ms, 3s, 1.5s, 2m or 500us)";
  if (unit.empty()) {
    // A bare 0 is unambiguous; any other bare number is not.
    uint64_t v = 1;
    std::string ignored;
    if (scaled_decimal(num, 1, v, ignored) && v == 0) {
      us = 0;
      return true;
    }
    why = "duration '" + t + "' needs a unit" + hint;
    return false;
  }
  for (auto& [name, scale] : units) {
    if (unit != name)
      continue;
    std::string detail;
    if (!scaled_decimal(num, scale, us, detail)) {
      why = "bad duration '" + t + "': " + detail + hint;
      return false;
    }
    return true;
  }
  why = "bad duration '" + t + "': unknown unit '" + unit + "'" + hint;
  return false;
}

std::string format_duration(uint64_t us) {
  if (us == 0)
    return "0s";
  return format_units(us, {{60'000'000, "m"}, {1'000'000, "s"}, {1000, "ms"}}, "us");
}

bool parse_size_bytes(const std::string& text, uint64_t& bytes, std::string& why) {
  auto t = trim(text);
  std::string num, unit;
  split_unit(t, num, unit);
  static const std::pair<const char*, uint64_t> units[] = {
    {"", 1}, {"B", 1}, {"KiB", 1024}, {"MiB", 1024 * 1024}, {"GiB", 1024ull << 20},
    {"KB", 1000}, {"kB", 1000}, {"MB", 1'000'000}, {"GB", 1'000'000'000},
  };
  for (auto& [name, scale] : units) {
    if (unit != name)
      continue;
    std::string detail;
    if (!scaled_decimal(num, scale, bytes, detail)) {
      why = "bad size '" + t + "': "
            + (detail == "is finer than the smallest unit" ? "not a whole number of bytes"
                                                            : detail)
            + " (write e.g. 1000, 64KiB or 1MiB)";
      return false;
    }
    return true;
  }
  why = "bad size '" + t + "': unknown unit '" + unit
        + "' (B, KiB, MiB, GiB, KB, MB, GB)";
  return false;
}

std::string format_size(uint64_t bytes) {
  return format_units(bytes, {{1024ull << 20, "GiB"}, {1024 * 1024, "MiB"}, {1024, "KiB"}},
                      "");
}

// -- files ---------------------------------------------------------------------------

scenario_spec parse_scenario(const std::string& yaml_text,
                             const std::string& name_for_errors) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::Exception& e) {
    throw scenario_error(line_of(name_for_errors, e.mark) + ": " + e.msg);
  }
  try {
    return parser{name_for_errors}.parse(root);
  } catch (const scenario_error&) {
    throw;
  } catch (const YAML::Exception& e) {
    // yaml-cpp refusing something we did not foresee: still one line.
    throw scenario_error(line_of(name_for_errors, e.mark) + ": " + e.msg);
  } catch (const std::exception& e) {
    throw scenario_error(name_for_errors + ": " + e.what());
  }
}

scenario_spec load_scenario(const std::string& path) {
  std::ifstream in{path, std::ios::binary};
  if (!in)
    throw scenario_error(path + ": cannot read the scenario file");
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad())
    throw scenario_error(path + ": cannot read the scenario file");
  return parse_scenario(text.str(), path);
}

namespace {

/// Name, times, limits and links.
void yaml_settings(std::ostream& out, const scenario_spec& s) {
  out << "name: " << quote(s.name) << "\n";
  out << "duration: " << format_duration(s.duration_us) << "\n";
  out << "quiet: " << format_duration(s.quiet_us) << "\n";
  out << "drain_grace: " << format_duration(uint64_t{s.drain_grace_ms} * 1000) << "\n";
  out << "resume_timeout: " << format_duration(uint64_t{s.resume_timeout_ms} * 1000)
      << "\n";
  auto& l = s.limits;
  out << "limits:\n"
      << "  heartbeat_interval: " << format_duration(uint64_t{l.heartbeat_interval_ms} * 1000)
      << "\n  heartbeat_misses: " << l.heartbeat_misses_max
      << "\n  handshake_timeout: " << format_duration(uint64_t{l.handshake_timeout_ms} * 1000)
      << "\n  connect_timeout: " << format_duration(uint64_t{l.connect_timeout_ms} * 1000)
      << "\n  window: " << format_size(l.window_bytes)
      << "\n  streams_per_tunnel: " << l.streams_per_tunnel_max << "\n";
  out << "links:\n  default: {" << link_fields(s.default_link) << "}\n";
  if (!s.links.empty()) {
    out << "  overrides:\n";
    for (auto& k : s.links)
      out << "    - {between: [" << quote(k.a) << ", " << quote(k.b) << "], "
          << link_fields(k.p) << "}\n";
  }
}

void yaml_pops_and_services(std::ostream& out, const scenario_spec& s) {
  if (!s.control.name.empty())
    out << "control: {name: " << quote(s.control.name) << "}\n";
  out << "pops:\n";
  for (auto& p : s.pops) {
    out << "  - {name: " << quote(p.name);
    if (!p.region.empty())
      out << ", region: " << quote(p.region);
    if (p.control)
      out << ", control: true";
    out << "}\n";
  }
  if (!s.principals.empty()) {
    out << "principals:\n";
    for (auto& p : s.principals) {
      out << "  - {name: " << quote(p.name) << ", secret: " << quoted_secret(p.secret);
      if (!p.groups.empty())
        out << ", groups: " << name_list(p.groups);
      if (p.revoked)
        out << ", revoked: true";
      out << "}\n";
    }
  }
  out << "services:\n";
  for (auto& svc : s.services) {
    out << "  - {name: " << quote(svc.name);
    out << ", secret: " << quoted_secret(svc.secret) << ", public_port: " << svc.public_port;
    if (!svc.is_public)
      out << ", public: false";
    if (!svc.allow.empty())
      out << ", allow: " << name_list(svc.allow);
    if (!svc.registered)
      out << ", registered: false";
    out << "}\n";
  }
}

/// Agents and patch-panel clients.
void yaml_controllers(std::ostream& out, const scenario_spec& s) {
  if (!s.agents.empty()) {
    out << "agents:\n";
    for (auto& a : s.agents) {
      out << "  - {name: " << quote(a.name) << ", service: " << quote(a.service)
           << ", tunnels: " << a.tunnels;
      if (!a.pops.empty()) {
        out << ", pops: [";
        for (size_t i = 0; i < a.pops.size(); ++i)
          out << (i ? ", " : "") << quote(a.pops[i]);
        out << "]";
      }
      if (!a.secret.empty())
        out << ", secret: " << quote(a.secret);
      if (a.control)
        out << ", control: true";
      out << "}\n";
    }
  }
  if (!s.clients.empty()) {
    out << "clients:\n";
    for (auto& c : s.clients) {
      out << "  - {name: " << quote(c.name) << ", service: " << quote(c.service)
          << ", principal: " << quote(c.principal) << ", tunnels: " << c.tunnels;
      if (!c.pops.empty())
        out << ", pops: " << name_list(c.pops);
      if (!c.secret.empty())
        out << ", secret: " << quoted_secret(c.secret);
      out << ", listen_port: " << c.listen_port << "}\n";
    }
  }
}

void yaml_workload(std::ostream& out, const scenario_spec& s) {
  if (!s.workload.empty()) {
    out << "workload:\n";
    for (auto& w : s.workload) {
      out << "  - {service: " << quote(w.service) << ", kind: " << to_string(w.kind)
           << ", count: " << w.count << ", start: " << format_duration(w.start_us)
           << ", every: " << format_duration(w.spacing_us)
           << ", bytes: " << format_size(w.bytes) << ", rounds: " << w.rounds;
      if (!w.pop.empty())
        out << ", pop: " << quote(w.pop);
      if (!w.via.empty())
        out << ", via: " << quote(w.via);
      out << "}\n";
    }
  }
}

void yaml_faults(std::ostream& out, const scenario_spec& s) {
  if (!s.faults.empty()) {
    out << "faults:\n";
    for (size_t i = 0; i < s.faults.size(); ++i) {
      auto& f = s.faults[i];
      out << "  - {at: " << format_duration(f.at_us) << ", " << kind_key(f.kind) << ": ";
      bool pair = f.kind == fault_kind::partition || f.kind == fault_kind::heal
                  || f.kind == fault_kind::latency_spike
                  || f.kind == fault_kind::loss_burst;
      if (pair) {
        out << "[" << quote(f.a) << ", " << quote(f.b) << "]";
        if (!f.both_ways)
          out << ", one_way: true";
      } else {
        out << quote(f.a);
      }
      if (f.duration_us > 0)
        out << ", for: " << format_duration(f.duration_us);
      if (f.kind == fault_kind::latency_spike)
        out << ", latency: " << format_duration(f.latency_us);
      if (f.kind == fault_kind::loss_burst)
        out << ", loss: " << format_fraction(f.loss);
      if (f.kind == fault_kind::clock_skew)
        out << ", rate: " << f.rate;
      out << "}   # fault " << i << "\n";
    }
  }
}

void yaml_expectations(std::ostream& out, const scenario_spec& s) {
  if (!s.expectations.empty()) {
    out << "expect:\n";
    for (auto& e : s.expectations) {
      switch (e.kind) {
        case expectation_kind::sessions_failed_max:
          out << "  - {sessions_failed_max: " << e.value << "}\n";
          break;
        case expectation_kind::tunnels_restored_within:
          out << "  - {tunnels_restored_within: " << format_duration(e.value)
               << ", after_fault: " << e.fault << "}\n";
          break;
        case expectation_kind::reachable_within:
          out << "  - {reachable_within: " << format_duration(e.value)
               << ", after_fault: " << e.fault << "}\n";
          break;
      }
    }
  }
}

} // namespace

std::string to_yaml(const scenario_spec& s) {
  std::ostringstream out;
  yaml_settings(out, s);
  yaml_pops_and_services(out, s);
  yaml_controllers(out, s);
  yaml_workload(out, s);
  yaml_faults(out, s);
  yaml_expectations(out, s);
  return out.str();
}

// -- sweeps --------------------------------------------------------------------------

namespace {

/// Timing: each fault within +-50% of the gap to its neighbours. Two
/// neighbours can at most meet half way, so the order (which expectations
/// rely on) survives.
void jitter_fault_times(scenario_spec& out, const scenario_spec& s, splitmix& rng) {
  auto n = s.faults.size();
  for (size_t i = 0; i < n; ++i) {
    uint64_t t = s.faults[i].at_us;
    uint64_t prev = i == 0 ? 0 : s.faults[i - 1].at_us;
    uint64_t next = i + 1 < n ? s.faults[i + 1].at_us : std::max(s.duration_us, t);
    uint64_t lo = t - (t - prev) / 2;
    uint64_t hi = t + (next - t) / 2;
    // Whole milliseconds: schedules stay readable when printed.
    uint64_t lo_ms = (lo + 999) / 1000;
    uint64_t hi_ms = hi / 1000;
    out.faults[i].at_us = lo_ms <= hi_ms ? (lo_ms + rng.below(hi_ms - lo_ms + 1)) * 1000
                                         : t;
  }
}

/// Choice: a POP named by a fault becomes a random POP with chance 1/2; a
/// restart or heal follows the fault it undoes.
class fault_host_chooser {
public:
  fault_host_chooser(const scenario_spec& s, splitmix& rng) : s_(s), rng_(rng) {
    for (auto& p : s.pops)
      pops_.insert(p.name);
  }

  void choose(fault_spec& f) {
    switch (f.kind) {
      case fault_kind::crash:
      case fault_kind::crash_silent:
      case fault_kind::drain:
        take_down(f);
        break;
      case fault_kind::restart:
        bring_back(f);
        break;
      case fault_kind::partition: {
        auto as_written = std::make_pair(f.a, f.b);
        f.a = reroll(f.a, {f.b});
        f.b = reroll(f.b, {f.a});
        cut_[as_written] = {f.a, f.b};
        cut_[{as_written.second, as_written.first}] = {f.b, f.a};
        break;
      }
      case fault_kind::heal:
        heal(f);
        break;
      case fault_kind::latency_spike:
      case fault_kind::loss_burst:
        f.a = reroll(f.a, {f.b});
        f.b = reroll(f.b, {f.a});
        break;
      case fault_kind::clock_skew:
        f.a = reroll(f.a, {}); // any POP's clock may drift
        break;
      case fault_kind::create_service:
      case fault_kind::delete_service:
        break; // the operator's, as written
    }
  }

private:
  std::string reroll(const std::string& host, const std::set<std::string>& avoid) {
    if (!pops_.count(host) || rng_.below(2) == 0)
      return host;
    std::vector<std::string> choice;
    for (auto& p : s_.pops)
      if (!avoid.count(p.name))
        choice.push_back(p.name);
    return choice.empty() ? host : choice[rng_.below(choice.size())];
  }

  void take_down(fault_spec& f) {
    // Never take down a POP the variant already took down: the budget is
    // how many are down at once.
    auto avoid = down_;
    avoid.erase(f.a);
    auto as_written = f.a;
    f.a = reroll(f.a, avoid);
    downed_[as_written] = f.a;
    if (pops_.count(f.a))
      down_.insert(f.a);
  }

  void bring_back(fault_spec& f) {
    auto i = downed_.find(f.a);
    if (i != downed_.end()) {
      f.a = i->second;
      downed_.erase(i);
    }
    down_.erase(f.a);
  }

  void heal(fault_spec& f) {
    auto i = cut_.find({f.a, f.b});
    if (i == cut_.end())
      return;
    auto mapped = i->second;
    cut_.erase({f.a, f.b});
    cut_.erase({f.b, f.a});
    f.a = mapped.first;
    f.b = mapped.second;
  }

  const scenario_spec& s_;
  splitmix& rng_;
  std::set<std::string> pops_;
  std::map<std::string, std::string> downed_; // as written -> as run, until restart
  std::set<std::string> down_;                // POPs down in the variant
  std::map<std::pair<std::string, std::string>, std::pair<std::string, std::string>> cut_;
};

} // namespace

scenario_spec sweep_variant(const scenario_spec& s, uint64_t variant) {
  auto out = s;
  if (variant == 0 || s.faults.empty())
    return out;
  splitmix rng{variant * 0x2545f4914f6cdd1dull + 0x5eed};
  jitter_fault_times(out, s, rng);
  fault_host_chooser chooser{s, rng};
  for (auto& f : out.faults)
    chooser.choose(f);
  return out;
}

} // namespace drtp::sim
