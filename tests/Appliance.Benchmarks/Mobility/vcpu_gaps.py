#!/usr/bin/env python3
# Usage (as root, on an otherwise quiet machine): vcpu_gaps.py CPU SECONDS; run one per CPU at once.
# Spin on one CPU at SCHED_FIFO 99 in 0.9 s windows (0.1 s sleeps keep RT throttling out) and record every gap in
# the thread's own clock over 0.5 ms: with nothing in the guest able to preempt it but interrupts, a gap is time the
# vCPU did not run (hypervisor steal) or spent in interrupt handlers.
import os, sys, time
cpu = int(sys.argv[1]); seconds = int(sys.argv[2])
os.sched_setaffinity(0, {cpu})
os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(99))
def steal():
    for l in open('/proc/stat'):
        if l.startswith(f'cpu{cpu} '):
            return int(l.split()[8])
s0 = steal(); gaps = []; ns = time.perf_counter_ns
for w in range(seconds):
    end = ns() + 900_000_000; last = ns()
    while last < end:
        t = ns()
        if t - last > 500_000: gaps.append((t - last) / 1e6)
        last = t
    time.sleep(0.1)
s1 = steal()
gaps.sort()
print(f"cpu{cpu}: {seconds} x 0.9 s spun; gaps > 0.5 ms: {len(gaps)}, > 1 ms: {sum(g > 1 for g in gaps)}, > 3 ms: {sum(g > 3 for g in gaps)}; largest {[round(g, 2) for g in gaps[-8:]]}; steal ticks (10 ms) {s1 - s0}")
