#include "cli/secrets.hpp"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sys/prctl.h>
#include <string>

namespace drtp::cli {

std::string read_secret(const std::optional<std::string>& file,
                        const char* env_var) {
  std::string secret;
  if (file) {
    std::ifstream in{*file, std::ios::binary};
    if (!in)
      throw error("cannot read secret file " + *file + ": "
                  + std::strerror(errno));
    // Bounded: a path such as /dev/zero or a huge file must not make the
    // binary read (and hold) without end.
    secret.resize(secret_bytes_max + 1);
    in.read(secret.data(), static_cast<std::streamsize>(secret.size()));
    secret.resize(static_cast<size_t>(in.gcount()));
    if (secret.size() > secret_bytes_max)
      throw error("secret file " + *file + " holds more than "
                  + std::to_string(secret_bytes_max) + " bytes: not a secret");
  } else if (auto v = std::getenv(env_var)) {
    secret = v;
    if (secret.size() > secret_bytes_max)
      throw error(std::string(env_var) + " holds more than "
                  + std::to_string(secret_bytes_max) + " bytes: not a secret");
  } else {
    throw error(std::string("no secret: pass --secret-file FILE or set ")
                + env_var);
  }
  while (!secret.empty() && (secret.back() == '\n' || secret.back() == '\r'))
    secret.pop_back();
  if (secret.empty())
    throw error("the secret is empty");
  return secret;
}

void keep_secrets_out_of_core_dumps() {
  auto ask = std::getenv("DRTP_ALLOW_CORE_DUMPS");
  if (ask && std::string(ask) == "1")
    return;
  ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
}

} // namespace drtp::cli
