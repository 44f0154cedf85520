#!/usr/bin/env bash
# Where the forwarder's CPU1 goes per packet (session 10): run beside a wire-bench run of the appliance, as root.
#
#   mkdir -p /tmp/w10-p && DOTNET_PerfMapEnabled=1 DOTNET_EnableWriteXorExecute=0 bash -c \
#     'tests/Appliance.Benchmarks/Wire/worker-profile.sh /tmp/w10-p 300000 450000 & \
#      tests/Appliance.Benchmarks/Wire/wire-bench.sh --modes appliance --directions fwd --rates "300000 450000" \
#        --seconds 9 --out /tmp/w10-p > /tmp/w10-p/run.log 2>&1; wait'
#
# Profile a step after a first one: right after the appliance starts, the worker's methods may still be tiered PGO's
# instrumented code for seconds while traffic flows (the tiering thread shares CPU0 with the generator and the NAPI
# thread; docs/benchmarks.md "Session 10: wire").
# For each RATE: waits until the generator runs at that rate, then over 3 s counts the worker thread's system calls,
# context switches and CPU time (perf stat -t on the worker's TID, which wire-bench logs) and CPU1's interrupts, IPIs and
# softirqs (perf stat -C 1), then records CPU1 with call graphs for 2 s and splits the worker's samples by what they ran
# (worker-profile-split.py): OUT/stat-tid-RATE.txt, OUT/stat-c1-RATE.txt, OUT/split-RATE.txt. The appliance's JIT
# symbols need DOTNET_PerfMapEnabled=1 in the environment of the run (lab.sh passes it on).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
OUT=${1:?usage: worker-profile.sh OUT RATE...}
shift
mkdir -p "$OUT"
for rate in "$@"; do
    for _ in $(seq 3600); do pgrep -f "WireGen.dll.*--rate $rate " >/dev/null && break; sleep 0.5; done
    pgrep -f "WireGen.dll.*--rate $rate " >/dev/null || { echo "no generator at $rate pps within 30 min" >&2; exit 1; }
    sleep 1.5 # past the generator's start-up
    tid=$(grep -o "worker thread [0-9]* pinned" "$OUT/run.log" | awk '{print $3}' | tail -n 1)
    [[ -n $tid ]] || { echo "no worker thread id in $OUT/run.log" >&2; exit 1; }
    perf stat -t "$tid" -e 'syscalls:sys_enter_sendto,syscalls:sys_enter_sendmmsg,syscalls:sys_enter_poll,syscalls:sys_enter_recvfrom,syscalls:sys_enter_recvmmsg,syscalls:sys_enter_read,syscalls:sys_enter_write,sched:sched_switch,task-clock' \
        -o "$OUT/stat-tid-$rate.txt" -- sleep 3 &
    perf stat -C 1 -e 'irq_vectors:reschedule_entry,irq_vectors:call_function_single_entry,irq_vectors:local_timer_entry,irq:softirq_entry,sched:sched_switch,cpu-clock' \
        -o "$OUT/stat-c1-$rate.txt" -- sleep 3
    wait
    perf record -q -C 1 -g -o "$OUT/perf-c1-$rate.data" -- sleep 2 >/dev/null 2>&1
    python3 "$HERE/worker-profile-split.py" "$OUT/perf-c1-$rate.data" "$tid" >"$OUT/split-$rate.txt"
done
