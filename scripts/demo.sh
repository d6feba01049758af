#!/usr/bin/env bash
# The README's first command: set up, build, and show the whole system on
# loopback: Joe's service (an echo service), a POP, Joe's agent, and Sam's
# visitors going through the TLS tunnel.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh release
bin=build/release
work=$(mktemp -d /tmp/drtp-demo-XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

port() { # a free loopback port
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null \
    || echo $((20000 + RANDOM % 20000))
}
svc_port=$(port); tunnel_port=$(port); public_port=$(port)
wait_for() { # file text seconds
  for _ in $(seq 1 $(($3 * 10))); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
  echo "demo: timed out waiting for '$2' in $1:" >&2; cat "$1" >&2; exit 1
}

echo "== 1. Joe's private service: an echo service on 127.0.0.1:$svc_port"
$bin/drtp-bench echo --listen 127.0.0.1:$svc_port > "$work/svc.log" 2>&1 &
pids+=($!)
wait_for "$work/svc.log" "echo service" 5

echo "== 2. The operator starts a POP (TLS for agents on :$tunnel_port, public port :$public_port)"
fp=$($bin/drtp-pop gen-cert --cert "$work/pop.crt" --key "$work/pop.key")
echo "   POP certificate $fp"
head -c 24 /dev/urandom | base64 > "$work/joe.secret"
cat > "$work/pop.yaml" <<YAML
listen: 127.0.0.1:$tunnel_port
tls:
  cert: $work/pop.crt
  key: $work/pop.key
services:
  - name: joes-pg
    secret_sha256: $($bin/drtp-pop hash-secret < "$work/joe.secret")
    public: 127.0.0.1:$public_port
YAML
$bin/drtp-pop --config "$work/pop.yaml" > "$work/pop.log" 2>&1 &
pids+=($!)
wait_for "$work/pop.log" "public on" 10
sed 's/^/   pop | /' "$work/pop.log"

echo "== 3. Joe runs drtp serve next to his service: it dials OUT to the POP"
$bin/drtp serve --pop 127.0.0.1:$tunnel_port --service joes-pg \
  --local 127.0.0.1:$svc_port --secret-file "$work/joe.secret" \
  --pop-fingerprint "$fp" --agent-id joes-laptop > "$work/agent.log" 2>&1 &
pids+=($!)
wait_for "$work/agent.log" "tunnel up" 10
sed 's/^/   agent | /' "$work/agent.log"

echo "== 4. Sam's visitors connect to the POP's public port and talk to Joe's service"
$bin/drtp-bench check --connect 127.0.0.1:$public_port --sessions 50 --bytes 1048576 | sed 's/^/   /'

echo "== 5. Someone with the wrong secret tries to take over the service"
echo "not-joes-secret" > "$work/wrong.secret"
if $bin/drtp serve --pop 127.0.0.1:$tunnel_port --service joes-pg \
  --local 127.0.0.1:$svc_port --secret-file "$work/wrong.secret" \
  --pop-fingerprint "$fp" > "$work/intruder.log" 2>&1; then
  echo "demo: the wrong secret was accepted!" >&2; exit 1
fi
grep "error" "$work/intruder.log" | sed 's/^/   intruder | /'

echo "== 6. The POP restarts (kill -9); the agent reconnects on its own"
kill -9 "${pids[1]}"; wait "${pids[1]}" 2>/dev/null || true
$bin/drtp-pop --config "$work/pop.yaml" > "$work/pop2.log" 2>&1 &
pids[1]=$!
wait_for "$work/pop2.log" "now has 1 tunnel" 20
$bin/drtp-bench check --connect 127.0.0.1:$public_port --sessions 10 --bytes 100000 | sed 's/^/   /'

echo "== 7. Throughput and latency through the tunnel beside direct loopback"
$bin/drtp-bench run --quick | sed 's/^/   /'
echo
echo "demo: done. Nobody opened an inbound port on Joe's side."
