#pragma once
// What drtpctl shows: tables for `get`, the objects as YAML or JSON, and
// `describe`. Input is the API's JSON (an object or a *List).

#include <string>

#include "control/resource.hpp"

namespace drtp::ctl {

/// A table with a header line, one row per object (a List's items, or the
/// one object); "No KIND found." for an empty list.
std::string table(control::kind k, const std::string& json);

/// -o json: the object or the List, indented. -o yaml: the same as YAML.
std::string as_json(const std::string& json);
std::string as_yaml(const std::string& json);

/// describe: name, kind, age, then spec and status as indented YAML.
std::string describe(control::kind k, const std::string& json);

/// "drtpconnection/joes-pg": how apply and create name an object.
std::string object_ref(control::kind k, const std::string& name);

} // namespace drtp::ctl
