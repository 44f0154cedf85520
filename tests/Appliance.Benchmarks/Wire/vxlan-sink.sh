#!/usr/bin/env bash
# The wire benchmark's VXLAN sink (wire-bench.sh, fwd with --sink drop): on the underlay switch's port facing the
# forwarder (ist-ul ul-app), an nftables netdev ingress chain counts and drops the benchmark's VXLAN datagrams as
# they arrive, before the underlay bridge and the far VTEP. Without it the receiving kernel VTEP (ist-ul's bridge,
# ist-vtep1's vxlan decapsulation, its bridge, the VM's veth) ran on the forwarder's CPU1 inside its transmit, for
# the appliance and the kernel alike, and bounded both at ~100-125k pps (docs/benchmarks.md "Session 7, quiet re-run").
#
#   vxlan-sink.sh add NS DEV VNI INNER_DST_MAC   install the sink on DEV in namespace NS
#   vxlan-sink.sh count NS                       datagrams counted (and dropped) so far
#   vxlan-sink.sh del NS                         remove it
#
# Counted (and dropped) only when well formed, field by field from the outer UDP header (@th) on: UDP to 4789, the
# VXLAN word with the I flag alone and its reserved bits clear (0x08000000), the VNI with its reserved byte clear,
# the inner Ethernet frame to INNER_DST_MAC carrying IPv4 (0x0800) with a 20-byte header (0x45), UDP, to port 9 (the
# generator's frame). Anything else (ARP, another VNI, bad flags, another inner frame) passes on to the bridge.
set -euo pipefail

TABLE=istvxsink

die() { printf 'vxlan-sink: %s\n' "$*" >&2; exit 2; }

case ${1:-} in
    add)
        (($# == 5)) || die "usage: add NS DEV VNI INNER_DST_MAC"
        ns=$2 dev=$3 vni=$4 mac=$5
        [[ $vni =~ ^[0-9]+$ ]] && ((vni < 1 << 24)) || die "VNI $vni is not 0..16777215"
        [[ $mac =~ ^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$ ]] || die "MAC $mac is not aa:bb:cc:dd:ee:ff"
        vniword=$(printf '0x%08x' $((vni << 8)))
        macword=0x${mac//:/}
        ip netns exec "$ns" nft -f - <<NFT
table netdev $TABLE {
    counter delivered { }
    chain in {
        type filter hook ingress device "$dev" priority 0; policy accept;
        udp dport 4789 @th,64,32 0x08000000 @th,96,32 $vniword @th,128,48 $macword @th,224,16 0x0800 @th,240,8 0x45 @th,312,8 17 @th,416,16 9 counter name "delivered" drop
    }
}
NFT
        ;;
    count)
        (($# == 2)) || die "usage: count NS"
        ip netns exec "$2" nft list counter netdev "$TABLE" delivered | awk '$1 == "packets" { print $2; f = 1 } END { if (!f) exit 1 }'
        ;;
    del)
        (($# == 2)) || die "usage: del NS"
        ip netns exec "$2" nft delete table netdev "$TABLE"
        ;;
    *) die "usage: add NS DEV VNI INNER_DST_MAC | count NS | del NS" ;;
esac
