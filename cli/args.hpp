#pragma once
// Command-line arguments of the binaries: options, host:port, numbers.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "cli/error.hpp"

namespace drtp::cli {

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

/// The value of option `what` as a whole number in [min, max]; throws
/// cli::error naming the range in `unit` (e.g. "seconds").
uint32_t parse_uint(const std::string& text, const std::string& what,
                    uint32_t min, uint32_t max, const std::string& unit);

/// --busy-poll-us N (0 to 10000), else the default; throws cli::error.
uint32_t busy_poll_us(args& a);

} // namespace drtp::cli
