#!/usr/bin/env bash
# The README's first command: set up, build, and show the whole system on
# loopback: Joe's service (an echo service), three POPs, Joe's agent holding
# tunnels to two of them, Sam's visitors on a public port and through the
# patch panel, intruders turned away, and a POP killed mid-transfer.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh release
bin=build/release
work=$(mktemp -d /tmp/drtp-demo-XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

port() { # a free loopback port
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null \
    || echo $((20000 + RANDOM % 20000))
}
wait_for() { # file text seconds
  for _ in $(seq 1 $(($3 * 10))); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
  echo "demo: timed out waiting for '$2' in $1:" >&2; cat "$1" >&2; exit 1
}
say() { printf '\n== %s\n' "$*"; }
svc_port=$(port); sam_port=$(port)
regions=(eu us ap)
declare -a tport pport
for i in 0 1 2; do tport[$i]=$(port); pport[$i]=$(port); done

say "1. Joe's private service: an echo service on 127.0.0.1:$svc_port (no inbound port opened)"
$bin/drtp-bench echo --listen 127.0.0.1:$svc_port > "$work/svc.log" 2>&1 &
pids+=($!)
wait_for "$work/svc.log" "echo service" 5

say "2. The operator runs three POPs (regions ${regions[*]}), one certificate, one config each"
fp=$($bin/drtp-pop gen-cert --cert "$work/pop.crt" --key "$work/pop.key")
echo "   POP certificate $fp"
# New secrets, 0600; each command prints only what the POP keeps (a public key).
joe_key=$($bin/drtp-pop gen-secret --out "$work/joe.secret" --service joes-pg)
sam_key=$($bin/drtp-pop gen-secret --out "$work/sam.secret" --principal sam)
eve_key=$($bin/drtp-pop gen-secret --out "$work/eve.secret" --principal eve)
for i in 0 1 2; do
  cat > "$work/pop$i.yaml" <<YAML
listen: 127.0.0.1:${tport[$i]}
tls: {cert: $work/pop.crt, key: $work/pop.key}
services:
  - name: joes-pg
    $joe_key
    public: 127.0.0.1:${pport[$i]}
    allow: [sam]
principals:
  - name: sam
    $sam_key
  - name: eve
    $eve_key
YAML
  $bin/drtp-pop --config "$work/pop$i.yaml" --drain-grace 10 > "$work/pop$i.log" 2>&1 &
  pids+=($!)
  eval "pop_pid_$i=$!"
  disown $! # its kill -9 below is the point, not news from the shell
done
for i in 0 1 2; do
  wait_for "$work/pop$i.log" "public on" 10
  echo "   pop$i (${regions[$i]}): agents dial :${tport[$i]}, visitors :${pport[$i]}"
done

say "3. Joe runs drtp serve: it dials OUT to two of the three POPs, in distinct regions"
pop_flags=()
for i in 0 1 2; do pop_flags+=(--pop "127.0.0.1:${tport[$i]}@${regions[$i]}"); done
$bin/drtp serve "${pop_flags[@]}" --tunnels 2 --service joes-pg \
  --local 127.0.0.1:$svc_port --secret-file "$work/joe.secret" \
  --pop-fingerprint "$fp" --agent-id joes-laptop > "$work/agent.log" 2>&1 &
pids+=($!)
wait_for "$work/agent.log" "2 of 2 up" 10
grep "^drtp serve" "$work/agent.log" | sed 's/^/   /'

say "4. Sam's visitors connect to the public port of every POP that holds a tunnel"
for i in 0 1 2; do
  if $bin/drtp-bench check --connect 127.0.0.1:${pport[$i]} --sessions 20 --bytes 1048576 > "$work/check$i.log" 2>&1; then
    sed "s/^/   pop$i: /" "$work/check$i.log"
  else
    echo "   pop$i: holds no tunnel for joes-pg, visitors are refused at once (a gateway lists only the other two)"
  fi
done

say "5. The patch panel: Sam runs drtp connect; Joe's service appears on 127.0.0.1:$sam_port"
$bin/drtp connect "${pop_flags[@]}" --service joes-pg --listen 127.0.0.1:$sam_port \
  --principal sam --secret-file "$work/sam.secret" --pop-fingerprint "$fp" > "$work/sam.log" 2>&1 &
pids+=($!)
wait_for "$work/sam.log" "2 of 2 up" 10
$bin/drtp-bench check --connect 127.0.0.1:$sam_port --sessions 20 --bytes 1048576 | sed 's/^/   /'

say "6. Intruders: a wrong service secret, and Eve, who is not on the allow list"
echo "not-joes-secret" > "$work/wrong.secret"
if $bin/drtp serve --pop 127.0.0.1:${tport[0]} --service joes-pg --local 127.0.0.1:$svc_port \
  --secret-file "$work/wrong.secret" --pop-fingerprint "$fp" > "$work/intruder.log" 2>&1; then
  echo "demo: the wrong secret was accepted!" >&2; exit 1
fi
grep "error" "$work/intruder.log" | sed 's/^/   /'
if $bin/drtp connect --pop 127.0.0.1:${tport[0]} --service joes-pg --listen 127.0.0.1:$(port) \
  --principal eve --secret-file "$work/eve.secret" --pop-fingerprint "$fp" > "$work/eve.log" 2>&1; then
  echo "demo: eve got in!" >&2; exit 1
fi
grep "error" "$work/eve.log" | sed 's/^/   /'
grep -h "audit: denied" "$work"/pop*.log | head -2 | sed 's/^/   POP log: /'

say "7. kill -9 of a POP in the middle of 4 x 64 MiB patch-panel transfers"
$bin/drtp-bench check --connect 127.0.0.1:$sam_port --sessions 4 --bytes 67108864 > "$work/big.log" 2>&1 &
big=$!
sleep 0.3
victim=$(grep -l "opened session for principal 'sam'" "$work"/pop*.log | head -1)
victim_i=${victim: -5:1}
eval "kill -9 \$pop_pid_$victim_i"
echo "   killed pop$victim_i (${regions[$victim_i]})"
wait $big && sed 's/^/   /' "$work/big.log"
grep -h "resumed on a new path" "$work/sam.log" | head -2 | sed 's/^/   sam: /' || true
wait_for "$work/agent.log" "2 of 2 up.*" 10
echo "   Joe's agent: $(grep 'up to POP' "$work/agent.log" | tail -1 | sed 's/.*agent#[0-9]*: //')"

say "8. Throughput and latency through the tunnel beside direct loopback"
$bin/drtp-bench run --quick | sed 's/^/   /'
printf '\ndemo: done. Nobody opened an inbound port on Joe'"'"'s side.\n'
