#pragma once
// The registry's storage, one interface with three implementations:
//   memory_store  (control/memory_store): the simulator and unit tests;
//   sqlite_store  (control/sqlite_store): the embedded default, one file;
//   etcd_store    (control/etcd_store): etcd v3 through its JSON gateway,
//                 over the seam, so several drtp-control replicas share it.
// A store is an actor; this header is its protocol. One shared test suite
// (tests/test_store.cpp) runs against all three.
//
// The model is etcd's: keys are strings, values are strings (the registry
// keeps JSON), and every change bumps one store-wide revision. A record's
// mod_revision is the revision of its last change; it is the object's
// resourceVersion in the API. A put or delete may be conditional on the
// record's mod_revision (optimistic concurrency; 0 = must not exist).
//
// Watch: changes under a prefix after a revision, in revision order,
// delivered to the subscriber as store_event batches. A store keeps a
// bounded history; a watch from a revision older than it gets
// store_compacted (the watcher lists again). A subscriber that is gone is
// dropped (monitored).
//
// Every request is answered (caf request/response) and never blocks the
// caller forever; a store that cannot reach its backend answers with an
// error (store_errc), and its watchers get store_watch_lost.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "caf/actor.hpp"
#include "caf/allowed_unsafe_message_type.hpp"
#include "caf/fwd.hpp"

namespace drtp::control {

struct store_record {
  std::string key;
  std::string value;
  uint64_t create_revision = 0;
  uint64_t mod_revision = 0;
};

/// Any revision: an unconditional put or delete.
constexpr int64_t any_revision = -1;

// -- requests ----------------------------------------------------------------

/// -> store_get_result
struct store_get {
  std::string key;
};
struct store_get_result {
  bool found = false;
  store_record record;
  uint64_t revision = 0; // the store's revision when read
};

/// Every record whose key starts with prefix, in key order, at one revision.
/// At most limit records (0: store's own cap); more says there were more.
/// -> store_list_result
struct store_list {
  std::string prefix;
  uint32_t limit = 0;
};
struct store_list_result {
  std::vector<store_record> records;
  uint64_t revision = 0;
  bool more = false;
};

/// Create or replace. expected_mod_revision: any_revision, 0 (create only),
/// or the mod_revision the record must have. -> store_put_result
struct store_put {
  std::string key;
  std::string value;
  int64_t expected_mod_revision = any_revision;
};
struct store_put_result {
  bool ok = false;        // false: the condition failed (conflict)
  store_record record;    // ok: the record as written; else: as it is now
  bool exists = false;    // !ok: whether the record exists now
  uint64_t revision = 0;
};

/// -> store_delete_result
struct store_delete {
  std::string key;
  int64_t expected_mod_revision = any_revision;
};
struct store_delete_result {
  bool ok = false;        // false: absent, or the condition failed
  bool existed = false;
  store_record previous;  // ok: what was deleted
  uint64_t revision = 0;
};

/// Subscribe `subscriber` to changes under prefix with revision > after.
/// Answered with store_watch_started (or an error); events then arrive at
/// the subscriber as store_event messages. When `after` is older than the
/// history, the subscriber's first and only message of the watch is
/// store_compacted, as when a watch falls behind later: one code path for
/// it, and one answer type for the requester (a CAF 0.17 response handler
/// takes one type).
struct store_watch {
  std::string prefix;
  uint64_t after = 0;
  caf::actor subscriber;
  uint64_t tag = 0; // echoed in every message of this watch
};
struct store_watch_started {
  uint64_t tag = 0;
  uint64_t revision = 0;
};
struct store_unwatch {
  uint64_t tag = 0;
  caf::actor subscriber;
};

// -- to watchers ---------------------------------------------------------------

enum class store_event_type : uint8_t { put, del };

struct store_change {
  store_event_type type = store_event_type::put;
  store_record record; // del: key and mod_revision (of the delete), value empty
  bool created = false; // put: the record did not exist before
};

/// Changes in revision order. revision: the store's after these changes
/// (also sent with no changes, as progress, at least every 5 s).
struct store_event {
  uint64_t tag = 0;
  std::vector<store_change> changes;
  uint64_t revision = 0;
};
/// The watch cannot continue (history compacted past it, backend lost):
/// list again and watch from the list's revision.
struct store_compacted {
  uint64_t tag = 0;
  uint64_t compact_revision = 0;
};
struct store_watch_lost {
  uint64_t tag = 0;
  std::string what;
};

enum class store_errc : uint8_t {
  unavailable = 1, // the backend does not answer (etcd down, disk error)
  too_large,       // a value over the store's cap
  invalid,         // an empty key, a key with a NUL, ...
  full,            // keys_max, total_bytes_max or watches_max reached
};

/// A store's errors are caf::errors of category "store" whose context is
/// one line saying what is wrong ("value of 2000000 bytes, over
/// value_bytes_max 1048576"); never the value itself.
caf::error make_error(store_errc code);
caf::error make_error(store_errc code, std::string what);
const char* to_string(store_errc code);
/// The store_errc of `e`, if it is a store's error.
std::optional<store_errc> store_error_code(const caf::error& e);
/// One line for logs and API messages: "too_large: value of ...".
std::string store_error_text(const caf::error& e);

// -- limits ------------------------------------------------------------------

/// What every store keeps bounded. Sized for the registry's target (10 000
/// services, 10 POPs, their principals and orgs: tens of thousands of
/// records of a few KiB) with room to spare, and small enough that the
/// worst case fits a control plane's memory.
struct store_limits {
  /// Keys are the registry's /drtp/v1/<plural>/<name> (under 100 bytes).
  uint32_t key_bytes_max = 512;
  /// The API's body cap: an object's JSON is at most 1 MiB.
  uint32_t value_bytes_max = 1024 * 1024;
  uint32_t keys_max = 100000;
  /// Keys and values of every record together; puts past it get `full`.
  uint64_t total_bytes_max = 256ull * 1024 * 1024;
  /// The watch history: the last history_max changes, and no more than
  /// history_bytes_max of keys and values (a burst of large values
  /// compacts sooner). A watcher that falls further behind lists again.
  uint32_t history_max = 10000;
  uint64_t history_bytes_max = 64ull * 1024 * 1024;
  /// Watches at once, over all subscribers; past it a watch gets `full`.
  uint32_t watches_max = 16384;
  /// Changes in one store_event when a watch replays the history.
  uint32_t event_changes_max = 256;
  /// Progress events to every watch (the protocol promises 5 s at most).
  uint32_t progress_interval_ms = 5000;
};

} // namespace drtp::control

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(drtp::control::store_get)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(drtp::control::store_get_result)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(drtp::control::store_list)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(drtp::control::store_list_result)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(drtp::control::store_put)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(drtp::control::store_put_result)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(drtp::control::store_delete)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(drtp::control::store_delete_result)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(drtp::control::store_watch)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(drtp::control::store_watch_started)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(drtp::control::store_unwatch)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(drtp::control::store_event)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(drtp::control::store_compacted)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(drtp::control::store_watch_lost)
