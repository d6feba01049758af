#include "tests/support/spawn.hpp"

#include <csignal>
#include <cstdlib>
#include <sys/prctl.h>
#include <fcntl.h>
#include <unistd.h>

namespace drtp::tools {

pid_t spawn_logged(const std::vector<std::string>& argv, const std::string& log_path,
                   const std::vector<std::string>& env) {
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid != 0)
    return pid;
  // A bench or test that dies (a signal, a crash) must not leave its POPs,
  // agents and relays running behind it. The parent may already be gone.
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != parent)
    _exit(127);
  int fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  dup2(fd, 1);
  dup2(fd, 2);
  int null = ::open("/dev/null", O_RDONLY);
  dup2(null, 0);
  for (auto& e : env)
    putenv(const_cast<char*>(e.c_str()));
  std::vector<char*> args;
  for (auto& a : argv)
    args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  execv(args[0], args.data());
  _exit(127);
}

} // namespace drtp::tools
