"""The seed of a crash test's choices: printed at the start, named in every failure, and
settable to replay them.

A crash test chooses what to kill, when, for how long, and what to send; all of it is drawn
from one seed. `KOVRA_CRASH_SEED=<seed>` makes the next run draw the same choices. The
processes' own timing is not the test's to replay, so a replayed run takes the same path of
kills and requests, not necessarily the same interleaving of them.
"""

from __future__ import annotations

import os
import random
import secrets
from dataclasses import dataclass

seed_variable = "KOVRA_CRASH_SEED"
seed_bits = 32


@dataclass(frozen=True)
class Seeded:
    """A run's seed, and a reproducible random stream for each named part of the run."""

    seed: int

    @property
    def tag(self) -> str:
        """What every failure message carries, to replay the run."""
        return f"[{seed_variable}={self.seed}]"

    def random(self, *labels: object) -> random.Random:
        """The stream of one part of the run (a round, a burst of requests): each part has
        its own, so parts running in different threads draw the same numbers every time."""
        return random.Random(":".join(str(label) for label in (self.seed, *labels)))


def seeded_run(name: str) -> Seeded:
    """The seed from `KOVRA_CRASH_SEED`, or a new one; printed (pytest shows it on failure)."""
    given = os.environ.get(seed_variable, "").strip()
    seed = int(given) if given else secrets.randbits(seed_bits)
    print(f"{name}: seed {seed}; replay its choices with {seed_variable}={seed}")
    return Seeded(seed)
