#pragma once
// What the bench prints and writes: the table of figures, the processes'
// memory and CPU, the targets, and the same as JSON.

#include <string>
#include <vector>

#include "bench/paths.hpp"
#include "bench/run_options.hpp"

namespace drtp::bench {

struct stats {
  double median = 0, min = 0, max = 0;
  bool ok = false;
};

/// Median, min and max of the runs that gave a figure (> 0).
stats summarize(std::vector<double> v);

/// The tables, on standard output.
void print_figures(const std::vector<path>& paths, const run_options& o,
                   double total_s);

/// Every figure and ratio as JSON in `file`.
void write_json(const std::string& file, const std::vector<path>& paths,
                const run_options& o, double total_s);

} // namespace drtp::bench
