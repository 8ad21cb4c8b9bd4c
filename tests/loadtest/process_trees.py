"""Process trees for the /proc tests (`loadtest.cpu`, `loadtest.isolation`): a Python script
in a session of its own, started and waited for until it says it is ready, then killed with
every process it started, whatever the test did."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def process_tree(script: str, *, ready: str) -> Iterator[subprocess.Popen[str]]:
    """Run `script` with piped standard input and output until it prints the line `ready`;
    the whole session is killed when the block ends."""
    with subprocess.Popen(
        [sys.executable, "-c", script],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    ) as parent:
        try:
            assert parent.stdout is not None
            assert parent.stdout.readline().strip() == ready
            yield parent
        finally:
            os.killpg(parent.pid, signal.SIGKILL)  # The parent and its children together.
