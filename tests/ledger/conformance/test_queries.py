"""Conformance: the filters and limits of `get_account_transfers`, `get_account_balances`,
`query_accounts` and `query_transfers`, and lookups of missing ids, on both backends alike."""

from __future__ import annotations

import secrets

import pytest
import tigerbeetle as tb

from ledger.clients import LedgerClient
from tests.conftest import fresh_id
from tests.ledger.conformance.helpers import (
    AF,
    TF,
    T,
    account_filter,
    ledger_eur,
    open_accounts,
    query_filter,
    statuses,
    transfer,
)

pytestmark = pytest.mark.conformance
DEBITS = tb.AccountFilterFlags.DEBITS
CREDITS = tb.AccountFilterFlags.CREDITS
REVERSED = tb.AccountFilterFlags.REVERSED


async def _history(client: LedgerClient) -> tuple[int, int, list[tb.Transfer]]:
    """A history account with five transfers in and out, user data and codes varied."""
    main, other = await open_accounts(client, AF.HISTORY, AF.NONE)
    tag = secrets.randbits(60) + 1
    transfers = [
        transfer(other, main, 100, code=1, user_data_64=tag),
        transfer(main, other, 10, code=2, user_data_64=tag, user_data_32=7),
        transfer(other, main, 50, code=1, user_data_128=tag),
        transfer(main, other, 20, code=2, flags=TF.PENDING, user_data_64=tag),
        transfer(main, other, 5, code=3),
    ]
    assert await statuses(client, transfers) == [T.CREATED] * 5
    return main, other, transfers


async def test_get_account_transfers_filters(ledger_client: LedgerClient) -> None:
    main, _, ts = await _history(ledger_client)
    ids = [t.id for t in ts]

    async def found(**fields: object) -> list[int]:
        return [
            t.id for t in await ledger_client.get_account_transfers(account_filter(main, **fields))
        ]

    assert await found() == ids
    assert await found(flags=DEBITS) == [ids[1], ids[3], ids[4]]
    assert await found(flags=CREDITS) == [ids[0], ids[2]]
    assert await found(flags=DEBITS | CREDITS | REVERSED) == ids[::-1]
    assert await found(limit=2) == ids[:2]
    assert await found(limit=2, flags=DEBITS | CREDITS | REVERSED) == [ids[4], ids[3]]
    assert await found(code=2) == [ids[1], ids[3]]
    assert await found(user_data_64=ts[0].user_data_64) == [ids[0], ids[1], ids[3]]
    assert await found(user_data_64=ts[0].user_data_64, code=2) == [ids[1], ids[3]]
    assert await found(user_data_32=7) == [ids[1]]
    assert await found(user_data_128=ts[2].user_data_128) == [ids[2]]
    stored = await ledger_client.lookup_transfers(ids)
    stamps = [t.timestamp for t in stored]
    assert await found(timestamp_min=stamps[1], timestamp_max=stamps[3]) == ids[1:4]
    assert await found(timestamp_min=stamps[4]) == [ids[4]]
    assert await found(timestamp_max=stamps[0]) == [ids[0]]


@pytest.mark.parametrize(
    "fields",
    [
        {"limit": 0},
        {"flags": tb.AccountFilterFlags.NONE},
        {"flags": REVERSED},
        {"account_id": 0},
        {"account_id": (1 << 128) - 1},
        {"timestamp_min": 10, "timestamp_max": 5},
        {"timestamp_min": 1 << 63},
        {"flags": DEBITS | (1 << 5)},
    ],
)
async def test_invalid_account_filters_find_nothing(
    ledger_client: LedgerClient, fields: dict[str, object]
) -> None:
    main, _, _ = await _history(ledger_client)
    values: dict[str, object] = {"account_id": main}
    values.update(fields)
    account_id = int(values.pop("account_id"))  # type: ignore[call-overload]
    chosen = account_filter(account_id, **values)
    assert await ledger_client.get_account_transfers(chosen) == []
    assert await ledger_client.get_account_balances(chosen) == []


async def test_get_account_balances_is_the_balance_after_each_transfer(
    ledger_client: LedgerClient,
) -> None:
    main, other, ts = await _history(ledger_client)
    balances = await ledger_client.get_account_balances(account_filter(main))
    stored = await ledger_client.lookup_transfers([t.id for t in ts])
    assert [b.timestamp for b in balances] == [t.timestamp for t in stored]
    assert [(b.credits_posted, b.debits_posted, b.debits_pending) for b in balances] == [
        (100, 0, 0),
        (100, 10, 0),
        (150, 10, 0),
        (150, 10, 20),
        (150, 15, 20),
    ]
    reversed_codes = await ledger_client.get_account_balances(
        account_filter(main, code=2, flags=DEBITS | CREDITS | REVERSED)
    )
    assert [b.debits_pending for b in reversed_codes] == [20, 0]
    # Without the history flag an account has no balance history.
    assert await ledger_client.get_account_balances(account_filter(other)) == []
    assert await ledger_client.get_account_balances(account_filter(fresh_id())) == []


async def test_posting_and_voiding_appear_in_the_history(ledger_client: LedgerClient) -> None:
    main, other = await open_accounts(ledger_client, AF.HISTORY, AF.NONE)
    pending = transfer(other, main, 40, flags=TF.PENDING)
    post = transfer(
        0, 0, 30, pending_id=pending.id, flags=TF.POST_PENDING_TRANSFER, ledger=0, code=0
    )
    assert await statuses(ledger_client, [pending, post]) == [T.CREATED, T.CREATED]
    history = await ledger_client.get_account_transfers(account_filter(main))
    assert [(t.id, t.amount) for t in history] == [(pending.id, 40), (post.id, 30)]
    balances = await ledger_client.get_account_balances(account_filter(main))
    assert [(b.credits_pending, b.credits_posted) for b in balances] == [(40, 0), (0, 30)]


async def test_query_accounts_and_transfers(ledger_client: LedgerClient) -> None:
    tag = secrets.randbits(60) + 1
    accounts = [
        tb.Account(id=fresh_id(), ledger=ledger_eur, code=c, user_data_64=tag, user_data_32=u)
        for c, u in ((10, 1), (11, 1), (10, 2))
    ]
    results = await ledger_client.create_accounts(accounts)
    assert all(r.status is tb.CreateAccountStatus.CREATED for r in results)
    ids = [a.id for a in accounts]

    async def found_accounts(**fields: object) -> list[int]:
        return [
            a.id
            for a in await ledger_client.query_accounts(query_filter(user_data_64=tag, **fields))
        ]

    assert await found_accounts() == ids
    assert await found_accounts(code=10) == [ids[0], ids[2]]
    assert await found_accounts(code=10, user_data_32=1) == [ids[0]]
    assert await found_accounts(ledger=840) == []
    assert await found_accounts(flags=tb.QueryFilterFlags.REVERSED, limit=2) == [ids[2], ids[1]]
    assert await found_accounts(limit=0) == []

    moves = [
        transfer(ids[0], ids[1], 1, user_data_128=tag, code=4),
        transfer(ids[1], ids[2], 2, user_data_128=tag, code=5),
    ]
    assert await statuses(ledger_client, moves) == [T.CREATED, T.CREATED]
    by_tag = await ledger_client.query_transfers(query_filter(user_data_128=tag))
    assert [t.id for t in by_tag] == [m.id for m in moves]
    by_code = await ledger_client.query_transfers(query_filter(user_data_128=tag, code=5))
    assert [t.id for t in by_code] == [moves[1].id]
    stamp = by_tag[1].timestamp
    recent = await ledger_client.query_transfers(
        query_filter(user_data_128=tag, timestamp_min=stamp)
    )
    assert [t.id for t in recent] == [moves[1].id]


async def test_lookups_skip_missing_ids(ledger_client: LedgerClient) -> None:
    main, other, ts = await _history(ledger_client)
    missing = fresh_id()
    accounts = await ledger_client.lookup_accounts([missing, other, main, missing])
    assert [a.id for a in accounts] == [other, main]
    transfers = await ledger_client.lookup_transfers([ts[1].id, missing, ts[0].id])
    assert [t.id for t in transfers] == [ts[1].id, ts[0].id]
    assert await ledger_client.lookup_accounts([]) == []
