#pragma once
// drtp-bench run: DRTP beside direct loopback and the tunnels people use
// today (haproxy, ssh -R), side by side in one run.

#include "cli/args.hpp"

namespace drtp::bench {

const char* run_usage();
int cmd_run(cli::args& a);

} // namespace drtp::bench
