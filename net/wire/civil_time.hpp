#pragma once
// Civil dates and RFC 3339 text for logs and resources: the proleptic
// Gregorian calendar in UTC, no time zone database and no C library time
// state (timegm, gmtime_r), so the simulator's clock and the real one print
// alike. One home for what control/resource, the certificate code and the
// POP's audit lines each need.

#include <cstdint>
#include <string>

namespace drtp::net {

/// The range rfc3339 prints: 0000-01-01T00:00:00Z .. 9999-12-31T23:59:59.999Z.
constexpr int64_t civil_unix_ms_min = -62167219200000;
constexpr int64_t civil_unix_ms_max = 253402300799999;

/// Days since 1970-01-01 of a civil date, and back (H. Hinnant's
/// public-domain algorithms).
int64_t days_from_civil(int64_t y, unsigned m, unsigned d);
void civil_from_days(int64_t days, int64_t& y, unsigned& m, unsigned& d);
unsigned days_in_month(int64_t y, unsigned m);

/// "2026-01-01T00:10:00.000Z"; outside the range above, clamped to it.
std::string rfc3339(int64_t unix_ms);

} // namespace drtp::net
