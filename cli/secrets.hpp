#pragma once
// Where a binary gets a secret: a file or an environment variable, never
// an argument (argv is visible to every user of the machine).

#include <optional>
#include <string>

#include "cli/error.hpp"

namespace drtp::cli {

/// The secret from `file` if given, else from the environment variable
/// `env_var`. Trailing newlines are trimmed. Throws cli::error.
std::string read_secret(const std::optional<std::string>& file,
                        const char* env_var);

} // namespace drtp::cli
