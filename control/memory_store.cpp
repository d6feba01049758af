#include "control/memory_store.hpp"

#include <algorithm>
#include <deque>
#include <map>

#include "caf/all.hpp"
#include "control/local_store.hpp"
#include "control/store_backend.hpp"
#include "net/seam/assert.hpp"

namespace drtp::control {

namespace {

uint64_t change_bytes(const store_change& c) {
  return c.record.key.size() + c.record.value.size();
}

class memory_backend final : public store_backend {
public:
  explicit memory_backend(const store_limits& lim)
    : history_max_(lim.history_max), history_bytes_max_(lim.history_bytes_max) {
  }

  uint64_t revision() const override {
    return revision_;
  }
  uint64_t compact_revision() const override {
    return compact_revision_;
  }
  uint64_t key_count() const override {
    return records_.size();
  }
  uint64_t data_bytes() const override {
    return data_bytes_;
  }

  bool find(const std::string& key, bool& found, store_record& out, std::string&) override {
    auto i = records_.find(key);
    found = i != records_.end();
    if (found)
      out = i->second;
    return true;
  }

  bool scan(const std::string& prefix, uint32_t limit, std::vector<store_record>& out,
            bool& more, std::string&) override {
    more = false;
    for (auto i = records_.lower_bound(prefix);
         i != records_.end() && i->first.compare(0, prefix.size(), prefix) == 0; ++i) {
      if (out.size() == limit) {
        more = true;
        break;
      }
      out.push_back(i->second);
    }
    return true;
  }

  bool apply(const store_change& c, std::string&) override {
    DRTP_ASSERT(c.record.mod_revision == revision_ + 1, "changes come in revision order");
    auto i = records_.find(c.record.key);
    if (i != records_.end()) {
      data_bytes_ -= i->second.key.size() + i->second.value.size();
      records_.erase(i);
    }
    if (c.type == store_event_type::put) {
      records_.emplace(c.record.key, c.record);
      data_bytes_ += change_bytes(c);
    }
    revision_ = c.record.mod_revision;
    history_.push_back(c);
    history_bytes_ += change_bytes(c);
    while (history_.size() > history_max_ || history_bytes_ > history_bytes_max_) {
      compact_revision_ = history_.front().record.mod_revision;
      history_bytes_ -= change_bytes(history_.front());
      history_.pop_front();
    }
    return true;
  }

  bool changes(uint64_t after, const std::string& prefix, uint32_t max,
               std::vector<store_change>& out, uint64_t& scanned, std::string&) override {
    DRTP_ASSERT(after >= compact_revision_, "a replay starts within the history");
    auto i = std::upper_bound(history_.begin(), history_.end(), after,
                              [](uint64_t rev, const store_change& c) {
                                return rev < c.record.mod_revision;
                              });
    scanned = revision_;
    for (; i != history_.end(); ++i) {
      if (i->record.key.compare(0, prefix.size(), prefix) != 0)
        continue;
      if (out.size() == max) {
        scanned = out.back().record.mod_revision;
        break;
      }
      out.push_back(*i);
    }
    return true;
  }

private:
  uint32_t history_max_;
  uint64_t history_bytes_max_;
  std::map<std::string, store_record> records_;
  uint64_t data_bytes_ = 0;
  uint64_t revision_ = 0;
  uint64_t compact_revision_ = 0;
  std::deque<store_change> history_; // revisions compact_revision_+1 .. revision_
  uint64_t history_bytes_ = 0;
};

} // namespace

caf::actor spawn_memory_store(caf::actor_system& sys, memory_store_params p) {
  return sys.spawn(local_store, std::make_shared<memory_backend>(p.limits), p.limits);
}

} // namespace drtp::control
