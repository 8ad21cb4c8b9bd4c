"""The CPU time a server's process tree spends, read from /proc: what a request costs.

The benchmarks run the server, wrk, Postgres, Redis and the ledger on the same two cores,
so requests per second move with whatever else the machine is doing. The server's own CPU
seconds per request move far less, and they say directly how much dearer a transfer is than
the bare endpoint. Linux only, like the benchmarks (they need wrk).
"""

from __future__ import annotations

import os
from pathlib import Path

clock_ticks_per_second = os.sysconf("SC_CLK_TCK")
# A granian server is a handful of processes; a bound keeps a runaway walk finite.
process_tree_size_max = 256


def tree_cpu_seconds(pid: int) -> float:
    """User and system CPU seconds of `pid` and every live descendant, all threads."""
    members = tree_pids(pid)
    if not members:
        raise ProcessLookupError(f"no process {pid}")
    # A process that exited between the walk and its read spent nothing more here.
    return sum(_cpu_seconds(member) or 0.0 for member in members)


def tree_pids(pid: int) -> list[int]:
    """`pid` and every live descendant, parents before their children (none if `pid` is
    gone)."""
    if _stat_fields(pid) is None:
        return []
    found, seen, waiting = [pid], {pid}, _children(pid)
    while waiting and len(seen) < process_tree_size_max:
        child = waiting.pop()
        if child in seen:
            continue
        seen.add(child)
        found.append(child)
        waiting.extend(_children(child))
    return found


def per_request_ms(cpu_seconds: float, requests: int) -> float:
    return 1000 * cpu_seconds / requests if requests else 0.0


def parent_pid(pid: int) -> int | None:
    """The process's parent, or None if it is gone."""
    fields = _stat_fields(pid)
    # ppid is stat's field 4, the 2nd after the name.
    return None if fields is None else int(fields[1])


def _cpu_seconds(pid: int) -> float | None:
    fields = _stat_fields(pid)
    if fields is None:
        return None
    # utime and stime are stat's fields 14 and 15, the 12th and 13th after the name.
    return (int(fields[11]) + int(fields[12])) / clock_ticks_per_second


def _stat_fields(pid: int) -> list[str] | None:
    """/proc/PID/stat's fields after the command name, or None if the process is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name may hold spaces or parentheses: fields are counted after its ")".
    return stat.rpartition(")")[2].split()


def _children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except (FileNotFoundError, ProcessLookupError):
        return found
    for task in tasks:
        try:
            found.extend(int(child) for child in (task / "children").read_text().split())
        except (FileNotFoundError, ProcessLookupError):
            continue
    return found
