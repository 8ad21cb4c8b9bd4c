"""Conformance: linked chains apply all-or-nothing, also across two ledgers (the currency
exchange pattern Kovra's payouts use), and a retried chain answers `exists` then
`linked_event_failed`, on both backends alike."""

from __future__ import annotations

import pytest

from ledger.clients import LedgerClient
from tests.ledger.conformance.helpers import (
    AF,
    TF,
    T,
    account,
    ledger_eur,
    ledger_idr,
    open_accounts,
    statuses,
    transfer,
)

pytestmark = pytest.mark.conformance


async def _exchange_accounts(client: LedgerClient) -> tuple[int, int, int, int, int]:
    """A EUR wallet with 1,000, EUR and IDR liquidity positions (IDR funded 50,000), and an
    IDR outbound account."""
    wallet, eur_position, eur_fees, eur_bank = await open_accounts(
        client,
        AF.DEBITS_MUST_NOT_EXCEED_CREDITS,
        AF.DEBITS_MUST_NOT_EXCEED_CREDITS,
        AF.NONE,
        AF.NONE,
    )
    idr_position, idr_outbound, idr_bank = await open_accounts(
        client, AF.DEBITS_MUST_NOT_EXCEED_CREDITS, AF.NONE, AF.NONE, ledger=ledger_idr
    )
    assert await statuses(
        client,
        [
            transfer(eur_bank, wallet, 1_000),
            transfer(idr_bank, idr_position, 50_000, ledger=ledger_idr),
        ],
    ) == [T.CREATED, T.CREATED]
    return wallet, eur_position, eur_fees, idr_position, idr_outbound


def _chain(
    wallet: int,
    eur_position: int,
    eur_fees: int,
    idr_position: int,
    idr_outbound: int,
    *,
    source: int,
    fee: int,
    target: int,
    flags: object = TF.NONE,
) -> list:  # type: ignore[type-arg]
    linked = TF.LINKED | flags  # type: ignore[operator]
    return [
        transfer(wallet, eur_position, source, flags=linked),
        transfer(wallet, eur_fees, fee, flags=linked),
        transfer(idr_position, idr_outbound, target, ledger=ledger_idr, flags=flags),
    ]


async def test_an_exchange_chain_moves_both_ledgers(ledger_client: LedgerClient) -> None:
    accounts = await _exchange_accounts(ledger_client)
    wallet, eur_position, _, idr_position, idr_outbound = accounts
    chain = _chain(*accounts, source=100, fee=2, target=17_000)
    assert await statuses(ledger_client, chain) == [T.CREATED] * 3
    assert (await account(ledger_client, wallet)).debits_posted == 102
    assert (await account(ledger_client, eur_position)).credits_posted == 100
    assert (await account(ledger_client, idr_position)).debits_posted == 17_000
    assert (await account(ledger_client, idr_outbound)).credits_posted == 17_000
    # A retried chain: the first event exists, the rest fail as linked, nothing moves twice.
    assert await statuses(ledger_client, chain) == [
        T.EXISTS,
        T.LINKED_EVENT_FAILED,
        T.LINKED_EVENT_FAILED,
    ]
    assert (await account(ledger_client, wallet)).debits_posted == 102


async def test_short_liquidity_fails_the_whole_chain(ledger_client: LedgerClient) -> None:
    accounts = await _exchange_accounts(ledger_client)
    wallet, eur_position, eur_fees, idr_position, _ = accounts
    chain = _chain(*accounts, source=100, fee=2, target=60_000)
    assert await statuses(ledger_client, chain) == [
        T.LINKED_EVENT_FAILED,
        T.LINKED_EVENT_FAILED,
        T.EXCEEDS_CREDITS,
    ]
    for account_id in (wallet, eur_fees, idr_position):
        stored = await account(ledger_client, account_id)
        assert (stored.debits_posted, stored.debits_pending) == (0, 0)
    assert (await account(ledger_client, eur_position)).credits_posted == 0
    assert (await account(ledger_client, wallet)).credits_posted == 1_000


async def test_short_funds_fail_the_chain_at_the_first_leg(ledger_client: LedgerClient) -> None:
    accounts = await _exchange_accounts(ledger_client)
    chain = _chain(*accounts, source=999, fee=2, target=100)
    assert await statuses(ledger_client, chain) == [
        T.LINKED_EVENT_FAILED,
        T.EXCEEDS_CREDITS,
        T.LINKED_EVENT_FAILED,
    ]


async def test_pending_chains_are_posted_and_voided_as_chains(ledger_client: LedgerClient) -> None:
    accounts = await _exchange_accounts(ledger_client)
    wallet, _, _, idr_position, idr_outbound = accounts
    reserve = _chain(*accounts, source=100, fee=2, target=17_000, flags=TF.PENDING)
    assert await statuses(ledger_client, reserve) == [T.CREATED] * 3
    held = await account(ledger_client, wallet)
    assert (held.debits_pending, held.debits_posted) == (102, 0)
    posts = [
        transfer(
            0,
            0,
            (1 << 128) - 1,
            pending_id=t.id,
            ledger=0,
            code=0,
            flags=TF.POST_PENDING_TRANSFER | (TF.LINKED if i < 2 else TF.NONE),
        )
        for i, t in enumerate(reserve)
    ]
    # A chain whose last post fails leaves every hold in place.
    broken = [
        *posts[:2],
        transfer(
            0, 0, 1, pending_id=reserve[0].id, ledger=0, code=0, flags=TF.VOID_PENDING_TRANSFER
        ),
    ]
    assert await statuses(ledger_client, broken) == [
        T.LINKED_EVENT_FAILED,
        T.LINKED_EVENT_FAILED,
        T.PENDING_TRANSFER_HAS_DIFFERENT_AMOUNT,
    ]
    assert (await account(ledger_client, wallet)).debits_pending == 102
    assert await statuses(ledger_client, posts) == [T.CREATED] * 3
    posted = await account(ledger_client, wallet)
    assert (posted.debits_pending, posted.debits_posted) == (0, 102)
    assert (await account(ledger_client, idr_outbound)).credits_posted == 17_000
    assert (await account(ledger_client, idr_position)).debits_pending == 0


async def test_chains_are_independent_within_a_batch(ledger_client: LedgerClient) -> None:
    wallet, funding = await open_accounts(
        ledger_client, AF.DEBITS_MUST_NOT_EXCEED_CREDITS, AF.NONE, ledger=ledger_eur
    )
    assert await statuses(
        ledger_client,
        [
            transfer(funding, wallet, 10, flags=TF.LINKED),
            transfer(wallet, funding, 11),  # Fails: breaks the first chain only.
            transfer(funding, wallet, 5, flags=TF.LINKED),
            transfer(wallet, funding, 5),
            transfer(funding, wallet, 1, flags=TF.LINKED),  # An open chain at the end.
        ],
    ) == [
        T.LINKED_EVENT_FAILED,
        T.EXCEEDS_CREDITS,
        T.CREATED,
        T.CREATED,
        T.LINKED_EVENT_CHAIN_OPEN,
    ]
    stored = await account(ledger_client, wallet)
    assert (stored.credits_posted, stored.debits_posted) == (5, 5)
