"""An HTTP proxy between two instances that misbehaves on demand, for the fault rounds.

Every request is forwarded to the upstream server, except that the next FHIR transactions
(POST to the FHIR base) meet the faults queued with `inject`, one each, in order:

    "500"      answer 500 without forwarding (the receiver never saw it)
    "drop"     forward, let the receiver commit, then close the connection unanswered
    "late"     forward, let the receiver commit, answer only after the sender's timeout
    "garbage"  forward, let the receiver commit, answer 200 with a body that is not FHIR

so that every fault but the first leaves the receiver holding what the sender must send again.
"""

import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

FAULTS = ("500", "drop", "late", "garbage")


@dataclass
class FaultProxy:
    upstream: str  # the receiver's root, e.g. http://127.0.0.1:8081
    late_seconds: float = 3.0
    port: int = 0
    pending: deque[str] = field(default_factory=deque)
    injected: list[str] = field(default_factory=list)
    forwarded: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def inject(self, *faults: str) -> None:
        with self._lock:
            self.pending.extend(faults)

    def next_fault(self) -> str | None:
        with self._lock:
            if not self.pending:
                return None
            fault = self.pending.popleft()
            self.injected.append(fault)
            return fault


def _handler(proxy: FaultProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet."""

        def do_GET(self) -> None:
            self._relay(b"")

        def do_PUT(self) -> None:
            self._relay(self._body())

        def do_POST(self) -> None:
            body = self._body()
            fault = proxy.next_fault() if self.path.rstrip("/") == "/fhir" else None
            if fault == "500":
                self._answer(500, b"upstream failure", {"Content-Type": "text/plain"})
                return
            status, content, headers = self._forward("POST", body)
            if fault == "drop":
                self.close_connection = True
                self.connection.close()
                return
            if fault == "late":
                time.sleep(proxy.late_seconds)
            if fault == "garbage":
                status, content, headers = 200, b"\x00<html>not fhir", {"Content-Type": "text/html"}
            self._answer(status, content, headers)

        def _relay(self, body: bytes) -> None:
            status, content, headers = self._forward(self.command, body)
            self._answer(status, content, headers)

        def _body(self) -> bytes:
            return self.rfile.read(int(self.headers.get("Content-Length", "0")))

        def _forward(self, method: str, body: bytes) -> tuple[int, bytes, dict[str, str]]:
            skip = {"host", "content-length", "connection", "transfer-encoding"}
            headers = {k: v for k, v in self.headers.items() if k.lower() not in skip}
            try:
                response = httpx.request(
                    method, proxy.upstream + self.path, content=body, headers=headers, timeout=30
                )
            except httpx.TransportError:
                return 502, b"upstream unreachable", {"Content-Type": "text/plain"}
            with proxy._lock:
                proxy.forwarded += 1
            kept = {
                k: v
                for k, v in response.headers.items()
                if k.lower() not in skip and k.lower() != "content-encoding"
            }
            return response.status_code, response.content, kept

        def _answer(self, status: int, body: bytes, headers: dict[str, str]) -> None:
            try:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):  # the sender gave up (late)
                self.close_connection = True

    return Handler


@contextmanager
def proxying(proxy: FaultProxy) -> Iterator[FaultProxy]:
    server = ThreadingHTTPServer(("127.0.0.1", proxy.port), _handler(proxy))
    server.daemon_threads = True
    proxy.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield proxy
    finally:
        server.shutdown()
        server.server_close()
