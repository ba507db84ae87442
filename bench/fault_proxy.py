"""A small HTTP proxy between the service and the Stripe stand-in that misbehaves on cue.

The next request that matches a fault's method and path gets the fault; every other
request is forwarded as it is. It counts what it forwards, so a run can tell how many
PaymentIntents and Refunds the service really asked Stripe for.

Faults:
  hold_then_drop   keep the request until released, then close it unsent (our intent is
                   committed, Stripe never sees the call: kill the worker meanwhile)
  hold_reply       send it to Stripe, keep Stripe's answer until released, then drop it
                   (Stripe acted, the worker never learns: kill the worker meanwhile)
  lose_reply       send it, then close the connection without an answer
  delay_reply      send it, answer after `seconds` (past the service's timeout)
  error500         answer 500 without sending it
  time_out         never send it; close after `seconds` (the service times out first)
"""

from __future__ import annotations

import http.server
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Fault:
    kind: str
    method: str
    path: str  # a prefix of the request path
    seconds: float = 3.0
    reached: threading.Event = field(default_factory=threading.Event)  # the request came
    release: threading.Event = field(default_factory=threading.Event)


@dataclass
class FaultProxy:
    upstream: str
    port: int
    faults: list[Fault] = field(default_factory=list)
    forwarded: Counter[tuple[str, str]] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def inject(self, fault: Fault) -> Fault:
        with self.lock:
            self.faults.append(fault)
        return fault

    def _take(self, method: str, path: str) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if fault.method == method and path.startswith(fault.path):
                    self.faults.remove(fault)
                    return fault
        return None

    def count(self, method: str, path: str) -> int:
        with self.lock:
            return self.forwarded[(method, path)]

    def start(self) -> FaultProxy:
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_args: Any) -> None:
                pass

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                path = self.path.split("?")[0]
                fault = proxy._take(self.command, path)
                if fault is not None:
                    fault.reached.set()
                    if fault.kind == "error500":
                        return self._reply(500, b'{"error": {"type": "api_error"}}')
                    if fault.kind in ("hold_then_drop", "time_out"):
                        fault.release.wait(fault.seconds if fault.kind == "time_out" else 60)
                        return self._drop()
                status, answer = self._upstream(body, path)
                if fault is not None:
                    if fault.kind == "hold_reply":
                        fault.release.wait(60)
                        return self._drop()
                    if fault.kind == "lose_reply":
                        return self._drop()
                    if fault.kind == "delay_reply":
                        time.sleep(fault.seconds)
                self._reply(status, answer)

            def _upstream(self, body: bytes, path: str) -> tuple[int, bytes]:
                with proxy.lock:
                    proxy.forwarded[(self.command, path)] += 1
                headers = {
                    k: v
                    for k, v in self.headers.items()
                    if k.lower() not in ("host", "content-length")
                }
                request = urllib.request.Request(
                    proxy.upstream + self.path,
                    data=body or None,
                    method=self.command,
                    headers=headers,
                )
                try:
                    with urllib.request.urlopen(request, timeout=30) as answer:
                        return answer.status, answer.read()
                except urllib.error.HTTPError as error:
                    return error.code, error.read()

            def _drop(self) -> None:
                self.close_connection = True
                try:
                    self.connection.shutdown(2)
                except OSError:
                    pass

            def _reply(self, status: int, body: bytes) -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            do_GET = do_POST = do_DELETE = _forward

        server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return self
