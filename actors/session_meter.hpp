#pragma once
// What one session adds to its process's metrics (net/seam/metrics): open
// now, opened, closed by reason, bytes each way. Every kind of session
// (session, rsession, splice) holds one; the references it keeps make each
// count one relaxed atomic add on the hot path. A meter that is destroyed
// without close() closes with reason "cut" (its actor was killed).

#include <string>

#include "net/seam/metrics.hpp"

namespace drtp {

/// The bounded set of reasons a session ends for (drtp_sessions_closed_total).
enum class session_end : uint8_t {
  done,          // both directions finished (FIN each way)
  reset,         // the peer or the local side reset it
  local_failed,  // the local connection could not be made
  idle,          // no bytes either way for session_idle_timeout_ms
  resume_timeout, // a patch-panel session found no path in time
  cut,           // ended by the POP's rules, a drain, or its tunnel's loss
};

const char* to_string(session_end e) noexcept;

class session_meter {
public:
  /// `path`: "public" or "patch_panel".
  session_meter(net::metrics& m, std::string service, const char* path);
  ~session_meter();
  session_meter(const session_meter&) = delete;
  session_meter& operator=(const session_meter&) = delete;

  void to_service(uint64_t bytes) { to_service_.add(bytes); }
  void from_service(uint64_t bytes) { from_service_.add(bytes); }
  /// The first call counts; later ones are ignored.
  void close(session_end why);

private:
  net::metrics& m_;
  std::string service_;
  const char* path_;
  net::metric_gauge& active_;
  net::metric_counter& to_service_;
  net::metric_counter& from_service_;
  bool closed_ = false;
};

} // namespace drtp
