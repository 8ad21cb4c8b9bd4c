"""After `tune_garbage_collection`, what start-up left alive is frozen out of the collector's
walks and young collections wait for 20,000 net allocations; cycles made afterwards are
still collected. Run in a child process, so this test process keeps its own collector."""

from __future__ import annotations

import json
import subprocess
import sys

from gateway.infra.garbage_collection import generation0_allocations_max
from tests.gateway.e2e.conftest import repository

_child = """
import gc, json
from gateway.infra.garbage_collection import tune_garbage_collection
before = len(gc.get_objects())
tune_garbage_collection()
class Node:
    pass
for _ in range(100):
    node = Node()
    node.itself = node  # A cycle: reference counting alone never frees it.
del node
unreachable = gc.collect()
print(json.dumps({
    "threshold": gc.get_threshold(),
    "frozen": gc.get_freeze_count(),
    "tracked_at_start": before,
    "tracked_after": len(gc.get_objects()),
    "collected": unreachable,
}))
"""


def test_start_up_objects_are_frozen_and_cycles_still_collected() -> None:
    finished = subprocess.run(
        [sys.executable, "-c", _child],
        cwd=repository,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    outcome = json.loads(finished.stdout)
    assert outcome["threshold"] == [generation0_allocations_max, 10, 10]
    assert outcome["frozen"] > outcome["tracked_at_start"] // 2 > 1_000
    assert outcome["tracked_after"] < 1_000  # Only what came after start-up is walked.
    assert outcome["collected"] >= 100  # The 100 nodes, each in a cycle with itself.
