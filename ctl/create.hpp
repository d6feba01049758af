#pragma once
// drtpctl create service|principal|org: the secret of a service or a
// principal is made here, on the operator's machine; only its public key
// (the same scrypt-derived Ed25519 key a POP and the control plane check
// at login: net::derive_public_key with net::service_salt or
// net::principal_salt) is sent. The secret is printed once, or written to a
// new 0600 file, and kept nowhere else.

#include <functional>
#include <string>
#include <vector>

#include "cli/args.hpp"
#include "ctl/client.hpp"

namespace drtp::ctl {

/// `a` holds "create" and what follows (service NAME, principal NAME, org
/// NAME, options); reads and finishes it, then calls `connect`. Returns the
/// exit status; throws cli::error (usage) or failure.
int create(cli::args& a, const std::function<client&()>& connect);

extern const char* create_usage;

} // namespace drtp::ctl
