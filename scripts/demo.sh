#!/usr/bin/env bash
# The README's first command: set up, build, and show the whole system on
# loopback, in the control-plane flow: drtp-control starts; three POPs
# register themselves; the operator creates Joe's service with drtpctl; Joe
# types one command; visitors through the POPs and through the patch panel;
# intruders turned away; the control plane killed while traffic flows; a POP
# killed mid-transfer; a gateway's allow list and orgs; an enrolled agent
# whose certificate is renewed while traffic flows.
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
wait_count() { # file text count seconds: until text is in file count times
  for _ in $(seq 1 $(($4 * 10))); do
    [ "$(grep -c "$2" "$1" 2>/dev/null)" -ge "$3" ] && return 0; sleep 0.1
  done
  echo "demo: timed out waiting for '$2' in $1:" >&2; cat "$1" >&2; exit 1
}
say() { printf '\n== %s\n' "$*"; }
indent() { sed 's/^/   /'; }
svc_port=$(port); sam_port=$(port); cport=$(port); public_port=$(port); gw_port=$(port)
regions=(eu us ap)
declare -a tport
for i in 0 1 2; do tport[$i]=$(port); done

say "1. Joe's private service: an echo service on 127.0.0.1:$svc_port (no inbound port opened)"
$bin/drtp-bench echo --listen 127.0.0.1:$svc_port > "$work/svc.log" 2>&1 &
pids+=($!)
wait_for "$work/svc.log" "echo service" 5

say "2. The operator starts the control plane (drtp-control: the registry, an HTTPS API, one SQLite file)"
start_control() {
  # Certificates of 60 s: the demo sees one renewed while it watches.
  $bin/drtp-control --dev --state-dir "$work/cp" --listen 127.0.0.1:$cport --cert-lifetime 60 \
    >> "$work/control.log" 2>&1 &
  control_pid=$!
  pids+=($control_pid)
  disown $control_pid # its kill -9 below is the point, not news from the shell
}
start_control
wait_for "$work/control.log" "^drtp-control: listening" 10
grep "^drtp-control:" "$work/control.log" | indent
pin=$(cat "$work/cp/pin")
control=https://127.0.0.1:$cport
# drtpctl reads where and how to reach the control plane from the environment.
export DRTP_CONTROL=$control DRTP_CONTROL_PIN=$pin DRTP_TOKEN_FILE=$work/cp/admin.token

say "3. Three POPs (regions ${regions[*]}) start and register themselves: no service is configured on any"
start_pop() { # index
  local i=$1
  $bin/drtp-pop --control "$control" --control-pin "$pin" --name "pop-${regions[$i]}" \
    --region "${regions[$i]}" --pop-secret-file "$work/cp/pops.secret" \
    --listen 127.0.0.1:${tport[$i]} --dev --public-address 127.0.0.$((i + 1)) \
    --public-host 127.0.0.$((i + 1)) --state-dir "$work/pop$i" --drain-grace 10 \
    >> "$work/pop$i.log" 2>&1 &
  eval "pop_pid_$i=$!"
  pids+=($!)
  disown $!
}
for i in 0 1 2; do start_pop $i; done
for i in 0 1 2; do wait_for "$work/pop$i.log" "control plane: synced" 10; done
grep "^drtp-pop: control plane" "$work/pop0.log" | indent
$bin/drtpctl get servers | indent

say "4. drtpctl create service: the secret is made here and written once; the registry keeps its public key"
$bin/drtpctl create principal sam --secret-out "$work/sam.secret" | head -1 | indent
$bin/drtpctl create principal eve --secret-out "$work/eve.secret" | head -1 | indent
$bin/drtpctl create service joes-pg --protocol tcp --local 127.0.0.1:$svc_port \
  --public-port $public_port --allow sam --secret-out "$work/joe.secret" | indent

say "5. Joe types one command: it signs in, learns its local address and two POPs in distinct regions, dials OUT"
$bin/drtp serve --control "$control" --control-pin "$pin" --service joes-pg \
  --secret-file "$work/joe.secret" > "$work/agent.log" 2>&1 &
pids+=($!)
wait_for "$work/agent.log" "2 of 2 up" 10
grep "^drtp serve" "$work/agent.log" | indent
sleep 2.5 # the agent reports its tunnels to the registry (at most every 2 s)
$bin/drtpctl get services | indent

say "6. Sam's visitors connect to port $public_port of every POP (127.0.0.1-3 stand for three machines)"
for i in 0 1 2; do
  if $bin/drtp-bench check --connect 127.0.0.$((i + 1)):$public_port --sessions 20 --bytes 1048576 > "$work/check$i.log" 2>&1; then
    sed "s/^/   pop-${regions[$i]}: /" "$work/check$i.log"
  else
    echo "   pop-${regions[$i]}: holds no tunnel for joes-pg, visitors are refused at once"
  fi
done

say "7. The patch panel: Sam runs drtp connect with the control plane; Joe's service appears on 127.0.0.1:$sam_port"
$bin/drtp connect --control "$control" --control-pin "$pin" --service joes-pg --principal sam \
  --secret-file "$work/sam.secret" --listen 127.0.0.1:$sam_port > "$work/sam.log" 2>&1 &
pids+=($!)
wait_for "$work/sam.log" "2 of 2 up" 10
$bin/drtp-bench check --connect 127.0.0.1:$sam_port --sessions 20 --bytes 1048576 | indent

say "8. Intruders: a wrong service secret, and Eve, who is not on the allow list"
echo "not-joes-secret" > "$work/wrong.secret"
if timeout 10 $bin/drtp serve --control "$control" --control-pin "$pin" --service joes-pg \
  --secret-file "$work/wrong.secret" > "$work/intruder.log" 2>&1; then
  echo "demo: the wrong secret was accepted!" >&2; exit 1
fi
tail -1 "$work/intruder.log" | indent
if timeout 10 $bin/drtp connect --control "$control" --control-pin "$pin" --service joes-pg \
  --principal eve --secret-file "$work/eve.secret" --listen 127.0.0.1:$(port) > "$work/eve.log" 2>&1; then
  echo "demo: eve got in!" >&2; exit 1
fi
tail -1 "$work/eve.log" | indent
grep -h "audit: control refused" "$work/control.log" | head -2 | sed 's/^/   control plane log: /'

say "9. kill -9 of the control plane, then of a POP, in the middle of 4 x 64 MiB patch-panel transfers"
$bin/drtp-bench check --connect 127.0.0.1:$sam_port --sessions 4 --bytes 67108864 > "$work/big.log" 2>&1 &
big=$!
sleep 0.3
kill -9 $control_pid
echo "   killed drtp-control"
victim=$(grep -l "opened session for principal 'sam'" "$work"/pop*.log | head -1)
victim_i=${victim: -5:1}
eval "kill -9 \$pop_pid_$victim_i"
echo "   killed pop-${regions[$victim_i]}"
wait $big && sed 's/^/   /' "$work/big.log"
grep -h "resumed on a new path" "$work/sam.log" | head -2 | sed 's/^/   sam: /' || true
wait_for "$work/agent.log" "2 of 2 up.*" 10
echo "   Joe's agent, from the POPs it knew: $(grep '^drtp serve: tunnel up' "$work/agent.log" | tail -1 | sed 's/^drtp serve: //')"
for i in 0 1 2; do
  [ "$i" = "$victim_i" ] && continue
  echo "   pop-${regions[$i]}: $(grep 'serving what it last knew' "$work/pop$i.log" | head -1 | sed 's/^drtp-pop: //; s/:.*//')"
  $bin/drtp-bench check --connect 127.0.0.$((i + 1)):$public_port --sessions 5 --bytes 65536 2>&1 | head -1 | sed "s/^/   pop-${regions[$i]}: /" || true
done

say "10. The control plane and the POP come back; everyone converges on the registry"
start_control
start_pop $victim_i
wait_count "$work/pop$victim_i.log" "control plane: synced" 2 15
sleep 3
$bin/drtpctl get servers | indent
$bin/drtpctl get services | indent

say "11. A gateway with an IP allow list, and an agent that enrolls for a 60 s certificate"
$bin/drtpctl create service joes-web --local 127.0.0.1:$svc_port --tunnels 1 \
  --secret-out "$work/web.secret" | head -1 | indent
$bin/drtpctl create gateway web-gw --service joes-web --port $gw_port --allow-cidr 127.0.0.2/32 \
  | head -1 | indent
$bin/drtp serve --control "$control" --control-pin "$pin" --service joes-web --region eu \
  --secret-file "$work/web.secret" --state-dir "$work/web-agent" > "$work/web.log" 2>&1 &
pids+=($!)
wait_for "$work/web.log" "1 of 1 up" 15
grep "^drtp serve: certificate for" "$work/web.log" | indent
grep -h "certificate login of agent" "$work"/pop*.log | head -1 | sed 's/^/   POP log: /'
echo "   $work/web-agent/identity.json: mode $(stat -c %a "$work/web-agent/identity.json"), a key made here and the certificate; no secret"
visit() { # source: one echo through pop-eu's gateway port from that source address
  python3 - "$1" $gw_port <<'PY'
import socket, sys
s = socket.socket(); s.settimeout(3); s.bind((sys.argv[1], 0))
try:
    s.connect(("127.0.0.1", int(sys.argv[2]))); s.sendall(b"hello"); ok = s.recv(5) == b"hello"
except OSError:
    ok = False
print(f"visitor from {sys.argv[1]}: " + ("admitted, bytes echoed" if ok else "refused"))
PY
}
sleep 1
visit 127.0.0.2 | indent
visit 127.0.0.1 | indent
grep -h "gateway 'web-gw' refused visitor" "$work/pop0.log" | head -1 | sed 's/^/   POP audit: /'

echo "   one connection from 127.0.0.2 echoes every 0.5 s while the certificate is renewed (at 2/3 of 60 s):"
python3 - $gw_port > "$work/held.log" 2>&1 <<'PY' &
import socket, sys, time
s = socket.socket(); s.settimeout(3); s.bind(("127.0.0.2", 0)); s.connect(("127.0.0.1", int(sys.argv[1])))
n = 0; t0 = time.time()
while time.time() - t0 < 45:
    s.sendall(b"x" * 1000); got = b""
    while len(got) < 1000:
        got += s.recv(1000 - len(got))
    n += 1; time.sleep(0.5)
print(f"{n} echoes over {time.time() - t0:.0f} s on one connection, none lost")
PY
held=$!
wait_for "$work/web.log" "certificate for service/joes-web.*" 5
wait_count "$work/web.log" "certificate for service/joes-web" 2 60
wait $held && indent < "$work/held.log"
grep -h "renewed certificate of agent" "$work"/pop*.log | head -1 | sed 's/^/   POP audit: /'
grep "^drtp serve: certificate for" "$work/web.log" | tail -1 | indent

say "12. Orgs: Olga of org acme asks the patch panel for joes-web, whose gateway allows org partners only"
$bin/drtpctl create org acme | head -1 | indent
$bin/drtpctl create principal olga --org acme --secret-out "$work/olga.secret" | head -1 | indent
$bin/drtpctl create gateway web-pp --service joes-web --private --allow-org partners | head -1 | indent
sleep 1
timeout 6 $bin/drtp connect --control "$control" --control-pin "$pin" --service joes-web \
  --principal olga --secret-file "$work/olga.secret" --listen 127.0.0.1:$(port) > "$work/olga.log" 2>&1 || true
grep -m1 "refused principal 'olga'" "$work/olga.log" | sed 's/^[0-9:.]* agent agent#[0-9]*: //' | indent

say "13. Throughput and latency through the tunnel beside direct loopback"
$bin/drtp-bench run --quick | indent
printf '\ndemo: done. Nobody opened an inbound port on Joe'"'"'s side, and nobody typed a POP address.\n'
