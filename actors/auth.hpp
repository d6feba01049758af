#pragma once
// Who may do what at a POP: service public keys for agents, principals (with their
// keys and groups) for patch-panel clients, and per-service allow lists.
// Private services deny by default: only listed principals or groups pass.

#include <map>
#include <string>
#include <vector>

namespace drtp {

struct principal_config {
  std::string name;
  std::string public_key; // Ed25519: checks proofs, cannot make one
  std::vector<std::string> groups;
  /// The org it belongs to (at most one); an allow entry "org:NAME" admits
  /// every principal of that org.
  std::string org;
  bool revoked = false;
  /// Enrollment: as service_config's (actors/pop_server.hpp).
  std::vector<std::string> revoked_serials;
  int64_t revoked_before_unix_s = 0;
};

struct auth_db {
  /// service -> public key whose private half its agents prove
  std::map<std::string, std::string> service_keys;
  std::map<std::string, principal_config> principals;
  /// service -> allowed principal names, "group:NAME" or "org:NAME"
  std::map<std::string, std::vector<std::string>> allow;

  bool allowed(const std::string& principal, const std::string& service) const {
    auto p = principals.find(principal);
    auto a = allow.find(service);
    if (p == principals.end() || p->second.revoked || a == allow.end())
      return false;
    for (auto& entry : a->second) {
      if (entry == principal)
        return true;
      if (entry.rfind("group:", 0) == 0)
        for (auto& g : p->second.groups)
          if (entry.compare(6, std::string::npos, g) == 0)
            return true;
      if (entry.rfind("org:", 0) == 0 && !p->second.org.empty()
          && entry.compare(4, std::string::npos, p->second.org) == 0)
        return true;
    }
    return false;
  }
};

} // namespace drtp
