#include "ctl/print.hpp"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <vector>

#include <nlohmann/json.hpp>

#include "ctl/yaml_doc.hpp"

namespace drtp::ctl {

namespace {

using ojson = nlohmann::ordered_json;
using row = std::vector<std::string>;

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

/// A field's text in a table cell: strings as they are, the rest as JSON,
/// "-" when absent or empty.
std::string cell(const ojson& j, const ojson::json_pointer& p) {
  if (!j.contains(p))
    return "-";
  auto& v = j.at(p);
  if (v.is_null())
    return "-";
  if (v.is_string())
    return v.get<std::string>().empty() ? "-" : v.get<std::string>();
  if (v.is_array()) {
    if (v.empty())
      return "-";
    std::string s;
    for (auto& e : v)
      s += (s.empty() ? "" : ",") + (e.is_string() ? e.get<std::string>() : e.dump());
    return s;
  }
  return v.dump();
}

int64_t now_unix_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

/// "12s", "5m", "3h", "4d" since metadata.creationTimestamp.
std::string age(const ojson& j) {
  auto p = ojson::json_pointer("/metadata/creationTimestamp");
  int64_t t = 0;
  if (!j.contains(p) || !j.at(p).is_string() || !control::parse_rfc3339(j.at(p).get<std::string>(), t))
    return "-";
  auto s = std::max<int64_t>(0, (now_unix_ms() - t) / 1000);
  if (s < 120)
    return std::to_string(s) + "s";
  if (s < 2 * 3600)
    return std::to_string(s / 60) + "m";
  if (s < 2 * 86400)
    return std::to_string(s / 3600) + "h";
  return std::to_string(s / 86400) + "d";
}

row header_of(control::kind k) {
  switch (k) {
    case control::kind::server: return {"NAME", "REGION", "READY", "TUNNELS", "AGE"};
    case control::kind::connection:
      return {"NAME", "PROTOCOL", "LOCAL", "PUBLIC-PORT", "POPS", "AGENTS", "AGE"};
    case control::kind::principal: return {"NAME", "ORG", "GROUPS", "REVOKED", "AGE"};
    case control::kind::org: return {"NAME", "DISPLAY-NAME", "AGE"};
    case control::kind::gateway: return {"NAME", "SERVICE", "TYPE", "PORT", "ADDRESSES", "AGE"};
  }
  return {};
}

row row_of(control::kind k, const ojson& j) {
  using ptr = ojson::json_pointer;
  auto name = cell(j, ptr("/metadata/name"));
  switch (k) {
    case control::kind::server: {
      auto tunnels = cell(j, ptr("/status/tunnels"));
      auto capacity = cell(j, ptr("/spec/capacity/tunnels"));
      if (capacity != "-")
        tunnels += "/" + capacity;
      auto ready = cell(j, ptr("/status/ready"));
      if (cell(j, ptr("/spec/draining")) == "true")
        ready += " (draining)";
      return {name, cell(j, ptr("/spec/region")), ready, tunnels, age(j)};
    }
    case control::kind::connection: {
      auto port = cell(j, ptr("/spec/publicPort"));
      auto agents = j.contains(ptr("/status/agents")) && j.at(ptr("/status/agents")).is_array()
                      ? std::to_string(j.at(ptr("/status/agents")).size())
                      : "0";
      return {name, cell(j, ptr("/spec/protocol")), cell(j, ptr("/spec/local")),
              port == "-" ? "private" : port, cell(j, ptr("/status/pops")), agents, age(j)};
    }
    case control::kind::principal:
      return {name, cell(j, ptr("/spec/org")), cell(j, ptr("/spec/groups")),
              cell(j, ptr("/spec/revoked")), age(j)};
    case control::kind::org: return {name, cell(j, ptr("/spec/displayName")), age(j)};
    case control::kind::gateway: {
      // pop=address:port, the POPs where it is reachable now.
      std::string addresses;
      auto a = ptr("/status/addresses");
      if (j.contains(a) && j.at(a).is_array())
        for (auto& e : j.at(a)) {
          if (!e.is_object())
            continue;
          auto text = e.value("pop", std::string("?")) + "=" + e.value("address", std::string());
          if (e.contains("port") && e["port"].is_number())
            text += ":" + std::to_string(e["port"].get<int>());
          addresses += (addresses.empty() ? "" : ",") + text;
        }
      return {name,
              cell(j, ptr("/spec/service")),
              cell(j, ptr("/spec/type")),
              cell(j, ptr("/spec/port")),
              addresses.empty() ? "-" : addresses,
              age(j)};
    }
  }
  return {name};
}

std::string format_rows(const std::vector<row>& rows) {
  std::vector<size_t> width;
  for (auto& r : rows)
    for (size_t i = 0; i < r.size(); ++i) {
      if (width.size() <= i)
        width.push_back(0);
      width[i] = std::max(width[i], r[i].size());
    }
  std::string out;
  for (auto& r : rows) {
    std::string line;
    for (size_t i = 0; i < r.size(); ++i) {
      line += r[i];
      if (i + 1 < r.size())
        line += std::string(width[i] - r[i].size() + 3, ' ');
    }
    out += line + "\n";
  }
  return out;
}

/// `text` with every line indented by `n` spaces.
std::string indent(const std::string& text, size_t n) {
  std::string out;
  size_t start = 0;
  while (start < text.size()) {
    auto end = text.find('\n', start);
    if (end == std::string::npos)
      end = text.size();
    out += std::string(n, ' ') + text.substr(start, end - start) + "\n";
    start = end + 1;
  }
  return out;
}

} // namespace

std::string object_ref(control::kind k, const std::string& name) {
  return lower(control::kind_name(k)) + "/" + name;
}

std::string table(control::kind k, const std::string& json) {
  auto j = ojson::parse(json, nullptr, false);
  std::vector<row> rows{header_of(k)};
  if (j.is_object() && j.contains("items") && j["items"].is_array()) {
    for (auto& item : j["items"])
      if (item.is_object())
        rows.push_back(row_of(k, item));
  } else if (j.is_object()) {
    rows.push_back(row_of(k, j));
  }
  if (rows.size() == 1)
    return std::string("No ") + control::kind_plural(k) + " found.\n";
  return format_rows(rows);
}

std::string as_json(const std::string& json) {
  auto j = ojson::parse(json, nullptr, false);
  return (j.is_discarded() ? json : j.dump(2)) + "\n";
}

std::string as_yaml(const std::string& json) {
  return json_to_yaml(json);
}

std::string describe(control::kind k, const std::string& json) {
  auto j = ojson::parse(json, nullptr, false);
  if (!j.is_object())
    return json + "\n";
  using ptr = ojson::json_pointer;
  std::string out;
  auto field = [&](const std::string& label, const std::string& value) {
    out += label + ":" + std::string(label.size() < 17 ? 17 - label.size() : 1, ' ') + value
           + "\n";
  };
  field("Name", cell(j, ptr("/metadata/name")));
  field("Kind", control::kind_name(k));
  field("Created", cell(j, ptr("/metadata/creationTimestamp")) + " (" + age(j) + " ago)");
  field("Resource version", cell(j, ptr("/metadata/resourceVersion")));
  field("UID", cell(j, ptr("/metadata/uid")));
  if (j.contains("spec")) {
    out += "Spec:\n";
    out += indent(json_to_yaml(j["spec"].dump()), 2);
  }
  if (j.contains("status") && !j["status"].empty()) {
    out += "Status:\n";
    out += indent(json_to_yaml(j["status"].dump()), 2);
  }
  return out;
}

} // namespace drtp::ctl
