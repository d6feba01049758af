#pragma once
// The live sessions of one process (or simulated host), as /debug/sessions
// and `drtp status` show them: for each, its id, service, role, age, bytes
// each way, and, for a patch-panel session, its path (which POPs carried
// it and when it moved, the stall before each move), its resumes and resent
// bytes, the round-trip time of its hop here and the telemetry its other
// end sent in band (net/wire/record: the telemetry record), so that either
// end shows the whole path serve -> POP -> connect.
//
// The same id names a session at every host it crosses: a patch-panel
// session by the id its client end chose (both ends and the POP see it in
// the stream's open message), a public session by the POP's tunnel id and
// the stream id ("tunnel#7/12"), which the POP and the agent both know.
//
// Each session's meter (actors/session_meter) holds its entry. Bytes are
// relaxed atomic adds on the hot path; everything else changes a few times
// a session (a move, a telemetry record every few seconds) under the
// entry's own lock. The table is shared by the process's actors, on any
// thread.
//
// Round trips are kept per POP, not per session: the agent's tunnels
// measure them, and a session's figures are those of the POPs it used
// while it used them (the last rtt_samples_per_pop_max samples of each).

#include <atomic>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

namespace drtp::net {

/// Sessions listed; past this a session still works but is only counted
/// (a POP's streams are bounded anyway: this bounds the table itself).
constexpr size_t session_table_entries_max = 65536;
/// Moves remembered per session: the first and the latest ones.
constexpr size_t session_hops_max = 16;
constexpr size_t rtt_samples_per_pop_max = 512;
/// Sessions one /debug/sessions answer lists (the oldest first).
constexpr size_t debug_sessions_listed_max = 1000;
constexpr size_t rtt_pops_max = 64;
/// A POP name as kept and told in band.
constexpr size_t session_pop_name_bytes_max = 64;

struct rtt_summary {
  uint32_t samples = 0;
  uint32_t p50_us = 0;
  uint32_t max_us = 0;
};

/// What a session's other end told in its latest telemetry record.
struct peer_telemetry {
  bool known = false;
  int64_t at_ms = 0; // when it came
  uint64_t sent_bytes = 0;
  uint64_t received_bytes = 0;
  uint64_t resent_bytes = 0;
  uint32_t resumes = 0;
  uint32_t stall_ms = 0;
  rtt_summary rtt; // of its hop (its end to its POP)
  std::string pop; // the POP it is on
};

class session_facts {
public:
  struct hop {
    std::string pop;
    int64_t at_ms = 0;
    uint32_t stall_ms = 0; // without a path before this hop
  };

  session_facts(std::string id, std::string service, const char* path, const char* role,
                int64_t started_ms);

  const std::string service;
  const char* const path; // "public" or "patch_panel"
  const char* const role; // "pop", "agent" (public, its end), "serve", "connect"
  const int64_t started_ms;

  std::atomic<uint64_t> to_service_bytes{0};
  std::atomic<uint64_t> from_service_bytes{0};

  /// A client end that starts over before its welcome takes a new id.
  void set_id(std::string id);
  std::string id() const;
  /// The POP side: who is at each end.
  void set_ends(std::string principal, std::string agent);
  /// A new path through `pop` (the first, or a move after `stall_ms`).
  void moved_to(std::string pop, int64_t now_ms, uint32_t stall_ms);
  /// The path is lost; a resume follows (or the session ends).
  void lost_path(int64_t now_ms);
  void resumed(uint64_t resent_bytes, uint32_t stall_ms);
  void set_peer(peer_telemetry t);

  /// The JSON object /debug/sessions lists (rtt from the table's samples).
  std::string json(int64_t now_ms, const class session_table& table) const;
  /// Our side, as a telemetry record tells the peer.
  peer_telemetry ours(const session_table& table, int64_t now_ms) const;
  /// Bumped by every change a telemetry record carries (not the bytes).
  uint64_t version() const;

private:
  rtt_summary rtt_locked(const session_table& table, int64_t now_ms) const;
  mutable std::mutex mtx_;
  std::string id_;
  std::string principal_, agent_;
  std::vector<hop> hops_;
  bool on_path_ = false;
  int64_t lost_at_ms_ = 0;
  uint32_t resumes_ = 0;
  uint64_t resent_bytes_ = 0;
  uint64_t stall_ms_ = 0;
  uint64_t version_ = 0;
  peer_telemetry peer_;
};

class session_table {
public:
  std::shared_ptr<session_facts> open(std::string id, std::string service, const char* path,
                                      const char* role, int64_t now_ms);
  void close(const std::shared_ptr<session_facts>& s);

  /// A round trip measured to `pop` (by an agent's tunnel).
  void observe_rtt(const std::string& pop, uint32_t rtt_us, int64_t now_ms);
  /// The samples of `pop` within [from_ms, to_ms].
  void collect_rtt(const std::string& pop, int64_t from_ms, int64_t to_ms,
                   std::vector<uint32_t>& out) const;

  size_t size() const;
  /// Sessions opened past session_table_entries_max (not listed).
  uint64_t unlisted() const;
  /// A JSON array of at most `limit` sessions, the oldest first.
  std::string json(int64_t now_ms, size_t limit) const;

private:
  mutable std::mutex mtx_;
  std::set<std::shared_ptr<session_facts>> live_;
  uint64_t unlisted_ = 0;
  struct sample {
    int64_t at_ms;
    uint32_t rtt_us;
  };
  std::map<std::string, std::deque<sample>> rtt_;
};

/// p50 and max of `v` (reordered).
rtt_summary summarize_rtt(std::vector<uint32_t>& v);

} // namespace drtp::net
