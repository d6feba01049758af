#include "net/seam/assert.hpp"

#include <cstdio>
#include <cstdlib>

namespace drtp {

void assert_failed(const char* condition, const char* invariant, const char* file,
                   int line) noexcept {
  std::fprintf(stderr, "drtp: invariant broken: %s (%s) at %s:%d\n", invariant,
               condition, file, line);
  std::fflush(stderr);
  std::abort();
}

} // namespace drtp
