#pragma once
// What `drtp-bench run` was asked to measure: the command line, read once.

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace drtp::bench {

struct run_options {
  uint64_t bytes = 0;
  int rounds = 0;
  int runs = 0;
  double conn_s = 0;
  std::vector<int> sessions; // idle-session batches, none of them 0
  double idle_budget_s = 0;  // to open one batch
  std::set<std::string> want; // path keys
  std::optional<std::string> json;
};

} // namespace drtp::bench
