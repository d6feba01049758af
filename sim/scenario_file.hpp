#pragma once
// Scenario files: the human-written YAML form of a scenario_spec (the format
// is documented in scenarios/README.md), and the way back, so that a failing
// property-test case can be printed as a file `drtp-sim run` replays.

#include <cstdint>
#include <stdexcept>
#include <string>

#include "sim/scenario.hpp"

namespace drtp::sim {

/// A malformed scenario: one line, "FILE:LINE: key 'x': what is wrong".
struct scenario_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// Reads, parses and validates a scenario file. Throws scenario_error.
scenario_spec load_scenario(const std::string& path);

/// The same for text already in memory; `name_for_errors` stands in for the
/// file name in messages. Throws scenario_error.
scenario_spec parse_scenario(const std::string& yaml_text,
                             const std::string& name_for_errors);

/// A file that parse_scenario reads back into an identical spec.
std::string to_yaml(const scenario_spec& s);

/// "250ms", "3s", "1.5s", "2m", "500us" -> microseconds. Returns false (and
/// says why in `why`) on anything else.
bool parse_duration_us(const std::string& text, uint64_t& us, std::string& why);
/// The shortest exact spelling of a duration ("1500ms", "3s", "2m").
std::string format_duration(uint64_t us);
/// "64KiB", "1MiB", "1.5MB", "1000" -> bytes.
bool parse_size_bytes(const std::string& text, uint64_t& bytes, std::string& why);
std::string format_size(uint64_t bytes);

/// The schedule `drtp-sim sweep` runs for `variant`: the same number and
/// kinds of faults, each moved uniformly within +-50% of the gap to its
/// neighbours (the previous fault or t=0, the next fault or the end of the
/// run), and each POP a fault names replaced by a random POP with chance
/// 1/2. A restart follows the host its crash or drain actually hit; a heal
/// follows the pair its partition actually cut. Variant 0 is the file as
/// written.
scenario_spec sweep_variant(const scenario_spec& s, uint64_t variant);

} // namespace drtp::sim
