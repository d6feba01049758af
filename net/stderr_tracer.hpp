#pragma once
// The real binaries' tracer: lines on stderr, rate-limited per kind.

#include <memory>

#include "net/seam/trace.hpp"

namespace drtp::net {

/// Anyone who can reach a POP can make it log a line per connection (a
/// failed TLS handshake, a protocol error); the log must not grow as fast as
/// they can connect. At level 0 the stderr tracer writes, for each kind of
/// component ("listener", "tunnel", "audit"), at most `log_lines_burst`
/// lines at once and `log_lines_per_second` after that; it counts what it
/// drops and says so in one line (at most one a second) when it writes
/// again, and at exit.
constexpr int log_lines_per_second = 100;
constexpr int log_lines_burst = 1000;

/// Audit lines of authenticated peers are never dropped (tracer::audit).
///
/// Thread-safe, one line per event on stderr. level 0: warnings and
/// lifecycle, rate-limited as above; 1: adds per-connection events, all of
/// them (asked for when debugging).
std::shared_ptr<tracer> make_stderr_tracer(int level);

} // namespace drtp::net
