"""A booking system's webhook receiver, on loopback: it verifies `Billing-Signature` as
the README shows and records what it got; it can be told to fail, stall or redirect."""

from __future__ import annotations

import http.server
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from billing.adapters.standin import free_port
from billing.domain import signatures


@dataclass
class Received:
    event: dict[str, Any]
    signed: bool
    headers: dict[str, str]
    at: float
    status: int


@dataclass
class Receiver:
    secret: str = ""
    port: int = field(default_factory=free_port)
    received: list[Received] = field(default_factory=list)
    answers: list[int] = field(default_factory=list)  # statuses to give first, then 200
    stall_seconds: float = 0.0  # every request waits this long before it is answered
    stalls: list[float] = field(default_factory=list)  # or only the first few do
    in_flight: dict[str, int] = field(default_factory=dict)
    most_at_once: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/billing-events"

    def start(self) -> Receiver:
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *_args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                event_id = self.headers.get("Billing-Event-Id", "")
                with receiver.lock:
                    now_in = receiver.in_flight.get(event_id, 0) + 1
                    receiver.in_flight[event_id] = now_in
                    receiver.most_at_once[event_id] = max(
                        now_in, receiver.most_at_once.get(event_id, 0)
                    )
                    status = receiver.answers.pop(0) if receiver.answers else 200
                    stall = receiver.stalls.pop(0) if receiver.stalls else receiver.stall_seconds
                try:
                    time.sleep(stall)
                    signed = signatures.verify(
                        receiver.secret,
                        body,
                        self.headers.get(signatures.HEADER, ""),
                        int(time.time()),
                    )
                    with receiver.lock:
                        receiver.received.append(
                            Received(
                                json.loads(body), signed, dict(self.headers), time.time(), status
                            )
                        )
                    self.send_response(status)
                    if 300 <= status < 400:
                        self.send_header("Location", "http://127.0.0.1:1/elsewhere")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                finally:
                    with receiver.lock:
                        receiver.in_flight[event_id] -= 1

        server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self._server = server
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def accepted(self) -> list[dict[str, Any]]:
        """The events it took (signed, and answered 2xx), in the order they came."""
        with self.lock:
            return [r.event for r in self.received if r.signed and r.status < 300]
