#include "control/local_store.hpp"

#include <chrono>

#include "caf/all.hpp"
#include "control/watch_hub.hpp"
#include "net/seam/assert.hpp"

namespace drtp::control {

store_backend::~store_backend() = default;

namespace {

using progress_atom = caf::atom_constant<caf::atom("sprogress")>;

/// The state of one local store actor; its behaviour's handlers call in.
class local_store_state {
public:
  local_store_state(caf::event_based_actor* self, std::shared_ptr<store_backend> backend,
                    store_limits limits)
    : self_(self),
      backend_(std::move(backend)),
      lim_(limits),
      hub_(self, limits.watches_max, limits.event_changes_max) {
    DRTP_ASSERT(backend_ != nullptr, "a local store has a backend");
    DRTP_ASSERT(lim_.progress_interval_ms > 0 && lim_.progress_interval_ms <= 5000,
                "the store protocol promises progress at least every 5 s");
    DRTP_ASSERT(lim_.history_bytes_max >= uint64_t{lim_.key_bytes_max} + lim_.value_bytes_max,
                "the history holds at least the largest change");
    DRTP_ASSERT(lim_.history_max > 0, "the history holds at least one change");
  }

  caf::result<store_get_result> get(const store_get& q) {
    if (auto err = check_key(q.key))
      return err;
    store_get_result out;
    std::string error;
    if (!backend_->find(q.key, out.found, out.record, error))
      return make_error(store_errc::unavailable, error);
    out.revision = backend_->revision();
    return out;
  }

  caf::result<store_list_result> list(const store_list& q) {
    if (auto err = check_prefix(q.prefix))
      return err;
    store_list_result out;
    auto limit = q.limit == 0 || q.limit > lim_.keys_max ? lim_.keys_max : q.limit;
    std::string error;
    if (!backend_->scan(q.prefix, limit, out.records, out.more, error))
      return make_error(store_errc::unavailable, error);
    DRTP_ASSERT(out.records.size() <= limit, "a list holds at most its limit");
    out.revision = backend_->revision();
    return out;
  }

  caf::result<store_put_result> put(store_put& q) {
    if (auto err = check_key(q.key))
      return err;
    if (auto err = check_condition(q.expected_mod_revision))
      return err;
    if (q.value.size() > lim_.value_bytes_max)
      return make_error(store_errc::too_large,
                        "value of " + std::to_string(q.value.size())
                          + " bytes, over value_bytes_max "
                          + std::to_string(lim_.value_bytes_max));
    store_put_result out;
    std::string error;
    if (!backend_->find(q.key, out.exists, out.record, error))
      return make_error(store_errc::unavailable, error);
    if (!holds(out.exists, out.record, q.expected_mod_revision)) {
      out.revision = backend_->revision();
      return out;
    }
    if (auto err = check_room(q, out.exists, out.record))
      return err;
    auto revision = backend_->revision() + 1;
    store_change c;
    c.type = store_event_type::put;
    c.created = !out.exists;
    c.record.key = std::move(q.key);
    c.record.value = std::move(q.value);
    c.record.create_revision = out.exists ? out.record.create_revision : revision;
    c.record.mod_revision = revision;
    if (!backend_->apply(c, error))
      return make_error(store_errc::unavailable, error);
    DRTP_ASSERT(backend_->revision() == revision, "a change bumps the revision by one");
    hub_.publish(c, revision);
    out.ok = true;
    out.exists = true;
    out.record = std::move(c.record);
    out.revision = revision;
    return out;
  }

  caf::result<store_delete_result> del(const store_delete& q) {
    if (auto err = check_key(q.key))
      return err;
    if (auto err = check_condition(q.expected_mod_revision))
      return err;
    store_delete_result out;
    std::string error;
    if (!backend_->find(q.key, out.existed, out.previous, error))
      return make_error(store_errc::unavailable, error);
    // A conditional delete of an absent key fails like any other: the
    // condition "must not exist" (0) makes no sense for a delete.
    if (!out.existed || q.expected_mod_revision == 0
        || !holds(true, out.previous, q.expected_mod_revision)) {
      out.revision = backend_->revision();
      return out;
    }
    auto revision = backend_->revision() + 1;
    store_change c;
    c.type = store_event_type::del;
    c.record.key = q.key;
    c.record.mod_revision = revision;
    if (!backend_->apply(c, error))
      return make_error(store_errc::unavailable, error);
    DRTP_ASSERT(backend_->revision() == revision, "a change bumps the revision by one");
    hub_.publish(c, revision);
    out.ok = true;
    out.revision = revision;
    return out;
  }

  /// Answers first (so a subscriber that asked itself hears of the start
  /// before the events), then replays the history after w.after.
  void watch(const store_watch& w) {
    auto rp = self_->make_response_promise();
    if (auto err = check_watch(w)) {
      rp.deliver(std::move(err));
      return;
    }
    if (w.after < backend_->compact_revision()) {
      rp.deliver(store_watch_started{w.tag, backend_->revision()});
      self_->send(w.subscriber, store_compacted{w.tag, backend_->compact_revision()});
      return;
    }
    auto revision = backend_->revision();
    std::string error;
    std::vector<std::vector<store_change>> batches;
    std::vector<uint64_t> batch_revisions;
    // Read the whole replay before answering: a backend error is the
    // watch's answer, not a half-sent history.
    for (auto from = w.after; from < revision;) {
      std::vector<store_change> changes;
      uint64_t scanned = 0;
      if (!backend_->changes(from, w.prefix, lim_.event_changes_max, changes, scanned, error)) {
        rp.deliver(make_error(store_errc::unavailable, error));
        return;
      }
      DRTP_ASSERT(scanned > from && scanned <= revision, "a history read makes progress");
      if (!changes.empty()) {
        batches.push_back(std::move(changes));
        batch_revisions.push_back(scanned);
      }
      from = scanned;
    }
    rp.deliver(store_watch_started{w.tag, revision});
    for (size_t i = 0; i < batches.size(); ++i)
      hub_.send_batch(w, batches[i], batch_revisions[i]);
    hub_.add(w);
    arm_progress();
  }

  void unwatch(const store_unwatch& q) {
    if (q.subscriber)
      hub_.remove(q.subscriber.address(), q.tag);
  }

  void subscriber_down(const caf::down_msg& m) {
    hub_.drop(m.source);
  }

  void on_progress() {
    progress_armed_ = false;
    if (hub_.size() == 0)
      return; // re-armed by the next watch
    hub_.progress(backend_->revision());
    arm_progress();
  }

private:
  caf::error check_key(const std::string& key) const {
    if (key.empty())
      return make_error(store_errc::invalid, "empty key");
    if (key.size() > lim_.key_bytes_max)
      return make_error(store_errc::invalid, "key of " + std::to_string(key.size())
                                               + " bytes, over key_bytes_max "
                                               + std::to_string(lim_.key_bytes_max));
    if (key.find('\0') != std::string::npos)
      return make_error(store_errc::invalid, "key with a NUL byte");
    return {};
  }

  caf::error check_prefix(const std::string& prefix) const {
    if (prefix.empty())
      return {}; // everything
    return check_key(prefix);
  }

  static caf::error check_condition(int64_t expected) {
    if (expected < any_revision)
      return make_error(store_errc::invalid,
                        "expected_mod_revision " + std::to_string(expected));
    return {};
  }

  caf::error check_watch(const store_watch& w) const {
    if (!w.subscriber)
      return make_error(store_errc::invalid, "watch without a subscriber");
    if (auto err = check_prefix(w.prefix))
      return err;
    if (hub_.has(w.subscriber, w.tag))
      return make_error(store_errc::invalid,
                        "watch tag " + std::to_string(w.tag) + " in use by its subscriber");
    if (hub_.full())
      return make_error(store_errc::full,
                        "watches_max " + std::to_string(lim_.watches_max) + " reached");
    return {};
  }

  /// Whether a record in this state meets the put's condition.
  static bool holds(bool exists, const store_record& now, int64_t expected) {
    if (expected == any_revision)
      return true;
    if (expected == 0)
      return !exists;
    return exists && now.mod_revision == static_cast<uint64_t>(expected);
  }

  caf::error check_room(const store_put& q, bool exists, const store_record& now) const {
    if (!exists && backend_->key_count() >= lim_.keys_max)
      return make_error(store_errc::full,
                        "keys_max " + std::to_string(lim_.keys_max) + " reached");
    auto freed = exists ? now.key.size() + now.value.size() : 0;
    auto bytes = backend_->data_bytes() - freed + q.key.size() + q.value.size();
    if (bytes > lim_.total_bytes_max)
      return make_error(store_errc::full, "total_bytes_max "
                                            + std::to_string(lim_.total_bytes_max)
                                            + " reached");
    return {};
  }

  void arm_progress() {
    if (progress_armed_)
      return;
    progress_armed_ = true;
    self_->delayed_send(self_, std::chrono::milliseconds(lim_.progress_interval_ms),
                        progress_atom::value);
  }

  caf::event_based_actor* self_;
  std::shared_ptr<store_backend> backend_;
  store_limits lim_;
  watch_hub hub_;
  bool progress_armed_ = false;
};

} // namespace

caf::behavior local_store(caf::event_based_actor* self, std::shared_ptr<store_backend> backend,
                          store_limits limits) {
  auto st = std::make_shared<local_store_state>(self, std::move(backend), limits);
  self->set_down_handler([st](caf::down_msg& m) { st->subscriber_down(m); });
  return {
    [st](const store_get& q) { return st->get(q); },
    [st](const store_list& q) { return st->list(q); },
    [st](store_put& q) { return st->put(q); },
    [st](const store_delete& q) { return st->del(q); },
    [st](const store_watch& w) { st->watch(w); },
    [st](const store_unwatch& q) { st->unwatch(q); },
    [st](progress_atom) { st->on_progress(); },
  };
}

} // namespace drtp::control
