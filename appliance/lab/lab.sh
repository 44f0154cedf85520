#!/usr/bin/env bash
# Isthmus lab: a network-namespace topology on this machine with the appliance between real peers.
#
#   sudo appliance/lab/lab.sh up            build, start, print what to try, tear down on Ctrl-C
#   sudo appliance/lab/lab.sh up --detach   return once healthy (pids and logs in /run/isthmus-lab/)
#   sudo appliance/lab/lab.sh down          tear everything down (idempotent; --force even while in use)
#   sudo appliance/lab/lab.sh status        what is up
#   sudo appliance/lab/lab.sh prereqs       install missing apt packages only
#   sudo appliance/lab/lab.sh backend stop|start N   stop or (re)start the HTTP server of ist-webN (LB tests)
#
# Options for up: --detach, --no-build (use existing Release binaries), --no-appliance (namespaces
# only), --kernel-bridge (no appliance: the kernel bridges VLAN<->VXLAN in its place, a reference),
# --config FILE (default appliance/lab/lab-config-l3.json: the L2 lab plus gateway, firewall and NAT;
# appliance/lab/lab-config.json is the L2-only config).
# Every name the lab creates starts with "ist-"; `down` removes exactly those names.
set -euo pipefail

LAB_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$LAB_DIR/../.." && pwd)"
RUN_DIR=/run/isthmus-lab
API=http://127.0.0.1:8088
HOST_DLL="$REPO/appliance/Appliance.Host/bin/Release/net10.0/Appliance.Host.dll"
PG_DLL="$REPO/appliance/Appliance.PortGroup/bin/Release/net10.0/Appliance.PortGroup.dll"
# Namespaces in teardown order (leaves first does not matter: deleting a namespace deletes its veths).
NAMESPACES=(ist-h10 ist-h20 ist-t10 ist-t20 ist-vm10 ist-vm20 ist-vm10b ist-hv ist-vtep1 ist-vtep2 ist-out ist-web1 ist-web2 ist-web3 ist-app ist-ul ist-bird ist-frr)
SCAPY_PY=/usr/bin/python3
# One lab per machine. Whoever uses it (a foreground `up`, tests/run.sh, the integration fixture) holds
# this lock; ISTHMUS_LAB_LOCKED=1 says "my parent holds it" and skips locking here.
LOCK=/run/isthmus-lab.lock

log() { printf '[lab] %s\n' "$*" >&2; }
die() { printf '[lab] ERROR: %s\n' "$*" >&2; exit 1; }

take_lock() { # take_lock WAIT_SECONDS: fails if another lab user holds the lock that long
    [[ ${ISTHMUS_LAB_LOCKED:-} == 1 ]] && return 0
    exec 9>"$LOCK"
    flock -w "$1" 9
}

need_root() { [[ $(id -u) -eq 0 ]] || die "must be run as root (sudo $0 $*)"; }

# ---------------------------------------------------------------- prerequisites
# command-or-check -> Debian package
install_prereqs() {
    local missing=()
    command -v ip >/dev/null || missing+=(iproute2)
    command -v bridge >/dev/null || missing+=(iproute2)
    command -v iperf3 >/dev/null || missing+=(iperf3)
    command -v tcpdump >/dev/null || missing+=(tcpdump)
    command -v tshark >/dev/null || missing+=(tshark)
    command -v ethtool >/dev/null || missing+=(ethtool)
    command -v trafgen >/dev/null || missing+=(netsniff-ng)
    command -v nft >/dev/null || missing+=(nftables)
    command -v bird >/dev/null || missing+=(bird2)       # the BGP interop test's peer
    command -v vtysh >/dev/null || missing+=(frr)         # the FRR BGP interop test's peer
    command -v curl >/dev/null || missing+=(curl)
    command -v ping >/dev/null || missing+=(iputils-ping)
    command -v sysctl >/dev/null || missing+=(procps)
    command -v setsid >/dev/null || missing+=(util-linux)
    command -v flock >/dev/null || missing+=(util-linux)
    if [[ ! -x $SCAPY_PY ]] || ! "$SCAPY_PY" -c 'import scapy.all' >/dev/null 2>&1; then
        missing+=(python3-scapy)
    fi
    if ((${#missing[@]})); then
        # shellcheck disable=SC2207
        missing=($(printf '%s\n' "${missing[@]}" | sort -u))
        log "installing missing packages: ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections 2>/dev/null || true
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
    command -v dotnet >/dev/null || die "dotnet (SDK 10) is not on PATH"
}

build() {
    log "building Appliance.Host and Appliance.PortGroup (Release)"
    local p
    for p in appliance/Appliance.Host/Appliance.Host.csproj appliance/Appliance.PortGroup/Appliance.PortGroup.csproj; do
        [[ -f $REPO/$p ]] || die "$p does not exist yet"
        dotnet build "$REPO/$p" -c Release -nologo -v q -clp:ErrorsOnly >&2 || die "build of $p failed"
    done
}

# ---------------------------------------------------------------- topology helpers
nsx() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

mkns() {
    ip netns add "$1"
    nsx "$1" ip link set lo up
    # No IPv6 anywhere in the lab: router solicitations and MLD reports are noise for the flood tests.
    nsx "$1" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
}

# veth NS_A IF_A NS_B IF_B [mtu]: a veth pair created directly in its namespaces, both ends up.
veth() {
    local a=$1 ia=$2 b=$3 ib=$4 mtu=${5:-1500}
    ip link add "$ia" netns "$a" mtu "$mtu" type veth peer name "$ib" netns "$b" mtu "$mtu"
    nsx "$a" sysctl -qw "net.ipv6.conf.$ia.disable_ipv6=1"
    nsx "$b" sysctl -qw "net.ipv6.conf.$ib.disable_ipv6=1"
    nsx "$a" ip link set "$ia" up
    nsx "$b" ip link set "$ib" up
}

# kernel VTEP: vtep_vni NS UL_IF LOCAL VNI VM_NS VM_ADDR
vtep_vni() {
    local ns=$1 ul=$2 local_ip=$3 vni=$4 vm=$5 addr=$6
    nsx "$ns" ip link add "vx$vni" type vxlan id "$vni" dstport 4789 local "$local_ip" remote 192.0.2.1 dev "$ul"
    nsx "$ns" ip link add "br$vni" type bridge
    nsx "$ns" ip link set "vx$vni" master "br$vni"
    veth "$ns" "p$vni" "$vm" eth0 1450
    nsx "$ns" ip link set "p$vni" master "br$vni"
    nsx "$ns" ip link set "vx$vni" up
    nsx "$ns" ip link set "br$vni" up
    nsx "$vm" ip addr add "$addr" dev eth0
    # Checksum trap (FIELD-NOTES): behind a kernel VTEP the inner L4 checksum stays partial, and the
    # appliance's UDP socket cannot see that. A VM behind a real hypervisor would fill it in.
    nsx "$vm" ethtool -K eth0 tx off >/dev/null
}

addr_host() { # addr_host NS ADDR: a plain host with eth0
    nsx "$1" ip addr add "$2" dev eth0
}

topology() {
    log "building namespaces"
    local ns
    for ns in "${NAMESPACES[@]}"; do mkns "$ns"; done

    # Underlay switch.
    nsx ist-ul ip link add br0 type bridge
    nsx ist-ul ip link set br0 up
    veth ist-ul ul-app ist-app und0
    veth ist-ul ul-vtep1 ist-vtep1 ul0
    veth ist-ul ul-vtep2 ist-vtep2 ul0
    for ns in ul-app ul-vtep1 ul-vtep2; do nsx ist-ul ip link set "$ns" master br0; done
    nsx ist-app ip addr add 192.0.2.1/24 dev und0
    # A wire carries datagrams, not GSO trains: the appliance's UDP GSO transmit (dataPlane.vxlanTransmit "udpGso") is cut
    # into datagrams at und0, as a NIC without USO would need (veth would pass the train to ul-app whole).
    nsx ist-app ethtool -K und0 tx-udp-segmentation off >/dev/null
    nsx ist-vtep1 ip addr add 192.0.2.2/24 dev ul0
    nsx ist-vtep2 ip addr add 192.0.2.3/24 dev ul0

    # Kernel VTEPs with VMs behind them.
    vtep_vni ist-vtep1 ul0 192.0.2.2 5010 ist-vm10 10.10.0.11/24
    vtep_vni ist-vtep1 ul0 192.0.2.2 5020 ist-vm20 10.20.0.11/24
    vtep_vni ist-vtep2 ul0 192.0.2.3 5010 ist-vm10b 10.10.0.13/24

    # Access ports and the trunk (switch ports: up, no addresses).
    veth ist-app acc10 ist-h10 eth0
    veth ist-app acc20 ist-h20 eth0
    veth ist-app trunk0 ist-hv hvtrunk
    veth ist-hv hv-t10 ist-t10 eth0
    veth ist-hv hv-t20 ist-t20 eth0
    addr_host ist-h10 10.10.0.10/24
    addr_host ist-h20 10.20.0.10/24
    addr_host ist-t10 10.10.0.12/24
    addr_host ist-t20 10.20.0.12/24

    # Upstream (issue 3): ist-out is "the outside" (RFC 5737 203.0.113.0/24) behind the access port
    # up0, the appliance's gateway 203.0.113.1 in domain bd-up. The outside knows the tenant's prefixes
    # are behind the appliance (an upstream router would); it needs them only to probe the policy
    # outside -> inside directly, since everything inside -> outside is SNATed to 203.0.113.1.
    veth ist-app up0 ist-out eth0
    addr_host ist-out 203.0.113.10/24
    nsx ist-out ip route add 10.0.0.0/8 via 203.0.113.1
    # Hosts and VMs route through the appliance's gateway addresses (10.x.0.1). Without an L3 config
    # (lab-config.json, --kernel-bridge) nobody answers there, which changes nothing for L2 traffic.
    # Load balancer (issue 5): three HTTP backends ist-web1..3 (10.30.0.11-13) on a kernel bridge br-web
    # inside ist-app, which stands in for the backends' switch. The appliance's access port web0 joins it
    # (domain bd-web, gateway 10.30.0.1: the backends' default route, so DNAT-only replies come back), and
    # ist-app's own kernel has 10.30.0.2 on br-web: the health checks run in the data plane's namespace
    # and reach the backends from there. The VIPs 203.0.113.100 (full NAT) and .101 (DNAT-only) live on bd-up.
    nsx ist-app ip link add br-web type bridge
    veth ist-app web0 ist-app web0-br
    nsx ist-app ip link set web0-br master br-web
    for n in 1 2 3; do
        veth ist-app "wb$n" "ist-web$n" eth0
        nsx ist-app ip link set "wb$n" master br-web
        addr_host "ist-web$n" "10.30.0.1$n/24"
        nsx "ist-web$n" ip route add default via 10.30.0.1
    done
    nsx ist-app ip addr add 10.30.0.2/24 dev br-web
    nsx ist-app ip link set br-web up
    for ns in ist-h10 ist-t10 ist-vm10 ist-vm10b; do nsx "$ns" ip route add default via 10.10.0.1; done
    for ns in ist-h20 ist-t20 ist-vm20; do nsx "$ns" ip route add default via 10.20.0.1; done
    # ISTHMUS_LAB_PEER_GSO=off: the access and trunk hosts segment TCP themselves. With it on (the
    # default, like a real neighbour), their veths hand the appliance's AF_PACKET sockets GSO frames of
    # up to 64 KB, which the appliance must segment (PACKET_VNET_HDR) or drop.
    if [[ ${ISTHMUS_LAB_PEER_GSO:-on} == off ]]; then
        for ns in ist-h10 ist-h20 ist-t10 ist-t20 ist-out; do nsx "$ns" ethtool -K eth0 tso off gso off >/dev/null; done
    fi
}

# BGP peers of the appliance's speaker (issue 6): BIRD 2 in ist-bird (AS 65020, 10.255.0.2) and FRR in
# ist-frr (AS 65030, 10.255.0.6), each on a /30 veth to ist-app (10.255.0.1 and .5), where the speaker's
# sockets live. They receive the /32s of workloads that arrive at this site (lab-config-l3.json "bgp").
bgp_topology() {
    veth ist-app bgp-bird ist-bird eth0
    nsx ist-app ip addr add 10.255.0.1/30 dev bgp-bird
    addr_host ist-bird 10.255.0.2/30
    veth ist-app bgp-frr ist-frr eth0
    nsx ist-app ip addr add 10.255.0.5/30 dev bgp-frr
    addr_host ist-frr 10.255.0.6/30
}

start_bird() {
    cat >"$RUN_DIR/bird.conf" <<'CONF'
router id 10.255.0.2;
# Millisecond timestamps on every route change: tests/Appliance.Benchmarks/Mobility reads them.
log "/run/isthmus-lab/bird.log" all;
timeformat log "%F %T.%6f";
debug protocols { states, routes };
protocol device { }
protocol bgp isthmus {
  local 10.255.0.2 as 65020;
  neighbor 10.255.0.1 as 65010;
  passive on;
  hold time 9;
  ipv4 { import all; export none; };
  ipv6 { import all; export none; };
}
CONF
    log "starting BIRD in ist-bird (birdc -s $RUN_DIR/bird.ctl show route all)"
    start_bg bird ip netns exec ist-bird bird -f -c "$RUN_DIR/bird.conf" -s "$RUN_DIR/bird.ctl"
}

start_frr() {
    local dir=$RUN_DIR/frr
    mkdir -p "$dir"
    echo "hostname ist-zebra" >"$dir/zebra.conf"
    cat >"$dir/bgpd.conf" <<'CONF'
frr defaults traditional
hostname ist-bgpd
router bgp 65030
 bgp router-id 10.255.0.6
 no bgp ebgp-requires-policy
 neighbor 10.255.0.5 remote-as 65010
 neighbor 10.255.0.5 passive
 neighbor 10.255.0.5 timers 2 6
CONF
    # The daemons drop to the frr user (FIELD-NOTES): it must own the directory.
    chown -R frr:frr "$dir"
    chmod 0755 "$dir"
    log "starting FRR in ist-frr (vtysh --vty_socket $dir -c 'show ip bgp')"
    start_bg zebra ip netns exec ist-frr /usr/lib/frr/zebra -f "$dir/zebra.conf" -i "$dir/zebra.pid" -z "$dir/zserv.api" --vty_socket "$dir"
    local i
    for i in $(seq 40); do [[ -S $dir/zserv.api ]] && break; sleep 0.25; done
    start_bg bgpd ip netns exec ist-frr /usr/lib/frr/bgpd -f "$dir/bgpd.conf" -i "$dir/bgpd.pid" -z "$dir/zserv.api" --vty_socket "$dir"
}

# Reference mode (--kernel-bridge): the Linux kernel does the appliance's VXLAN<->access job in ist-app
# (bridge + vxlan devices with head-end replication). No appliance, no API, and no trunk: this kernel
# has neither 802.1Q nor bridge VLAN filtering. It checks the lab and the tests' tooling, and it is the
# kernel baseline for benchmarks.
kernel_bridge() {
    log "kernel reference mode: Linux bridges + vxlan in ist-app (trunk not bridged)"
    local a=ist-app vni vtep
    for vni in 5010 5020; do
        nsx $a ip link add "vx$vni" type vxlan id "$vni" dstport 4789 local 192.0.2.1 dev und0
        nsx $a ip link add "br$vni" type bridge
        nsx $a ip link set "vx$vni" master "br$vni"
        nsx $a ip link set "acc${vni:2:2}" master "br$vni"
        nsx $a ip link set "vx$vni" up
        nsx $a ip link set "br$vni" up
    done
    for vtep in 192.0.2.2 192.0.2.3; do nsx $a bridge fdb append 00:00:00:00:00:00 dev vx5010 dst "$vtep"; done
    nsx $a bridge fdb append 00:00:00:00:00:00 dev vx5020 dst 192.0.2.2
}

# ---------------------------------------------------------------- processes
start_bg() { # start_bg NAME CMD...: detached from our session, output to a log, pid to a file
    local name=$1; shift
    setsid "$@" </dev/null >"$RUN_DIR/$name.log" 2>&1 9>&- &
    echo $! >"$RUN_DIR/$name.pid"
}

alive() { [[ -f $RUN_DIR/$1.pid ]] && kill -0 "$(cat "$RUN_DIR/$1.pid")" 2>/dev/null; }

stop_pidfile() {
    local f=$RUN_DIR/$1.pid pid i
    [[ -f $f ]] || return 0
    pid=$(cat "$f")
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for i in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$f"
}

start_portgroup() {
    log "starting PortGroup in ist-hv"
    start_bg portgroup ip netns exec ist-hv dotnet "$PG_DLL" --trunk hvtrunk --access hv-t10:10 --access hv-t20:20
}

# The LB backends' HTTP servers (port 80, body "ist-webN"): started once the appliance routes, because
# python's http.server resolves its own name at start and that lookup must fail fast (route.NoRoute).
start_backend() {
    local n=$1
    mkdir -p "$RUN_DIR/web$n"
    echo "ist-web$n" >"$RUN_DIR/web$n/index.html"
    start_bg "web$n" ip netns exec "ist-web$n" "$SCAPY_PY" -m http.server 80 --bind "10.30.0.1$n" --directory "$RUN_DIR/web$n"
}

backend() { # backend stop|start N
    [[ ${2:-} =~ ^[123]$ ]] || die "usage: $0 backend stop|start 1|2|3"
    case $1 in
        stop) stop_pidfile "web$2" ;;
        start) stop_pidfile "web$2"; start_backend "$2" ;;
        *) die "usage: $0 backend stop|start 1|2|3" ;;
    esac
}

start_appliance() {
    local config=$1
    if curl -s -o /dev/null --max-time 1 "$API/api/v1/health"; then
        die "something already answers on $API (another lab or appliance?)"
    fi
    # No default password: first boot creates the admin from these files (fresh store every lab).
    (umask 077
     [[ -s $RUN_DIR/admin-password ]] || head -c 18 /dev/urandom | base64 | tr -d '/+=' >"$RUN_DIR/admin-password"
     [[ -s $RUN_DIR/admin-token ]] || echo "ist_$(head -c 32 /dev/urandom | base64 | tr -d '/+=')" >"$RUN_DIR/admin-token")
    log "starting the appliance (config $config, store $RUN_DIR/config.db, API $API)"
    start_bg appliance dotnet "$HOST_DLL" run --config "$config" --api "$API" --store "$RUN_DIR/config.db" \
        --admin-password-file "$RUN_DIR/admin-password" --admin-token-file "$RUN_DIR/admin-token" --log-dir "$RUN_DIR/logs"
    local i
    for i in $(seq 120); do
        if curl -sf -o /dev/null --max-time 1 "$API/api/v1/health"; then
            log "appliance healthy after ~$((i / 4))s"
            return 0
        fi
        alive appliance || { tail -n 40 "$RUN_DIR/appliance.log" >&2; die "the appliance exited during start-up"; }
        sleep 0.25
    done
    tail -n 40 "$RUN_DIR/appliance.log" >&2
    die "the appliance did not report healthy within 30s"
}

# ---------------------------------------------------------------- commands
down() {
    local ns pid
    if [[ ${1:-} != --force ]] && ! take_lock 5; then
        log "the lab is in use by another run (lock $LOCK); not tearing it down (use: down --force)"
        return 0
    fi
    stop_pidfile appliance
    stop_pidfile portgroup
    for n in 1 2 3; do stop_pidfile "web$n"; done
    stop_pidfile bird
    stop_pidfile bgpd
    stop_pidfile zebra
    for ns in "${NAMESPACES[@]}"; do
        if ip netns list | awk '{print $1}' | grep -qx -- "$ns"; then
            # Anything still running inside (test servers, captures) would keep the namespace alive.
            for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null || true; done
            ip netns del "$ns" 2>/dev/null || true
        fi
    done
    rm -rf "$RUN_DIR"
    return 0
}

print_try() {
    cat <<EOF

Credentials (made at first boot): user admin, password $(cat "$RUN_DIR/admin-password" 2>/dev/null)
  API token in $RUN_DIR/admin-token:   export ISTHMUS_TOKEN=\$(cat $RUN_DIR/admin-token)
EOF
    cat <<'EOF'

Isthmus lab is up.  bd10 = acc10 + VLAN 10 (trunk0) + VNI 5010;  bd20 = acc20 + VLAN 20 + VNI 5020.

  VXLAN VM  (ist-vm10, behind kernel VTEP 192.0.2.2) 10.10.0.11
  VXLAN VM  (ist-vm10b, behind kernel VTEP 192.0.2.3) 10.10.0.13
  VXLAN VM  (ist-vm20, VNI 5020)                      10.20.0.11
  access    (ist-h10 / ist-h20)                       10.10.0.10 / 10.20.0.10
  trunk     (ist-t10 / ist-t20, tagged via ist-hv)    10.10.0.12 / 10.20.0.12
  outside   (ist-out, access port up0, domain bd-up)  203.0.113.10
  LB backends (ist-web1..3, bd-web via web0)         10.30.0.11-13 (HTTP :80, weights 2:1:1)
  gateways (lab-config-l3.json): 10.10.0.1, 10.20.0.1, 203.0.113.1; SNAT inside -> outside to
  203.0.113.1; port forward 203.0.113.1:8080 -> 10.10.0.11:80
  load balancer: VIP 203.0.113.100:80 (full NAT, Maglev) and 203.0.113.101:80 (DNAT-only, WRR)
  -> ist-web1..3, HTTP health checks every 500 ms (rise 2, fall 2)

Try:
  ip netns exec ist-vm10 ping -c3 10.10.0.10             # VXLAN VM -> access host
  ip netns exec ist-t10  ping -c3 10.10.0.11             # VLAN 10 trunk host -> VXLAN VM
  ip netns exec ist-vm20 ping -c3 10.20.0.12             # VNI 5020 -> VLAN 20 trunk host
  ip netns exec ist-h10  /usr/bin/python3 -m http.server 8000 --bind 10.10.0.10 &
  ip netns exec ist-vm10 curl -o /dev/null -w '%{size_download} bytes\n' http://10.10.0.10:8000/
  ip netns exec ist-h10  ping -c3 203.0.113.10          # routed + SNAT: ist-out sees 203.0.113.1
  ip netns exec ist-out  tcpdump -ni eth0 -c 6 icmp      # (run first, in another terminal)
  ip netns exec ist-vm10 /usr/bin/python3 -m http.server 80 --bind 10.10.0.11 &
  ip netns exec ist-out  curl -s -o /dev/null -w '%{http_code}\n' http://203.0.113.1:8080/   # port forward
  ip netns exec ist-out  curl -m 2 http://10.10.0.11:22/   # rejected by rule 201: connection refused (RST)
  for i in $(seq 8); do ip netns exec ist-out curl -s http://203.0.113.100/; done   # LB: ist-web1..3
  ip netns exec ist-web1 tcpdump -ni eth0 -c 4 tcp port 80   # full NAT: from 10.30.0.1; .101 (DNAT-only): from 203.0.113.10
  curl -s -H "Authorization: Bearer $ISTHMUS_TOKEN" http://127.0.0.1:8088/api/v1/lb/virtual-servers
  appliance/lab/lab.sh backend stop 2; sleep 2; curl -s -H "Authorization: Bearer $ISTHMUS_TOKEN" http://127.0.0.1:8088/api/v1/lb/history
  ip netns exec ist-ul   tshark -i br0 -c 6 -f 'udp port 4789'      # VXLAN on the underlay
  ip netns exec ist-hv   tcpdump -eni hvtrunk -c 6                  # 802.1Q tags on the trunk
  curl -s -H "Authorization: Bearer $ISTHMUS_TOKEN" http://127.0.0.1:8088/api/v1/counters
  curl -s -u admin:$(cat /run/isthmus-lab/admin-password) http://127.0.0.1:8088/api/v1/bridge-domains
  dotnet appliance/Appliance.Cli/bin/Release/net10.0/isthmusctl.dll show revisions   # the CLI (reads ISTHMUS_TOKEN)
  curl -s -H "Authorization: Bearer $ISTHMUS_TOKEN" -o acc10.pcap 'http://127.0.0.1:8088/api/v1/capture?port=acc10&count=10'
Mobility (issue 6): a workload 10.10.0.99 "vMotions" from the remote site (behind VTEP 192.0.2.2) to acc10:
  ip netns exec ist-vm10 /usr/bin/python3 appliance/lab/vmotion.py garp eth0 00:50:56:aa:00:01 10.10.0.99
  ip netns exec ist-h10  tcpdump -eni eth0 -c 4 arp &                 # the GARP burst for 10.10.0.1
  ip netns exec ist-h10  /usr/bin/python3 appliance/lab/vmotion.py rarp eth0 00:50:56:aa:00:01
  birdc -s /run/isthmus-lab/bird.ctl show route all                   # BIRD (AS 65020): 10.10.0.99/32 with communities
  vtysh --vty_socket /run/isthmus-lab/frr -c 'show ip bgp'            # FRR (AS 65030)
  curl -s -H "Authorization: Bearer $ISTHMUS_TOKEN" http://127.0.0.1:8088/api/v1/mobility/workloads
  curl -s -H "Authorization: Bearer $ISTHMUS_TOKEN" http://127.0.0.1:8088/api/v1/bgp/peers
  ip netns exec ist-vm10 /usr/bin/python3 appliance/lab/vmotion.py rarp eth0 00:50:56:aa:00:01   # move back: withdrawn
Logs: /run/isthmus-lab/appliance.log (JSON: /run/isthmus-lab/logs/), /run/isthmus-lab/portgroup.log, bird.log, bgpd.log
EOF
}

status() {
    local ns any=0
    for ns in "${NAMESPACES[@]}"; do
        if ip netns list | awk '{print $1}' | grep -qx -- "$ns"; then echo "namespace $ns: present"; any=1; fi
    done
    ((any)) || echo "no lab namespaces"
    local p
    for p in portgroup appliance bird zebra bgpd; do
        if alive "$p"; then echo "$p: running (pid $(cat "$RUN_DIR/$p.pid"))"; else echo "$p: not running"; fi
    done
    if curl -sf --max-time 1 "$API/api/v1/health" >/dev/null 2>&1; then echo "api $API: healthy"; else echo "api $API: not answering"; fi
}

up() {
    local detach=0 do_build=1 appliance=1 kernel=0 config="$LAB_DIR/lab-config-l3.json"
    while (($#)); do
        case $1 in
            --detach) detach=1 ;;
            --no-build) do_build=0 ;;
            --no-appliance) appliance=0 ;;
            --kernel-bridge) appliance=0; kernel=1 ;;
            --config) config=$(readlink -f "$2"); shift ;;
            *) die "unknown option for up: $1" ;;
        esac
        shift
    done
    install_prereqs
    take_lock 0 || die "the lab is in use by another run (lock $LOCK held: tests?); wait, or: $0 down --force"
    if ((appliance)); then
        if ((do_build)) || [[ ! -f $HOST_DLL || ! -f $PG_DLL ]]; then build; fi
    fi
    if ip netns list | awk '{print $1}' | grep -q '^ist-'; then
        log "a previous lab is still present: tearing it down first"
        down
    fi
    mkdir -p "$RUN_DIR"
    # From here on, any failure tears the half-built lab down.
    trap 'rc=$?; if ((rc != 0)); then log "failed: tearing down"; down; fi' EXIT
    topology
    bgp_topology
    ((kernel)) && kernel_bridge
    if ((appliance)); then
        start_portgroup
        start_bird
        start_frr
        start_appliance "$config"
        for n in 1 2 3; do start_backend "$n"; done
        alive portgroup || { tail -n 40 "$RUN_DIR/portgroup.log" >&2; die "PortGroup exited"; }
    fi
    trap - EXIT
    if ((detach)); then
        log "up (detached); tear down with: $0 down"
        return 0
    fi
    print_try
    trap 'trap - INT TERM EXIT; echo; log "tearing down"; down; exit 0' INT TERM
    trap 'down' EXIT
    echo "Press Ctrl-C to tear the lab down."
    # Stay in the foreground; if a process dies, say so and tear down.
    while true; do
        if ((appliance)); then
            alive appliance || { tail -n 20 "$RUN_DIR/appliance.log" >&2; log "the appliance exited"; exit 1; }
            alive portgroup || { tail -n 20 "$RUN_DIR/portgroup.log" >&2; log "PortGroup exited"; exit 1; }
        fi
        sleep 1 &
        wait $! || true
    done
}

main() {
    local cmd=${1:-}
    shift || true
    case $cmd in
        up) need_root; up "$@" ;;
        down) need_root; down "$@" ;;
        status) need_root; status ;;
        prereqs) need_root; install_prereqs ;;
        backend) need_root; backend "$@" ;;
        *) echo "usage: $0 up [--detach] [--no-build] [--no-appliance|--kernel-bridge] [--config FILE]  | down [--force] | status | prereqs | backend stop|start N" >&2; exit 2 ;;
    esac
}

main "$@"
