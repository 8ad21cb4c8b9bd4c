"""A real HTTP receiver for webhook tests: records every request and answers from a script.

It runs a stdlib threading HTTP server on a free loopback port. `answers` is consumed one
per request (a status code, or `hang` to hold the request until `release()`); when it is
empty every request gets `default_status`. Every answer comes `delay_seconds` after the
request, as from a receiver that works before it acknowledges.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType

hang = "hang"
hang_seconds_max = 60.0


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at_monotonic: float


class Receiver:
    def __init__(
        self,
        *,
        answers: list[int | str] | None = None,
        default_status: int = 200,
        delay_seconds: float = 0.0,
    ):
        self.answers: deque[int | str] = deque(answers or [])
        self.default_status = default_status
        self.delay_seconds = delay_seconds
        self.received: list[Received] = []
        self.lock = threading.Lock()
        self.released = threading.Event()
        self.hanging = threading.Event()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                body = self.rfile.read(length)
                with receiver.lock:
                    answer = receiver.answers.popleft() if receiver.answers else None
                    receiver.received.append(
                        Received(
                            path=self.path,
                            headers={k.lower(): v for k, v in self.headers.items()},
                            body=body,
                            at_monotonic=time.monotonic(),
                        )
                    )
                if answer == hang:
                    receiver.hanging.set()
                    receiver.released.wait(hang_seconds_max)
                    answer = 200
                time.sleep(receiver.delay_seconds)
                status = receiver.default_status if answer is None else int(answer)
                self.send_response(status)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                return

        return Handler

    def release(self) -> None:
        self.released.set()

    def bodies(self) -> list[bytes]:
        with self.lock:
            return [r.body for r in self.received]

    def snapshot(self) -> list[Received]:
        with self.lock:
            return list(self.received)

    def wait_for(self, count: int, *, timeout_seconds: float) -> list[Received]:
        """At least `count` requests, or AssertionError after the timeout."""
        deadline = time.monotonic() + timeout_seconds
        while time.monotonic() < deadline:
            received = self.snapshot()
            if len(received) >= count:
                return received
            time.sleep(0.02)
        raise AssertionError(f"{len(self.snapshot())} requests arrived, wanted {count}")

    def __enter__(self) -> Receiver:
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
