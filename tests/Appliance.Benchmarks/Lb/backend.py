#!/usr/bin/python3
"""Backend for lb-bench.sh: accepts connections on ADDR:80; when a connection has something to say (a
request, or the generator's reset), answers with a tiny HTTP response naming itself (so the appliance's
HTTP health check passes) and closes. Epoll, one thread."""
import selectors, socket, sys

addr, name = sys.argv[1], sys.argv[2]
reply = f"HTTP/1.0 200 OK\r\nContent-Length: {len(name)}\r\n\r\n{name}".encode()
ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind((addr, 80))
ls.listen(4096)
ls.setblocking(False)
sel = selectors.DefaultSelector()
sel.register(ls, selectors.EVENT_READ)
while True:
    for key, _ in sel.select():
        if key.fileobj is ls:
            for _ in range(64):
                try:
                    c, _ = ls.accept()
                except BlockingIOError:
                    break
                c.setblocking(False)
                sel.register(c, selectors.EVENT_READ)
            continue
        c = key.fileobj
        sel.unregister(c)
        try:
            if c.recv(4096):
                c.send(reply)
        except OSError:
            pass
        c.close()
