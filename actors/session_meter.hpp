#pragma once
// What one session adds to its process's metrics (net/seam/metrics): open
// now, opened, closed by reason, bytes each way. Every kind of session
// (session, rsession, splice) holds one; the references it keeps make each
// count one relaxed atomic add on the hot path. A meter that is destroyed
// without close() closes with reason "cut" (its actor was killed).
//
// It also holds the session's entry in its host's session table
// (net/seam/session_table): what /debug/sessions and `drtp status` list.

#include <memory>
#include <string>

#include "actors/env.hpp"
#include "net/seam/session_table.hpp"
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
  /// `path`: "public" or "patch_panel"; `role`: see net::session_facts; `id`:
  /// the session's id at every host it crosses (net/seam/session_table).
  session_meter(const env& e, std::string service, const char* path, const char* role,
                std::string id, int64_t now_ms);
  ~session_meter();
  session_meter(const session_meter&) = delete;
  session_meter& operator=(const session_meter&) = delete;

  void to_service(uint64_t bytes) {
    to_service_.add(bytes);
    facts_->to_service_bytes.fetch_add(bytes, std::memory_order_relaxed);
  }
  void from_service(uint64_t bytes) {
    from_service_.add(bytes);
    facts_->from_service_bytes.fetch_add(bytes, std::memory_order_relaxed);
  }
  net::session_facts& facts() { return *facts_; }
  /// The first call counts; later ones are ignored.
  void close(session_end why);

private:
  net::metrics& m_;
  std::string service_;
  const char* path_;
  net::metric_gauge& active_;
  net::metric_counter& to_service_;
  net::metric_counter& from_service_;
  std::shared_ptr<net::session_table> table_;
  std::shared_ptr<net::session_facts> facts_; // never null
  bool closed_ = false;
};

} // namespace drtp
