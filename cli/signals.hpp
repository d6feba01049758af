#pragma once
// Signals: SIGINT and SIGTERM ask the binary to stop (a POP drains first).

namespace drtp::cli {

/// SIGINT/SIGTERM set a flag instead of killing the process.
void install_stop_signals();
bool stop_requested();
/// Which signal arrived (0 if none).
int stop_signal();
/// Forget the signal seen so far (to notice a second one).
void clear_stop_signal();

/// SIGHUP (a closed terminal, a reload sent to the wrong process) does not
/// end the process: `drtp serve` and `drtp connect` have nothing to reload
/// and keep their tunnels.
void ignore_hangup();

/// drtp-pop: SIGHUP asks for a config reload (a flag, polled by the main
/// loop); reload_requested() answers once per SIGHUP seen.
void install_reload_signal();
bool reload_requested();

} // namespace drtp::cli
