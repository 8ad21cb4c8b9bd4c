"""Splitting an amount of minor units over weighted shares, exactly.

A netted batch converts each currency pair once, for the total, and then owes every item
its share of the chain's source, fee and target amounts. Rounding each share on its own
would lose or invent minor units; the largest-remainder method floors every share and
hands the leftover units, one each, to the shares with the largest remainders, so the
shares always add up to the total to the minor unit.
"""

from __future__ import annotations

from collections.abc import Sequence

from ledger.invariants import ensure


def allocate(total: int, weights: Sequence[int]) -> list[int]:
    """`total` split in proportion to `weights` (largest remainder; ties go to the earlier
    share), so that the shares add up to `total` exactly."""
    ensure(total >= 0, "an allocated total is not negative")
    ensure(bool(weights), "an allocation has at least one share")
    ensure(all(weight >= 0 for weight in weights), "weights are not negative")
    weight_sum = sum(weights)
    ensure(weight_sum > 0, "at least one weight is positive")
    shares: list[int] = []
    remainders: list[tuple[int, int]] = []
    for index, weight in enumerate(weights):
        share, remainder = divmod(total * weight, weight_sum)
        shares.append(share)
        remainders.append((-remainder, index))
    leftover = total - sum(shares)
    # Each share lost less than one unit to flooring, so fewer units are left than shares.
    ensure(0 <= leftover < len(weights), "flooring loses less than one unit per share")
    for _, index in sorted(remainders)[:leftover]:
        shares[index] += 1
    ensure(sum(shares) == total, "the shares add up to the total")
    return shares
