#!/usr/bin/python3
"""Backend for lb-bench.sh: accepts connections on ADDR:80 and answers each at once with a tiny HTTP
response naming itself (so the appliance's HTTP health check passes), then closes. Epoll, one thread."""
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
    for _ in sel.select():
        for _ in range(64):
            try:
                c, _ = ls.accept()
            except BlockingIOError:
                break
            try:
                c.send(reply)
            except OSError:
                pass
            c.close()
