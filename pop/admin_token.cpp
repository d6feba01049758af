#include "pop/admin_token.hpp"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "actors/admin.hpp"
#include "cli/error.hpp"
#include "cli/secrets.hpp"
#include "net/openssl_crypto.hpp"
#include "net/tls.hpp"

namespace drtp::pop {

namespace {

/// 256 random bits, as hex: far beyond guessing through a port that closes
/// each connection after one line.
constexpr size_t token_random_bytes = 32;

std::string read_token(int fd, const std::string& path) {
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
    throw cli::error("admin token file " + path + " is not a regular file");
  if ((st.st_mode & 077) != 0)
    throw cli::error("admin token file " + path
                     + " may be read by others (chmod 600 it, or remove it for a new one)");
  if (st.st_uid != ::geteuid())
    throw cli::error("admin token file " + path + " belongs to another user");
  auto text = cli::read_secret_from(fd, "admin token file " + path);
  if (text.size() < admin_token_bytes_min
      || text.find_first_of(" \t\r\n") != std::string::npos)
    throw cli::error("admin token in " + path + " must be one word of at least "
                     + std::to_string(admin_token_bytes_min) + " characters");
  return text;
}

std::string create_token(const std::string& path) {
  auto token = net::to_hex(net::make_system_entropy()->bytes(token_random_bytes));
  cli::write_new_file(path, token + "\n", 0600);
  return token;
}

} // namespace

std::string load_or_create_admin_token(const std::string& path, bool& created) {
  int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0 && errno == ENOENT) {
    created = true;
    return create_token(path);
  }
  if (fd < 0)
    throw cli::error("cannot open admin token file " + path + ": " + std::strerror(errno));
  created = false;
  try {
    auto token = read_token(fd, path);
    ::close(fd);
    return token;
  } catch (...) {
    ::close(fd);
    throw;
  }
}

} // namespace drtp::pop
