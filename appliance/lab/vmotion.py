#!/usr/bin/python3
"""Simulates what a hypervisor sends for a VM that just arrived on a host (issue 6 lab and tests).

  vmotion.py rarp IFACE MAC [COUNT]       ESXi after vMotion: broadcast RARP "request reverse" from MAC
  vmotion.py garp IFACE MAC IP [COUNT]    a gratuitous ARP request (sender IP = target IP) from MAC

Run it inside a lab namespace: ip netns exec ist-h10 /usr/bin/python3 appliance/lab/vmotion.py rarp eth0 00:50:56:aa:00:01
"""
import sys

from scapy.all import ARP, Ether, sendp

BROADCAST = "ff:ff:ff:ff:ff:ff"


def main(argv):
    if len(argv) < 4 or argv[1] not in ("rarp", "garp"):
        print(__doc__, file=sys.stderr)
        return 2
    kind, iface, mac = argv[1], argv[2], argv[3]
    if kind == "rarp":
        count = int(argv[4]) if len(argv) > 4 else 1
        # RFC 903: hardware type Ethernet, protocol IPv4, opcode 3, sender = target = the station's MAC.
        frame = Ether(src=mac, dst=BROADCAST, type=0x8035) / ARP(op=3, hwsrc=mac, hwdst=mac, psrc="0.0.0.0", pdst="0.0.0.0")
    else:
        ip = argv[4]
        count = int(argv[5]) if len(argv) > 5 else 1
        frame = Ether(src=mac, dst=BROADCAST) / ARP(op=1, hwsrc=mac, psrc=ip, hwdst="00:00:00:00:00:00", pdst=ip)
    sendp(frame, iface=iface, count=count, verbose=False)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
