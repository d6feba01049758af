#pragma once
// Where a binary gets a secret: a file or an environment variable, never
// an argument (argv is visible to every user of the machine).

#include <cstddef>
#include <optional>
#include <string>
#include <sys/types.h>

#include "cli/error.hpp"

namespace drtp::cli {

/// Longer than any secret a person or `head -c 32 /dev/urandom | base64`
/// makes; what a binary reads from a secret file stops here.
constexpr size_t secret_bytes_max = 4096;

/// The secret from `file` if given, else from the environment variable
/// `env_var`. Trailing newlines are trimmed. Throws cli::error.
std::string read_secret(const std::optional<std::string>& file,
                        const char* env_var);

/// At most secret_bytes_max bytes from `fd` (more is an error: a path such
/// as /dev/zero must not make a binary read without end), trailing newlines
/// trimmed. `what` names the source in errors ("secret file F").
std::string read_secret_from(int fd, const std::string& what);

/// Creates `path` with `mode` and writes `text`. Never follows a symlink and
/// never replaces a file: a key must not land where a link points, nor be
/// readable by others even for a moment (it is created with its mode, not
/// chmod'ed afterwards). Throws cli::error.
void write_new_file(const std::string& path, const std::string& text, mode_t mode);

/// A process that holds keys or secrets writes no core dump and cannot be
/// attached to by other processes of its user (PR_SET_DUMPABLE 0), unless
/// DRTP_ALLOW_CORE_DUMPS=1 asks for dumps when debugging.
void keep_secrets_out_of_core_dumps();

} // namespace drtp::cli
