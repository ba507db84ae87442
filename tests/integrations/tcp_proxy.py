"""A TCP proxy on loopback that can be cut and restored: a broker outage for one test,
without touching the machine's shared broker (other tests and runs use it)."""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass, field

from billing.adapters.standin import free_port


@dataclass
class TcpProxy:
    upstream: tuple[str, int]
    port: int = field(default_factory=free_port)
    _listener: socket.socket | None = None
    _live: set[socket.socket] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _hanging: bool = False

    def start(self) -> TcpProxy:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self

    def cut(self) -> None:
        """The broker goes away: no new connections, and every open one is dropped."""
        with self._lock:
            listener, self._listener = self._listener, None
            live, self._live = self._live, set()
        if listener is not None:
            _close(listener)  # shut down first: that wakes the thread blocked in accept()
        for connection in live:
            _close(connection)

    def restore(self) -> None:
        """The broker is back on the same address."""
        if self._hanging:
            self.cut()  # the silent listener goes, with the connections it held
            self._hanging = False
        self.start()

    def hang(self) -> None:
        """The server stops answering without closing anything (a host gone from the
        network, a paused process): open connections are dropped, new ones are accepted
        and then hear nothing, so a client without a short timeout waits."""
        self.cut()
        self._hanging = True
        self.start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut
            if self._hanging:
                with self._lock:
                    self._live.add(client)  # held open, never answered, dropped at restore
                continue
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                _close(client)
                continue
            server.settimeout(None)
            with self._lock:
                if self._listener is not listener:  # cut meanwhile
                    _close(client)
                    _close(server)
                    return
                self._live |= {client, server}
            for source, target in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(source, target), daemon=True).start()

    def _pipe(self, source: socket.socket, target: socket.socket) -> None:
        try:
            while chunk := source.recv(65536):
                target.sendall(chunk)
        except OSError:
            pass
        _close(source)
        _close(target)


def _close(connection: socket.socket) -> None:
    try:
        connection.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    connection.close()
