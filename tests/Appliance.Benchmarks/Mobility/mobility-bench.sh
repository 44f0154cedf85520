#!/usr/bin/env bash
# Mobility benchmark (issue 6): RARP -> first GARP and -> BGP UPDATE on the wire, RARP -> route in BIRD's
# RIB (p50/p99 over N moves), and 10,000 workloads failing over to this site at once.
#
#   sudo tests/Appliance.Benchmarks/Mobility/mobility-bench.sh [--moves N] [--failover COUNT] [--pin worker|none] [--external] [--no-build]
#
# --pin none (default): the shipped lab config. --pin worker (on a machine with 2 or more CPUs): the appliance runs
# with dataPlane.workerCpu set to the last CPU, so its data-plane worker has that CPU alone and every other thread
# (the mobility and BGP loops, the API, timers) shares the others with the lab's peers, tshark and the senders; on
# this 2-core lab that was slower (docs/benchmarks.md, "Session 3, quiet re-run").
#
# Brings the lab up (appliance/lab/lab.sh up --detach, lab-config-l3.json: BIRD in ist-bird, FRR in
# ist-frr) and down again, unless --external (a lab already up: it is left up). What is measured and how
# (tshark timestamps in ist-h10 and ist-bird, BIRD's microsecond log) is in mobility_bench.py.
# Results: stdout and /tmp/isthmus-mobility-bench/ (raw captures).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../../.." && pwd)"
LAB="$REPO/appliance/lab/lab.sh"
MOVES=100
FAILOVER=10000
EXTERNAL=0
PIN=none
BUILD=()
while (($#)); do
    case $1 in
        --moves) MOVES=$2; shift ;;
        --failover) FAILOVER=$2; shift ;;
        --pin) PIN=$2; shift ;;
        --external) EXTERNAL=1 ;;
        --no-build) BUILD=(--no-build) ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
[[ $PIN == worker || $PIN == none ]] || { echo "--pin: worker or none" >&2; exit 2; }
(( $(nproc) >= 2 )) || PIN=none
((MOVES <= 140)) || { echo "--moves: at most 140 (one 10.10.0.x address each)" >&2; exit 2; }
[[ $(id -u) -eq 0 ]] || { echo "run as root" >&2; exit 1; }

# The lab is single-user: hold its lock for the whole run (lab.sh and the integration fixture take it too).
exec 9>/run/isthmus-lab.lock
flock -w 900 9 || { echo "the lab lock is still held by another run" >&2; exit 1; }
export ISTHMUS_LAB_LOCKED=1

if ((EXTERNAL == 0)); then
    CONFIG=()
    if [[ $PIN == worker ]]; then
        mkdir -p /tmp/isthmus-mobility-bench
        "$HERE/../lab_config.py" "$REPO/appliance/lab/lab-config-l3.json" /tmp/isthmus-mobility-bench/lab-config.json "workerCpu=$(($(nproc) - 1))"
        CONFIG=(--config /tmp/isthmus-mobility-bench/lab-config.json)
    fi
    "$LAB" up --detach "${BUILD[@]}" "${CONFIG[@]}"
    trap '"$LAB" down' EXIT
fi

echo "machine: $(nproc) cores, $(uname -r), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); load: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "commit: $(git -C "$REPO" rev-parse --short HEAD); pin: $PIN$( [[ $PIN == worker ]] && echo " (dataPlane.workerCpu $(($(nproc) - 1)))")"
MOBILITY_MOVES=$MOVES MOBILITY_FAILOVER=$FAILOVER /usr/bin/python3 "$HERE/mobility_bench.py"
