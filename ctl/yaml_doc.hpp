#pragma once
// drtpctl's YAML: a multi-document file split into documents, each turned
// into JSON with the line of every field kept (so an error about
// "spec.local" names its line); and JSON written back as YAML for -o yaml.

#include <cstddef>
#include <map>
#include <string>
#include <vector>

namespace drtp::ctl {

struct yaml_document {
  size_t index = 0; // 1-based, counting documents that hold something
  int line = 0;     // 1-based line where the document's content starts
  std::string json; // the document as a JSON object (null if it was not valid)
  /// Field path ("spec.local", "spec.allow[0]") -> its 1-based line.
  std::map<std::string, int> lines;
  std::string error; // a YAML error: one line, with `line` set to where
};

/// Every document of `text`. A document that is not valid YAML, or not
/// what JSON can hold, has `error` set; the others are still returned.
std::vector<yaml_document> load_documents(const std::string& text);

/// The line of `path` in `doc`, or of its nearest parent that has one, or
/// the document's own line.
int line_of(const yaml_document& doc, const std::string& path);

/// A JSON value as block YAML (strings that would read back as something
/// else are quoted; multi-line strings are literal blocks).
std::string json_to_yaml(const std::string& json);

} // namespace drtp::ctl
