"""A real partner institution over HTTP, for the http partner's tests: a stdlib threading
server on a free loopback port (the shape of tests/gateway/webhooks/receiver.py), which
verifies every order's Standard Webhooks signature with the `standardwebhooks` package and
keys the orders it pays on their `webhook-id`, as a partner is asked to.

Each request takes the next scripted answer: a status with a JSON body, `hang` (hold the
request until `release()` or the test ends), `huge` (a 2xx answer far larger than Kovra
reads) or `redirect` (a 307 to another URL). With the script empty, a correctly signed order
is paid, once per `webhook-id`: `{"partner_reference": "PAY-<n>"}`, the same reference for
every send of an order; a badly signed one is refused `401`. Every answer comes
`delay_seconds` after its request; `in_flight_max` is the most requests it held at once.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

hang = "hang"
huge = "huge"
redirect = "redirect"
hang_seconds_max = 30.0
huge_bytes = 1_000_000


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    verified: bool


Answer = tuple[int, Any] | str


class PartnerServer:
    def __init__(
        self, *, secret: str, answers: list[Answer] | None = None, delay_seconds: float = 0.0
    ) -> None:
        self.webhook = Webhook(secret)
        self.delay_seconds = delay_seconds
        self.in_flight = 0
        self.in_flight_max = 0
        self.answers: deque[Answer] = deque(answers or [])
        self.received: list[Received] = []
        self.paid: dict[str, str] = {}  # webhook-id -> the partner's reference.
        self.lock = threading.Lock()
        self.released = threading.Event()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/orders"

    def _verified(self, headers: dict[str, str], body: bytes) -> bool:
        try:
            self.webhook.verify(body, headers)
        except WebhookVerificationError:
            return False
        return True

    def _answer(self, received: Received) -> tuple[int, bytes, dict[str, str]]:
        with self.lock:
            self.received.append(received)
            scripted = self.answers.popleft() if self.answers else None
            if scripted is None:
                if not received.verified:
                    return 401, b'{"code": "bad_signature"}', {}
                order_id = received.headers["webhook-id"]
                reference = self.paid.setdefault(order_id, f"PAY-{len(self.paid) + 1}")
                return 200, json.dumps({"partner_reference": reference}).encode(), {}
        if scripted == hang:
            self.released.wait(hang_seconds_max)
            return 200, b'{"partner_reference": "LATE"}', {}
        if scripted == huge:
            return 200, b'{"partner_reference": "' + b"x" * huge_bytes + b'"}', {}
        if scripted == redirect:
            return 307, b"", {"location": self.url + "/elsewhere"}
        assert isinstance(scripted, tuple)
        status, body = scripted
        return status, json.dumps(body).encode() if body is not None else b"", {}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                headers = {k.lower(): v for k, v in self.headers.items()}
                with server.lock:
                    server.in_flight += 1
                    server.in_flight_max = max(server.in_flight_max, server.in_flight)
                time.sleep(server.delay_seconds)
                with server.lock:
                    server.in_flight -= 1
                received = Received(
                    path=self.path,
                    headers=headers,
                    body=body,
                    verified=server._verified(headers, body),
                )
                status, answer, extra = server._answer(received)
                self.send_response(status)
                for name, value in extra.items():
                    self.send_header(name, value)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(answer)))
                self.end_headers()
                try:
                    self.wfile.write(answer)
                except (BrokenPipeError, ConnectionResetError):
                    return  # The client stopped reading, as it may.

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                return

        return Handler

    def snapshot(self) -> list[Received]:
        with self.lock:
            return list(self.received)

    def release(self) -> None:
        self.released.set()

    def __enter__(self) -> PartnerServer:
        self.thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()
        self.server.shutdown()
        self.server.server_close()
