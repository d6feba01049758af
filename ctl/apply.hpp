#pragma once
// drtpctl apply -f FILE: every document of a multi-document YAML file
// created, or updated when it exists and differs. Each document is checked
// here first (the registry's own parser, control/resource), so a bad file
// changes nothing; errors are one line naming the file, the document, its
// line and the field.

#include <string>

#include "ctl/client.hpp"

namespace drtp::ctl {

/// Checks every document of `text` (read from `file`), then applies them
/// in order. Prints one line per document; returns the exit status (0, or
/// 1 if any document was refused). Throws failure when the control plane
/// cannot be reached.
int apply(client& c, const std::string& file, const std::string& text);

/// The spec of a `k` object in JSON as the registry would store it
/// (defaults filled in, fields in their order), so that two spellings of
/// the same spec compare equal; false with `error` naming the field.
bool canonical_spec(control::kind k, const std::string& json, std::string& spec,
                    std::string& error);

} // namespace drtp::ctl
