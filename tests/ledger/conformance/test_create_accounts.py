"""Conformance: `create_accounts` answers every status in TigerBeetle's order of precedence,
on the embedded engine and on a real cluster alike."""

from __future__ import annotations

import pytest
import tigerbeetle as tb

from ledger.clients import LedgerClient
from tests.conftest import fresh_id
from tests.ledger.conformance.helpers import AF, A, ledger_eur

pytestmark = pytest.mark.conformance


def _account(**fields: object) -> tb.Account:
    values: dict[str, object] = {"id": fresh_id(), "ledger": ledger_eur, "code": 7}
    values.update(fields)
    return tb.Account(**values)  # type: ignore[arg-type]


async def _statuses(client: LedgerClient, accounts: list[tb.Account]) -> list[A]:
    return [r.status for r in await client.create_accounts(accounts)]


async def test_created_then_exists_with_the_original_timestamp(ledger_client: LedgerClient) -> None:
    account = _account(user_data_128=5, user_data_64=6, user_data_32=7, flags=AF.HISTORY)
    (first,) = await ledger_client.create_accounts([account])
    (again,) = await ledger_client.create_accounts([account])
    assert first.status is A.CREATED
    assert again.status is A.EXISTS
    assert again.timestamp == first.timestamp
    (stored,) = await ledger_client.lookup_accounts([account.id])
    assert stored.timestamp == first.timestamp
    assert (stored.user_data_128, stored.user_data_64, stored.user_data_32) == (5, 6, 7)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"flags": AF.HISTORY | AF.DEBITS_MUST_NOT_EXCEED_CREDITS}, A.EXISTS_WITH_DIFFERENT_FLAGS),
        ({"user_data_128": 99}, A.EXISTS_WITH_DIFFERENT_USER_DATA_128),
        ({"user_data_64": 99}, A.EXISTS_WITH_DIFFERENT_USER_DATA_64),
        ({"user_data_32": 99}, A.EXISTS_WITH_DIFFERENT_USER_DATA_32),
        ({"ledger": 840}, A.EXISTS_WITH_DIFFERENT_LEDGER),
        ({"code": 8}, A.EXISTS_WITH_DIFFERENT_CODE),
        # Flags are compared first: they change the meaning of everything else.
        ({"flags": AF.NONE, "code": 8, "ledger": 840}, A.EXISTS_WITH_DIFFERENT_FLAGS),
    ],
)
async def test_exists_with_different_fields(
    ledger_client: LedgerClient, change: dict[str, object], expected: A
) -> None:
    original = _account(flags=AF.HISTORY)
    assert await _statuses(ledger_client, [original]) == [A.CREATED]
    values = {f: getattr(original, f) for f in ("id", "ledger", "code", "flags")}
    values.update(change)
    assert await _statuses(ledger_client, [_account(**values)]) == [expected]


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"id": 0}, A.ID_MUST_NOT_BE_ZERO),
        ({"id": (1 << 128) - 1}, A.ID_MUST_NOT_BE_INT_MAX),
        (
            {"flags": AF.DEBITS_MUST_NOT_EXCEED_CREDITS | AF.CREDITS_MUST_NOT_EXCEED_DEBITS},
            A.FLAGS_ARE_MUTUALLY_EXCLUSIVE,
        ),
        ({"debits_pending": 1}, A.DEBITS_PENDING_MUST_BE_ZERO),
        ({"debits_posted": 1}, A.DEBITS_POSTED_MUST_BE_ZERO),
        ({"credits_pending": 1}, A.CREDITS_PENDING_MUST_BE_ZERO),
        ({"credits_posted": 1}, A.CREDITS_POSTED_MUST_BE_ZERO),
        ({"ledger": 0}, A.LEDGER_MUST_NOT_BE_ZERO),
        ({"code": 0}, A.CODE_MUST_NOT_BE_ZERO),
        ({"timestamp": 1}, A.TIMESTAMP_MUST_BE_ZERO),
        ({"flags": 1 << 12}, A.RESERVED_FLAG),
        # Precedence: the id is checked before the ledger and the code.
        ({"id": 0, "ledger": 0, "code": 0}, A.ID_MUST_NOT_BE_ZERO),
        ({"debits_posted": 1, "ledger": 0}, A.DEBITS_POSTED_MUST_BE_ZERO),
    ],
)
async def test_invalid_accounts(
    ledger_client: LedgerClient, fields: dict[str, object], expected: A
) -> None:
    assert await _statuses(ledger_client, [_account(**fields)]) == [expected]


async def test_linked_accounts_are_all_or_nothing(ledger_client: LedgerClient) -> None:
    good = _account(flags=AF.LINKED)
    bad = _account(code=0)
    after = _account()
    statuses = await _statuses(ledger_client, [good, bad, after])
    assert statuses == [A.LINKED_EVENT_FAILED, A.CODE_MUST_NOT_BE_ZERO, A.CREATED]
    assert [a.id for a in await ledger_client.lookup_accounts([good.id, after.id])] == [after.id]


async def test_an_open_chain_at_the_end_of_the_batch_fails(ledger_client: LedgerClient) -> None:
    first = _account(flags=AF.LINKED)
    last = _account(flags=AF.LINKED)
    assert await _statuses(ledger_client, [first, last]) == [
        A.LINKED_EVENT_FAILED,
        A.LINKED_EVENT_CHAIN_OPEN,
    ]
    assert await ledger_client.lookup_accounts([first.id, last.id]) == []


async def test_imported_accounts_keep_their_timestamps(ledger_client: LedgerClient) -> None:
    (probe,) = await ledger_client.create_accounts([_account()])
    past = probe.timestamp + 1  # Later than every account so far, earlier than now.
    imported = _account(flags=AF.IMPORTED, timestamp=past)
    mixed = _account(timestamp=0)
    statuses = await _statuses(ledger_client, [imported, mixed])
    assert statuses == [A.CREATED, A.IMPORTED_EVENT_EXPECTED]
    (stored,) = await ledger_client.lookup_accounts([imported.id])
    assert stored.timestamp == past
    regressed = _account(flags=AF.IMPORTED, timestamp=past)
    assert await _statuses(ledger_client, [regressed]) == [
        A.IMPORTED_EVENT_TIMESTAMP_MUST_NOT_REGRESS
    ]
    assert await _statuses(
        ledger_client, [_account(), _account(flags=AF.IMPORTED, timestamp=1)]
    ) == [
        A.CREATED,
        A.IMPORTED_EVENT_NOT_EXPECTED,
    ]
    assert await _statuses(ledger_client, [_account(flags=AF.IMPORTED, timestamp=0)]) == [
        A.IMPORTED_EVENT_TIMESTAMP_OUT_OF_RANGE
    ]
    assert await _statuses(
        ledger_client, [_account(flags=AF.IMPORTED, timestamp=(1 << 63) - 1)]
    ) == [A.IMPORTED_EVENT_TIMESTAMP_MUST_NOT_ADVANCE]
