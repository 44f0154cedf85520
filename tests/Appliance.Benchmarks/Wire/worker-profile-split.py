#!/usr/bin/env python3
"""Splits one thread's perf samples (perf record -g) by what the sample's call chain was doing (session 10).

usage: worker-profile-split.py PERF_DATA TID

The data plane worker's time on its CPU falls into: its own managed code (and libc), the kernel's AF_XDP copy-mode
transmit inside its sendto() kicks (skb allocation, the copy, dev_direct_xmit, veth_xmit and netif_rx), and the
receiver's softirq that runs inside those kicks (dev_direct_xmit's local_bh_enable runs NET_RX for the one frame
it just queued): the softirq round itself, the receiver's ingress (netif_receive_skb, the nftables sink) and the
skb's free with its AF_XDP completion. With UDP GSO transmit (session 11, dataPlane.vxlanTransmit "udpGso") the
kernel's part is the UDP send inside sendmmsg(): building the train's skb (ip_make_skb, the copy), UDP/IP output and the
neighbour, the segmentation in validate_xmit_skb, and veth_xmit + netif_rx per segment; its receiver's softirq runs
once per train when __dev_queue_xmit re-enables bottom halves. Samples taken with interrupts disabled land on the unlock that enables them
(cpu-clock sampling in a guest), so the lock symbols count with the code that holds them.
"""
import collections
import subprocess
import sys

ROUND = {'net_rx_action', 'handle_softirqs', '__napi_poll', 'process_backlog', '_raw_spin_unlock_irq', '_raw_spin_lock_irq',
         '_find_next_bit', '_find_first_bit', 'skb_defer_free_flush', '__local_bh_enable_ip', 'do_softirq.part.0',
         '__list_del_entry_valid_or_report', 'napi_complete_done'}
FREE = ('sock_wfree', 'xsk_destruct_skb', 'skb_release', 'kfree_skb', 'sk_skb_reason_drop', 'kfree', 'kmem_cache_free',
        'xsk_cq_submit', '_raw_spin_unlock_irqrestore', '__memcg_slab_free_hook')


def chains(data, tid):
    out = subprocess.run(['perf', 'script', '-i', data, '--tid', tid, '-F', 'tid,ip,sym,dso'],
                         capture_output=True, text=True, check=True).stdout
    chain = None
    for line in out.splitlines():
        if not line.strip():
            if chain:
                yield chain
            chain = None
        elif not line[0].isspace():
            chain = []
        elif chain is not None:
            parts = line.strip().split(None, 1)
            if len(parts) == 2:
                chain.append(parts[1].split(' (')[0])
    if chain:
        yield chain


def has(chain, *names):
    return any(n in f for f in chain for n in names)


def kind(chain):
    top = chain[0]
    if any(f in ('net_rx_action', 'handle_softirqs') for f in chain):
        if top in ROUND:
            return 'receiver: the softirq round (net_rx_action, backlog lock, napi)'
        if any(top.startswith(n) for n in FREE) or has(chain, 'sock_wfree', 'skb_release', 'kfree_skb'):
            return 'receiver: skb free + its completion (sock_wfree, xsk_destruct_skb)'
        if has(chain, 'nft_', 'nf_hook'):
            return 'receiver: the nftables sink'
        return 'receiver: netif_receive_skb, other'
    if has(chain, '__xsk_generic_xmit', 'xsk_sendmsg', '__sys_sendto'):
        if has(chain, 'veth_xmit', '__dev_forward_skb', 'netif_rx', 'enqueue_to_backlog'):
            return 'AF_XDP TX: veth_xmit + netif_rx'
        if has(chain, '__dev_direct_xmit', 'validate_xmit', 'netif_skb_features'):
            return 'AF_XDP TX: dev_direct_xmit, validate, features'
        if has(chain, 'alloc_skb', 'sock_alloc_send', 'kmem_cache_alloc', 'kmalloc'):
            return 'AF_XDP TX: skb allocation'
        if has(chain, 'memcpy', 'skb_store_bits', 'skb_put', 'skb_copy'):
            return 'AF_XDP TX: the copy into the skb'
        return 'AF_XDP TX: xsk_generic_xmit itself, completion reserve, syscall entry/exit'
    if has(chain, '__sys_sendmmsg', '__sys_sendmsg', 'udp_sendmsg'):
        if has(chain, 'veth_xmit', '__dev_forward_skb', 'netif_rx', 'enqueue_to_backlog'):
            return 'UDP GSO TX: veth_xmit + netif_rx per segment'
        if has(chain, 'skb_segment', '__udp_gso_segment', 'udp4_ufo_fragment', 'skb_gso_segment', 'validate_xmit'):
            return 'UDP GSO TX: segmentation (validate_xmit_skb, skb_segment)'
        if has(chain, 'ip_make_skb', '__ip_append_data', 'alloc_skb', 'sock_alloc_send'):
            return 'UDP GSO TX: the train skb (ip_make_skb, the copy)'
        if has(chain, 'ip_route_output', 'fib_', 'ip_finish_output', 'neigh_', 'ip_output', 'udp_send_skb', '__dev_queue_xmit'):
            return 'UDP GSO TX: route, UDP/IP output, neighbour, dev_queue_xmit'
        return 'UDP GSO TX: udp_sendmsg itself, sendmmsg entry/exit'
    if has(chain, 'do_sys_poll', '__x64_sys_poll'):
        return 'poll()'
    if '[' in top or '@' in top or top.startswith('__vdso') or top.startswith('__libc') or top == '[unknown]':
        return 'the worker: managed code + libc'
    return 'kernel: other (interrupts, other system calls, scheduling)'


def main():
    data, tid = sys.argv[1], sys.argv[2]
    counts = collections.Counter(kind(c) for c in chains(data, tid) if c)
    total = sum(counts.values())
    print(f'samples {total} (thread {tid})')
    for name, n in sorted(counts.items()):
        print(f'{100 * n / total:6.1f} %  {n:6d}  {name}')


if __name__ == '__main__':
    main()
