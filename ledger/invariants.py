"""Invariant checks that survive `python -O`.

`assert` statements vanish under `-O`; the ledger's invariants must not. `ensure` raises
`InvariantViolation`, a programmer error that should crash the request loudly rather than be
mapped to a client-facing problem.
"""

from __future__ import annotations

from typing import NoReturn


class InvariantViolation(AssertionError):
    """A condition the code relies on did not hold: a bug, never bad input."""


def ensure(condition: bool, message: str = "invariant violated") -> None:
    """Raise `InvariantViolation` with `message` unless `condition` holds."""
    if not condition:
        raise InvariantViolation(message)


def unreachable(message: str) -> NoReturn:
    """Mark a branch the code must never take (e.g. the default of an exhaustive match)."""
    raise InvariantViolation(message)
