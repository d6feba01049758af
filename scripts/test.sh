#!/usr/bin/env bash
# The README's test command: set up, build, and pass every test, first in
# the fast debug build (with the tidy check and the fuzz corpora), then each
# fuzz harness for a few seconds (clang, libFuzzer), then under ASan + UBSan.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh debug
(cd build/debug && ctest --output-on-failure -j2 --timeout 600)
# Each fuzz harness for a short fixed time (their corpora were replayed by
# ctest above); scripts/fuzz.sh NAME SECONDS runs one for longer.
if [[ ${DRTP_SKIP_FUZZ:-0} != 1 ]]; then
  scripts/fuzz.sh all "${DRTP_FUZZ_SECONDS:-15}"
fi
if [[ ${DRTP_SKIP_ASAN:-0} != 1 ]]; then
  scripts/build.sh asan
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
  export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:suppressions=$PWD/tests/ubsan.supp
  # The full 256 MiB each way runs in the debug pass; under the sanitizers
  # the same kill -9 test moves 64 MiB to keep CI within its time.
  export DRTP_PP_BYTES=$((64 << 20))
  (cd build/asan && ctest --output-on-failure -j2 --timeout 900)
fi
