"""A TCP relay on 127.0.0.1 that can turn the connections it carries into half-open ones.

    relay = Relay(upstream_port)      # clients connect to 127.0.0.1:relay.port, bytes go both ways
    relay.black_hole()                # the connections open now carry nothing more, either way
    relay.close()

``black_hole`` is what a NAT, a load balancer or a node that dropped a connection does to its two ends:
neither gets a FIN or a RST, their writes succeed, nothing arrives. The relay keeps reading both sockets
(so the senders' buffers never fill) and drops the bytes; connections accepted afterwards are relayed as
before. It is a byte relay: TLS passes through untouched.
"""

from __future__ import annotations

import contextlib
import socket
import threading


class Link:
    """One relayed connection: the client's socket, the upstream socket, and whether it is dead."""

    def __init__(self, client: socket.socket, upstream: socket.socket) -> None:
        self.client, self.upstream = client, upstream
        self.dead = threading.Event()
        self.dropped = 0  # bytes read from either end after the link died, never delivered
        self.ends_closed = 0  # 2: both ends have closed, nothing is open to kill
        self.down = 0  # bytes delivered from upstream to the client

    def close(self) -> None:
        for s in (self.client, self.upstream):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()


class Relay:
    def __init__(self, upstream_port: int) -> None:
        self.upstream = upstream_port
        self.links: list[Link] = []
        self._lock = threading.Lock()
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = int(self.sock.getsockname()[1])
        threading.Thread(target=self._accept, daemon=True, name="relay-accept").start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return  # closed
            try:
                up = socket.create_connection(("127.0.0.1", self.upstream), timeout=5)
                up.settimeout(None)
            except OSError:
                conn.close()
                continue
            link = Link(conn, up)
            with self._lock:
                self.links.append(link)
            for src, dst in ((conn, up), (up, conn)):
                threading.Thread(target=self._pipe, args=(link, src, dst), daemon=True, name="relay-pipe").start()

    @staticmethod
    def _pipe(link: Link, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                if link.dead.is_set():
                    link.dropped += len(data)
                    continue
                dst.sendall(data)
                if src is link.upstream:
                    link.down += len(data)
        except OSError:
            pass
        link.ends_closed += 1
        if not link.dead.is_set():  # an end closed while the link lived: pass the close on
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)

    def black_hole(self) -> int:
        """Silently stop forwarding on every connection open now, both ways, without closing any;
        returns how many connections that made half-open."""
        with self._lock:
            alive = [link for link in self.links if not link.dead.is_set() and link.ends_closed < 2]
            for link in alive:
                link.dead.set()
        return len(alive)

    @property
    def accepted(self) -> int:
        return len(self.links)

    @property
    def dropped(self) -> int:
        """Bytes the relay read on dead links and never delivered."""
        return sum(link.dropped for link in self.links)

    @property
    def down(self) -> int:
        """Bytes delivered from upstream to the clients, over every connection."""
        return sum(link.down for link in self.links)

    def close(self) -> None:
        self.sock.close()
        with self._lock:
            for link in self.links:
                link.close()
