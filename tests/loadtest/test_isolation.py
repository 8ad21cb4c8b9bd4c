"""Isolation pins every thread of the servers' process trees to the server cores, the other
trees and the benchmark itself to the remaining cores, and puts every affinity back when the
block ends, even when it fails (a thread born within the block gets the benchmark's own
cores); a machine without a core to spare is refused by name."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from loadtest.isolation import (
    IsolationUnavailable,
    isolated,
    split_cores,
    thread_ids,
)
from tests.loadtest.process_trees import process_tree

# A parent with a second thread and a child process, all waiting; "ready" once all exist.
# Each line it reads starts one more thread, and it says "spawned" when it has.
threaded_tree = """
import subprocess, sys, threading, time
threading.Thread(target=time.sleep, args=(60,), daemon=True).start()
child = subprocess.Popen(["sleep", "60"])
print("ready", flush=True)
for line in sys.stdin:
    threading.Thread(target=time.sleep, args=(60,), daemon=True).start()
    print("spawned", flush=True)
"""


@contextmanager
def _tree() -> Iterator[int]:
    with process_tree(threaded_tree, ready="ready") as parent:
        yield parent.pid


@contextmanager
def _growing_tree() -> Iterator[tuple[int, Callable[[], None]]]:
    """A tree's pid, and a call that has it start one more thread."""
    with process_tree(threaded_tree, ready="ready") as parent:
        assert parent.stdin is not None
        assert parent.stdout is not None
        stdin, stdout = parent.stdin, parent.stdout

        def spawn() -> None:
            stdin.write("spawn\n")
            stdin.flush()
            assert stdout.readline().strip() == "spawned"

        yield parent.pid, spawn


def _affinities(pid: int) -> set[frozenset[int]]:
    return {frozenset(os.sched_getaffinity(thread)) for thread in thread_ids([pid])}


needs_two_cores = pytest.mark.skipif(
    len(os.sched_getaffinity(0)) < 2, reason="isolation needs at least two usable cores"
)


@needs_two_cores
def test_servers_and_the_rest_run_on_cores_of_their_own_until_the_block_ends() -> None:
    split = split_cores(1)
    assert split.server_cores.isdisjoint(split.other_cores)
    assert split.server_cores | split.other_cores == os.sched_getaffinity(0)
    own_before = os.sched_getaffinity(0)
    with _tree() as server, _tree() as other:
        # Three threads in each tree: the parent's two and the child's one.
        assert len(thread_ids([server])) == 3
        server_before, other_before = _affinities(server), _affinities(other)
        with isolated(split, servers=[server], others=[other]):
            assert _affinities(server) == {split.server_cores}
            assert _affinities(other) == {split.other_cores}
            assert os.sched_getaffinity(0) == split.other_cores
        assert _affinities(server) == server_before
        assert _affinities(other) == other_before
        assert os.sched_getaffinity(0) == own_before


@needs_two_cores
def test_threads_born_within_the_block_get_the_benchmarks_own_cores_back() -> None:
    split = split_cores(1)
    own_before = frozenset(os.sched_getaffinity(0))
    with _growing_tree() as (other, spawn):
        with isolated(split, servers=[], others=[other]):
            spawn()
            assert len(thread_ids([other])) == 4
            assert _affinities(other) == {split.other_cores}
        assert _affinities(other) == {own_before}


@needs_two_cores
def test_affinities_come_back_when_the_block_fails() -> None:
    split = split_cores(1)
    own_before = os.sched_getaffinity(0)
    with _tree() as other:
        other_before = _affinities(other)
        with pytest.raises(RuntimeError), isolated(split, servers=[], others=[other]):
            raise RuntimeError("the benchmark failed")
        assert _affinities(other) == other_before
    assert os.sched_getaffinity(0) == own_before


def test_a_split_needs_a_core_left_for_the_rest() -> None:
    usable = len(os.sched_getaffinity(0))
    with pytest.raises(IsolationUnavailable, match=f"needs at least {usable + 1} cores"):
        split_cores(usable)
    with pytest.raises(IsolationUnavailable):
        split_cores(0)


def test_a_process_that_is_gone_has_no_threads() -> None:
    gone = subprocess.Popen(["true"])
    gone.wait()
    assert thread_ids([gone.pid]) == []
