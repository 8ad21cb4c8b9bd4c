"""What a provider's notifications do to a collection, as pure steps: the final state and
the ledger's effect of a provider's true story (a success; a failure; a success then a
return) do not depend on the order the notifications arrive in, on repeats, or on how they
are split across the worker's passes; a contradiction changes nothing; every pair of state
and notification has a step, and a mandate's steps likewise."""

from __future__ import annotations

import hypothesis.strategies as st
import pytest
from hypothesis import given

from gateway.collections.applying import (
    collection_step,
    collection_steps,
    fold_collection,
    mandate_step,
    mandate_steps,
)
from gateway.collections.wire import collection_statuses, mandate_statuses

# A provider's true stories, and what each leaves: the final state, and whether the wallet
# was credited and the credit reversed.
stories = {
    ("succeeded",): ("succeeded", True, False),
    ("failed",): ("failed", False, False),
    ("succeeded", "returned"): ("returned", True, True),
}


@st.composite
def deliveries(draw: st.DrawFn) -> tuple[tuple[str, ...], list[list[str]]]:
    """A story, its notifications each delivered one to three times in any order, split
    into the passes that applied them."""
    story = draw(st.sampled_from(sorted(stories)))
    sent = [notice for notice in story for _ in range(draw(st.integers(1, 3)))]
    order = draw(st.permutations(sent))
    cuts = sorted(draw(st.sets(st.integers(1, max(1, len(order) - 1)), max_size=3)))
    passes = [
        list(order[start:end]) for start, end in zip([0, *cuts], [*cuts, len(order)], strict=True)
    ]
    return story, [batch for batch in passes if batch]


@given(deliveries())
def test_a_story_ends_the_same_whatever_the_order_repeats_and_passes(
    delivery: tuple[tuple[str, ...], list[list[str]]],
) -> None:
    story, passes = delivery
    status, credited, reversed_ = "pending", False, False
    for batch in passes:
        fold = fold_collection(status, batch)
        status = fold.final
        credited, reversed_ = credited or fold.credit, reversed_ or fold.reverse
        assert "contradiction" not in fold.outcomes
    assert (status, credited, reversed_) == stories[story]


def test_a_return_before_its_success_is_credited_reversed_and_says_both() -> None:
    fold = fold_collection("pending", ["returned", "succeeded"])
    assert (fold.final, fold.credit, fold.reverse) == ("returned", True, True)
    assert fold.transitions == ("succeeded", "returned")
    assert fold.outcomes == ("moved", "repeat")


def test_a_success_after_a_return_changes_nothing() -> None:
    fold = fold_collection("returned", ["succeeded"])
    assert (fold.final, fold.credit, fold.reverse, fold.transitions) == (
        "returned",
        False,
        False,
        (),
    )


@pytest.mark.parametrize(
    ("status", "notice"),
    [
        ("succeeded", "failed"),
        ("returned", "failed"),
        ("failed", "succeeded"),
        ("failed", "returned"),
    ],
)
def test_a_contradiction_changes_nothing(status: str, notice: str) -> None:
    step = collection_step(status, notice)
    assert (step.to, step.credit, step.reverse, step.outcome) == (
        status,
        False,
        False,
        "contradiction",
    )


def test_every_state_and_notification_has_a_step() -> None:
    assert set(collection_steps) == {
        (status, notice)
        for status in collection_statuses
        for notice in ("succeeded", "failed", "returned")
    }
    assert set(mandate_steps) == {
        (status, notice) for status in mandate_statuses for notice in ("active", "failed")
    }


def test_a_mandate_fails_once_active_and_a_late_activation_contradicts() -> None:
    assert mandate_step("active", "failed") == ("failed", "moved")
    assert mandate_step("failed", "active") == ("failed", "contradiction")
    assert mandate_step("deactivated", "active") == ("deactivated", "ignored")
