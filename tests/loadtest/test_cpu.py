"""A server's CPU is read from /proc across its process tree: a busy child counts for its
parent, an idle process adds almost nothing, and a process that is gone is an error; a
process's parent is read there too, and a tree lists its members, parents first."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from loadtest.cpu import parent_pid, per_request_ms, tree_cpu_seconds, tree_pids
from tests.loadtest.process_trees import process_tree

# A parent that starts a child burning about half a second of CPU, then both wait.
busy_tree = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", '''
import time
end = time.process_time() + 0.5
while time.process_time() < end:
    pass
print("done", flush=True)
time.sleep(30)
'''], stdout=sys.stdout)
time.sleep(30)
"""


@contextmanager
def busy_parent() -> Iterator[int]:
    """The pid of `busy_tree`'s parent once its child has burnt its CPU; both are killed
    when the block ends."""
    with process_tree(busy_tree, ready="done") as parent:
        yield parent.pid


def test_a_busy_child_counts_for_its_parent() -> None:
    with busy_parent() as parent:
        spent = tree_cpu_seconds(parent)
    # The child's half second, plus two interpreters starting; never wildly more.
    assert 0.45 <= spent <= 5


def test_an_idle_process_spends_almost_nothing() -> None:
    idle = subprocess.Popen(["sleep", "30"])
    try:
        assert tree_cpu_seconds(idle.pid) < 0.1
    finally:
        idle.kill()
        idle.wait()


def test_a_process_that_is_gone_is_an_error() -> None:
    gone = subprocess.Popen(["true"])
    gone.wait()
    with pytest.raises(ProcessLookupError):
        tree_cpu_seconds(gone.pid)


def test_per_request_cost() -> None:
    assert per_request_ms(1.5, 3_000) == pytest.approx(0.5)
    assert per_request_ms(1.0, 0) == 0.0


def test_a_process_parent_is_read_from_proc() -> None:
    assert parent_pid(os.getpid()) == os.getppid()
    gone = subprocess.Popen(["true"])
    gone.wait()
    assert parent_pid(gone.pid) is None


def test_a_tree_lists_a_parent_before_its_child_and_nothing_once_gone() -> None:
    with busy_parent() as parent:
        members = tree_pids(parent)
        # Read while both live: once the parent is killed, init adopts the child.
        child_parent = parent_pid(members[-1])
    assert len(members) == 2
    assert members[0] == parent
    assert child_parent == parent
    assert tree_pids(parent) == []
