#include "cli/secrets.hpp"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

namespace drtp::cli {

std::string read_secret(const std::optional<std::string>& file,
                        const char* env_var) {
  std::string secret;
  if (file) {
    std::ifstream in{*file, std::ios::binary};
    if (!in)
      throw error("cannot read secret file " + *file + ": "
                  + std::strerror(errno));
    std::ostringstream ss;
    ss << in.rdbuf();
    secret = ss.str();
  } else if (auto v = std::getenv(env_var)) {
    secret = v;
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

} // namespace drtp::cli
