#!/usr/bin/env bash
# The emulated link in the kernel instead of ee-link: two network namespaces joined by a veth pair, shaped
# with tc. Needs root (or CAP_NET_ADMIN with permission to create namespaces).
#
#   deploy/netem-link.sh up    [--name N] [--rate-mbit R] [--delay-ms D] [--loss PCT] [--qdisc netem|tbf]
#   deploy/netem-link.sh down  [--name N]
#   deploy/netem-link.sh check --ee-link BIN [--name N] [--rate-mbit R] [--delay-ms D] [--bytes B]
#
# N (default eelink; a check's eeck<pid>) names the namespaces and interfaces.
# up: namespaces N-edge (10.231.0.1) and N-cloud (10.231.0.2) and veth N-e <-> N-c. With netem (the
#   default) each end gets `netem rate R delay D loss PCT`, the same link ee-link emulates from a constant
#   trace (rate R, RTT 2D, loss PCT/100) - run the edge daemon with `ip netns exec N-edge`, the cloud with
#   `ip netns exec N-cloud`. Many kernels (these machines' among them) are built without netem: `tc` then
#   says "Specified qdisc kind is unknown" and the script stops with exit status 3. --qdisc tbf shapes the
#   rate only (token bucket), which every kernel here has.
# check: a second opinion on ee-link's rate. Sends B bytes over TCP through kernel shaping (tbf, and netem
#   where the kernel has it) and through ee-link with a constant trace of the same rate and delay, inside
#   the namespace, and prints both goodputs. Exit 0 if both are within 15 % of what the rate allows, 1 if
#   not, 77 if namespaces cannot be created here (a test harness's "skipped").
#
# Goodput is TCP payload. ee-link counts payload bytes against its trace; a kernel link also carries the
# TCP/IP and Ethernet headers (66 of every 1514 bytes with TCP timestamps), so its goodput is R x 1448/1514.
#
# Addresses: only 10.231.0.0/30 inside the two namespaces this script creates, and their loopback.
set -euo pipefail

cmd=${1:-}
[[ -n "$cmd" ]] && shift
name="" rate=10 delay=0 loss=0 qdisc=netem bytes=4000000 ee_link=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --name) name=$2; shift 2 ;;
    --rate-mbit) rate=$2; shift 2 ;;
    --delay-ms) delay=$2; shift 2 ;;
    --loss) loss=$2; shift 2 ;;
    --qdisc) qdisc=$2; shift 2 ;;
    --bytes) bytes=$2; shift 2 ;;
    --ee-link) ee_link=$2; shift 2 ;;
    *) echo "netem-link.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
# A check's namespaces carry its PID, so concurrent checks (a test suite) do not collide.
[[ -z "$name" ]] && { [[ $cmd == check ]] && name=eeck$$ || name=eelink; }
if [[ ${#name} -gt 13 || ! $name =~ ^[A-Za-z0-9_]+$ ]]; then
  echo "netem-link.sh: --name '$name' must be 1-13 letters, digits or _ (interface names are <= 15 chars)" >&2
  exit 2
fi
edge=$name-edge cloud=$name-cloud veth_e=$name-e veth_c=$name-c
edge_ip=10.231.0.1 cloud_ip=10.231.0.2

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }

down() {
  ip netns del "$edge" 2>/dev/null || true  # deleting a namespace deletes the veth end in it, and its peer
  ip netns del "$cloud" 2>/dev/null || true
}

# Creates the namespaces and the veth pair; returns 77 if this sandbox does not allow it.
create() {
  if ip netns list 2>/dev/null | grep -qw "^$edge"; then
    echo "netem-link.sh: $edge already exists; run \`$0 down --name $name\` first" >&2
    return 2
  fi
  if ! ip netns add "$edge" 2>/dev/null; then
    echo "netem-link.sh: cannot create network namespaces here (needs root / CAP_SYS_ADMIN); skipped" >&2
    return 77
  fi
  ip netns add "$cloud"
  ip link add "$veth_e" type veth peer name "$veth_c"
  ip link set "$veth_e" netns "$edge"
  ip link set "$veth_c" netns "$cloud"
  ip -n "$edge" addr add "$edge_ip/30" dev "$veth_e"
  ip -n "$cloud" addr add "$cloud_ip/30" dev "$veth_c"
  for ns in "$edge" "$cloud"; do ip -n "$ns" link set lo up; done
  ip -n "$edge" link set "$veth_e" up
  ip -n "$cloud" link set "$veth_c" up
}

# qdisc on both ends: "netem" (rate, delay, loss) or "tbf" (rate); fails with a message if the kernel lacks it.
shape() {
  local kind=$1 err ns dev
  for ns in "$edge" "$cloud"; do
    dev=$veth_e
    [[ $ns == "$cloud" ]] && dev=$veth_c
    ip netns exec "$ns" tc qdisc del dev "$dev" root 2>/dev/null || true
    if [[ $kind == netem ]]; then
      err=$(ip netns exec "$ns" tc qdisc add dev "$dev" root netem rate "${rate}mbit" delay "${delay}ms" \
            loss "${loss}%" limit 100000 2>&1) || {
        echo "netem-link.sh: no netem here (tc: ${err}; a kernel without netem says 'Specified qdisc kind is" \
          "unknown'); use ee-link, or --qdisc tbf for the rate alone" >&2
        return 3
      }
    else
      # A burst of 32 KiB passes at line rate; against megabytes that is noise.
      ip netns exec "$ns" tc qdisc add dev "$dev" root tbf rate "${rate}mbit" burst 32k latency 200ms
    fi
  done
}

# A TCP source, sink and echo in Python (no iperf needed). The sink prints the goodput in Mbit/s from its
# first to its last byte, the rtt client the median round trip of a 100-byte message in ms.
tool() {
  /usr/bin/python3 - "$@" <<'EOF'
import socket, sys, time
mode = sys.argv[1]
if mode in ("sink", "echo"):
    host, port = sys.argv[2], int(sys.argv[3])
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind((host, port)); s.listen()
    print("ready", flush=True)
    c, _ = s.accept()
    n = first_n = 0; first = last = None
    while True:
        d = c.recv(1 << 16)
        if not d: break
        if mode == "echo": c.sendall(d); continue
        now = time.monotonic()
        if first is None: first, first_n = now, len(d)
        n += len(d); last = now
    if mode == "sink": print("%.3f" % ((n - first_n) * 8 / (last - first) / 1e6), flush=True)
elif mode == "source":
    s = socket.create_connection((sys.argv[2], int(sys.argv[3])))
    s.sendall(b"x" * int(sys.argv[4])); s.shutdown(socket.SHUT_WR); s.recv(1)
elif mode == "rtt":
    s = socket.create_connection((sys.argv[2], int(sys.argv[3])))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    rtts = []
    for _ in range(7):
        t = time.monotonic(); s.sendall(b"r" * 100); got = 0
        while got < 100: got += len(s.recv(100 - got))
        rtts.append(time.monotonic() - t)
    print("%.2f" % (sorted(rtts)[3] * 1000), flush=True)
EOF
}

# Runs `tool sink|echo` in namespace $1 on $2:$3 and a client (`tool source|rtt ...`) in namespace $4;
# prints the server's (sink) or client's (rtt) result.
measure() {
  local server_ns=$1 host=$2 port=$3 client_ns=$4 mode=$5 out
  out=$(mktemp)
  ip netns exec "$server_ns" bash -c "$(declare -f tool); tool $([[ $mode == rtt ]] && echo echo || echo sink) $host $port" >"$out" &
  local server=$!
  for _ in $(seq 50); do grep -q ready "$out" && break; sleep 0.1; done
  if [[ $mode == rtt ]]; then
    ip netns exec "$client_ns" bash -c "$(declare -f tool); tool rtt $host $port"
    kill "$server" 2>/dev/null || true
  else
    ip netns exec "$client_ns" bash -c "$(declare -f tool); tool source $host $port $bytes"
    wait "$server"
    sed -n 2p "$out"
  fi
  rm -f "$out"
}

# The same link through ee-link, inside the edge namespace on its loopback: the server on :5301, ee-link on
# :5300 with a constant CSV trace of the rate and delay, the client through ee-link.
measure_ee_link() {
  local mode=$1 trace out pid srv res
  trace=$(mktemp --suffix=.csv)
  printf 't_s,bandwidth_mbps,rtt_ms,loss\n0,%s,%s,0\n' "$rate" "$(awk "BEGIN{print 2*$delay}")" >"$trace"
  out=$(mktemp) srv=$(mktemp)
  ip netns exec "$edge" "$ee_link" --listen 127.0.0.1:5300 --upstream 127.0.0.1:5301 --uplink "$trace" >"$out" 2>&1 &
  pid=$!
  ip netns exec "$edge" bash -c "$(declare -f tool); tool $([[ $mode == rtt ]] && echo echo || echo sink) 127.0.0.1 5301" >"$srv" &
  local server=$!
  for _ in $(seq 50); do grep -q listening "$out" && grep -q ready "$srv" && break; sleep 0.1; done
  if [[ $mode == rtt ]]; then
    res=$(ip netns exec "$edge" bash -c "$(declare -f tool); tool rtt 127.0.0.1 5300")
    kill "$server" 2>/dev/null || true
  else
    ip netns exec "$edge" bash -c "$(declare -f tool); tool source 127.0.0.1 5300 $bytes"
    wait "$server" || true
    res=$(sed -n 2p "$srv")
  fi
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  rm -f "$trace" "$out" "$srv"
  echo "$res"
}

within() {  # within MEASURED EXPECTED: |m - e| <= 15 % of e
  awk -v m="$1" -v e="$2" 'BEGIN { exit !(m >= 0.85 * e && m <= 1.15 * e) }'
}

check() {
  [[ -x "$ee_link" ]] || { echo "netem-link.sh check: --ee-link BIN (the built ee-link) is required" >&2; exit 2; }
  local rc=0 kernel_expect ee ok
  create || exit $?
  trap down EXIT
  kernel_expect=$(awk "BEGIN{printf \"%.3f\", $rate*1448/1514}")

  ee=$(measure_ee_link rate)
  ok=ok; within "$ee" "$rate" || { ok=FAIL; rc=1; }
  printf 'ee-link   %s Mbit/s trace: %8s Mbit/s goodput (expected %s)          %s\n' "$rate" "$ee" "$rate" "$ok"

  shape tbf
  local tbf
  tbf=$(measure "$cloud" "$cloud_ip" 5201 "$edge" rate)
  ok=ok; within "$tbf" "$kernel_expect" || { ok=FAIL; rc=1; }
  printf 'tbf       %s Mbit/s:       %8s Mbit/s goodput (expected %s with headers) %s\n' "$rate" "$tbf" "$kernel_expect" "$ok"
  printf 'ee-link / tbf goodput, headers accounted: %s\n' "$(awk "BEGIN{printf \"%.3f\", $ee/$rate / ($tbf/$kernel_expect)}")"

  if shape netem 2>/tmp/netem-link.$$; then
    local nm nm_rtt ee_rtt
    nm=$(measure "$cloud" "$cloud_ip" 5202 "$edge" rate)
    nm_rtt=$(measure "$cloud" "$cloud_ip" 5203 "$edge" rtt)
    ee_rtt=$(measure_ee_link rtt)
    ok=ok; within "$nm" "$kernel_expect" || { ok=FAIL; rc=1; }
    printf 'netem     %s Mbit/s %s ms: %8s Mbit/s goodput, RTT %s ms; ee-link RTT %s ms  %s\n' \
      "$rate" "$delay" "$nm" "$nm_rtt" "$ee_rtt" "$ok"
  else
    echo "netem     skipped: $(cat /tmp/netem-link.$$)"
  fi
  rm -f /tmp/netem-link.$$
  exit $rc
}

case "$cmd" in
  up)
    create || exit $?
    if [[ $qdisc == netem ]]; then shape netem || { down; exit 3; }; else shape tbf; fi
    echo "up: $edge ($edge_ip) <-> $cloud ($cloud_ip), $qdisc rate ${rate} Mbit/s" \
      "$([[ $qdisc == netem ]] && echo "delay ${delay} ms loss ${loss} %")"
    echo "run the cloud daemon under \`ip netns exec $cloud\`, listening on $cloud_ip, and the edge daemon under" \
      "\`ip netns exec $edge\`, pointed at $cloud_ip"
    ;;
  down) down ;;
  check) check ;;
  *) usage; exit 2 ;;
esac
