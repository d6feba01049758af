#!/usr/bin/env bash
# fuzz.sh [NAME|all] [SECONDS]: builds the libFuzzer harnesses with clang,
# ASan and UBSan (build/fuzz) and runs NAME (or each harness) for SECONDS
# (default 60) from its committed seed corpus in tests/fuzz/corpus/NAME.
# New inputs go to build/fuzz/corpus/NAME, never into the tree; a crash is
# saved as build/fuzz/crash-NAME-* and this script exits 1 naming it (replay:
# build/fuzz/tests/fuzz/NAME FILE). Harnesses: fuzz_frame, fuzz_control,
# fuzz_record, fuzz_pop_config, fuzz_scenario_file, fuzz_pop_session (stateful),
# fuzz_http.
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-all}
seconds=${2:-60}
all=(fuzz_frame fuzz_control fuzz_record fuzz_pop_config fuzz_scenario_file fuzz_pop_session fuzz_http)
if [[ $what == all ]]; then names=("${all[@]}"); else names=("$what"); fi
for n in "${names[@]}"; do
  [[ " ${all[*]} " == *" $n "* ]] || { echo "fuzz.sh: unknown harness '$n' (${all[*]})" >&2; exit 2; }
done
if ! command -v clang++ >/dev/null; then
  echo "fuzz.sh: clang++ is missing (scripts/setup.sh installs it)" >&2
  exit 2
fi
dir=build/fuzz
[[ -f $dir/build.ninja ]] || CXX=clang++ cmake -S . -B "$dir" -G Ninja \
  -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG="-O1 -g1" -DDRTP_FUZZ=ON >/dev/null
ninja -C "$dir" -j"$(nproc)" "${names[@]}" >&2
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:suppressions=$PWD/tests/ubsan.supp
failed=0
for n in "${names[@]}"; do
  mkdir -p "$dir/corpus/$n"
  log="$dir/$n.log"
  # The stateful harness covers the whole system (160 000 edges): libFuzzer's
  # entropic schedule then spends two thirds of the time weighing features,
  # and without it the harness runs 5 times as many inputs (3 -> 16 per s).
  extra=()
  [[ $n == fuzz_pop_session ]] && extra=(-entropic=0)
  # -rss_limit_mb: an input that makes a harness grow past it is a finding.
  if "$dir/tests/fuzz/$n" "${extra[@]}" -max_total_time="$seconds" -rss_limit_mb=1024 \
       -timeout=10 -max_len=16384 -print_final_stats=1 \
       -artifact_prefix="$dir/crash-$n-" \
       "$dir/corpus/$n" "tests/fuzz/corpus/$n" > "$log" 2>&1; then
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
    echo "fuzz: $n: ${seconds} s, $runs inputs, no crash"
  else
    echo "fuzz: $n FAILED; the input is $(ls -t "$dir"/crash-"$n"-* 2>/dev/null | head -1); see $log"
    grep -m3 -E 'ERROR|fuzz check failed|runtime error' "$log" | sed 's/^/  /' || true
    failed=1
  fi
done
exit $failed
