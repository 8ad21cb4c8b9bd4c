"""Give the servers under test cores of their own, and everything else the rest.

In production the gateway's processes run on their own machines, and TigerBeetle, Postgres,
Redis and the load generator on others (SPEC §3). On the benchmarks' one machine they all
share two cores, so a transfer's throughput there is set by the sum of every process's CPU,
and the ratio to the bare endpoint mostly measures the services, not the gateway. With
`isolated` the servers under test (the bare endpoint and the gateway, each its whole process
tree, every thread) run on the first cores of this process's allowed set, and the services,
the benchmark itself and the wrk it starts on the rest: the shape of production on one box.
Both servers get the same cores, so the ratio still compares like with like.

The services' own affinity (Redis and Postgres are the machine's, not the benchmark's) is put
back as it was when the block ends, whatever happened in it. Linux only, like the
benchmarks.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from loadtest.cpu import tree_pids


class IsolationUnavailable(Exception):
    """The machine has too few cores to give servers and the rest cores of their own."""


@dataclass(frozen=True)
class CoreSplit:
    """The cores the servers under test run on, and the cores everything else runs on."""

    server_cores: frozenset[int]
    other_cores: frozenset[int]

    def describe(self) -> str:
        return (
            f"servers on core(s) {_listed(self.server_cores)}, services and load on "
            f"core(s) {_listed(self.other_cores)}"
        )


def split_cores(server_core_count: int) -> CoreSplit:
    """The first `server_core_count` cores this process may use for the servers, the rest
    for everything else; at least one core is left for the rest."""
    allowed = sorted(os.sched_getaffinity(0))
    if not 1 <= server_core_count < len(allowed):
        raise IsolationUnavailable(
            f"isolating {server_core_count} server core(s) needs at least "
            f"{server_core_count + 1} cores; this process may use {len(allowed)}"
        )
    return CoreSplit(
        server_cores=frozenset(allowed[:server_core_count]),
        other_cores=frozenset(allowed[server_core_count:]),
    )


def thread_ids(pids: Iterable[int]) -> list[int]:
    """Every thread of every process in the trees of `pids` (a process's own id is its
    main thread's)."""
    found: list[int] = []
    for root in pids:
        for pid in tree_pids(root):
            try:
                found.extend(int(task.name) for task in Path(f"/proc/{pid}/task").iterdir())
            except (FileNotFoundError, ProcessLookupError):
                continue  # It exited between the walk and this read.
    return found


def pin(thread_id_list: Iterable[int], cores: frozenset[int]) -> None:
    """Each thread onto `cores`; a thread that has exited meanwhile is skipped."""
    for thread_id in thread_id_list:
        try:
            os.sched_setaffinity(thread_id, cores)
        except ProcessLookupError:
            continue


@contextmanager
def isolated(split: CoreSplit, *, servers: Iterable[int], others: Iterable[int]) -> Iterator[None]:
    """Within the block, `servers` (process trees) run on the split's server cores and
    `others` (process trees) and this process, with whatever it starts, on the other cores.
    Every thread touched gets its affinity back when the block ends. Threads and processes
    started later inherit their parent's cores: the servers' new Postgres backends, say, are
    forked by the postmaster, which is pinned with the rest of its tree. Those born within
    the block and still alive at its end (a backend of a connection opened meanwhile) get
    this process's own cores from before the block."""
    servers, others = list(servers), list(others)
    server_threads = thread_ids(servers)
    other_threads = thread_ids(others)
    own = os.sched_getaffinity(0)
    before = {
        thread_id: affinity
        for thread_id in [*server_threads, *other_threads]
        if (affinity := _affinity(thread_id)) is not None
    }
    try:
        pin(server_threads, split.server_cores)
        pin(other_threads, split.other_cores)
        os.sched_setaffinity(0, split.other_cores)
        yield
    finally:
        os.sched_setaffinity(0, own)
        born = [thread for thread in thread_ids([*servers, *others]) if thread not in before]
        pin(born, frozenset(own))
        for thread_id, affinity in before.items():
            pin([thread_id], frozenset(affinity))


def _affinity(thread_id: int) -> set[int] | None:
    try:
        return os.sched_getaffinity(thread_id)
    except ProcessLookupError:
        return None


def _listed(cores: frozenset[int]) -> str:
    return ",".join(str(core) for core in sorted(cores))
