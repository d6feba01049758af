#pragma once
// Always-on assertions (TigerBeetle's rule): release builds keep them. An
// invariant that fails means the state is already wrong; going on would turn
// a bug into lost or duplicated bytes, so the process says which invariant
// broke and where, and aborts. Keep the condition cheap: it runs every time.
//
//   DRTP_ASSERT(acked_ <= sent_, "acked bytes never exceed sent bytes");

namespace drtp {

[[noreturn]] void assert_failed(const char* condition, const char* invariant,
                                const char* file, int line) noexcept;

} // namespace drtp

#define DRTP_ASSERT(condition, invariant)                                      \
  do {                                                                         \
    if (__builtin_expect(!(condition), 0))                                     \
      ::drtp::assert_failed(#condition, invariant, __FILE__, __LINE__);        \
  } while (false)
