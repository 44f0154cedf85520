#!/usr/bin/python3
"""New-connection generator for lb-bench.sh: keeps C TCP connects in flight to HOST:PORT for S seconds.
A connect that completes (the three-way handshake through the balancer to a backend) counts, and the
socket is closed at once with a reset (SO_LINGER 0), so neither side keeps TIME_WAIT state and the
next connect can start. Prints: connections, failures, seconds, connections per second."""
import errno, selectors, socket, struct, sys, time

host, port, concurrency, seconds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
linger = struct.pack("ii", 1, 0)
sel = selectors.DefaultSelector()
done = failed = 0


def start():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setblocking(False)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
    rc = s.connect_ex((host, port))
    if rc not in (0, errno.EINPROGRESS):
        s.close()
        return False
    sel.register(s, selectors.EVENT_WRITE, time.monotonic())
    return True


begin = time.monotonic()
end = begin + seconds
for _ in range(concurrency):
    start()
while True:
    now = time.monotonic()
    if now >= end:
        break
    for key, _ in sel.select(timeout=0.05):
        s = key.fileobj
        sel.unregister(s)
        if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
            done += 1
        else:
            failed += 1
        s.close()
        start()
    # A connect stuck for 3 s (a lost SYN) is a failure; replace it.
    for key in list(sel.get_map().values()):
        if now - key.data > 3:
            sel.unregister(key.fileobj)
            key.fileobj.close()
            failed += 1
            start()
elapsed = time.monotonic() - begin
print(f"{done} {failed} {elapsed:.2f} {done / elapsed:.0f}")
