#!/usr/bin/env bash
# Installs every Debian package DRTP needs. Idempotent and non-interactive:
# when everything is present it does nothing (and needs no network).
set -euo pipefail
packages=(
  g++ cmake ninja-build ccache pkg-config
  libcaf-dev libasio-dev libssl-dev libcereal-dev libyaml-cpp-dev
  libgtest-dev libgmock-dev librapidcheck-dev
  clang-tidy python3
  clang libclang-rt-dev
  libsqlite3-dev sqlite3 nlohmann-json3-dev etcd-server etcd-client curl openssl
  prometheus
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" \
    || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  sudo_cmd=()
  [[ $(id -u) -ne 0 ]] && sudo_cmd=(sudo)
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -qq
  # --no-install-recommends: libasio-dev would otherwise pull in Boost.
  "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
