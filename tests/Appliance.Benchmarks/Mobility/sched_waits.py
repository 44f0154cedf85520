#!/usr/bin/python3
"""How long the appliance's latency-critical threads wait for a CPU once woken (issue 6's tails).

    perf record -e sched:sched_switch,sched:sched_wakeup -a -o /tmp/mob.data &   # around one mobility-bench run
    tests/Appliance.Benchmarks/Mobility/sched_waits.py /tmp/mob.data [PID]

For the worker thread ("isthmus-worker") and the mobility / BGP event loop ("isthmus-mobilit") of the appliance process
(PID, or the one whose worker switched in most often: test processes on the box have workers of the same name), every
wake-up is paired with the thread's next switch-in; the gap is a runnable wait: the thread was ready and another task
held the CPU. Prints the count of waits over 1 ms and over 5 ms, the task that ran just before each (what it waited
behind) and the worst ones, with the thread's scheduling priority as the kernel reports it (prio 120 = ordinary nice 0,
below 100 = real time: 99 - the SCHED_FIFO priority).
"""
import collections
import re
import subprocess
import sys

THREADS = ("isthmus-worker", "isthmus-mobilit")
LINE = re.compile(r"^\s*(.+?)\s+(\d+)\s+\[(\d+)\]\s+([\d.]+):\s+(\S+):\s*(.*)$")
SWITCH = re.compile(r"prev_comm=(.*?) prev_pid=(\d+) .*?==> next_comm=(.*?) next_pid=(\d+) next_prio=(\d+)")
WAKEUP = re.compile(r"comm=(.*?) pid=(\d+) prio=(\d+)")


def events(path):
    out = subprocess.run(["perf", "script", "-i", path, "-F", "comm,tid,cpu,time,event,trace"],
                         capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        m = LINE.match(line)
        if m:
            yield float(m.group(4)), int(m.group(3)), m.group(5), m.group(6)


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    evs = list(events(sys.argv[1]))
    # The appliance's threads: by name, the worker that switched in most often (and the loop of the same process).
    seen = collections.Counter()
    for _, _, e, tr in evs:
        m = SWITCH.search(tr) if e == "sched:sched_switch" else None
        if m and m.group(3) in THREADS:
            seen[(m.group(3), int(m.group(4)))] += 1
    tids = {}
    for name in THREADS:
        candidates = [(n, tid) for (c, tid), n in seen.items() if c == name]
        if candidates:
            tids[max(candidates)[1]] = name
    if len(sys.argv) > 2:
        pid = sys.argv[2]
        tids = {}
        for line in subprocess.run(["ls", f"/proc/{pid}/task"], capture_output=True, text=True).stdout.split():
            comm = open(f"/proc/{pid}/task/{line}/comm").read().strip()
            if comm in THREADS:
                tids[int(line)] = comm
    woken, waits, prio = {}, collections.defaultdict(list), {}
    for t, cpu, e, tr in evs:
        if e == "sched:sched_wakeup":
            m = WAKEUP.search(tr)
            if m and int(m.group(2)) in tids:
                woken[int(m.group(2))] = t
        elif e == "sched:sched_switch":
            m = SWITCH.search(tr)
            if m and int(m.group(4)) in tids:
                tid = int(m.group(4))
                prio[tid] = int(m.group(5))
                if tid in woken:
                    waits[tid].append((t - woken.pop(tid), m.group(1), t, cpu))
    for tid, name in tids.items():
        w = sorted(waits[tid], key=lambda x: -x[0])
        if not w:
            print(f"{name} ({tid}): no wake-ups")
            continue
        over1 = collections.Counter(x[1] for x in w if x[0] > 0.001)
        over5 = collections.Counter(x[1] for x in w if x[0] > 0.005)
        median = sorted(x[0] for x in w)[len(w) // 2]
        print(f"{name} (tid {tid}, prio {prio.get(tid)}): {len(w)} wake-ups, wake -> running p50 {median * 1e3:.3f} ms, "
              f"max {w[0][0] * 1e3:.3f} ms")
        print(f"  waits > 1 ms: {sum(over1.values())} behind {dict(over1.most_common(8))}")
        print(f"  waits > 5 ms: {sum(over5.values())} behind {dict(over5.most_common(8))}")
        for d, behind, t, cpu in w[:5]:
            print(f"    {d * 1e3:8.3f} ms on CPU {cpu} behind '{behind}' (switched in at {t:.6f})")


if __name__ == "__main__":
    main()
