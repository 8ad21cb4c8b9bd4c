"""Conformance: `create_transfers` answers each status in TigerBeetle's order of precedence,
including every status Kovra's own operations can meet, on both backends alike."""

from __future__ import annotations

from typing import Any

import pytest
import tigerbeetle as tb

from ledger.clients import LedgerClient
from tests.conftest import fresh_id
from tests.ledger.conformance.helpers import (
    AF,
    TF,
    T,
    account,
    ledger_idr,
    open_accounts,
    statuses,
    transfer,
)

pytestmark = pytest.mark.conformance
u128_max = (1 << 128) - 1


async def test_created_then_exists(ledger_client: LedgerClient) -> None:
    debit, credit = await open_accounts(ledger_client, AF.NONE, AF.NONE)
    posting = transfer(debit, credit, 10, user_data_128=3, user_data_64=4, user_data_32=5)
    (first,) = await ledger_client.create_transfers([posting])
    (again,) = await ledger_client.create_transfers([posting])
    assert (first.status, again.status) == (T.CREATED, T.EXISTS)
    assert again.timestamp == first.timestamp
    assert (await account(ledger_client, credit)).credits_posted == 10


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"flags": TF.PENDING}, T.EXISTS_WITH_DIFFERENT_FLAGS),
        ({"debit_account_id": "other"}, T.EXISTS_WITH_DIFFERENT_DEBIT_ACCOUNT_ID),
        ({"credit_account_id": "other"}, T.EXISTS_WITH_DIFFERENT_CREDIT_ACCOUNT_ID),
        ({"amount": 11}, T.EXISTS_WITH_DIFFERENT_AMOUNT),
        ({"user_data_128": 1}, T.EXISTS_WITH_DIFFERENT_USER_DATA_128),
        ({"user_data_64": 1}, T.EXISTS_WITH_DIFFERENT_USER_DATA_64),
        ({"user_data_32": 1}, T.EXISTS_WITH_DIFFERENT_USER_DATA_32),
        ({"ledger": ledger_idr}, T.EXISTS_WITH_DIFFERENT_LEDGER),
        ({"code": 2}, T.EXISTS_WITH_DIFFERENT_CODE),
        ({"pending_id": 5}, T.EXISTS_WITH_DIFFERENT_PENDING_ID),
        ({"timeout": 5}, T.EXISTS_WITH_DIFFERENT_TIMEOUT),
        ({"amount": 11, "code": 2}, T.EXISTS_WITH_DIFFERENT_AMOUNT),
    ],
)
async def test_exists_with_different_fields(
    ledger_client: LedgerClient, change: dict[str, object], expected: T
) -> None:
    debit, credit, other = await open_accounts(ledger_client, AF.NONE, AF.NONE, AF.NONE)
    original = transfer(debit, credit, 10)
    assert await statuses(ledger_client, [original]) == [T.CREATED]
    fields = {
        f: getattr(original, f)
        for f in (
            "id",
            "debit_account_id",
            "credit_account_id",
            "amount",
            "ledger",
            "code",
            "flags",
        )
    }
    fields.update({k: other if v == "other" else v for k, v in change.items()})
    retry = tb.Transfer(**fields)
    assert await statuses(ledger_client, [retry]) == [expected]


async def test_invalid_transfers(ledger_client: LedgerClient) -> None:
    debit, credit = await open_accounts(ledger_client, AF.NONE, AF.NONE)
    (idr_account,) = await open_accounts(ledger_client, AF.NONE, ledger=ledger_idr)
    missing = fresh_id()
    cases: list[tuple[dict[str, Any], T]] = [
        ({"id": 0}, T.ID_MUST_NOT_BE_ZERO),
        ({"id": u128_max}, T.ID_MUST_NOT_BE_INT_MAX),
        ({"flags": 1 << 12}, T.RESERVED_FLAG),
        ({"timestamp": 1}, T.TIMESTAMP_MUST_BE_ZERO),
        ({"debit_account_id": 0}, T.DEBIT_ACCOUNT_ID_MUST_NOT_BE_ZERO),
        ({"debit_account_id": u128_max}, T.DEBIT_ACCOUNT_ID_MUST_NOT_BE_INT_MAX),
        ({"credit_account_id": 0}, T.CREDIT_ACCOUNT_ID_MUST_NOT_BE_ZERO),
        ({"credit_account_id": u128_max}, T.CREDIT_ACCOUNT_ID_MUST_NOT_BE_INT_MAX),
        ({"credit_account_id": debit}, T.ACCOUNTS_MUST_BE_DIFFERENT),
        ({"pending_id": 7}, T.PENDING_ID_MUST_BE_ZERO),
        ({"timeout": 1}, T.TIMEOUT_RESERVED_FOR_PENDING_TRANSFER),
        ({"flags": TF.CLOSING_DEBIT}, T.CLOSING_TRANSFER_MUST_BE_PENDING),
        ({"ledger": 0}, T.LEDGER_MUST_NOT_BE_ZERO),
        ({"code": 0}, T.CODE_MUST_NOT_BE_ZERO),
        ({"debit_account_id": missing}, T.DEBIT_ACCOUNT_NOT_FOUND),
        ({"credit_account_id": missing}, T.CREDIT_ACCOUNT_NOT_FOUND),
        ({"credit_account_id": idr_account}, T.ACCOUNTS_MUST_HAVE_THE_SAME_LEDGER),
        ({"ledger": ledger_idr}, T.TRANSFER_MUST_HAVE_THE_SAME_LEDGER_AS_ACCOUNTS),
        (
            {"flags": TF.POST_PENDING_TRANSFER | TF.VOID_PENDING_TRANSFER},
            T.FLAGS_ARE_MUTUALLY_EXCLUSIVE,
        ),
        ({"flags": TF.POST_PENDING_TRANSFER | TF.PENDING}, T.FLAGS_ARE_MUTUALLY_EXCLUSIVE),
        ({"flags": TF.VOID_PENDING_TRANSFER | TF.BALANCING_DEBIT}, T.FLAGS_ARE_MUTUALLY_EXCLUSIVE),
        ({"flags": TF.POST_PENDING_TRANSFER}, T.PENDING_ID_MUST_NOT_BE_ZERO),
        (
            {"flags": TF.POST_PENDING_TRANSFER, "pending_id": u128_max},
            T.PENDING_ID_MUST_NOT_BE_INT_MAX,
        ),
        (
            {"flags": TF.VOID_PENDING_TRANSFER, "pending_id": missing, "timeout": 1},
            T.TIMEOUT_RESERVED_FOR_PENDING_TRANSFER,
        ),
        ({"flags": TF.VOID_PENDING_TRANSFER, "pending_id": missing}, T.PENDING_TRANSFER_NOT_FOUND),
        # Precedence: several faults at once answer the one TigerBeetle checks first.
        (
            {"debit_account_id": 0, "credit_account_id": 0, "ledger": 0},
            T.DEBIT_ACCOUNT_ID_MUST_NOT_BE_ZERO,
        ),
        ({"ledger": 0, "code": 0, "debit_account_id": missing}, T.LEDGER_MUST_NOT_BE_ZERO),
        ({"debit_account_id": missing, "credit_account_id": missing}, T.ACCOUNTS_MUST_BE_DIFFERENT),
        ({"timeout": 1, "flags": TF.CLOSING_DEBIT}, T.TIMEOUT_RESERVED_FOR_PENDING_TRANSFER),
    ]
    transfers = [transfer(debit, credit, 1, **fields) for fields, _ in cases]
    assert await statuses(ledger_client, transfers) == [expected for _, expected in cases]


async def test_pending_id_must_be_different(ledger_client: LedgerClient) -> None:
    debit, credit = await open_accounts(ledger_client, AF.NONE, AF.NONE)
    same = fresh_id()
    voiding = transfer(debit, credit, 0, id=same, pending_id=same, flags=TF.VOID_PENDING_TRANSFER)
    assert await statuses(ledger_client, [voiding]) == [T.PENDING_ID_MUST_BE_DIFFERENT]


async def test_exceeds_credits_and_debits(ledger_client: LedgerClient) -> None:
    wallet, funding, settlement = await open_accounts(
        ledger_client, AF.DEBITS_MUST_NOT_EXCEED_CREDITS, AF.NONE, AF.CREDITS_MUST_NOT_EXCEED_DEBITS
    )
    assert await statuses(
        ledger_client,
        [
            transfer(funding, wallet, 100),
            transfer(wallet, funding, 60, flags=TF.PENDING),
            transfer(wallet, funding, 41),  # 60 held + 41 > 100 posted credits.
            transfer(wallet, funding, 40),
            transfer(funding, settlement, 1),  # Credits would exceed the settlement's debits.
            transfer(settlement, funding, 5),
            transfer(funding, settlement, 5),
        ],
    ) == [
        T.CREATED,
        T.CREATED,
        T.EXCEEDS_CREDITS,
        T.CREATED,
        T.EXCEEDS_DEBITS,
        T.CREATED,
        T.CREATED,
    ]
    stored = await account(ledger_client, wallet)
    assert (stored.debits_pending, stored.debits_posted, stored.credits_posted) == (60, 40, 100)


async def test_transient_failures_burn_the_id(ledger_client: LedgerClient) -> None:
    wallet, funding = await open_accounts(ledger_client, AF.DEBITS_MUST_NOT_EXCEED_CREDITS, AF.NONE)
    spend = transfer(wallet, funding, 50)
    assert await statuses(ledger_client, [spend]) == [T.EXCEEDS_CREDITS]
    assert await statuses(ledger_client, [transfer(funding, wallet, 100)]) == [T.CREATED]
    # The same id now fails for good, although the wallet could pay: a retry never
    # turns an old failure into a success.
    assert await statuses(ledger_client, [spend]) == [T.ID_ALREADY_FAILED]
    assert (await account(ledger_client, wallet)).debits_posted == 0
    # Non-transient failures do not burn the id.
    fixable = transfer(wallet, funding, 50, code=0)
    assert await statuses(ledger_client, [fixable]) == [T.CODE_MUST_NOT_BE_ZERO]
    fixed = transfer(wallet, funding, 50, id=fixable.id)
    assert await statuses(ledger_client, [fixed]) == [T.CREATED]


async def test_closed_accounts_refuse_transfers(ledger_client: LedgerClient) -> None:
    debit, credit = await open_accounts(ledger_client, AF.NONE, AF.NONE)
    closing = transfer(debit, credit, 0, flags=TF.PENDING | TF.CLOSING_DEBIT)
    assert await statuses(ledger_client, [closing]) == [T.CREATED]
    assert int((await account(ledger_client, debit)).flags) & int(AF.CLOSED)
    assert await statuses(
        ledger_client,
        [
            transfer(debit, credit, 1),
            transfer(credit, debit, 1),
        ],
    ) == [T.DEBIT_ACCOUNT_ALREADY_CLOSED, T.CREDIT_ACCOUNT_ALREADY_CLOSED]
    # Voiding the closing transfer reopens the account.
    reopen = transfer(
        0, 0, 0, pending_id=closing.id, flags=TF.VOID_PENDING_TRANSFER, ledger=0, code=0
    )
    assert await statuses(ledger_client, [reopen, transfer(debit, credit, 1)]) == [
        T.CREATED,
        T.CREATED,
    ]
    assert not int((await account(ledger_client, debit)).flags) & int(AF.CLOSED)


async def test_balancing_transfers_move_at_most_the_balance(ledger_client: LedgerClient) -> None:
    wallet, funding, sweep = await open_accounts(
        ledger_client, AF.DEBITS_MUST_NOT_EXCEED_CREDITS, AF.NONE, AF.NONE
    )
    balancing = transfer(wallet, sweep, 1_000, flags=TF.BALANCING_DEBIT)
    assert await statuses(ledger_client, [transfer(funding, wallet, 70), balancing]) == [
        T.CREATED,
        T.CREATED,
    ]
    (stored,) = await ledger_client.lookup_transfers([balancing.id])
    assert stored.amount == 70
    # Resubmitting a balancing transfer exists as long as the amount is not below what moved.
    assert await statuses(ledger_client, [balancing]) == [T.EXISTS]
    lower = transfer(wallet, sweep, 69, id=balancing.id, flags=TF.BALANCING_DEBIT)
    assert await statuses(ledger_client, [lower]) == [T.EXISTS_WITH_DIFFERENT_AMOUNT]
    # An empty wallet balances with a zero-amount transfer.
    empty = transfer(wallet, sweep, 5, flags=TF.BALANCING_DEBIT)
    assert await statuses(ledger_client, [empty]) == [T.CREATED]
    assert (await ledger_client.lookup_transfers([empty.id]))[0].amount == 0
    credit_side = transfer(funding, sweep, 500, flags=TF.BALANCING_CREDIT)
    assert await statuses(ledger_client, [credit_side]) == [T.CREATED]
    # The sweep account had debits 0 and credits 70: balancing credit moves nothing.
    assert (await ledger_client.lookup_transfers([credit_side.id]))[0].amount == 0


async def test_overflows(ledger_client: LedgerClient) -> None:
    debit, credit = await open_accounts(ledger_client, AF.NONE, AF.NONE)
    big = (1 << 128) - 2
    assert await statuses(
        ledger_client,
        [
            transfer(debit, credit, big),
            transfer(debit, credit, 5),
            transfer(debit, credit, 1, flags=TF.PENDING),
            # Pending and posted each still fit, but their sum would not.
            transfer(debit, credit, 1, flags=TF.PENDING),
        ],
    ) == [T.CREATED, T.OVERFLOWS_DEBITS_POSTED, T.CREATED, T.OVERFLOWS_DEBITS]


async def test_overflows_timeout(ledger_client: LedgerClient) -> None:
    debit, credit = await open_accounts(ledger_client, AF.NONE, AF.NONE)
    far = transfer(debit, credit, 1, flags=TF.PENDING, timeout=(1 << 32) - 1)
    assert await statuses(ledger_client, [far]) == [T.CREATED]
