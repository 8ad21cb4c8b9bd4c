"""`python -m loadtest.sink PORT [DELAY_MS]`: a webhook receiver that answers 204 to every
POST, over HTTP/1.1 keep-alive, for delivery benchmarks. It reads each body, keeps nothing,
and answers after DELAY_MS (0 unless given), as a receiver that does some work before it
acknowledges; each connection has a thread of its own, so waits overlap."""

from __future__ import annotations

import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

delay_ms_max = 10_000


class _Sink(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    delay_seconds = 0.0

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", "0")))
        if self.delay_seconds:
            time.sleep(self.delay_seconds)
        self.send_response(204)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the stdlib's name.
        return


def main() -> None:
    delay_ms = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    if not 0 <= delay_ms <= delay_ms_max:
        raise SystemExit(f"DELAY_MS must be 0 to {delay_ms_max}")
    _Sink.delay_seconds = delay_ms / 1000
    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), _Sink).serve_forever()


if __name__ == "__main__":
    main()
