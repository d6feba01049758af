#pragma once
// The store (control/store.hpp) in one SQLite file: drtp-control's
// embedded default, no other server needed. The records, the revision and
// the watch history (the last history_max changes; older ones compacted)
// live in the database, so a restart keeps everything and a watch from a
// revision before the restart still works while it is in the history.
//
// Durability: WAL with synchronous=FULL, so a write is on disk (fsynced)
// before it is acknowledged; a crash loses nothing acknowledged. The file
// is held with an exclusive lock: one drtp-control per file (several
// replicas share etcd instead); a second one fails to open it after the
// busy timeout, saying so.
//
// SQLite blocks, so the store runs the local_store behaviour on a thread
// of its own (not on the I/O loop), and not in the simulator, which uses
// the memory store.

#include <cstdint>
#include <string>

#include "caf/fwd.hpp"
#include "control/store.hpp"

namespace drtp::control {

struct sqlite_store_params {
  std::string path;
  store_limits limits;
  /// How long a statement waits for a lock held by another connection.
  uint32_t busy_timeout_ms = 5000;
};

/// The store on the file at p.path (created if absent), or null with
/// `error` one line ("sqlite store /var/lib/drtp/registry.db: unable to
/// open database file") when it cannot be opened or is not a store.
caf::actor spawn_sqlite_store(caf::actor_system& sys, sqlite_store_params p, std::string& error);

} // namespace drtp::control
