#!/usr/bin/env bash
# copyperf's main job: the engine × mode × size × threads matrix, with an agent on
# each side — by default in two network namespaces joined by a veth pair — written to
# one folder under results/.
#
#   scripts/sweep.sh                 # the full default matrix (about 16 minutes)
#   scripts/sweep.sh --quick         # a short run
#   scripts/sweep.sh --server ssh://user@hostB --client ssh://user@hostA --deploy
#                                    # between two hosts (no namespaces made)
#   scripts/sweep.sh --help          # the flags a user gives (builds nothing)
#
# Checks the kernel, builds in release, makes the namespaces (or falls back to loopback
# with a notice when it cannot: not root, no iproute2), runs the sweep, and on exit,
# error or Ctrl-C removes every namespace and process it started. Finished points stay.
# --bin-dir DIR uses already built binaries instead of building.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

# The flags a user gives: this script's own and the sweep's that make sense through it
# (the namespaces' --server, --client, --data-addr and --network-detail are the script's
# to set, unless hosts are given). Printed without building anything.
usage() {
  cat <<'USAGE'
Usage: scripts/sweep.sh [FLAGS]

Runs copyperf's engine × mode × size × threads matrix in two network namespaces joined by
a veth pair (as root; otherwise on loopback, with a notice) and writes one folder under
results/. Builds target/release first unless --bin-dir is given.

The matrix (comma-separated lists):
  --engines LIST        syscall,uring
  --modes LIST          two-copy,one-copy,zc,zc-fixed,sendfile (also: splice)
  --sizes LIST          1K,4K,16K,64K (--quick: 1K,64K)
  --threads LIST        1,2,4,8 (--quick: 1,4)
  --placement LIST      split (also: paired, unpinned)
  --rx LIST             copy (also: discard, zerocopy)
  --uring-opts LIST     plain (also: sqpoll, busy-poll)
  --workload W          echo (or stream)
  --depth N             1 (with --rates: 64)
  --rates LIST          open loop at each rate, msgs/s in all (5k,20k,1.5M): latency
                        timed from due times, drawn against the load (echo only)
Runs:
  -d, --duration SECS   2 per run (--quick: 1)
  --repeats N           3 rounds, each the whole matrix in a fresh shuffled order
  --seed N              the rounds' order [default: from the clock]
  --quick               a short run: 3 rounds of 1 s, sizes 1K,64K, threads 1,4
  --counters SCOPE      core (or thread, off)
  --port PORT           5201
Output:
  --out DIR             results
  --label TEXT          appended to the folder's name
  --no-report           skip the plots and report.md
Between hosts (no namespaces are made):
  --server HOST         local, netns:NAME, ssh://[USER@]HOST[:PORT], agent://HOST[:PORT]
  --client HOST[,HOST]  as --server; several for fan-in
  --data-addr ADDR      the server's address as the clients dial it (IPv6: [::1] or ::1)
  --network-detail TEXT one sentence on how the sides are connected
  --deploy, --agent-path PATH, --ssh-arg ARG, --secret-file FILE
This script:
  --bin-dir DIR         use the binaries built in DIR instead of building
  -h, --help            this help

Every flag is described in README.md ("The sweep", "Between two hosts"); the sweep
binary's own help is target/release/sweep --help once built.
USAGE
}

remote=""
for a in "$@"; do
  case "$a" in
    -h|--help) usage; exit 0 ;;
    --server|--server=*|--client|--client=*|--clients|--clients=*) remote=1 ;;
  esac
done

bin_dir=""
args=()
while (($#)); do
  case "$1" in
    --bin-dir) bin_dir=$2; shift 2 ;;
    --bin-dir=*) bin_dir=${1#--bin-dir=}; shift ;;
    *) args+=("$1"); shift ;;
  esac
done

if [[ -z "$bin_dir" ]]; then
  echo "building (cargo build --release)..." >&2
  cargo build --release --quiet --bins
  bin_dir="$root/target/release"
fi

# Zero-copy on io_uring needs Linux 6.0 (SEND_ZC) and 6.1 (SENDMSG_ZC): below that the
# sweep skips those points, saying why in meta.json and report.md.
kernel=$(uname -r)
kmajor=${kernel%%.*}; krest=${kernel#*.}; kminor=${krest%%.*}
if ((kmajor < 6 || (kmajor == 6 && kminor < 1))); then
  echo "notice: kernel $kernel is older than 6.1: io_uring zero-copy points (SEND_ZC needs 6.0, SENDMSG_ZC 6.1) will be skipped with the reason recorded" >&2
fi

ns_server="copyperf-s$$"
ns_client="copyperf-c$$"
veth_server="cps$$"
veth_client="cpc$$"
net=$((($$ % 200) + 20))
addr_server="10.213.$net.1"
addr_client="10.213.$net.2"
made_ns=0
child=""

cleanup() {
  local status=$?
  trap - EXIT INT TERM
  if [[ -n "$child" ]] && kill -0 "$child" 2>/dev/null; then
    kill -INT "$child" 2>/dev/null || true
    wait "$child" 2>/dev/null || true
  fi
  if ((made_ns)); then
    for ns in "$ns_server" "$ns_client"; do
      pids=$(ip netns pids "$ns" 2>/dev/null || true)
      [[ -n "$pids" ]] && kill $pids 2>/dev/null || true
      sleep 0.1
      pids=$(ip netns pids "$ns" 2>/dev/null || true)
      [[ -n "$pids" ]] && kill -9 $pids 2>/dev/null || true
      ip netns del "$ns" 2>/dev/null || true
    done
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

make_namespaces() {
  ip netns add "$ns_server" && made_ns=1 &&
    ip netns add "$ns_client" &&
    ip link add "$veth_server" type veth peer name "$veth_client" &&
    ip link set "$veth_server" netns "$ns_server" &&
    ip link set "$veth_client" netns "$ns_client" &&
    ip -n "$ns_server" addr add "$addr_server/24" dev "$veth_server" &&
    ip -n "$ns_client" addr add "$addr_client/24" dev "$veth_client" &&
    ip -n "$ns_server" link set lo up &&
    ip -n "$ns_client" link set lo up &&
    ip -n "$ns_server" link set "$veth_server" up &&
    ip -n "$ns_client" link set "$veth_client" up
}

net_args=()
if [[ -n "$remote" ]]; then
  reason="hosts given"
elif [[ $(id -u) -ne 0 ]]; then
  reason="not root"
elif ! command -v ip >/dev/null 2>&1; then
  reason="iproute2 (ip) is not installed"
elif ! make_namespaces 2>/tmp/copyperf-netns-$$.err; then
  reason="could not create namespaces: $(tr '\n' ' ' </tmp/copyperf-netns-$$.err)"
else
  reason=""
fi
rm -f /tmp/copyperf-netns-$$.err
if [[ -n "$remote" ]]; then
  net_args=()
elif [[ -z "$reason" ]]; then
  net_args=(--server "netns:$ns_server" --client "netns:$ns_client" --data-addr "$addr_server"
    --network-detail "network namespaces $ns_server and $ns_client joined by a veth pair ($addr_server <-> $addr_client)")
else
  echo "notice: running on loopback instead of network namespaces: $reason" >&2
  net_args=(--server local --client local --data-addr 127.0.0.1
    --network-detail "loopback 127.0.0.1 (no namespaces: $reason)")
fi

"$bin_dir/sweep" "${net_args[@]}" --bin-dir "$bin_dir" \
  --command-line "scripts/sweep.sh${args[*]:+ ${args[*]}}" ${args[@]+"${args[@]}"} &
child=$!
# Forward a Ctrl-C or TERM sent to this script alone; the sweep keeps finished points.
trap 'kill -INT "$child" 2>/dev/null || true' INT TERM
set +e
while :; do
  wait "$child"
  status=$?
  # A trapped signal ends the wait early; keep waiting until the sweep itself is done.
  kill -0 "$child" 2>/dev/null || break
done
set -e
child=""
exit "$status"
