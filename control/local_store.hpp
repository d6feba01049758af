#pragma once
// The store protocol (control/store.hpp) over a synchronous backend
// (control/store_backend.hpp): the memory store and the SQLite store are
// this behaviour over their backends. It validates requests against the
// store_limits, checks conditions, bumps the revision, and serves watches
// from the backend's history (control/watch_hub), with a progress event to
// every watch each progress_interval_ms while there are watches.
//
// A function-based actor so that the SQLite store can run it on a thread
// of its own (its calls block) while the memory store runs it like any
// other actor (the simulator's).

#include <memory>

#include "caf/fwd.hpp"
#include "control/store.hpp"
#include "control/store_backend.hpp"

namespace drtp::control {

/// Spawn with sys.spawn(local_store, backend, limits).
caf::behavior local_store(caf::event_based_actor* self, std::shared_ptr<store_backend> backend,
                          store_limits limits);

} // namespace drtp::control
