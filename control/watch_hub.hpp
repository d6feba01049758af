#pragma once
// The watches of one store: who watches which prefix from which revision,
// and the sending of store_event, store_compacted and store_watch_lost to
// them. Plain state owned by a store actor (memory, sqlite, etcd), which
// hands it the changes as they are made. It monitors every subscriber once
// (however many watches it holds) so a dead one is dropped on its
// down_msg: the store calls drop().
//
// Changes go out one store_event per change as they are made; a replay of
// the history goes out in batches of at most event_changes_max changes,
// each batch's revision the one up to which the history was read (the last
// batch's the store's), so a watcher that resumes from any event's
// revision misses nothing.

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "caf/actor.hpp"
#include "caf/actor_addr.hpp"
#include "caf/fwd.hpp"
#include "control/store.hpp"

namespace drtp::control {

class watch_hub {
public:
  watch_hub(caf::event_based_actor* self, uint32_t watches_max, uint32_t event_changes_max);

  size_t size() const {
    return watches_.size();
  }
  bool full() const {
    return watches_.size() >= watches_max_;
  }
  /// Whether `subscriber` already has a watch tagged `tag`.
  bool has(const caf::actor& subscriber, uint64_t tag) const;

  /// Registers `w` (not full, not has(), a subscriber that is not null).
  /// Changes with revision <= w.after are never sent to it.
  void add(const store_watch& w);
  /// One batch of `w`'s replay: changes in revision order, all under
  /// w.prefix and after w.after, at most event_changes_max; `revision`: the
  /// history was read up to it.
  void send_batch(const store_watch& w, std::vector<store_change>& changes, uint64_t revision);
  /// false when there was no such watch.
  bool remove(const caf::actor_addr& subscriber, uint64_t tag);
  /// Every watch of a subscriber that is gone.
  void drop(const caf::actor_addr& subscriber);

  /// A change just made; the store is at `revision` after it.
  void publish(const store_change& c, uint64_t revision);
  /// An empty store_event to every watch.
  void progress(uint64_t revision);
  /// store_watch_lost to every watch, which are then gone.
  void lose_all(const std::string& what);

private:
  struct watch_entry {
    caf::actor subscriber;
    std::string prefix;
    uint64_t after = 0;
  };
  using watch_key = std::pair<caf::actor_addr, uint64_t>;

  void forget_subscriber(const caf::actor_addr& subscriber);

  caf::event_based_actor* self_;
  uint32_t watches_max_;
  uint32_t event_changes_max_;
  std::map<watch_key, watch_entry> watches_;
  /// Watches per subscriber: monitored while above 0.
  std::map<caf::actor_addr, uint32_t> subscribers_;
};

} // namespace drtp::control
