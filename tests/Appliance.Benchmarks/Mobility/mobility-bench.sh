#!/usr/bin/env bash
# Mobility benchmark (issue 6): RARP -> first GARP and -> BGP UPDATE on the wire, RARP -> route in BIRD's
# RIB (p50/p99 over N moves), and 10,000 workloads failing over to this site at once.
#
#   sudo tests/Appliance.Benchmarks/Mobility/mobility-bench.sh [--moves N] [--warmup K] [--failover COUNT]
#        [--poll interrupt,busy,busy-unpinned] [--cpu-idle-latency off,0] [--realtime-priority off,N] [--rounds R]
#        [--pin worker|none] [--placement none,aboveWorker,same,above,split] [--probe on|off] [--dotnet-env LIST]
#        [--sender-cpu any,0,1] [--jitter SEED|off] [--external] [--no-build]
#
# The defaults are the recommended configuration (docs/benchmarks.md "Session 7: mobility", "Session 10: mobility"): 120
# measured moves after 60 warm-up moves, 10,000-workload failover, pollMode interrupt, PM QoS 0 us, worker and loop at
# SCHED_FIFO 10, the loop on the worker's CPU one priority above it (dataPlane.loopPlacement "aboveWorker").
# Session 11 (docs/benchmarks.md "Session 11: mobility"): 240 measured moves (p99 is then interpolated between the 3rd
# and 2nd largest, not the 2nd largest of 120), a jittered schedule (--jitter), the gateway widened to 10.10.0.1/22 in
# the bench's config (addresses for them), and the RARP sender pinned to the worker's CPU (--sender-cpu): the harness's
# placement, not the product's.
# --moves N (default 240): measured moves.
# --warmup K (default 60): K moves first, not counted (printed apart, the cold first moves): the first move after
# start-up runs the path for the first time (JIT compilation: 10-20 ms here) and the next ~40 still tier up (tier 0 ->
# instrumented -> tier 1); an appliance runs for months, so the steady state is the figure; N + K <= 900 (one
# address each: 10.10.0.x, then 10.10.1-3.x, inside the bench config's 10.10.0.1/22 gateway).
# --jitter SEED (default: the time at start) or off: the gap between moves. SEED: GARP -> RARP uniform 0.15-0.25 s,
#   RARP -> next GARP uniform 0.15-0.45 s (a move every 0.3-0.7 s, 0.5 on average), drawn from SEED + the round's number,
#   so every run of one round (an A/B's variants) has the same schedule and the seed is printed; off: session 10's fixed
#   0.2 + 0.3 s, which samples one phase of anything periodic in the appliance (its poll timeout, its heartbeat).
# --poll (default interrupt): the worker's poll modes to measure, one lab run each, in that order,
# repeated --rounds times (A/B alternating in one window); a table of every run is printed at the end.
#   interrupt: the shipped lab config (dataPlane.pollMode "interrupt": the worker sleeps in poll() when idle).
#   busy: dataPlane.pollMode "busy" and dataPlane.workerCpu = the last CPU: the worker polls without sleeping on
#         that CPU, and the mobility and BGP session loops share it (one CPU busy all the time, as VPP's polling mode).
#   busy-unpinned: dataPlane.pollMode "busy" alone: the worker never sleeps, the scheduler places it and the loops.
# --cpu-idle-latency (default 0): a list of off or microseconds; every poll mode is run once per value, in that order
#   (A/B in one window). A value sets dataPlane.cpuIdleLatencyUs: the appliance holds /dev/cpu_dma_latency with it (PM QoS),
#   so no vCPU enters an idle state slower to leave than that; 0 = the vCPUs poll instead of halting ("PM QoS 0 us").
# --realtime-priority (default 10): a list of off or SCHED_FIFO priorities (1-99); every poll mode and idle latency is
#   run once per value, in that order. A value sets dataPlane.realtimePriority: the worker (interrupt mode only; busy runs
#   skip the value) and the mobility / BGP event loop run under SCHED_FIFO at that priority.
# --probe on (default): vcpu_probe.c (built here with gcc) runs during the measured moves: a SCHED_FIFO 99 timer thread
#   per CPU, every 0.5 ms, notes each wake-up more than 0.25 ms late (a vCPU stall), and every move over 1 ms is printed
#   with the stalls that overlapped it, so the tail is attributed (the p99 keeps every sample). off: no probe.
# --placement (default aboveWorker, the recommended configuration; interrupt runs only): a list; each value is one run per
#   poll mode / idle latency / priority.
#   none: the scheduler places the worker and the mobility / BGP loop. same: both pinned (taskset, from outside, once the
#   lab is up) to the last CPU, so the worker's wake-up of the loop stays on its CPU (at equal SCHED_FIFO priority the loop
#   runs once the worker sleeps). above: as same, and the loop one SCHED_FIFO priority above the worker (chrt, with
#   --realtime-priority N only), so the worker's ring after the first GARP preempts it on its CPU at once. split: the worker on the last CPU, the loop on CPU 0 (every wake-up crosses CPUs).
#   aboveWorker: the product's setting for "above" (dataPlane.loopPlacement "aboveWorker"; with --realtime-priority off it is none):
#   the appliance pins the worker to the last CPU and runs the loop there one priority above it, with a budget (after 2 ms
#   of continuous work the loop leaves that CPU until it goes idle 100 ms later); nothing is pinned from outside.
# --dotnet-env (default: default): a comma-separated list; each value is one run per configuration above, in that order
#   (an A/B of the runtime's knobs in one window): "default" (the appliance's own runtimeconfig), or one or more
#   DOTNET_ settings joined by '+', e.g. DOTNET_TieredCompilation=0 or DOTNET_TieredPGO=0+DOTNET_TC_CallCountingDelayMs=0,
#   set in the environment of the lab (the appliance inherits it) for that run only.
# --sender-cpu (default: the last CPU, the worker's under aboveWorker): a list of any or a CPU number; each value is
#   one run per configuration above, in that order. N: the moves' RARP sender (in ist-h10) pinned to CPU N, so the
#   RARP's softirq, which wakes the worker, runs there (the worker's CPU: a local wake-up, one vCPU in the chain; another:
#   a cross-vCPU one, two vCPUs a host stall can hit); any: where the scheduler puts it (before session 11). Each run
#   prints where the sender ran and its migrations. On a real NIC the analogue is the NIC queue's interrupt affinity set
#   to the data plane's core (standard tuning); this is the harness's placement, not the product's. The failover's
#   sender is never pinned.
# --pin (interrupt runs only) none (default): the shipped lab config. worker: dataPlane.workerCpu set to the last
# CPU, so the worker has that CPU alone and every other thread shares the others with the lab's peers, tshark and
# the senders; on this 2-core lab that was slower (docs/benchmarks.md, "Session 3, quiet re-run").
#
# Brings the lab up (appliance/lab/lab.sh up --detach, lab-config-l3.json: BIRD in ist-bird, FRR in
# ist-frr) and down again for every run, unless --external (a lab already up, measured once as it is, left up).
# What is measured and how (tshark timestamps in ist-h10 and ist-bird, BIRD's microsecond log) is in
# mobility_bench.py. Results: stdout and /tmp/isthmus-mobility-bench/ (raw captures, one file per run).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../../.." && pwd)"
LAB="$REPO/appliance/lab/lab.sh"
MOVES=240
WARMUP=60
JITTER=$(date +%s)
SENDER_CPUS=$(($(nproc) - 1))
FAILOVER=10000
EXTERNAL=0
PIN=none
POLL=interrupt
ROUNDS=1
QOS=0
RT=10
PROBE=on
PLACEMENT=aboveWorker
DOTNET_ENVS=default
BUILD=()
while (($#)); do
    case $1 in
        --moves) MOVES=$2; shift ;;
        --warmup) WARMUP=$2; shift ;;
        --failover) FAILOVER=$2; shift ;;
        --pin) PIN=$2; shift ;;
        --poll) POLL=$2; shift ;;
        --rounds) ROUNDS=$2; shift ;;
        --cpu-idle-latency) QOS=$2; shift ;;
        --realtime-priority) RT=$2; shift ;;
        --probe) PROBE=$2; shift ;;
        --placement) PLACEMENT=$2; shift ;;
        --dotnet-env) DOTNET_ENVS=$2; shift ;;
        --sender-cpu) SENDER_CPUS=$2; shift ;;
        --jitter) JITTER=$2; shift ;;
        --external) EXTERNAL=1 ;;
        --no-build) BUILD=(--no-build) ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
[[ $PIN == worker || $PIN == none ]] || { echo "--pin: worker or none" >&2; exit 2; }
[[ $PROBE == on || $PROBE == off ]] || { echo "--probe: on or off" >&2; exit 2; }
IFS=, read -r -a PLACES <<< "$PLACEMENT"
for place in "${PLACES[@]}"; do
    [[ $place == none || $place == aboveWorker || $place == same || $place == above || $place == split ]] || { echo "--placement: a list of none, aboveWorker, same, above and split" >&2; exit 2; }
done
IFS=, read -r -a ENVS <<< "$DOTNET_ENVS"
for envs in "${ENVS[@]}"; do
    [[ $envs == default || $envs =~ ^DOTNET_[A-Za-z0-9_]+=[^+]*(\+DOTNET_[A-Za-z0-9_]+=[^+]*)*$ ]] || { echo "--dotnet-env: a list of default and DOTNET_X=V[+DOTNET_Y=W]" >&2; exit 2; }
done
IFS=, read -r -a SCPUS <<< "$SENDER_CPUS"
for scpu in "${SCPUS[@]}"; do
    [[ $scpu == any || ($scpu =~ ^[0-9]+$ && $scpu -lt $(nproc)) ]] || { echo "--sender-cpu: a list of any and CPU numbers" >&2; exit 2; }
done
[[ $JITTER == off || $JITTER =~ ^[0-9]+$ ]] || { echo "--jitter: a seed (a number) or off" >&2; exit 2; }
IFS=, read -r -a MODES <<< "$POLL"
for mode in "${MODES[@]}"; do
    [[ $mode == interrupt || $mode == busy || $mode == busy-unpinned ]] || { echo "--poll: a list of interrupt, busy and busy-unpinned" >&2; exit 2; }
done
IFS=, read -r -a QOSES <<< "$QOS"
for qos in "${QOSES[@]}"; do
    [[ $qos == off || $qos =~ ^[0-9]+$ ]] || { echo "--cpu-idle-latency: a list of off and microseconds" >&2; exit 2; }
done
IFS=, read -r -a RTS <<< "$RT"
for rt in "${RTS[@]}"; do
    [[ $rt == off || ($rt =~ ^[0-9]+$ && $rt -ge 1 && $rt -le 99) ]] || { echo "--realtime-priority: a list of off and 1-99" >&2; exit 2; }
done
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || { echo "--rounds: a positive number" >&2; exit 2; }
(( $(nproc) >= 2 )) || PIN=none
((MOVES + WARMUP <= 900)) || { echo "--moves + --warmup: at most 900 (one address each in 10.10.0.0/22)" >&2; exit 2; }
[[ $(id -u) -eq 0 ]] || { echo "run as root" >&2; exit 1; }

# The lab is single-user: hold its lock for the whole run (lab.sh and the integration fixture take it too).
exec 9>/run/isthmus-lab.lock
flock -w 900 9 || { echo "the lab lock is still held by another run" >&2; exit 1; }
export ISTHMUS_LAB_LOCKED=1

OUT=/tmp/isthmus-mobility-bench
mkdir -p "$OUT"
LAST_CPU=$(($(nproc) - 1))
echo "machine: $(nproc) cores, $(uname -r), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "commit: $(git -C "$REPO" rev-parse --short HEAD)"
if [[ $PROBE == on ]]; then
    # The probe is C (a SCHED_FIFO timer thread per CPU); a fresh Debian has no compiler: install it like lab.sh's prerequisites.
    command -v gcc >/dev/null || { apt-get update -qq && apt-get install -y -qq --no-install-recommends gcc libc6-dev >/dev/null; }
    gcc -O2 -pthread -o "$OUT/vcpu_probe" "$HERE/vcpu_probe.c" || { echo "--probe on needs gcc (apt-get install -y gcc), or --probe off" >&2; exit 1; }
    export MOBILITY_PROBE="$OUT/vcpu_probe"
fi

# One measurement: prints its lines and keeps them in $OUT/run-N-MODE.txt for the table.
measure() {
    local label=$1 file=$2
    echo
    echo "== $label; load: $(cut -d' ' -f1-3 /proc/loadavg)"
    MOBILITY_JITTER_SEED=$([[ $JITTER == off ]] || echo $((JITTER + round))) MOBILITY_MOVES=$MOVES MOBILITY_WARMUP=$WARMUP MOBILITY_FAILOVER=$FAILOVER MOBILITY_OUT=$OUT /usr/bin/python3 "$HERE/mobility_bench.py" \
        | { echo "label: $label; load: $(cut -d' ' -f1 /proc/loadavg)"; cat; } | tee "$file" | tail -n +2
}

if ((EXTERNAL == 1)); then
    measure "external lab (as it runs)" "$OUT/run-1-external.txt"
    /usr/bin/python3 "$HERE/mobility_bench.py" table "$OUT/run-1-external.txt"
    exit 0
fi

# place same|above|split [FIFO]: pins the appliance's worker and its mobility / BGP loop thread (by thread name) once the lab is up.
place() {
    local pid worker loop
    pid=$(cat /run/isthmus-lab/appliance.pid)
    worker=$(grep -lx 'isthmus-worker' /proc/"$pid"/task/*/comm 2>/dev/null | head -1 | cut -d/ -f5)
    loop=$(grep -l '^isthmus-mobilit' /proc/"$pid"/task/*/comm 2>/dev/null | head -1 | cut -d/ -f5)
    [[ -n $worker && -n $loop ]] || { echo "placement: the worker or the mobility loop thread was not found" >&2; exit 1; }
    taskset -pc "$LAST_CPU" "$worker" > /dev/null
    taskset -pc "$([[ $1 == split ]] && echo 0 || echo "$LAST_CPU")" "$loop" > /dev/null
    if [[ $1 == above ]]; then
        chrt -f -R -p "$(($2 + 1))" "$loop"
    fi
}

lab_up=0
trap '((lab_up)) && "$LAB" down' EXIT
RUNS=()
run=0
for ((round = 1; round <= ROUNDS; round++)); do
    for mode in "${MODES[@]}"; do
      for qos in "${QOSES[@]}"; do
       for rt in "${RTS[@]}"; do
        for place in "${PLACES[@]}"; do
        for envs in "${ENVS[@]}"; do
        for scpu in "${SCPUS[@]}"; do
        [[ $rt != off && $mode != interrupt ]] && continue # a busy worker at a real-time priority is refused
        [[ $place != none && $mode != interrupt ]] && continue
        [[ $place == above && $rt == off ]] && continue
        [[ $place == aboveWorker && $rt == off ]] && place=none # aboveWorker needs a real-time priority: the default placement then
        run=$((run + 1))
        keys=()
        label="pollMode $mode"
        if [[ $mode == busy ]]; then
            keys=('pollMode="busy"' "workerCpu=$LAST_CPU")
            label+=", workerCpu $LAST_CPU (worker, mobility and BGP loops on it)"
        elif [[ $mode == busy-unpinned ]]; then
            keys=('pollMode="busy"')
            label="pollMode busy (no workerCpu)"
        elif [[ $PIN == worker ]]; then
            keys=("workerCpu=$LAST_CPU")
            label+=", workerCpu $LAST_CPU (the worker alone)"
        fi
        if [[ $qos != off ]]; then
            keys+=("cpuIdleLatencyUs=$qos")
            label+=", PM QoS $qos us"
        fi
        if [[ $rt != off ]]; then
            keys+=("realtimePriority=$rt")
            label+=", SCHED_FIFO $rt"
        fi
        if [[ $place == aboveWorker ]]; then
            keys+=('loopPlacement="aboveWorker"')
            label+=", loopPlacement aboveWorker"
        fi
        "$HERE/../lab_config.py" "$REPO/appliance/lab/lab-config-l3.json" "$OUT/lab-config-$mode-$qos-$rt-$place.json" "${keys[@]}"
        # Room for more than 219 moves: bd10's gateway on a /22 (the moves' addresses go on into 10.10.1-3.x).
        sed -i 's#"10.10.0.1/24"#"10.10.0.1/22"#' "$OUT/lab-config-$mode-$qos-$rt-$place.json"
        grep -q '"10.10.0.1/22"' "$OUT/lab-config-$mode-$qos-$rt-$place.json" || { echo "the lab config has no 10.10.0.1/24 gateway to widen" >&2; exit 1; }
        lab_up=1
        envset=()
        if [[ $envs != default ]]; then
            IFS=+ read -r -a envset <<< "$envs"
            label+=", ${envs//+/ }"
        fi
        env "${envset[@]}" "$LAB" up --detach "${BUILD[@]}" --config "$OUT/lab-config-$mode-$qos-$rt-$place.json" > "$OUT/lab-up-$run.log" 2>&1 \
            || { cat "$OUT/lab-up-$run.log" >&2; exit 1; }
        BUILD=(--no-build)
        if [[ $place != none && $place != aboveWorker ]]; then
            place "$place" "$rt"
            label+=", worker on CPU $LAST_CPU, loop on CPU $([[ $place == split ]] && echo 0 || echo "$LAST_CPU")"
            [[ $place == above ]] && label+=" at SCHED_FIFO $((rt + 1))"
        fi
        if [[ $scpu == any ]]; then
            unset MOBILITY_SENDER_CPU
        else
            export MOBILITY_SENDER_CPU=$scpu
            label+=", RARP sender on CPU $scpu"
        fi
        measure "run $run, $label" "$OUT/run-$run-$mode.txt"
        "$LAB" down > /dev/null 2>&1
        lab_up=0
        RUNS+=("$OUT/run-$run-$mode.txt")
        done
        done
        done
       done
      done
    done
done
echo
/usr/bin/python3 "$HERE/mobility_bench.py" table "${RUNS[@]}"
