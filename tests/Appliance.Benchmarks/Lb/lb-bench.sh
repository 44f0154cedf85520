#!/usr/bin/env bash
# LB benchmark (issue 5): new TCP connections per second through a VIP in the lab, the appliance
# (VIP 203.0.113.100:80, full NAT, Maglev over ist-web1..3 weights 2:1:1, lab-config-l3.json) against
# the Linux kernel doing the same job in the same run: nftables DNAT with jhash load balancing
# (2:1:1) + masquerade, in ist-app (lab.sh up --no-appliance; ist-app's kernel routes up0 <-> br-web).
#
#   sudo tests/Appliance.Benchmarks/Lb/lb-bench.sh [--concurrency "16 64"] [--seconds 5] [--out DIR] [--no-build]
#
# Client: conngen.py in ist-out (203.0.113.10), C connects in flight, each closed with a reset as soon
# as the handshake completes (one new flow per connection; no TIME_WAIT). Backends: backend.py in
# ist-web1..3 (epoll accept, a tiny HTTP answer, close), in place of the lab's http.server.
# Cores: the client runs on CPU0 (taskset); the appliance process on CPU1 (taskset -a), or in kernel
# mode the forwarding softirq of up0 steered to CPU1 (RPS). Backends float. A connection is counted
# when connect() completes, i.e. the SYN-ACK came back through the forwarder; failures are refused or
# lost SYNs (3 s). Runs holding the lab lock; the lab is torn down at the end.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../../.." && pwd)"
LAB="$REPO/appliance/lab/lab.sh"
PY=/usr/bin/python3
CONCURRENCY="16 64"
SECONDS_PER_STEP=5
OUT=/tmp/isthmus-lb-bench
BUILD=1
while (($#)); do
    case $1 in
        --concurrency) CONCURRENCY=$2; shift ;;
        --seconds) SECONDS_PER_STEP=$2; shift ;;
        --out) OUT=$2; shift ;;
        --no-build) BUILD=0 ;;
        -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
    shift
done

log() { printf '[lb-bench] %s\n' "$*" >&2; }
die() { printf '[lb-bench] ERROR: %s\n' "$*" >&2; exit 1; }
nsx() { local ns=$1; shift; ip netns exec "$ns" "$@"; }
[[ $(id -u) -eq 0 ]] || die "run as root"
mkdir -p "$OUT"
RES="$OUT/results.txt"
: >"$RES"

stop_backends() {
    local n
    for n in 1 2 3; do [[ -f $OUT/web$n.pid ]] && kill "$(cat "$OUT/web$n.pid")" 2>/dev/null || true; rm -f "$OUT/web$n.pid"; done
}

LAB_OURS=0
cleanup() {
    local rc=$?
    stop_backends
    ((LAB_OURS)) && { "$LAB" down >/dev/null 2>&1 || true; }
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if ((BUILD)); then
    log "building (Release)"
    dotnet build "$REPO/Appliance.sln" -c Release -v q -nologo >"$OUT/build.log" 2>&1 || { tail -n 30 "$OUT/build.log" >&2; die "build failed"; }
fi

# One lab per machine: hold lab.sh's lock for the whole run (both modes), waiting up to 15 minutes.
exec 9>/run/isthmus-lab.lock
flock -w 900 9 || die "the lab lock stayed held for 15 minutes"
export ISTHMUS_LAB_LOCKED=1
LAB_OURS=1

backends() { # replace the lab's http.server with backend.py in ist-web1..3
    local n
    for n in 1 2 3; do
        "$LAB" backend stop "$n" >/dev/null 2>&1 || true
        nsx "ist-web$n" setsid "$PY" "$HERE/backend.py" "10.30.0.1$n" "ist-web$n" </dev/null >"$OUT/web$n.log" 2>&1 &
        echo $! >"$OUT/web$n.pid"
    done
    for n in 1 2 3; do
        for _ in $(seq 50); do nsx "ist-web$n" ss -Hltn 'sport = :80' | grep -q LISTEN && break; sleep 0.1; done
    done
}

kernel_lb() { # ist-app's kernel as the balancer: routes up0 <-> br-web, DNAT by jhash, masquerade
    nsx ist-app sysctl -qw net.ipv4.ip_forward=1
    nsx ist-app ip addr add 203.0.113.1/24 dev up0
    nsx ist-app ip addr add 203.0.113.100/32 dev up0
    nsx ist-app ip addr add 10.30.0.1/24 dev br-web
    nsx ist-app nft -f - <<'NFT'
table ip istlb {
    chain prerouting {
        type nat hook prerouting priority dstnat; policy accept;
        ip daddr 203.0.113.100 tcp dport 80 dnat to jhash ip saddr . tcp sport mod 4 map { 0 : 10.30.0.11, 1 : 10.30.0.11, 2 : 10.30.0.12, 3 : 10.30.0.13 }
    }
    chain postrouting {
        type nat hook postrouting priority srcnat; policy accept;
        oifname "br-web" masquerade
    }
}
NFT
}

run_mode() {
    local mode=$1 c line
    "$LAB" down >/dev/null 2>&1 || true
    if [[ $mode == appliance ]]; then
        log "mode appliance: lab.sh up --detach --no-build"
        "$LAB" up --detach --no-build >"$OUT/lab-$mode.log" 2>&1 || { tail -n 30 "$OUT/lab-$mode.log" >&2; die "lab.sh up failed"; }
        taskset -a -p 2 "$(cat /run/isthmus-lab/appliance.pid)" >/dev/null
        [[ -f /run/isthmus-lab/portgroup.pid ]] && taskset -a -p 1 "$(cat /run/isthmus-lab/portgroup.pid)" >/dev/null || true
    else
        log "mode kernel: lab.sh up --detach --no-appliance + nftables jhash DNAT in ist-app"
        "$LAB" up --detach --no-appliance >"$OUT/lab-$mode.log" 2>&1 || { tail -n 30 "$OUT/lab-$mode.log" >&2; die "lab.sh up failed"; }
        kernel_lb
        echo 2 | nsx ist-app tee /sys/class/net/up0/queues/rx-0/rps_cpus >/dev/null
        echo 2 | nsx ist-app tee /sys/class/net/web0-br/queues/rx-0/rps_cpus >/dev/null || true
    fi
    backends
    # Warm-up (ARP, JIT, health checks see the new backends), then the steps.
    nsx ist-out taskset -c 0 "$PY" "$HERE/conngen.py" 203.0.113.100 80 8 2 >/dev/null
    if [[ $mode == appliance ]]; then
        for _ in $(seq 40); do
            curl -sf -H "Authorization: Bearer $(cat /run/isthmus-lab/admin-token)" http://127.0.0.1:8088/api/v1/lb/virtual-servers \
                | grep -q '"state":"up"' && break
            sleep 0.25
        done
    fi
    for c in $CONCURRENCY; do
        line=$(nsx ist-out taskset -c 0 "$PY" "$HERE/conngen.py" 203.0.113.100 80 "$c" "$SECONDS_PER_STEP")
        log "$mode concurrency $c: $line (connections failures seconds conn/s)"
        echo "$mode $c $line" >>"$RES"
    done
    if [[ $mode == appliance ]]; then
        curl -s -H "Authorization: Bearer $(cat /run/isthmus-lab/admin-token)" http://127.0.0.1:8088/api/v1/lb/virtual-servers >"$OUT/lb-state.json" || true
        curl -s -H "Authorization: Bearer $(cat /run/isthmus-lab/admin-token)" http://127.0.0.1:8088/api/v1/drops >"$OUT/drops.json" || true
    else
        nsx ist-app nft list ruleset >"$OUT/nft-ruleset.txt"
    fi
    stop_backends
}

log "machine: $(nproc) cores, $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg); commit $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo "${LB_BENCH_COMMIT:-unknown (a snapshot without .git: set LB_BENCH_COMMIT)}")"
run_mode appliance
run_mode kernel
echo
printf '%-10s %11s %12s %9s %8s %10s\n' mode concurrency connections failures seconds conn/s
while read -r mode c done failed secs rate; do
    printf '%-10s %11s %12s %9s %8s %10s\n' "$mode" "$c" "$done" "$failed" "$secs" "$rate"
done <"$RES"
log "raw results in $OUT"
