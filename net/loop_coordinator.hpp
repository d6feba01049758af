#pragma once
// A CAF scheduler that runs every actor on the I/O thread of net/asio_io.
//
// Why: with CAF's worker threads, each chunk crossed threads twice per
// process (I/O thread -> actor -> I/O thread), and the profile was dominated
// by futex wake-ups and context switches, not by crypto. Here a message to an
// actor is a push onto a queue that the same thread drains between socket
// events: no hand-off, no wake-up. One loop per process, like haproxy with
// nbthread=1. The actors do not change: the simulator keeps CAF's
// test_coordinator, the real binaries install this one.
//
// Timers (delayed_send) run on an asio timer of the same loop.
//
// Busy polling (opt-in): after each event the loop polls for up to
// busy_poll_us (yielding the CPU meanwhile) before it sleeps, which saves the
// wake-up of a sleeping thread on the next event (see run_loop in the
// source).

#include <cstdint>
#include <memory>

#include "caf/fwd.hpp"

namespace asio {
class io_context;
}

namespace drtp::net {

/// How long the loop keeps polling after an event before it sleeps: off by
/// default; about one round trip through the tunnel (100) saves most
/// wake-ups when cores are to spare.
constexpr uint32_t busy_poll_us_default = 0;
constexpr uint32_t busy_poll_us_suggested = 100;
constexpr uint32_t busy_poll_us_max = 10'000;

/// Installs the loop scheduler into `cfg`; call before building the system.
/// busy_poll_us: 0 sleeps at once when idle; at most busy_poll_us_max.
void use_loop_scheduler(caf::actor_system_config& cfg,
                        uint32_t busy_poll_us = busy_poll_us_default);

/// The loop of `sys` if it runs on the loop scheduler, else nullptr. The
/// context is run by one thread from system start to system stop.
asio::io_context* loop_context(caf::actor_system& sys);

} // namespace drtp::net
