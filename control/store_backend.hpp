#pragma once
// What a local store (control/local_store) keeps its records in: the memory
// store's maps or the SQLite file. Synchronous, called only on the store
// actor's thread, one call at a time. The store actor checks requests,
// conditions and limits; a backend only reads and writes, and says when it
// could not (error: one line, for store_errc::unavailable).
//
// A backend keeps the watch history itself (so the SQLite file keeps it
// across restarts): apply() records each change and compacts the history
// to the store's limits, advancing compact_revision() past what it drops.

#include <cstdint>
#include <string>
#include <vector>

#include "control/store.hpp"

namespace drtp::control {

class store_backend {
public:
  virtual ~store_backend();

  /// The revision of the last change (0: none yet).
  virtual uint64_t revision() const = 0;
  /// Every change with a revision above this is in the history.
  virtual uint64_t compact_revision() const = 0;
  virtual uint64_t key_count() const = 0;
  /// Bytes of keys and values of every record.
  virtual uint64_t data_bytes() const = 0;

  /// found: whether `key` exists (then `out` is its record).
  virtual bool find(const std::string& key, bool& found, store_record& out,
                    std::string& error) = 0;
  /// Records under prefix in key order: at most `limit`, `more` if there
  /// were more.
  virtual bool scan(const std::string& prefix, uint32_t limit,
                    std::vector<store_record>& out, bool& more, std::string& error) = 0;
  /// Makes `c` (a put or delete whose mod_revision is revision() + 1), in
  /// the records and in the history, atomically, and compacts the history.
  virtual bool apply(const store_change& c, std::string& error) = 0;
  /// Changes with a revision above `after` under `prefix`, in revision
  /// order, at most `max`; `scanned` is the revision up to which the
  /// history was read (revision() when all of it was).
  virtual bool changes(uint64_t after, const std::string& prefix, uint32_t max,
                       std::vector<store_change>& out, uint64_t& scanned,
                       std::string& error) = 0;
};

} // namespace drtp::control
