"""The HTTP server: granian running `gateway.app:create_app` on uvloop, for `kovra serve`
and `kovra dev` alike.

It lives apart from the command line so that `kovra dev` can serve without importing the
CLI. Importing it stays cheap and side-effect free: granian loads only when `serve` runs,
and nothing here reaches prometheus-client, which must not load before `serve` has set
PROMETHEUS_MULTIPROC_DIR.
"""

from __future__ import annotations

import os
import tempfile


def serve(*, host: str, port: int, workers: int) -> None:
    """Run granian with uvloop; every worker calls gateway.app:create_app."""
    from granian import Granian  # noqa: PLC0415
    from granian.constants import Interfaces, Loops  # noqa: PLC0415

    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="kovra-metrics-")
    Granian(
        "gateway.app:create_app",
        address=host,
        port=port,
        interface=Interfaces.ASGI,
        workers=workers,
        loop=Loops.uvloop,
        factory=True,
        log_access=False,
    ).serve()
