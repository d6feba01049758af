#!/usr/bin/env bash
# bench.sh [drtp-bench run options]: DRTP beside direct loopback, haproxy
# (TCP mode) and ssh -R, in one run, on loopback.
#
# Installs what the bench needs if missing (the build packages via
# setup.sh; haproxy, openssh-server, openssh-client), builds the release
# binaries and runs `build/release/drtp-bench run "$@"`: a Markdown table on
# stdout; --json FILE also writes every figure; --quick for a ~30 s smoke run.
# No system service is touched: the bench starts its own haproxy and sshd
# with throwaway configs and keys on 127.0.0.1 and stops them at the end.
# A comparator that cannot be installed or started is reported as n/a.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

missing=()
for p in haproxy openssh-server openssh-client; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" \
    || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "bench: installing ${missing[*]}" >&2
  sudo_cmd=()
  [[ $(id -u) -ne 0 ]] && sudo_cmd=(sudo)
  export DEBIAN_FRONTEND=noninteractive
  # Without systemd as init nothing starts; with it, the packages' own
  # services would start on their usual ports: policy-rc.d keeps them down.
  own_policy=
  if [[ $(id -u) -eq 0 && ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    own_policy=1
  fi
  if ! { "${sudo_cmd[@]}" apt-get update -qq \
         && "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends \
              "${missing[@]}"; } >&2; then
    echo "bench: could not install ${missing[*]}; those paths will be n/a" >&2
  fi
  [[ -n $own_policy ]] && rm -f /usr/sbin/policy-rc.d
fi

# Another change in progress may break an unrelated target: the bench needs
# only these three.
scripts/build.sh release >&2 \
  || ninja -C build/release drtp drtp-pop drtp-bench >&2
exec build/release/drtp-bench run "$@"
