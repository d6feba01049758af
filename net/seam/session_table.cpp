#include "net/seam/session_table.hpp"

#include <algorithm>

#include "net/seam/assert.hpp"
#include "net/wire/http.hpp"

namespace drtp::net {

namespace {

using drtp::http::json_quote;

/// A POP name may come from the other end (telemetry): kept short and
/// printable ASCII, so that every JSON reader takes it.
std::string cut_pop(std::string pop) {
  if (pop.size() > session_pop_name_bytes_max)
    pop.resize(session_pop_name_bytes_max);
  for (auto& c : pop)
    if (c < 0x20 || c > 0x7e)
      c = '?';
  return pop;
}

std::string rtt_json(const rtt_summary& r) {
  if (r.samples == 0)
    return "null";
  return "{\"p50_us\":" + std::to_string(r.p50_us) + ",\"max_us\":" + std::to_string(r.max_us)
         + ",\"samples\":" + std::to_string(r.samples) + "}";
}

} // namespace

rtt_summary summarize_rtt(std::vector<uint32_t>& v) {
  rtt_summary r;
  if (v.empty())
    return r;
  r.samples = static_cast<uint32_t>(v.size());
  auto mid = v.begin() + static_cast<std::ptrdiff_t>(v.size() / 2);
  std::nth_element(v.begin(), mid, v.end());
  r.p50_us = *mid;
  r.max_us = *std::max_element(v.begin(), v.end());
  return r;
}

// -- session_facts ---------------------------------------------------------------

session_facts::session_facts(std::string id, std::string service, const char* path,
                             const char* role, int64_t started_ms)
  : service(std::move(service)), path(path), role(role), started_ms(started_ms),
    id_(std::move(id)) {
}

void session_facts::set_id(std::string id) {
  std::lock_guard<std::mutex> g{mtx_};
  id_ = std::move(id);
}

std::string session_facts::id() const {
  std::lock_guard<std::mutex> g{mtx_};
  return id_;
}

void session_facts::set_ends(std::string principal, std::string agent) {
  std::lock_guard<std::mutex> g{mtx_};
  principal_ = std::move(principal);
  agent_ = std::move(agent);
}

void session_facts::moved_to(std::string pop, int64_t now_ms, uint32_t stall_ms) {
  std::lock_guard<std::mutex> g{mtx_};
  // The first hop and the latest ones: where it began and where it went.
  if (hops_.size() >= session_hops_max)
    hops_.erase(hops_.begin() + 1);
  hops_.push_back(hop{cut_pop(std::move(pop)), now_ms, stall_ms});
  on_path_ = true;
  ++version_;
}

void session_facts::lost_path(int64_t now_ms) {
  std::lock_guard<std::mutex> g{mtx_};
  if (!on_path_)
    return;
  on_path_ = false;
  lost_at_ms_ = now_ms;
  ++version_;
}

void session_facts::resumed(uint64_t resent_bytes, uint32_t stall_ms) {
  std::lock_guard<std::mutex> g{mtx_};
  ++resumes_;
  resent_bytes_ += resent_bytes;
  stall_ms_ += stall_ms;
  ++version_;
}

void session_facts::set_peer(peer_telemetry t) {
  std::lock_guard<std::mutex> g{mtx_};
  t.pop = cut_pop(std::move(t.pop));
  peer_ = std::move(t);
  peer_.known = true;
}

uint64_t session_facts::version() const {
  std::lock_guard<std::mutex> g{mtx_};
  return version_;
}

rtt_summary session_facts::rtt_locked(const session_table& table, int64_t now_ms) const {
  // The samples of each POP while this session was on it.
  std::vector<uint32_t> v;
  for (size_t i = 0; i < hops_.size(); ++i) {
    auto to = i + 1 < hops_.size() ? hops_[i + 1].at_ms : now_ms;
    table.collect_rtt(hops_[i].pop, hops_[i].at_ms, to, v);
  }
  return summarize_rtt(v);
}

peer_telemetry session_facts::ours(const session_table& table, int64_t now_ms) const {
  std::lock_guard<std::mutex> g{mtx_};
  peer_telemetry t;
  t.known = true;
  t.at_ms = now_ms;
  bool client = std::string(role) == "connect";
  // Our local side is the user's client at the connect end, the service
  // at the serve end.
  auto to = to_service_bytes.load(std::memory_order_relaxed);
  auto from = from_service_bytes.load(std::memory_order_relaxed);
  t.sent_bytes = client ? to : from;
  t.received_bytes = client ? from : to;
  t.resent_bytes = resent_bytes_;
  t.resumes = resumes_;
  t.stall_ms = static_cast<uint32_t>(std::min<uint64_t>(stall_ms_, UINT32_MAX));
  t.rtt = rtt_locked(table, now_ms);
  t.pop = hops_.empty() ? std::string{} : hops_.back().pop;
  return t;
}

std::string session_facts::json(int64_t now_ms, const session_table& table) const {
  std::lock_guard<std::mutex> g{mtx_};
  std::string out = "{\"id\":" + json_quote(id_) + ",\"service\":" + json_quote(service)
                    + ",\"path\":\"" + path + "\",\"role\":\"" + role
                    + "\",\"age_ms\":" + std::to_string(std::max<int64_t>(0, now_ms - started_ms))
                    + ",\"to_service_bytes\":"
                    + std::to_string(to_service_bytes.load(std::memory_order_relaxed))
                    + ",\"from_service_bytes\":"
                    + std::to_string(from_service_bytes.load(std::memory_order_relaxed));
  if (!principal_.empty() || !agent_.empty())
    out += ",\"principal\":" + json_quote(principal_) + ",\"agent\":" + json_quote(agent_);
  out += ",\"pop\":" + (hops_.empty() || !on_path_ ? std::string("null")
                                                   : json_quote(hops_.back().pop));
  if (std::string(path) == "patch_panel" && std::string(role) != "pop") {
    out += ",\"resumes\":" + std::to_string(resumes_)
           + ",\"resent_bytes\":" + std::to_string(resent_bytes_)
           + ",\"stall_ms\":" + std::to_string(stall_ms_);
    if (!on_path_ && !hops_.empty())
      out += ",\"without_path_ms\":" + std::to_string(std::max<int64_t>(0, now_ms - lost_at_ms_));
  }
  out += ",\"hops\":[";
  for (size_t i = 0; i < hops_.size(); ++i)
    out += std::string(i > 0 ? "," : "") + "{\"pop\":" + json_quote(hops_[i].pop)
           + ",\"at_ms\":" + std::to_string(hops_[i].at_ms - started_ms)
           + ",\"stall_ms\":" + std::to_string(hops_[i].stall_ms) + "}";
  out += "],\"rtt\":" + rtt_json(rtt_locked(table, now_ms));
  if (peer_.known)
    out += ",\"peer\":{\"pop\":" + json_quote(peer_.pop)
           + ",\"age_ms\":" + std::to_string(std::max<int64_t>(0, now_ms - peer_.at_ms))
           + ",\"sent_bytes\":" + std::to_string(peer_.sent_bytes)
           + ",\"received_bytes\":" + std::to_string(peer_.received_bytes)
           + ",\"resent_bytes\":" + std::to_string(peer_.resent_bytes)
           + ",\"resumes\":" + std::to_string(peer_.resumes)
           + ",\"stall_ms\":" + std::to_string(peer_.stall_ms) + ",\"rtt\":"
           + rtt_json(peer_.rtt) + "}";
  out += "}";
  return out;
}

// -- session_table ---------------------------------------------------------------

std::shared_ptr<session_facts> session_table::open(std::string id, std::string service,
                                                   const char* path, const char* role,
                                                   int64_t now_ms) {
  auto s = std::make_shared<session_facts>(std::move(id), std::move(service), path, role,
                                           now_ms);
  std::lock_guard<std::mutex> g{mtx_};
  if (live_.size() >= session_table_entries_max)
    ++unlisted_;
  else
    live_.insert(s);
  return s;
}

void session_table::close(const std::shared_ptr<session_facts>& s) {
  std::lock_guard<std::mutex> g{mtx_};
  live_.erase(s);
}

void session_table::observe_rtt(const std::string& pop, uint32_t rtt_us, int64_t now_ms) {
  std::lock_guard<std::mutex> g{mtx_};
  auto key = cut_pop(pop);
  auto it = rtt_.find(key);
  if (it == rtt_.end()) {
    if (rtt_.size() >= rtt_pops_max)
      return; // names come from the agent's own POP list: a handful
    it = rtt_.emplace(std::move(key), std::deque<sample>{}).first;
  }
  auto& q = it->second;
  if (q.size() >= rtt_samples_per_pop_max)
    q.pop_front();
  q.push_back(sample{now_ms, rtt_us});
  DRTP_ASSERT(q.size() <= rtt_samples_per_pop_max, "RTT samples per POP are bounded");
}

void session_table::collect_rtt(const std::string& pop, int64_t from_ms, int64_t to_ms,
                                std::vector<uint32_t>& out) const {
  std::lock_guard<std::mutex> g{mtx_};
  auto it = rtt_.find(pop);
  if (it == rtt_.end())
    return;
  for (auto& s : it->second)
    if (s.at_ms >= from_ms && s.at_ms <= to_ms)
      out.push_back(s.rtt_us);
}

size_t session_table::size() const {
  std::lock_guard<std::mutex> g{mtx_};
  return live_.size();
}

uint64_t session_table::unlisted() const {
  std::lock_guard<std::mutex> g{mtx_};
  return unlisted_;
}

std::string session_table::json(int64_t now_ms, size_t limit) const {
  std::vector<std::shared_ptr<session_facts>> all;
  {
    std::lock_guard<std::mutex> g{mtx_};
    all.assign(live_.begin(), live_.end());
  }
  std::stable_sort(all.begin(), all.end(),
                   [](auto& a, auto& b) { return a->started_ms < b->started_ms; });
  std::string out = "[";
  for (size_t i = 0; i < all.size() && i < limit; ++i)
    out += (i > 0 ? "," : "") + all[i]->json(now_ms, *this);
  out += "]";
  return out;
}

} // namespace drtp::net
