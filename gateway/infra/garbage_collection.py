"""CPython's cyclic garbage collector, set for long-running server processes.

The collector runs a young collection whenever allocations of container objects outnumber
deallocations by 700 since the last one, and every tenth and hundredth time an older one;
the oldest walks every object the process holds. A gateway worker holds about 100,000
objects from start-up (the sanctions index, compiled schemas, clients, caches) and each
request allocates a few hundred short-lived ones that reference counting frees at once.
Those bursts crossed 700 every dozen or so transfers, and the full collections that came
with them took about 150 ms each on this project's development machine, stalling every
request in flight: measured in-process, collections were an eighth of a transfer's CPU.

`tune_garbage_collection` is called once start-up is done: the objects alive then live as
long as the process, so they are frozen (never walked again), and young collections wait
for `generation0_allocations_max` net allocations. Garbage in reference cycles is still
collected, only in larger and rarer batches.
"""

from __future__ import annotations

import gc
from typing import Final

# CPython's defaults are (700, 10, 10); only the first changes.
generation0_allocations_max: Final = 20_000
generation1_collections_max: Final = 10
generation2_collections_max: Final = 10


def tune_garbage_collection() -> None:
    """Collect and freeze what start-up left alive, then collect young objects less often."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(
        generation0_allocations_max, generation1_collections_max, generation2_collections_max
    )
