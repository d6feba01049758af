#include "control/watch_hub.hpp"

#include "caf/event_based_actor.hpp"
#include "net/seam/assert.hpp"

namespace drtp::control {

namespace {

bool under(const std::string& key, const std::string& prefix) {
  return key.compare(0, prefix.size(), prefix) == 0;
}

} // namespace

watch_hub::watch_hub(caf::event_based_actor* self, uint32_t watches_max,
                     uint32_t event_changes_max)
  : self_(self), watches_max_(watches_max), event_changes_max_(event_changes_max) {
  DRTP_ASSERT(self_ != nullptr, "a watch hub belongs to a store actor");
  DRTP_ASSERT(event_changes_max_ > 0, "a replay batch holds at least one change");
}

bool watch_hub::has(const caf::actor& subscriber, uint64_t tag) const {
  return watches_.count({subscriber.address(), tag}) > 0;
}

void watch_hub::add(const store_watch& w) {
  DRTP_ASSERT(w.subscriber != nullptr, "a watch has a subscriber");
  DRTP_ASSERT(!full(), "the store checks watches_max before adding");
  auto addr = w.subscriber.address();
  auto inserted = watches_.emplace(watch_key{addr, w.tag},
                                   watch_entry{w.subscriber, w.prefix, w.after});
  DRTP_ASSERT(inserted.second, "the store checks the tag is free before adding");
  // One monitor per subscriber: its down_msg drops all its watches.
  if (subscribers_[addr]++ == 0)
    self_->monitor(w.subscriber);
}

void watch_hub::send_batch(const store_watch& w, std::vector<store_change>& changes,
                           uint64_t revision) {
  DRTP_ASSERT(!changes.empty() && changes.size() <= event_changes_max_,
              "a replay batch holds 1 to event_changes_max changes");
  uint64_t last = w.after;
  for (auto& c : changes) {
    DRTP_ASSERT(c.record.mod_revision > last, "a replay is in revision order, after the watch's");
    DRTP_ASSERT(under(c.record.key, w.prefix), "a replay holds only the watch's prefix");
    last = c.record.mod_revision;
  }
  DRTP_ASSERT(last <= revision, "a batch's revision is at least its last change's");
  self_->send(w.subscriber, store_event{w.tag, std::move(changes), revision});
}

bool watch_hub::remove(const caf::actor_addr& subscriber, uint64_t tag) {
  if (watches_.erase({subscriber, tag}) == 0)
    return false;
  forget_subscriber(subscriber);
  return true;
}

void watch_hub::drop(const caf::actor_addr& subscriber) {
  auto first = watches_.lower_bound({subscriber, 0});
  auto last = first;
  while (last != watches_.end() && last->first.first == subscriber)
    ++last;
  watches_.erase(first, last);
  subscribers_.erase(subscriber);
}

void watch_hub::forget_subscriber(const caf::actor_addr& subscriber) {
  auto i = subscribers_.find(subscriber);
  DRTP_ASSERT(i != subscribers_.end() && i->second > 0,
              "a subscriber with a watch is counted");
  if (--i->second == 0) {
    self_->demonitor(subscriber);
    subscribers_.erase(i);
  }
}

void watch_hub::publish(const store_change& c, uint64_t revision) {
  DRTP_ASSERT(c.record.mod_revision <= revision, "a change is no newer than the store");
  for (auto& [key, w] : watches_)
    if (c.record.mod_revision > w.after && under(c.record.key, w.prefix))
      self_->send(w.subscriber, store_event{key.second, {c}, revision});
}

void watch_hub::progress(uint64_t revision) {
  for (auto& [key, w] : watches_)
    self_->send(w.subscriber, store_event{key.second, {}, revision});
}

void watch_hub::lose_all(const std::string& what) {
  for (auto& [key, w] : watches_)
    self_->send(w.subscriber, store_watch_lost{key.second, what});
  for (auto& [addr, count] : subscribers_)
    self_->demonitor(addr);
  watches_.clear();
  subscribers_.clear();
}

} // namespace drtp::control
