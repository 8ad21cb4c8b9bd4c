"""Sampling profiles of a running server during a benchmark, summarised as text.

`record(pid, seconds, output)` runs py-spy against the process and its children (granian's
workers) in the background while the load runs; `summary(output)` reads py-spy's collapsed
stacks and lists where the samples were: the functions most often on top of the stack (self
time) and the ones most often anywhere on it (inclusive time), as shares of all samples.
Sampling, not instrumenting: the server runs at full speed while it is measured.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

sample_rate_hz = 100
rows_shown = 25


@contextlib.contextmanager
def record(pid: int, *, seconds: int, output: Path) -> Iterator[None]:
    """Profile `pid` and its children for `seconds` while the body runs."""
    beside_python = Path(sys.executable).parent / "py-spy"
    py_spy = str(beside_python) if beside_python.exists() else shutil.which("py-spy")
    if py_spy is None:
        raise RuntimeError("py-spy is not installed (it is in the dev dependency group)")
    process = subprocess.Popen(
        [
            py_spy,
            "record",
            "--pid",
            str(pid),
            "--subprocesses",
            "--rate",
            str(sample_rate_hz),
            "--duration",
            str(seconds),
            "--format",
            "raw",
            "--nonblocking",
            "--output",
            str(output),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield
    finally:
        process.wait(timeout=seconds + 60)


def _frame_name(frame: str) -> str:
    """`function (path/to/module.py:123)` as `function (module.py)`."""
    name, _, where = frame.partition(" (")
    path = where.split(":")[0]
    return f"{name} ({path.rsplit('/', 2)[-1] if path else '?'})"


def summary(output: Path) -> str:
    """The top functions by self and by inclusive samples, as text."""
    self_samples: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in output.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_frame_name(frame) for frame in stack.split(";")]
        total += count
        self_samples[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    if total == 0:
        return "no samples"
    lines = [f"{total} samples; self time:"]
    lines += [
        f"  {100 * n / total:5.1f}%  {name}" for name, n in self_samples.most_common(rows_shown)
    ]
    lines.append("inclusive time:")
    lines += [f"  {100 * n / total:5.1f}%  {name}" for name, n in inclusive.most_common(rows_shown)]
    return "\n".join(lines)
