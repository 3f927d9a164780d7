#!/usr/bin/env bash
# copyperf beside the fastest tools doing the same operation, on loopback only,
# interleaved, several rounds: iperf3 (stream), sockperf and qperf (echo), and copyperf's
# own bare io_uring loops (`baseline`: SEND and SEND_ZC, receiver discarding).
#
#   scripts/compare.sh                # every comparison at 1K/4K/16K/64K, 5 rounds of 3 s
#   scripts/compare.sh --only echo --repeats 3 -d 2
#   scripts/compare.sh --help         # every flag (they go to target/release/compare)
#
# Installs iperf3, sockperf and qperf from Debian where missing, builds in release, and
# writes results/peers_<date>_<host>/ (samples.csv, peers.csv, summary.md, peers.svg,
# meta.json); prints the ratios and the targets.
set -euo pipefail
cd "$(dirname "$0")/.."

# --help touches nothing: no apt-get, no build.
for a in "$@"; do
  case "$a" in
    -h|--help)
      awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "scripts/${0##*/}"
      if [[ -x target/release/compare ]]; then
        echo
        exec target/release/compare --help
      fi
      echo
      echo "The compare binary's flags: build it (cargo build --release) and ask again, or see README.md (\"How it compares\")."
      exit 0
      ;;
  esac
done

missing=()
command -v iperf3 >/dev/null 2>&1 || missing+=(iperf3)
command -v sockperf >/dev/null 2>&1 || missing+=(sockperf)
command -v qperf >/dev/null 2>&1 || missing+=(qperf)
command -v taskset >/dev/null 2>&1 || missing+=(util-linux)
if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "error: ${missing[*]} missing; install with: sudo apt-get install ${missing[*]}" >&2
    exit 1
  fi
  echo "installing ${missing[*]} (apt-get)..." >&2
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

bin_dir=""
args=()
while (($#)); do
  case "$1" in
    --bin-dir) bin_dir=$2; shift 2 ;;
    *) args+=("$1"); shift ;;
  esac
done
if [[ -z "$bin_dir" ]]; then
  echo "building (cargo build --release)..." >&2
  cargo build --release --quiet --bins
  bin_dir=target/release
fi
exec "$bin_dir/compare" --bin-dir "$bin_dir" ${args[@]+"${args[@]}"}
