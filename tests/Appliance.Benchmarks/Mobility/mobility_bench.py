#!/usr/bin/python3
"""Mobility benchmark (issue 6) in the lab; mobility-bench.sh runs it (lab up, lab down).

latency:  N workloads, each first seen at the remote site (GARP from ist-vm10 across VXLAN), then
          "vMotioned" to acc10 (RARP from ist-h10). On-wire timestamps, one clock (CLOCK_REALTIME):
            - tshark in ist-h10 on eth0: the RARP leaving the workload's host, the first GARP for the
              gateway arriving back on the same interface;
            - tshark in ist-bird on eth0: the first BGP UPDATE whose NLRI holds the workload's /32;
            - BIRD's own log (timeformat with microseconds, debug routes): the /32 "added" to its RIB.
          With MOBILITY_PROBE (mobility-bench.sh builds vcpu_probe.c; --probe off leaves it out), a SCHED_FIFO 99
          timer thread per CPU records every wake-up more than 0.25 ms late (a vCPU stall) during the moves, and
          every move over 1 ms is printed with the stalls that overlapped it (the p99 keeps every sample).
failover: 10,000 workloads known at the remote site (seeded through POST /api/v1/mobility/moves),
          then one RARP each from acc10 as fast as scapy sends them; time from the first RARP on the
          wire to the last of the 10,000 /32s in BIRD's RIB, UPDATE count, what BIRD shows.
"""
import http.client
import json
import os
import random
import re
import statistics
import subprocess
import sys
import time
from datetime import datetime

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
VMOTION = os.path.join(REPO, "appliance", "lab", "vmotion.py")
RUN = "/run/isthmus-lab"
GW_MAC = "02:15:7e:00:00:10"
PY = "/usr/bin/python3"


def api(method, path, body=None, conn=[None]):
    if conn[0] is None:
        conn[0] = http.client.HTTPConnection("127.0.0.1", 8088, timeout=30)
    token = open(f"{RUN}/admin-token").read().strip()
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    conn[0].request(method, "/api/v1" + path, json.dumps(body) if body is not None else None, headers)
    r = conn[0].getresponse()
    data = r.read()
    if r.status >= 300:
        raise RuntimeError(f"{method} {path}: {r.status} {data[:300]!r}")
    return json.loads(data) if data else None


def ns(name, *cmd, **kw):
    return subprocess.run(["ip", "netns", "exec", name, *cmd], check=True, capture_output=True, text=True, **kw)


# A long-lived sender inside a namespace: raw AF_PACKET, one line per command, no scapy (a process per
# frame costs ~1 s on this box, and scapy sends ~1,200 frames/s). "rarp MAC [N]" sends N RARPs from
# MACs MAC, MAC+1, ...; "garp MAC IP"; each command answers "ok START END" (time.time() around the sends).
SENDER = r"""
import socket, struct, sys, time
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(("eth0", 0))
def mac(text): return bytes.fromhex(text.replace(":", ""))
def rarp(m):
    return b"\xff" * 6 + m + struct.pack("!HHHBBH", 0x8035, 1, 0x0800, 6, 4, 3) + m + b"\0" * 4 + m + b"\0" * 4 + b"\0" * 18
def garp(m, ip):
    a = socket.inet_aton(ip)
    return b"\xff" * 6 + m + struct.pack("!HHHBBH", 0x0806, 1, 0x0800, 6, 4, 1) + m + a + b"\0" * 6 + a + b"\0" * 18
for line in sys.stdin:
    w = line.split()
    if w[0] == "rarp":
        base = int(w[1].replace(":", ""), 16)
        n = int(w[2]) if len(w) > 2 else 1
        frames = [rarp((base + i).to_bytes(6, "big")) for i in range(n)]
        start = time.time()
        for f in frames:
            s.send(f)
    else:
        start = time.time()
        s.send(garp(mac(w[1]), w[2]))
    print("ok", start, time.time(), flush=True)
"""


class Sender:
    def __init__(self, name, cpu=None):
        # cpu: pin the sender (taskset), so the RARP's softirq runs on that CPU (MOBILITY_SENDER_CPU, mobility-bench.sh --sender-cpu).
        pin = ["taskset", "-c", str(cpu)] if cpu is not None else []
        self.p = subprocess.Popen(pin + ["ip", "netns", "exec", name, PY, "-c", SENDER], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True)

    def cpu(self):
        """(the CPU the sender last ran on, its CPU migrations so far)."""
        try:
            stat = open(f"/proc/{self.p.pid}/stat").read()
            sched = {l.split(":")[0].strip(): l.split(":")[1].strip() for l in open(f"/proc/{self.p.pid}/sched") if ":" in l}
            return int(stat[stat.rindex(")") + 2:].split()[36]), int(float(sched.get("se.nr_migrations", "0")))
        except (OSError, ValueError):
            return None

    def __call__(self, command):
        self.p.stdin.write(command + "\n")
        self.p.stdin.flush()
        words = self.p.stdout.readline().split()
        if not words or words[0] != "ok":
            raise RuntimeError(f"sender: {command}: {words}")
        return float(words[1]), float(words[2])

    def close(self):
        self.p.stdin.close()
        self.p.wait(10)


def tshark(name, filt, display, fields, out):
    args = ["ip", "netns", "exec", name, "tshark", "-l", "-n", "-i", "eth0", "-f", filt]
    if display:
        args += ["-Y", display]
    args += ["-T", "fields", "-E", "separator=;"]
    for f in fields:
        args += ["-e", f]
    p = subprocess.Popen(args, stdout=open(out, "w"), stderr=subprocess.PIPE, text=True)
    for line in p.stderr:
        if "Capturing on" in line:
            break
    return p


def stop(p):
    time.sleep(1.0)
    p.terminate()
    p.wait(10)


def bird_log_added(after):
    """(epoch, prefix) for every route BIRD added from the appliance after `after`."""
    out = []
    for line in open(f"{RUN}/bird.log", errors="replace"):
        if " > added " not in line or "isthmus" not in line:
            continue
        stamp = line[:26]
        try:
            t = datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S.%f").timestamp()
        except ValueError:
            continue
        if t < after:
            continue
        prefix = line.split(" > added ", 1)[1].split()
        prefix = [w for w in prefix if "/" in w]
        if prefix:
            out.append((t, prefix[0]))
    return out


def pct(values, p):
    values = sorted(values)
    if not values:
        return float("nan")
    k = (len(values) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def summary(name, ms):
    return (f"{name}: n={len(ms)} p50={pct(ms, 50):.3f} ms p99={pct(ms, 99):.3f} ms "
            f"min={min(ms):.3f} max={max(ms):.3f} mean={statistics.mean(ms):.3f}")


def start_probe(out):
    """The vCPU stall probe (vcpu_probe.c), one FIFO 99 timer thread per CPU; None without MOBILITY_PROBE."""
    probe = os.environ.get("MOBILITY_PROBE")
    if not probe:
        return None
    return subprocess.Popen([probe, "500", "250"], stdout=open(f"{out}/stalls.txt", "w"), stderr=subprocess.PIPE, text=True)


def probe_lines(probe, out, moves, started, ended):
    """Stops the probe; the stall rate per CPU, and every move over 1 ms with the stalls that overlapped it."""
    probe.send_signal(2)
    summary = probe.communicate(timeout=10)[1].strip().splitlines()
    stalls = []
    for line in open(f"{out}/stalls.txt"):
        w = line.split()
        if len(w) == 3:
            stalls.append((int(w[0]), float(w[1]), float(w[2])))
    span = max(ended - started, 1e-9)
    cpus = sorted({c for c, _, _ in stalls})
    lines = ["vCPU stall probe (vcpu_probe.c: a SCHED_FIFO 99 timer thread per CPU, every 0.5 ms; a wake-up > 0.25 ms "
             f"late = a stall: the host paused the vCPU, or interrupts / a non-preemptible kernel path held it), over the {span:.0f} s of moves:"]
    for cpu in cpus:
        mine = [(e - s) * 1000 for c, s, e in stalls if c == cpu and s >= started and e <= ended]
        over = [d for d in mine if d > 1]
        lines.append(f"  cpu{cpu}: {len(over)} stalls > 1 ms ({len(over) / span:.1f}/s), > 3 ms: {sum(d > 3 for d in mine)}, "
                     f"largest {max(mine, default=0):.2f} ms; stalls > 0.25 ms covered {sum(mine) / 10 / span:.2f} % of the time")
    lines += ["  " + l for l in summary]

    def overlapping(t0, t1):
        return [(c, s, e) for c, s, e in stalls if s < t1 and e > t0]

    slow = [m for m in moves if max(m[2] or 0, m[3] or 0) > 1]
    hit = [m for m in slow if overlapping(m[1], m[1] + max(m[2] or 0, m[3] or 0) / 1000)]
    fast_hit = sum(1 for m in moves if m not in slow and overlapping(m[1], m[1] + max(m[2] or 0, m[3] or 0) / 1000))
    lines.append(f"measured moves over 1 ms (GARP or UPDATE): {len(slow)} of {len(moves)}; with a vCPU stall overlapping "
                 f"(RARP -> the later of the two): {len(hit)} of {len(slow)}; moves under 1 ms that overlapped one: {fast_hit}")
    by_cpu = {}
    for i, t0, g, u in slow:
        key = "+".join(f"cpu{c}" for c in sorted({c for c, _, _ in overlapping(t0, t0 + max(g or 0, u or 0) / 1000)})) or "none"
        by_cpu[key] = by_cpu.get(key, 0) + 1
    lines.append("  slow moves by the vCPU(s) whose stall overlapped them: "
                 + (", ".join(f"{k} {v}" for k, v in sorted(by_cpu.items())) if by_cpu else "-"))
    for i, t0, g, u in slow:
        found = overlapping(t0, t0 + max(g or 0, u or 0) / 1000)
        what = ", ".join(f"cpu{c} {(e - s) * 1000:.2f} ms from {(s - t0) * 1000:+.2f} ms" for c, s, e in found) or "none"
        lines.append(f"  move {i}: GARP {g if g is not None else float('nan'):.3f} ms, UPDATE "
                     f"{u if u is not None else float('nan'):.3f} ms; stalls: {what}")
    return lines


def thread_stats():
    """Per thread of interest (the worker, the mobility / BGP loop): /proc schedstat (ns run, ns waited runnable,
    slices) and context switches (voluntary = it blocked, e.g. in poll() or on a runtime suspension; involuntary =
    preempted); and per CPU the steal (ticks the host took the vCPU). None when the appliance is not found."""
    try:
        pid = open(f"{RUN}/appliance.pid").read().strip()
    except OSError:
        return None
    threads = {}
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            comm = open(f"/proc/{pid}/task/{task}/comm").read().strip()
            if comm == "isthmus-worker" or comm.startswith("isthmus-mobilit"):
                run, wait, slices = (int(x) for x in open(f"/proc/{pid}/task/{task}/schedstat").read().split())
                status = {l.split(":")[0]: l.split(":")[1].strip() for l in open(f"/proc/{pid}/task/{task}/status") if ":" in l}
                sched = {l.split(":")[0].strip(): l.split(":")[1].strip() for l in open(f"/proc/{pid}/task/{task}/sched") if ":" in l}
                stat = open(f"/proc/{pid}/task/{task}/stat").read()
                threads["worker" if comm == "isthmus-worker" else "loop"] = (
                    run, wait, slices, int(status["voluntary_ctxt_switches"]), int(status["nonvoluntary_ctxt_switches"]),
                    int(float(sched.get("se.nr_migrations", "0"))), int(stat[stat.rindex(")") + 2:].split()[36]))
        except OSError:
            continue
    steal = {}
    for line in open("/proc/stat"):
        w = line.split()
        if w[0].startswith("cpu") and w[0] != "cpu":
            steal[w[0]] = int(w[8])
    return threads, steal


def thread_lines(before, after, moves, span):
    """What the worker and the loop did during the measured moves (thread_stats before and after)."""
    if before is None or after is None:
        return []
    lines = [f"threads during the {span:.0f} s of measured moves (/proc schedstat; per move = / {moves}):"]
    for name in ("worker", "loop"):
        if name in before[0] and name in after[0]:
            b, a = before[0][name], after[0][name]
            d = [x - y for x, y in zip(a, b)]
            lines.append(f"  {name}: ran {d[0] / 1e6:.1f} ms, waited runnable {d[1] / 1e6:.2f} ms ({d[1] / 1e3 / max(moves, 1):.1f} us per move), "
                         f"{d[2]} slices, {d[3]} voluntary / {d[4]} involuntary switches, {d[5]} CPU migrations, on CPU {b[6]} -> {a[6]}")
    tick = os.sysconf("SC_CLK_TCK")
    lines.append("  steal (the host ran something else on the vCPU): " + ", ".join(
        f"{c} {(after[1][c] - before[1].get(c, 0)) * 1000 / tick:.0f} ms" for c in sorted(after[1])))
    return lines


def suspension_lines(view, moves):
    """The runtime's suspensions during the measured moves (GET /mobility/latency runtime.suspensions), and every move
    (RARP -> the later of GARP and UPDATE) that one overlapped."""
    sus = (view or {}).get("runtime", {}).get("suspensions")
    if sus is None:
        return []
    spans = [(datetime.fromisoformat(x["startUtc"]).timestamp(), x["ms"], x["reason"]) for x in sus]
    reasons = {}
    for _, ms, reason in spans:
        reasons[reason] = reasons.get(reason, 0) + 1
    lines = [f"runtime suspensions during the measured moves: {len(spans)} ("
             + ", ".join(f"{r} {c}" for r, c in sorted(reasons.items())) + f"), {sum(m for _, m, _ in spans):.2f} ms in all, "
             + f"longest {max((m for _, m, _ in spans), default=0):.3f} ms"]
    hit = []
    for i, t0, g, u in moves:
        t1 = t0 + max(g or 0, u or 0) / 1000
        found = [(s, ms, r) for s, ms, r in spans if s < t1 and s + ms / 1000 > t0]
        if found:
            hit.append((i, g, u, found))
    slow = sum(1 for _, g, u, _ in hit if max(g or 0, u or 0) > 1)
    lines.append(f"  measured moves a suspension overlapped: {len(hit)} (of them over 1 ms: {slow})")
    for i, g, u, found in hit:
        lines.append(f"  move {i}: GARP {g if g is not None else float('nan'):.3f} ms, UPDATE {u if u is not None else float('nan'):.3f} ms; "
                     + ", ".join(f"{r} {ms:.3f} ms" for _, ms, r in found))
    return lines


def jit_mark():
    """(perf map, lines in it now) when the appliance writes one (DOTNET_PerfMapEnabled=1 or 3 in the bench's environment)."""
    try:
        path = f"/tmp/perf-{open(f'{RUN}/appliance.pid').read().strip()}.map"
        return path, sum(1 for _ in open(path, errors="replace"))
    except OSError:
        return None


def jit_lines(mark, out):
    """The methods the runtime compiled during the measured moves (the perf map's lines after the mark), by tier."""
    path, start = mark
    entries = []
    for k, line in enumerate(open(path, errors="replace")):
        if k < start:
            continue
        m = re.match(r"(?:0x)?[0-9A-Fa-f]+ [0-9A-Fa-f]+ (.*)\[([^\]]+)\]$", line.strip())
        if m:
            entries.append((m.group(2), m.group(1)))
    with open(f"{out}/jit-measured.txt", "w") as f:
        for tier, name in entries:
            f.write(f"{tier}\t{name}\n")
    tiers = {}
    for tier, _ in entries:
        tiers[tier] = tiers.get(tier, 0) + 1
    areas = {}
    for _, name in entries:
        a = re.search(r"\[([^\]]+)\]", name)
        area = a.group(1) if a else "?"
        areas[area] = areas.get(area, 0) + 1
    return [f"JIT during the measured moves (perf map {path}): {len(entries)} compilations; by tier: "
            + ", ".join(f"{t} {c}" for t, c in sorted(tiers.items(), key=lambda x: -x[1]))
            + "; by assembly: " + ", ".join(f"{a} {c}" for a, c in sorted(areas.items(), key=lambda x: -x[1])[:8])
            + f" (list: {out}/jit-measured.txt)"]


def latency(n, warm, out):
    h10 = tshark("ist-h10", "arp or ether proto 0x8035", None,
                 ["frame.time_epoch", "eth.src", "eth.type", "arp.opcode", "arp.src.hw_mac"], f"{out}/h10.txt")
    bird = tshark("ist-bird", "tcp port 179", "bgp.type == 2", ["frame.time_epoch", "bgp.nlri_prefix"], f"{out}/bird.txt")
    started = time.time()
    sender_cpu = os.environ.get("MOBILITY_SENDER_CPU")
    remote, local = Sender("ist-vm10"), Sender("ist-h10", int(sender_cpu) if sender_cpu else None)
    # The schedule: a fixed one (GARP, 0.2 s, RARP, 0.3 s) samples one phase of anything periodic in the appliance (the
    # worker's 50 ms poll timeout restarts on each frame, so a RARP 0.2 s after the GARP met its 4th timeout; session 10
    # found a once-a-second heartbeat phase-locked to the 0.5 s moves). With MOBILITY_JITTER_SEED, GARP -> RARP is drawn
    # uniformly from 0.15-0.25 s and RARP -> next GARP from 0.15-0.45 s (a move every 0.3-0.7 s, 0.5 s on average),
    # from that seed, so a run can be repeated.
    seed = os.environ.get("MOBILITY_JITTER_SEED")
    rng = random.Random(int(seed)) if seed else None
    gaps = [(rng.uniform(0.15, 0.25), rng.uniform(0.15, 0.45)) if rng else (0.2, 0.3) for _ in range(warm + n)]
    macs = []
    hops_available = False
    probe = None
    jit = None
    measured_from = time.time()
    for i in range(warm + n):
        if i == warm:
            # The per-hop samples and the runtime counters cover the measured moves only.
            hops_available = reset_hops()
            jit = jit_mark()
            probe = start_probe(out)
            threads_from = thread_stats()
            sender_from = local.cpu()
            beats_from = heartbeats()
            measured_from = time.time()
        mac = f"00:50:56:bb:{i >> 8:02x}:{i & 0xff:02x}"
        ip = move_address(i)
        macs.append((mac, ip))
        remote(f"garp {mac} {ip}")
        time.sleep(gaps[i][0])
        local(f"rarp {mac}")
        time.sleep(gaps[i][1])
    measured_to = time.time()
    threads_to = thread_stats()
    sender_to = local.cpu()
    beats_to = heartbeats() if n else None
    view = api("GET", "/mobility/latency") if hops_available else None
    stop(h10)
    stop(bird)
    added = bird_log_added(started - 1)
    hops = hop_lines(view) if hops_available else []

    frames = [l.rstrip("\n").split(";") for l in open(f"{out}/h10.txt") if l.strip()]
    rarps = {}
    garps = []
    for f in frames:
        t = float(f[0])
        if f[2] == "0x8035" and f[4] not in rarps:
            rarps[f[4]] = t
        elif f[1] == GW_MAC:
            garps.append(t)
    updates = []
    for l in open(f"{out}/bird.txt"):
        parts = l.rstrip("\n").split(";")
        if len(parts) >= 2 and parts[1]:
            updates.append((float(parts[0]), set(parts[1].split(","))))

    to_garp, to_update, to_rib = [], [], []
    warm_garp, warm_update = [], []
    measured = []  # (move, RARP time, GARP ms or None, UPDATE ms or None)
    for i, (mac, ip) in enumerate(macs):
        t0 = rarps.get(mac)
        if t0 is None:
            continue
        g = next((t for t in garps if t >= t0), None)
        u = next((t for t, p in updates if t >= t0 and (ip in p or ip + "/32" in p)), None)
        r = next((t for t, p in added if t >= t0 and p == ip + "/32"), None)
        if i < warm:
            warm_garp.append(f"{(g - t0) * 1000:.1f}" if g is not None and g - t0 < 1 else "-")
            warm_update.append(f"{(u - t0) * 1000:.1f}" if u is not None and u - t0 < 5 else "-")
            continue
        measured.append((i - warm, t0, (g - t0) * 1000 if g is not None and g - t0 < 1 else None,
                         (u - t0) * 1000 if u is not None and u - t0 < 5 else None))
        if g is not None and g - t0 < 1:
            to_garp.append((g - t0) * 1000)
        if u is not None and u - t0 < 5:
            to_update.append((u - t0) * 1000)
        if r is not None and r - t0 < 5:
            to_rib.append((r - t0) * 1000)
    lines = [f"moves: {n} measured after {warm} warm-up moves, RARPs seen on the wire: {len(rarps)}; schedule: "
             + (f"jittered, seed {seed} (GARP -> RARP 0.15-0.25 s, RARP -> next GARP 0.15-0.45 s; "
                f"move to move {min(a + b for a, b in gaps):.3f}-{max(a + b for a, b in gaps):.3f} s, mean {statistics.mean(a + b for a, b in gaps):.3f})"
                if rng else "fixed (GARP -> RARP 0.2 s, RARP -> next GARP 0.3 s)")]
    if warm:
        lines.append(f"warm-up moves (not counted; the first after start-up JIT-compiles the path), RARP -> GARP ms: "
                     f"{' '.join(warm_garp)}; -> UPDATE ms: {' '.join(warm_update)}")
    lines += [
             summary("RARP on the wire -> first GARP on the wire", to_garp),
             summary("RARP on the wire -> BGP UPDATE on the wire (toward BIRD)", to_update),
             summary("RARP on the wire -> route in BIRD's RIB (BIRD's log)", to_rib)]
    lines += hops
    lines += suspension_lines(view, measured)
    if n:
        lines += heartbeat_lines(beats_from, beats_to)
    if n:
        lines += thread_lines(threads_from, threads_to, n, measured_to - measured_from)
        if sender_from and sender_to:
            lines.append(f"  the RARP sender (ist-h10, where the RARP's softirq runs){' pinned to CPU ' + sender_cpu if sender_cpu else ''}: "
                         f"on CPU {sender_from[0]} -> {sender_to[0]}, {sender_to[1] - sender_from[1]} CPU migrations")
    if probe is not None:
        lines += probe_lines(probe, out, measured, measured_from, measured_to)
    if jit is not None:
        lines += jit_lines(jit, out)
    # Move them back (withdraw), so the lab is as before.
    for mac, _ in macs:
        remote(f"rarp {mac}")
        time.sleep(0.01)
    remote.close()
    local.close()
    return lines


def move_address(i):
    """Move i's workload address: 10.10.0.100-.239 first (as before), then .20-.98 (the lab's hosts hold .1 and .10-.13;
    .99 is the demo's), then 10.10.1.2-.251, 10.10.2.2-... (mobility-bench.sh widens the gateway to 10.10.0.1/22 in its
    config, so the gateway's on-link check learns them)."""
    if i < 140:
        return f"10.10.0.{100 + i}"
    if i < 219:
        return f"10.10.0.{20 + i - 140}"
    j = i - 219
    return f"10.10.{1 + j // 250}.{2 + j % 250}"


def reset_hops():
    """Clears the appliance's per-hop latency samples; False on a commit without them."""
    try:
        api("POST", "/mobility/latency/reset")
        return True
    except RuntimeError:
        return False


def hop_lines(view):
    """Inside the appliance, per hop, from the worker seeing the RARP (GET /api/v1/mobility/latency)."""
    lines = [f"inside the appliance (from the worker seeing the RARP; mobility loop {view['scheduling']}; "
             + (f"worker {view['workerScheduling']}; " if "workerScheduling" in view else "") +
             f"GARP frames sent by the worker itself: {view['workerGarpFrames']}):"]
    for h in view["hops"]:
        lines.append(f"  {h['hop']:<17} n={h['samples']:<4} p50={h['p50Us'] / 1000:.3f} ms p99={h['p99Us'] / 1000:.3f} ms max={h['maxUs'] / 1000:.3f} ms")
    if "runtime" in view:
        r = view["runtime"]
        lines.append(f"  during the measured moves: GC gen0/1/2 {r['gen0']}/{r['gen1']}/{r['gen2']} (pause {r['gcPauseMs']:.2f} ms in all), "
                     f"methods JIT-compiled {r['jitMethods']}"
                     + (f", allocated {r['allocatedBytes'] / 1e6:.2f} MB by the process" if "allocatedBytes" in r else "")
                     + (f" ({r['loopAllocatedBytes'] / 1e6:.2f} MB by the mobility / BGP loop)" if "loopAllocatedBytes" in r else "")
                     + (f"; the loop's budget took it off the worker's CPU {r['loopDemotions']} times" if r.get("loopDemotions") is not None else ""))
    if "cpuIdle" in view:
        q = view["cpuIdle"]
        lines.append(f"  CPU idle latency request (PM QoS, dataPlane.cpuIdleLatencyUs): {q['state']}"
                     + (f", {q['held']} us held on {q['device']}" if q.get("held") is not None else "")
                     + (f" ({q['lastError']})" if q.get("lastError") else ""))
    return lines


def failover(count, out):
    before = api("GET", "/mobility")
    base_routes = bird_route_count()
    # Seed: every workload known at the remote site, with one address each (10.200.0.0/16).
    t = time.time()
    for i in range(count):
        mac = f"02:aa:00:00:{i >> 8:02x}:{i & 0xff:02x}"
        api("POST", "/mobility/moves", {"mac": mac, "segment": "und0/vni5010", "vtep": "192.0.2.2",
                                        "addresses": [f"10.200.{i >> 8}.{i & 0xff}"]})
    seed = time.time() - t
    bird = tshark("ist-bird", "tcp port 179", "bgp.type == 2", ["frame.time_epoch", "bgp.nlri_prefix"], f"{out}/failover-bird.txt")
    h10 = tshark("ist-h10", "arp or ether proto 0x8035", None, ["frame.time_epoch", "eth.src", "eth.type"], f"{out}/failover-h10.txt")
    # Forwarding during the failover: a ping every 5 ms from ist-h20 to ist-vm20 (access -> VXLAN, the same worker),
    # from just before the RARPs until the last route is in; its loss and largest round trip show whether the worker
    # kept its CPU while the mobility / BGP loop planned and announced.
    demotions_before = loop_demotions()
    ping = subprocess.Popen(["ip", "netns", "exec", "ist-h20", "ping", "-q", "-i", "0.005", "-W", "1", "10.20.0.11"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    time.sleep(0.5)
    local = Sender("ist-h10")
    send_start, send_end = local(f"rarp 02:aa:00:00:00:00 {count}")
    local.close()
    deadline = time.time() + 120
    while time.time() < deadline and bird_route_count() < base_routes + count:
        time.sleep(0.1)
    ping.send_signal(2)
    ping_out = ping.communicate(timeout=10)[0]
    ping_loss = re.search(r"(\d+) packets transmitted, (\d+) received", ping_out)
    ping_rtt = re.search(r"= [\d.]+/[\d.]+/([\d.]+)/", ping_out)
    demotions = loop_demotions()
    time.sleep(1.5)
    stop(bird)
    stop(h10)
    routes = bird_route_count()
    added = [(t, p) for t, p in bird_log_added(send_start - 1) if p.startswith("10.200.")]
    frames = [l.split(";") for l in open(f"{out}/failover-h10.txt") if l.strip()]
    first_rarp = min((float(f[0]) for f in frames if f[2].strip() == "0x8035"), default=send_start)
    garps = sum(1 for f in frames if f[1] == GW_MAC)
    updates = [l for l in open(f"{out}/failover-bird.txt") if l.strip()]
    nlri = sum(len(l.rstrip("\n").split(";")[1].split(",")) for l in updates if ";" in l and l.rstrip("\n").split(";")[1])
    last = max((t for t, _ in added), default=float("nan"))
    status = api("GET", "/mobility")
    return [f"failover: {count} workloads (seeded through the API in {seed:.1f} s), one RARP each from acc10",
            f"  the raw-socket sender handed the kernel the {count} RARPs in {send_end - send_start:.3f} s ({count / (send_end - send_start):.0f} pps)",
            f"  first RARP on the wire -> last of the {len(added)} /32s in BIRD's RIB: {(last - first_rarp) * 1000:.0f} ms",
            f"  last RARP sent -> last /32 in BIRD's RIB: {(last - send_end) * 1000:.0f} ms",
            f"  BGP UPDATEs toward BIRD: {len(updates)} carrying {nlri} NLRI; BIRD route count {base_routes} -> {routes}",
            f"  GARP frames for the gateway on acc10 during the failover: {garps} (bursts coalesce per segment)",
            f"  appliance: announced {len(status['announced'])}, capped {status['capped']}, waiting {status['waiting']}"
            f" (before: {len(before['announced'])})",
            "  forwarding during the failover (ping every 5 ms ist-h20 -> ist-vm20 across the worker): "
            + (f"{ping_loss.group(2)} of {ping_loss.group(1)} answered, largest round trip {ping_rtt.group(1) if ping_rtt else '?'} ms"
               if ping_loss else "no ping summary"),
            f"  mobility / BGP loop demotions (dataPlane.loopPlacement aboveWorker's budget) during the failover: "
            + (f"{demotions - demotions_before} (before it, since start-up: {demotions_before})" if demotions is not None and demotions_before is not None else "-")]


def metrics_text():
    conn = http.client.HTTPConnection("127.0.0.1", 8088, timeout=30)
    token = open(f"{RUN}/admin-token").read().strip()
    conn.request("GET", "/metrics", headers={"Authorization": f"Bearer {token}"})
    return conn.getresponse().read().decode()


def heartbeats():
    """The worker's heartbeat histogram from /metrics ({le: count}, sum us, max us); None on a commit without it."""
    text = metrics_text()
    buckets = {m.group(1): int(m.group(2)) for m in re.finditer(r'^isthmus_worker_heartbeat_duration_us_bucket\{le="([^"]+)"\} (\d+)$', text, re.M)}
    total = re.search(r"^isthmus_worker_heartbeat_duration_us_sum (\d+)$", text, re.M)
    most = re.search(r"^isthmus_worker_heartbeat_max_us (\d+)$", text, re.M)
    return (buckets, int(total.group(1)), int(most.group(1))) if buckets and total and most else None


def heartbeat_lines(before, after):
    """The worker's heartbeats during the measured moves: how many, how long (the histogram's difference)."""
    if before is None or after is None:
        return []
    les = list(after[0])
    counts = [after[0][le] - before[0].get(le, 0) for le in les]
    n = counts[-1]
    per = [counts[0]] + [b - a for a, b in zip(counts, counts[1:])]
    return [f"worker heartbeats during the measured moves: {n}, mean {(after[1] - before[1]) / max(n, 1):.0f} us; by duration (us): "
            + ", ".join(f"{'<=' + le if le != '+Inf' else '>' + les[-2]} {c}" for le, c in zip(les, per) if c)
            + f"; the longest since start-up {after[2]} us"]


def loop_demotions():
    """isthmus_mobility_loop_demotions_total from /metrics; None on a commit without it."""
    text = metrics_text()
    m = re.search(r"^isthmus_mobility_loop_demotions_total (\d+)$", text, re.M)
    return int(m.group(1)) if m else None


def bird_route_count():
    r = subprocess.run(["birdc", "-s", f"{RUN}/bird.ctl", "show", "route", "count"], capture_output=True, text=True)
    for line in r.stdout.splitlines():
        words = line.split()
        if "routes" in words and words[0].isdigit():
            return int(words[0])
    return 0


def table(files):
    """The runs side by side (mobility-bench.sh prints it at the end): p50 / p99 / max per measure, in ms."""
    measures = [("first GARP", "RARP on the wire -> first GARP on the wire"),
                ("BGP UPDATE", "RARP on the wire -> BGP UPDATE on the wire"),
                ("BIRD's RIB", "RARP on the wire -> route in BIRD's RIB")]
    print("| run | load | RARP -> " + " | RARP -> ".join(m for m, _ in measures)
          + " | failover: first RARP -> last /32 in BIRD | forwarding during it (pings answered, largest RTT) | runtime suspensions (moves overlapped) | worker waited runnable per move | moves > 1 ms of n (stall overlapping; by vCPU) |")
    print("|---|---:|" + "---|" * len(measures) + "---:|---|---|---:|---|")
    for path in files:
        text = open(path).read()
        head = text.splitlines()[0] if text else "label: ?; load: ?"
        label, _, load = head.removeprefix("label: ").partition("; load: ")
        cells = []
        for _, prefix in measures:
            m = re.search(re.escape(prefix) + r".*?p50=([\d.]+) ms p99=([\d.]+) ms min=[\d.]+ max=([\d.]+)", text)
            cells.append(f"{m.group(1)} / {m.group(2)} / {m.group(3)}" if m else "-")
        f = re.search(r"last of the \d+ /32s in BIRD's RIB: (-?[\d.]+|nan) ms", text)
        sus = re.search(r"runtime suspensions during the measured moves: (\d+) .*\n  measured moves a suspension overlapped: (\d+)", text)
        wait = re.search(r"  worker: ran [\d.]+ ms, waited runnable [\d.]+ ms \(([\d.]+) us per move\)", text)
        fwd = re.search(r"ist-h20 -> ist-vm20 across the worker\): (\d+) of (\d+) answered, largest round trip ([\d.?]+) ms", text)
        slow = re.search(r"measured moves over 1 ms \(GARP or UPDATE\): (\d+) of (\d+); with a vCPU stall overlapping \(RARP -> the later of the two\): (\d+)", text)
        by_cpu = re.search(r"slow moves by the vCPU\(s\) whose stall overlapped them: (.*)", text)
        print(f"| {label} | {load} | " + " | ".join(cells) + f" | {f.group(1) + ' ms' if f else '-'} | "
              + (f"{fwd.group(1)} / {fwd.group(2)}, {fwd.group(3)} ms" if fwd else "-") + " | "
              + (f"{sus.group(1)} ({sus.group(2)})" if sus else "-") + f" | {wait.group(1) + ' us' if wait else '-'} | "
              + (f"{slow.group(1)} of {slow.group(2)} ({slow.group(3)}; {by_cpu.group(1) if by_cpu else '?'})" if slow else "-") + " |")
    print("(ms: p50 / p99 / max; goal RARP -> GARP and -> UPDATE p50 and p99 <= 1 ms, -> BIRD's RIB <= 50 ms)")


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "table":
        table(sys.argv[2:])
        return 0
    n = int(os.environ.get("MOBILITY_MOVES", "100"))
    count = int(os.environ.get("MOBILITY_FAILOVER", "10000"))
    out = os.environ.get("MOBILITY_OUT", "/tmp/isthmus-mobility-bench")
    os.makedirs(out, exist_ok=True)
    warm = int(os.environ.get("MOBILITY_WARMUP", "10"))
    lines = latency(n, warm, out) if n > 0 else []
    if count > 0:
        lines += failover(count, out)
    for line in lines:
        print(line)


if __name__ == "__main__":
    sys.exit(main())
