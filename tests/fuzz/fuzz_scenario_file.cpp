// Scenario files from any text: parse_scenario either returns a spec that
// to_yaml writes back into the same spec, or throws scenario_error with a
// message; nothing else escapes, nothing crashes.

#include "sim/scenario_file.hpp"
#include "tests/fuzz/fuzz.hpp"

using namespace drtp::sim;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // Bounded: a scenario is a page of YAML, and yaml-cpp recurses per level.
  if (size > 16 * 1024)
    return 0;
  std::string text(reinterpret_cast<const char*>(data), size);
  try {
    auto spec = parse_scenario(text, "fuzz.yaml");
    auto again = to_yaml(parse_scenario(to_yaml(spec), "round-trip.yaml"));
    FUZZ_CHECK(again == to_yaml(spec));
  } catch (const scenario_error& e) {
    FUZZ_CHECK(e.what()[0] != '\0');
  }
  return 0;
}
