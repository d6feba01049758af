#pragma once
// Who may do what at a POP: service public keys for agents, principals (with their
// keys and groups) for patch-panel clients, and per-service allow lists.
// Private services deny by default: only listed principals or groups pass.

#include <cctype>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "net/seam/crypto.hpp"

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

/// Certificates a service's or principal's that no longer log in.
struct cert_revocations {
  std::vector<std::string> serials; // hex, any case, leading zeros or not
  int64_t before_unix_s = 0;        // every one with an earlier notBefore

  bool revoked(const std::string& serial, int64_t not_before_s) const {
    if (not_before_s < before_unix_s)
      return true;
    // One form for both sides (lowercase, no leading zeros): "0A03" names
    // the certificate whose serial reads "a03".
    auto mine = net::canonical_serial(serial);
    for (auto& s : serials)
      if (!mine.empty() && net::canonical_serial(s) == mine)
        return true;
    return false;
  }
};

struct auth_db {
  /// service -> public key whose private half its agents prove
  std::map<std::string, std::string> service_keys;
  /// Enrollment: the CA of client certificates (empty: certificate login
  /// is off) and each service's revocations (principals carry their own).
  std::string client_ca_pem;
  std::map<std::string, cert_revocations> service_revocations;

  /// Why `cert_pem` does not log in as service `name` (client: principal
  /// `name`) at now_s; empty: it does. `info` is filled when it parses.
  std::string check_certificate(net::crypto& c, const std::string& cert_pem, bool client,
                                const std::string& name, int64_t now_s,
                                net::crypto::certificate_info& info) const {
    if (client_ca_pem.empty())
      return "this POP takes no certificate logins";
    if (cert_pem.empty())
      return "no client certificate in the TLS handshake";
    info = c.verify_certificate(cert_pem, client_ca_pem, now_s);
    if (!info.error.empty())
      return info.error;
    auto want = std::string(client ? "principal/" : "service/") + name;
    if (info.subject != want)
      return "the certificate is for '" + info.subject.substr(0, 128) + "', not '" + want
             + "'";
    if (client) {
      auto p = principals.find(name);
      if (p == principals.end())
        return "unknown principal";
      if (p->second.revoked)
        return "principal revoked";
      if (cert_revocations{p->second.revoked_serials, p->second.revoked_before_unix_s}
            .revoked(info.serial, info.not_before_s))
        return "certificate revoked";
      return {};
    }
    if (!service_keys.count(name))
      return "unknown service";
    auto r = service_revocations.find(name);
    if (r != service_revocations.end() && r->second.revoked(info.serial, info.not_before_s))
      return "certificate revoked";
    return {};
  }
  std::map<std::string, principal_config> principals;
  /// service -> allowed principal names, "group:NAME" or "org:NAME"
  std::map<std::string, std::vector<std::string>> allow;

  /// Why `principal` may not reach `service`, in one line for the
  /// principal itself (it proved who it is): its org, never the allow list
  /// (which names other principals). Not one gateway's name: the patch
  /// panel's allow list is every gateway's of the service together.
  std::string refusal_reason(const std::string& principal, const std::string& service) const {
    std::string who = "principal '" + principal + "'";
    if (auto p = principals.find(principal); p != principals.end() && !p->second.org.empty())
      who += " (org '" + p->second.org + "')";
    return who + " is not allowed on service '" + service + "' by its gateways and allow list";
  }

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
