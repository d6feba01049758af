#pragma once
// The one kind of error a binary reports to its user.

#include <stdexcept>

namespace drtp::cli {

/// A user error: printed as one line, exit status 2 (usage) or 1 (runtime).
struct error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

} // namespace drtp::cli
