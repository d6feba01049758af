#include "cli/secrets.hpp"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <sys/prctl.h>
#include <string>
#include <unistd.h>

namespace drtp::cli {

std::string read_secret(const std::optional<std::string>& file,
                        const char* env_var) {
  std::string secret;
  if (file) {
    int fd = ::open(file->c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0)
      throw error("cannot read secret file " + *file + ": " + std::strerror(errno));
    try {
      secret = read_secret_from(fd, "secret file " + *file);
    } catch (...) {
      ::close(fd);
      throw;
    }
    ::close(fd);
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

std::string read_secret_from(int fd, const std::string& what) {
  std::string text(secret_bytes_max + 1, '\0');
  size_t got = 0;
  while (got < text.size()) {
    auto n = ::read(fd, text.data() + got, text.size() - got);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      throw error("cannot read " + what + ": " + std::strerror(errno));
    if (n == 0)
      break;
    got += static_cast<size_t>(n);
  }
  if (got > secret_bytes_max)
    throw error(what + " holds more than " + std::to_string(secret_bytes_max)
                + " bytes: not a secret");
  text.resize(got);
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r'))
    text.pop_back();
  return text;
}

void write_new_file(const std::string& path, const std::string& text, mode_t mode) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
  if (fd < 0)
    throw error("cannot create " + path + ": " + std::strerror(errno)
                + (errno == EEXIST ? " (DRTP never overwrites a file)" : ""));
  size_t done = 0;
  while (done < text.size()) {
    auto n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) {
      auto why = std::string(std::strerror(errno));
      ::close(fd);
      throw error("cannot write " + path + ": " + why);
    }
    done += static_cast<size_t>(n);
  }
  if (::close(fd) != 0)
    throw error("cannot write " + path + ": " + std::strerror(errno));
}

void keep_secrets_out_of_core_dumps() {
  auto ask = std::getenv("DRTP_ALLOW_CORE_DUMPS");
  if (ask && std::string(ask) == "1")
    return;
  ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
}

} // namespace drtp::cli
