#pragma once
// Starts a program as a child process with stdout and stderr in a log file
// (stdin from /dev/null): what the bench and the end-to-end tests need.

#include <string>
#include <sys/types.h>
#include <vector>

namespace drtp::tools {

/// argv[0] is the program's path; `env` holds extra NAME=VALUE entries.
/// Returns the child's pid, or -1 if fork failed (exec failures exit 127).
pid_t spawn_logged(const std::vector<std::string>& argv, const std::string& log_path,
                   const std::vector<std::string>& env = {});

} // namespace drtp::tools
