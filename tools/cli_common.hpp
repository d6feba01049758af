#pragma once
// What both binaries share: argument parsing, secrets, signals, and the
// runtime that wires actors to the real network.

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "caf/fwd.hpp"
#include "net/tls.hpp"
#include "net/trace.hpp"

namespace drtp::cli {

/// A user error: printed as one line, exit status 2 (usage) or 1 (runtime).
struct error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// --name value / --name=value / --flag, plus positional words.
class args {
public:
  args(int argc, char** argv, int first);
  /// Declares an option that takes a value; returns it if present.
  std::optional<std::string> value(const std::string& name);
  bool flag(const std::string& name);
  /// Every value of an option that may repeat, in order.
  std::vector<std::string> values(const std::string& name);
  std::vector<std::string> positional();
  /// Throws on anything not consumed by value()/flag()/positional().
  void finish();

private:
  std::vector<std::string> words_;
  std::vector<bool> used_;
};

/// "host:port" or "[v6]:port"; throws cli::error naming `what`.
void parse_host_port(const std::string& s, const std::string& what,
                     std::string& host, uint16_t& port);

/// The secret from `file` if given, else from the environment variable
/// `env_var`. Trailing newlines are trimmed. Throws cli::error.
std::string read_secret(const std::optional<std::string>& file,
                        const char* env_var);

/// SIGINT/SIGTERM set a flag instead of killing the process.
void install_stop_signals();
bool stop_requested();
/// Which signal arrived (0 if none).
int stop_signal();
/// Forget the signal seen so far (to notice a second one).
void clear_stop_signal();

/// The value of option `what` as a whole number in [min, max]; throws
/// cli::error naming the range in `unit` (e.g. "seconds").
uint32_t parse_uint(const std::string& text, const std::string& what,
                    uint32_t min, uint32_t max, const std::string& unit);

/// --busy-poll-us N (0 to 10000), else the default; throws cli::error.
uint32_t busy_poll_us(args& a);

/// The actor system on one I/O loop (see net/loop_coordinator.hpp) plus the
/// real network.
class runtime {
public:
  runtime(std::shared_ptr<net::tracer> trace,
          std::optional<net::tls_identity> server_identity,
          uint32_t busy_poll_us);
  ~runtime();
  caf::actor_system& sys();
  const caf::actor& io() const;
  std::shared_ptr<net::tracer> trace() const;
  /// Stops the network; actors may keep running until the process exits.
  void stop();

private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

} // namespace drtp::cli
