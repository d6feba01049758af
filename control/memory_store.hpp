#pragma once
// The store (control/store.hpp) in memory: the simulator's and the unit
// tests' store. Records in a map, the watch history in a deque (bounded by
// store_limits); nothing survives the actor. An ordinary actor over the
// seam's rules (no I/O, time only through the actor clock for its progress
// events), so it runs in the simulator.

#include "caf/fwd.hpp"
#include "control/store.hpp"

namespace drtp::control {

struct memory_store_params {
  store_limits limits;
};

caf::actor spawn_memory_store(caf::actor_system& sys, memory_store_params p = {});

} // namespace drtp::control
