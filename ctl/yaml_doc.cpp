#include "ctl/yaml_doc.hpp"

#include <algorithm>
#include <cctype>
#include <regex>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>
#include <yaml-cpp/yaml.h>

namespace drtp::ctl {

namespace {

using ojson = nlohmann::ordered_json;

/// Resources nest a few levels; deeper is not one of ours (and recursion
/// stays bounded on hostile input).
constexpr int depth_max = 32;

struct convert_error {
  int line;
  std::string what;
};

bool is_document_marker(const std::string& line, const char* marker) {
  if (line.compare(0, 3, marker) != 0)
    return false;
  return line.size() == 3 || line[3] == ' ' || line[3] == '\t' || line[3] == '\r';
}

bool is_blank_or_comment(const std::string& line) {
  auto i = line.find_first_not_of(" \t\r");
  return i == std::string::npos || line[i] == '#';
}

/// A plain scalar as YAML 1.2's core schema reads it.
ojson plain_scalar(const std::string& s) {
  if (s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL")
    return nullptr;
  if (s == "true" || s == "True" || s == "TRUE")
    return true;
  if (s == "false" || s == "False" || s == "FALSE")
    return false;
  size_t digits_from = (s[0] == '-' || s[0] == '+') ? 1 : 0;
  if (s.size() > digits_from && s.size() - digits_from <= 18
      && std::all_of(s.begin() + static_cast<long>(digits_from), s.end(),
                     [](unsigned char c) { return std::isdigit(c); })) {
    auto v = std::stoll(s);
    if (v >= 0)
      return static_cast<uint64_t>(v);
    return v;
  }
  return s;
}

class converter {
public:
  converter(int line_offset, std::map<std::string, int>& lines)
    : offset_(line_offset), lines_(lines) {
  }

  ojson value(const YAML::Node& n, const std::string& path, int depth) {
    if (depth > depth_max)
      throw convert_error{line(n), path + ": nested deeper than " + std::to_string(depth_max)};
    if (!path.empty())
      lines_.emplace(path, line(n));
    switch (n.Type()) {
      case YAML::NodeType::Map: return map(n, path, depth);
      case YAML::NodeType::Sequence: {
        ojson a = ojson::array();
        size_t i = 0;
        for (auto e : n)
          a.push_back(value(e, path + "[" + std::to_string(i++) + "]", depth + 1));
        return a;
      }
      case YAML::NodeType::Scalar:
        // Quoted ("!") or tagged !!str: a string whatever it looks like.
        if (n.Tag() == "!" || n.Tag() == "tag:yaml.org,2002:str")
          return n.Scalar();
        return plain_scalar(n.Scalar());
      default: return nullptr;
    }
  }

  int line(const YAML::Node& n) const {
    auto m = n.Mark();
    return m.is_null() ? offset_ + 1 : offset_ + m.line + 1;
  }

private:
  ojson map(const YAML::Node& n, const std::string& path, int depth) {
    ojson o = ojson::object();
    std::set<std::string> seen;
    for (auto kv : n) {
      auto where = [&](const std::string& k) { return path.empty() ? k : path + "." + k; };
      if (!kv.first.IsScalar())
        throw convert_error{line(kv.first), where("?") + ": a key must be a plain word"};
      auto key = kv.first.Scalar();
      if (!seen.insert(key).second)
        throw convert_error{line(kv.first), where(key) + ": appears twice"};
      lines_.emplace(where(key), line(kv.first));
      o[key] = value(kv.second, where(key), depth + 1);
    }
    return o;
  }

  int offset_;
  std::map<std::string, int>& lines_;
};

/// One document's text (lines [first, ...) of the file) into `doc`.
void convert(const std::string& text, int first_line, yaml_document& doc) {
  try {
    auto node = YAML::Load(text);
    converter c(first_line, doc.lines);
    doc.json = c.value(node, "", 0).dump();
  } catch (const YAML::Exception& e) {
    if (!e.mark.is_null()) {
      // An error at the end of input is on the last line, not past it.
      auto lines = static_cast<int>(std::count(text.begin(), text.end(), '\n'));
      doc.line = first_line + std::min(e.mark.line, std::max(lines - 1, 0)) + 1;
    }
    doc.error = e.msg;
  } catch (const convert_error& e) {
    doc.line = e.line;
    doc.error = e.what;
  }
}

// -- writing ------------------------------------------------------------------------

bool needs_quotes(const std::string& s) {
  if (s.empty())
    return true;
  if (!plain_scalar(s).is_string())
    return true;
  // What YAML 1.1 readers take for something else: numbers (with '_',
  // exponents, hex, sexagesimal), dates, .inf, yes/no/on/off.
  static const std::regex other(
    "[-+]?([0-9][0-9_]*(\\.[0-9_]*)?([eE][-+]?[0-9]+)?|\\.[0-9_]+([eE][-+]?[0-9]+)?"
    "|0x[0-9a-fA-F_]+|0o?[0-7_]+|[0-9][0-9_]*(:[0-5]?[0-9])+(\\.[0-9_]*)?|\\.(inf|Inf|INF))"
    "|\\.(nan|NaN|NAN)|[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}([Tt ].*)?"
    "|y|Y|yes|Yes|YES|n|N|no|No|NO|on|On|ON|off|Off|OFF");
  return std::regex_match(s, other);
}

void emit(YAML::Emitter& out, const ojson& j, int depth = 0) {
  if (depth > depth_max) {
    out << "...";  // an answer nested deeper than any resource is not shown
  } else if ((j.is_object() || j.is_array()) && j.empty()) {
    out << YAML::Flow << (j.is_object() ? YAML::BeginMap : YAML::BeginSeq)
        << (j.is_object() ? YAML::EndMap : YAML::EndSeq);
  } else if (j.is_object()) {
    out << YAML::BeginMap;
    for (auto& [k, v] : j.items()) {
      out << YAML::Key << k << YAML::Value;
      emit(out, v, depth + 1);
    }
    out << YAML::EndMap;
  } else if (j.is_array()) {
    out << YAML::BeginSeq;
    for (auto& v : j)
      emit(out, v, depth + 1);
    out << YAML::EndSeq;
  } else if (j.is_string()) {
    auto s = j.get<std::string>();
    if (s.find('\n') != std::string::npos)
      out << YAML::Literal << s;
    else if (needs_quotes(s))
      out << YAML::DoubleQuoted << s;
    else
      out << s;
  } else if (j.is_null()) {
    out << YAML::Null;
  } else if (j.is_boolean()) {
    out << (j.get<bool>() ? "true" : "false");
  } else {
    out << j.dump();
  }
}

} // namespace

std::vector<yaml_document> load_documents(const std::string& text) {
  // Split at "---" and "..." lines (a document marker is never indented,
  // while block scalars are), so that each document is read on its own and
  // an error in one is named by its index.
  std::vector<yaml_document> out;
  std::istringstream in(text);
  std::string line;
  std::string chunk;
  int chunk_first = 0; // 0-based line of the chunk's first line
  int chunk_content = -1;
  int n = 0;
  auto flush = [&] {
    if (chunk_content >= 0) {
      yaml_document doc;
      doc.index = out.size() + 1;
      doc.line = chunk_content + 1;
      convert(chunk, chunk_first, doc);
      out.push_back(std::move(doc));
    }
    chunk.clear();
    chunk_content = -1;
  };
  while (std::getline(in, line)) {
    if (is_document_marker(line, "---") || is_document_marker(line, "...")) {
      flush();
      chunk_first = n + 1;
      // "--- {a: 1}": content on the marker line itself.
      if (line.size() > 4 && line[0] == '-' && !is_blank_or_comment(line.substr(4))) {
        chunk_first = n;
        chunk = std::string(4, ' ') + line.substr(4) + "\n";
        chunk_content = n;
      }
    } else {
      if (chunk_content < 0 && !is_blank_or_comment(line) && line[0] != '%')
        chunk_content = n;
      chunk += line;
      chunk += '\n';
    }
    ++n;
  }
  flush();
  return out;
}

int line_of(const yaml_document& doc, const std::string& path) {
  auto p = path;
  while (!p.empty()) {
    auto i = doc.lines.find(p);
    if (i != doc.lines.end())
      return i->second;
    auto cut = p.find_last_of(".[");
    if (cut == std::string::npos)
      break;
    p.resize(cut);
  }
  return doc.line;
}

std::string json_to_yaml(const std::string& json) {
  auto j = ojson::parse(json, nullptr, false);
  if (j.is_discarded())
    return json + "\n";
  YAML::Emitter out;
  emit(out, j);
  std::string s = out.c_str();
  if (s.empty() || s.back() != '\n')
    s += '\n';
  return s;
}

} // namespace drtp::ctl
