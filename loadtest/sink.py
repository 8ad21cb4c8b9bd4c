"""`python -m loadtest.sink PORT`: a webhook receiver that answers 204 to every POST, over
HTTP/1.1 keep-alive, for delivery benchmarks. It reads each body and keeps nothing."""

from __future__ import annotations

import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Sink(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", "0")))
        self.send_response(204)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the stdlib's name.
        return


def main() -> None:
    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), _Sink).serve_forever()


if __name__ == "__main__":
    main()
