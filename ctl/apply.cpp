#include "ctl/apply.hpp"

#include <cctype>
#include <cstdio>
#include <optional>
#include <vector>

#include <nlohmann/json.hpp>

#include "ctl/print.hpp"
#include "ctl/yaml_doc.hpp"

namespace drtp::ctl {

namespace {

using ojson = nlohmann::ordered_json;

struct prepared {
  const yaml_document* doc = nullptr;
  control::kind k = control::kind::org;
  std::string name;
  std::string body; // what is sent: without status and resourceVersion
  std::string spec; // canonical, to compare with what the registry holds
};

std::string where(const std::string& file, const yaml_document& doc, int line) {
  return file + ": document " + std::to_string(doc.index) + " (line " + std::to_string(line)
         + ")";
}

/// The field a one-line error starts with ("spec.local: ..."), or "".
std::string field_of(const std::string& message) {
  auto colon = message.find(": ");
  if (colon == std::string::npos || colon == 0)
    return "";
  auto f = message.substr(0, colon);
  if (f.find(' ') != std::string::npos || !std::isalpha(static_cast<unsigned char>(f[0])))
    return "";
  return f;
}

/// One line for an error about `doc`: the line of the field it names.
std::string doc_error(const std::string& file, const yaml_document& doc,
                      const std::string& message) {
  return where(file, doc, line_of(doc, field_of(message))) + ": " + message;
}

std::optional<control::kind> exact_kind(const std::string& s) {
  for (auto k : {control::kind::server, control::kind::connection, control::kind::principal,
                 control::kind::org, control::kind::gateway})
    if (s == control::kind_name(k))
      return k;
  return std::nullopt;
}

/// The document checked and made ready to send; false with `error` (the
/// message only; the caller adds where).
bool prepare(const yaml_document& doc, prepared& out, std::string& error) {
  out.doc = &doc;
  auto j = ojson::parse(doc.json, nullptr, false);
  if (!j.is_object()) {
    error = "expected a map with apiVersion, kind, metadata and spec";
    return false;
  }
  auto text = [&](const char* key) {
    return j.contains(key) && j[key].is_string() ? j[key].get<std::string>() : std::string();
  };
  if (text("apiVersion") != control::api_version) {
    error = std::string("apiVersion: expected ") + control::api_version;
    return false;
  }
  auto k = exact_kind(text("kind"));
  if (!k) {
    error = j.contains("kind") ? "kind: unknown kind '" + text("kind")
                                   + "' (DRTPServer, DRTPConnection, Principal, Org)"
                               : "kind: required (DRTPServer, DRTPConnection, Principal, Org)";
    return false;
  }
  out.k = *k;
  auto meta = j.find("metadata");
  if (meta == j.end() || !meta->is_object() || !meta->contains("name")) {
    error = "metadata.name: required";
    return false;
  }
  // What the registry writes itself is not the file's to say.
  j.erase("status");
  meta->erase("resourceVersion");
  out.body = j.dump();
  if (!canonical_spec(out.k, out.body, out.spec, error))
    return false;
  out.name = (*meta)["name"].get<std::string>();
  return true;
}

/// The body with metadata.resourceVersion set (an update conditional on
/// what was read).
std::string with_version(const std::string& body, const std::string& version) {
  auto j = ojson::parse(body);
  j["metadata"]["resourceVersion"] = version;
  return j.dump();
}

std::string refusal(const reply& r) {
  return error_message(r) + " (HTTP " + std::to_string(r.status) + ")";
}

/// Creates or updates one object; prints what happened. false: refused
/// (the error is printed). A write that lost a race (409: created or
/// changed by someone else between the read and the write) is tried once
/// more from a new read.
bool apply_one(client& c, const std::string& file, const prepared& p, bool again = true) {
  auto ref = object_ref(p.k, p.name);
  auto got = c.fetch("GET", api_path(p.k, p.name));
  reply r;
  const char* done = "created";
  if (got.status == 404) {
    r = c.fetch("POST", api_path(p.k), p.body);
  } else if (got.status == 200) {
    std::string spec, error;
    auto existing = ojson::parse(got.body, nullptr, false);
    if (canonical_spec(p.k, got.body, spec, error) && spec == p.spec) {
      std::printf("%s unchanged\n", ref.c_str());
      return true;
    }
    std::string version;
    if (existing.is_object() && existing.contains("metadata")
        && existing["metadata"].contains("resourceVersion")
        && existing["metadata"]["resourceVersion"].is_string())
      version = existing["metadata"]["resourceVersion"].get<std::string>();
    r = c.fetch("PUT", api_path(p.k, p.name),
                version.empty() ? p.body : with_version(p.body, version));
    done = "configured";
  } else {
    r = got;
  }
  if (r.status == 409 && again && (got.status == 404 || got.status == 200))
    return apply_one(c, file, p, false);
  if (r.status != 200 && r.status != 201) {
    std::fprintf(stderr, "drtpctl: %s\n", doc_error(file, *p.doc, refusal(r)).c_str());
    return false;
  }
  std::printf("%s %s\n", ref.c_str(), done);
  return true;
}

/// A document that is a List (what `get KIND -o yaml` prints) stands for
/// its items, each with the lines of its own fields.
std::vector<yaml_document> expand_lists(std::vector<yaml_document> docs) {
  std::vector<yaml_document> out;
  for (auto& doc : docs) {
    auto j = doc.error.empty() ? ojson::parse(doc.json, nullptr, false) : ojson();
    auto kind = j.is_object() && j.contains("kind") && j["kind"].is_string()
                  ? j["kind"].get<std::string>()
                  : std::string();
    bool list = kind.size() > 4 && kind.compare(kind.size() - 4, 4, "List") == 0
                && j.contains("items") && j["items"].is_array();
    if (!list) {
      out.push_back(std::move(doc));
      continue;
    }
    for (size_t i = 0; i < j["items"].size(); ++i) {
      yaml_document item;
      item.index = doc.index;
      auto prefix = "items[" + std::to_string(i) + "]";
      item.line = line_of(doc, prefix);
      item.json = j["items"][i].dump();
      for (auto& [path, line] : doc.lines)
        if (path.compare(0, prefix.size() + 1, prefix + ".") == 0)
          item.lines.emplace(path.substr(prefix.size() + 1), line);
      out.push_back(std::move(item));
    }
  }
  return out;
}

} // namespace

bool canonical_spec(control::kind k, const std::string& json, std::string& spec,
                    std::string& error) {
  std::string full;
  switch (k) {
    case control::kind::server: {
      control::server x;
      if (!control::parse_server(json, x, error))
        return false;
      full = control::to_json(x);
      break;
    }
    case control::kind::connection: {
      control::connection x;
      if (!control::parse_connection(json, x, error))
        return false;
      full = control::to_json(x);
      break;
    }
    case control::kind::principal: {
      control::principal x;
      if (!control::parse_principal(json, x, error))
        return false;
      full = control::to_json(x);
      break;
    }
    case control::kind::org: {
      control::org x;
      if (!control::parse_org(json, x, error))
        return false;
      full = control::to_json(x);
      break;
    }
    case control::kind::gateway: {
      control::gateway x;
      if (!control::parse_gateway(json, x, error))
        return false;
      full = control::to_json(x);
      break;
    }
  }
  spec = ojson::parse(full)["spec"].dump();
  return true;
}

int apply(client& c, const std::string& file, const std::string& text) {
  auto docs = expand_lists(load_documents(text));
  if (docs.empty()) {
    std::fprintf(stderr, "drtpctl: %s: no documents\n", file.c_str());
    return 1;
  }
  // Every document is checked before any is sent: a file with a mistake
  // changes nothing.
  std::vector<prepared> ready(docs.size());
  bool ok = true;
  for (size_t i = 0; i < docs.size(); ++i) {
    std::string error;
    if (!docs[i].error.empty()) {
      std::fprintf(stderr, "drtpctl: %s: %s\n", where(file, docs[i], docs[i].line).c_str(),
                   docs[i].error.c_str());
      ok = false;
    } else if (!prepare(docs[i], ready[i], error)) {
      std::fprintf(stderr, "drtpctl: %s\n", doc_error(file, docs[i], error).c_str());
      ok = false;
    }
  }
  if (!ok)
    return 1;
  for (auto& p : ready)
    ok = apply_one(c, file, p) && ok;
  return ok ? 0 : 1;
}

} // namespace drtp::ctl
