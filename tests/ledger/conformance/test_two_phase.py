"""Conformance: pending transfers are posted (fully or partly) or voided exactly once, and
expire after their timeout, on both backends alike."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
import tigerbeetle as tb

from ledger.clients import LedgerClient
from tests.ledger.conformance.helpers import AF, TF, T, account, open_accounts, statuses, transfer

pytestmark = pytest.mark.conformance
u128_max = (1 << 128) - 1


async def _funded_wallet(client: LedgerClient, amount: int) -> tuple[int, int]:
    wallet, funding = await open_accounts(client, AF.DEBITS_MUST_NOT_EXCEED_CREDITS, AF.NONE)
    assert await statuses(client, [transfer(funding, wallet, amount)]) == [T.CREATED]
    return wallet, funding


def _resolve(
    pending: tb.Transfer, amount: int, flags: tb.TransferFlags, **fields: object
) -> tb.Transfer:
    """A post or void of `pending`; zero accounts, ledger and code inherit the pending's."""
    values: dict[str, Any] = {"pending_id": pending.id, "flags": flags, "ledger": 0, "code": 0}
    values.update(fields)
    debit = int(values.pop("debit_account_id", 0))
    credit = int(values.pop("credit_account_id", 0))
    return transfer(debit, credit, amount, **values)


async def test_full_and_partial_posting(ledger_client: LedgerClient) -> None:
    wallet, funding = await _funded_wallet(ledger_client, 100)
    full = transfer(wallet, funding, 30, flags=TF.PENDING, user_data_128=9)
    partial = transfer(wallet, funding, 50, flags=TF.PENDING)
    assert await statuses(ledger_client, [full, partial]) == [T.CREATED, T.CREATED]
    held = await account(ledger_client, wallet)
    assert (held.debits_pending, held.debits_posted) == (80, 0)
    post_full = _resolve(full, u128_max, TF.POST_PENDING_TRANSFER)
    post_part = _resolve(partial, 20, TF.POST_PENDING_TRANSFER)
    assert await statuses(ledger_client, [post_full, post_part]) == [T.CREATED, T.CREATED]
    after = await account(ledger_client, wallet)
    assert (after.debits_pending, after.debits_posted) == (0, 50)
    stored_full, stored_part = await ledger_client.lookup_transfers([post_full.id, post_part.id])
    # Posting inherits accounts, ledger, code and user data from the pending transfer.
    assert (stored_full.amount, stored_full.debit_account_id, stored_full.user_data_128) == (
        30,
        wallet,
        9,
    )
    assert stored_part.amount == 20
    # Replays exist; a post asking for the full amount matches what was posted.
    assert await statuses(ledger_client, [post_full, post_part]) == [T.EXISTS, T.EXISTS]
    other_amount = _resolve(partial, 21, TF.POST_PENDING_TRANSFER, id=post_part.id)
    assert await statuses(ledger_client, [other_amount]) == [T.EXISTS_WITH_DIFFERENT_AMOUNT]


async def test_a_pending_transfer_resolves_once(ledger_client: LedgerClient) -> None:
    wallet, funding = await _funded_wallet(ledger_client, 100)
    first = transfer(wallet, funding, 40, flags=TF.PENDING)
    second = transfer(wallet, funding, 40, flags=TF.PENDING)
    assert await statuses(ledger_client, [first, second]) == [T.CREATED, T.CREATED]
    assert await statuses(
        ledger_client,
        [
            _resolve(first, 41, TF.POST_PENDING_TRANSFER),
            _resolve(first, 39, TF.VOID_PENDING_TRANSFER),
            _resolve(first, 0, TF.POST_PENDING_TRANSFER),
            _resolve(first, 40, TF.VOID_PENDING_TRANSFER),
            _resolve(second, 0, TF.VOID_PENDING_TRANSFER),
            _resolve(second, 1, TF.POST_PENDING_TRANSFER),
            _resolve(first, 0, TF.VOID_PENDING_TRANSFER),
        ],
    ) == [
        T.EXCEEDS_PENDING_TRANSFER_AMOUNT,
        T.PENDING_TRANSFER_HAS_DIFFERENT_AMOUNT,
        T.CREATED,  # Posting zero releases the whole hold and moves nothing.
        T.PENDING_TRANSFER_ALREADY_POSTED,
        T.CREATED,
        T.PENDING_TRANSFER_ALREADY_VOIDED,
        T.PENDING_TRANSFER_ALREADY_POSTED,
    ]
    after = await account(ledger_client, wallet)
    assert (after.debits_pending, after.debits_posted, after.credits_posted) == (0, 0, 100)


async def test_resolving_checks_the_pending_transfer(ledger_client: LedgerClient) -> None:
    wallet, funding = await _funded_wallet(ledger_client, 100)
    (stranger,) = await open_accounts(ledger_client, AF.NONE)
    posted = transfer(wallet, funding, 10)
    pending = transfer(wallet, funding, 10, flags=TF.PENDING, code=3)
    assert await statuses(ledger_client, [posted, pending]) == [T.CREATED, T.CREATED]
    assert await statuses(
        ledger_client,
        [
            _resolve(posted, 0, TF.VOID_PENDING_TRANSFER),
            _resolve(pending, 0, TF.VOID_PENDING_TRANSFER, debit_account_id=stranger),
            _resolve(pending, 0, TF.VOID_PENDING_TRANSFER, credit_account_id=stranger),
            _resolve(pending, 0, TF.VOID_PENDING_TRANSFER, ledger=840),
            _resolve(pending, 0, TF.VOID_PENDING_TRANSFER, code=4),
            _resolve(pending, 0, TF.VOID_PENDING_TRANSFER, debit_account_id=wallet, code=3),
        ],
    ) == [
        T.PENDING_TRANSFER_NOT_PENDING,
        T.PENDING_TRANSFER_HAS_DIFFERENT_DEBIT_ACCOUNT_ID,
        T.PENDING_TRANSFER_HAS_DIFFERENT_CREDIT_ACCOUNT_ID,
        T.PENDING_TRANSFER_HAS_DIFFERENT_LEDGER,
        T.PENDING_TRANSFER_HAS_DIFFERENT_CODE,
        T.CREATED,
    ]


async def test_pending_transfers_expire_after_their_timeout(ledger_client: LedgerClient) -> None:
    wallet, funding = await _funded_wallet(ledger_client, 100)
    expiring = transfer(wallet, funding, 60, flags=TF.PENDING, timeout=1)
    lasting = transfer(wallet, funding, 30, flags=TF.PENDING)
    assert await statuses(ledger_client, [expiring, lasting]) == [T.CREATED, T.CREATED]
    # The wallet cannot spend what is held...
    assert await statuses(ledger_client, [transfer(wallet, funding, 20)]) == [T.EXCEEDS_CREDITS]
    # ...until the hold expires; a real cluster expires on its next pulse, so poll.
    deadline = time.monotonic() + 10
    while (await account(ledger_client, wallet)).debits_pending != 30:
        assert time.monotonic() < deadline, "the pending transfer never expired"
        await asyncio.sleep(0.1)
    assert await statuses(
        ledger_client,
        [
            _resolve(expiring, 0, TF.POST_PENDING_TRANSFER),
            _resolve(expiring, 0, TF.VOID_PENDING_TRANSFER),
            transfer(wallet, funding, 70),
        ],
    ) == [T.PENDING_TRANSFER_EXPIRED, T.PENDING_TRANSFER_EXPIRED, T.CREATED]
    after = await account(ledger_client, wallet)
    assert (after.debits_pending, after.debits_posted) == (30, 70)
