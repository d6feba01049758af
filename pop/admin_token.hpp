#pragma once
// The admin token of drtp-pop: every admin command line starts with it. It
// lives in a file only its owner may read; drtp-pop creates that file with a
// fresh random token when it does not exist, and refuses one that others
// could read (the token is as good as the admin port itself).

#include <string>

namespace drtp::pop {

/// The token in `path`, or a new one written there (0600, O_EXCL,
/// O_NOFOLLOW); `created` says which. Throws cli::error with one line.
std::string load_or_create_admin_token(const std::string& path, bool& created);

} // namespace drtp::pop
