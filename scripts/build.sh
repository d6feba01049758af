#!/usr/bin/env bash
# build.sh [debug|release|asan]: configure once, then build with Ninja.
set -euo pipefail
cd "$(dirname "$0")/.."
kind=${1:-release}
case $kind in
  debug) dir=build/debug; flags=(-DCMAKE_BUILD_TYPE=Debug) ;;
  release) dir=build/release; flags=(-DCMAKE_BUILD_TYPE=Release -DDRTP_TESTS=OFF) ;;
  asan) dir=build/asan; flags=(-DCMAKE_BUILD_TYPE=Debug -DDRTP_SANITIZE=ON) ;;
  *) echo "usage: build.sh [debug|release|asan]" >&2; exit 2 ;;
esac
[[ -f $dir/build.ninja ]] || cmake -S . -B "$dir" -G Ninja "${flags[@]}" >/dev/null
ninja -C "$dir" -j"$(nproc)"
