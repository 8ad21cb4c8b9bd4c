"""Isolation pins every thread of the servers' process trees to the server cores, the other
trees and the benchmark itself to the remaining cores, and puts every affinity back when the
block ends, even when it fails; a machine without a core to spare is refused by name."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from loadtest.isolation import (
    IsolationUnavailable,
    isolated,
    split_cores,
    thread_ids,
)

# A parent with a second thread and a child process, both waiting; "ready" once all exist.
threaded_tree = """
import subprocess, sys, threading, time
threading.Thread(target=time.sleep, args=(60,), daemon=True).start()
child = subprocess.Popen(["sleep", "60"])
print("ready", flush=True)
time.sleep(60)
"""


@contextmanager
def _tree() -> Iterator[int]:
    with subprocess.Popen(
        [sys.executable, "-c", threaded_tree],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    ) as parent:
        try:
            assert parent.stdout is not None
            assert parent.stdout.readline().strip() == "ready"
            yield parent.pid
        finally:
            os.killpg(parent.pid, signal.SIGKILL)


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
