"""Running the `kovra` command in a real process, for the tests of its commands: the
caller's environment without any KOVRA_ or TB_ setting of the machine, plus what the test
gives, from the repository root."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

repository = Path(__file__).resolve().parents[2]
kovra = [sys.executable, "-m", "gateway.cli"]
timeout_seconds = 120


def run_kovra(
    arguments: list[str], environment: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("KOVRA_", "TB_"))}
    return subprocess.run(
        [*kovra, *arguments],
        env={**base, **environment, "PYTHONPATH": str(repository)},
        cwd=repository,
        capture_output=True,
        text=True,
        timeout=timeout_seconds,
        check=False,
    )
