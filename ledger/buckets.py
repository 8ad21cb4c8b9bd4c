"""Buckets and deliveries in the ledger (SPEC §11): a collected amount split into a
customer's buckets, and a bucket's money paid on to a partner institution.

A bucket is a sub-account (1 .. 2^32-1) of the tenant's wallet in its currency, so it has
the wallet's flags (its debits never exceed its credits) and its balance is one lookup. A
run's allocation is ONE linked chain, so every bucket gets its share or none does:

    TENANT_WALLET(sub 0) -> TENANT_WALLET(bucket sub-account)   per line   BUCKET_ALLOCATION

Each leg's id derives from its allocation line's id (leg BUCKET_ALLOCATION), with the run's
id in `user_data_128` and the tenant in `user_data_64`. A wallet short of the sum refuses the
chain (`insufficient_funds`) and moves nothing.

A delivery pays a bucket's line on to its partner in two phases, since the partner is asked
in between:

    TENANT_WALLET(bucket) -> PARTNER_SETTLEMENT(partner's ledger number)   pending, no timeout
    then posted (the partner took it) or voided (it refused; the money stays in the bucket)

Ids derive from the partner order's id (legs PARTNER_DELIVERY, _POST, _VOID), which rides in
`user_data_128`. A post after a void is `hold_already_voided`, a void after a post
`hold_already_captured`: neither moves money.

TigerBeetle remembers a transfer refused for a transient reason (`exceeds_credits`, a
pending transfer not found): the same id answers `attempt_already_failed` for good. So an
allocation refused for insufficient funds, or a delivery reserved on a bucket short of the
amount, cannot succeed later under the same ids; the caller fails the run instead.

Every call takes a batch and sends one request per step for the whole batch; states are
rebuilt from TigerBeetle alone, by the deterministic ids.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import Final

import msgspec
import tigerbeetle as tb

from ledger.accounts import AccountType, new_account, sub_account_max, tenant_account_id
from ledger.chains import Chain, chains_per_call_max, create_chains, lookups_per_request_max
from ledger.errors import InvalidAmount, LedgerError
from ledger.invariants import ensure
from ledger.outcomes import check_account_results
from ledger.service import Ledger, Posted, tenant_account_types, validate_amount
from ledger.transfers import Leg, TransferCode, linked, transfer_id

# The most allocations or deliveries one call takes (one chain each).
items_per_call_max: Final = chains_per_call_max
# The most buckets one allocation pays into: a customer's rules are bounded far below this
# (`rules_per_customer_max`), and a chain must fit one request.
legs_per_allocation_max: Final = 256
# The most accounts one opening or balance read names: one request each.
accounts_per_call_max: Final = lookups_per_request_max


class AllocationLeg(msgspec.Struct, frozen=True, kw_only=True):
    """One bucket's share of a run: its allocation line's id names the transfer."""

    line_id: int
    bucket_sub_account: int
    amount_minor: int


class Allocation(msgspec.Struct, frozen=True, kw_only=True):
    """A run's collected money split into buckets: one linked chain."""

    orchestration_id: int  # Rides in user_data_128 of every leg.
    tenant_id: int
    currency_code: str
    legs: tuple[AllocationLeg, ...]


class Delivery(msgspec.Struct, frozen=True, kw_only=True):
    """A partner order paying one bucket's line on to its partner."""

    order_id: int  # Rides in user_data_128; the transfer ids derive from it.
    tenant_id: int
    currency_code: str
    bucket_sub_account: int
    partner_sub_account: int  # The partner's ledger number.
    amount_minor: int


class DeliveryStatus(enum.Enum):
    """Where a delivery stands, from TigerBeetle alone."""

    ABSENT = "absent"  # Never reserved.
    RESERVED = "reserved"  # Pending: neither posted nor voided yet.
    POSTED = "posted"  # The partner settlement account has the money.
    VOIDED = "voided"  # Released back to the bucket.


class BucketBalance(msgspec.Struct, frozen=True, kw_only=True):
    """A bucket's account, as the API shows it (zeros for an account not opened)."""

    sub_account: int
    allocated_minor: int  # credits_posted: everything allocated into it.
    delivered_minor: int  # debits_posted: everything paid on to its partner.
    pending_delivery_minor: int  # debits_pending: reserved for a partner's answer.
    balance_minor: int  # credits_posted - debits_posted.


_delivery_legs = (Leg.PARTNER_DELIVERY, Leg.PARTNER_DELIVERY_POST, Leg.PARTNER_DELIVERY_VOID)


class BucketsLedger:
    """Bucket allocations and partner deliveries over a `Ledger` (its client and
    currencies)."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger

    # ----------------------------------------------------------------------------------
    # Accounts.

    async def open_buckets(
        self, *, tenant_id: int, currency_code: str, sub_accounts: Sequence[int]
    ) -> None:
        """Open the buckets' accounts, and the tenant's own accounts in the currency (a
        tenant that began before it was enabled has none), in one request; `exists` is
        fine, so a repeat changes nothing."""
        number = self._ledger.currencies.get(currency_code).number
        ensure(len(sub_accounts) + 3 <= accounts_per_call_max, "one request of accounts")
        for sub_account in sub_accounts:
            ensure(1 <= sub_account <= sub_account_max, "a bucket is sub-account 1 .. 2^32-1")
        ids = [tenant_account_id(tenant_id, kind, number) for kind in tenant_account_types]
        ids += [
            tenant_account_id(tenant_id, AccountType.TENANT_WALLET, number, sub_account)
            for sub_account in sub_accounts
        ]
        await self._open(ids)

    async def open_partner_accounts(
        self, *, tenant_id: int, currency_code: str, partner_sub_accounts: Sequence[int]
    ) -> None:
        """Open the tenant's PARTNER_SETTLEMENT account for each partner, in one request."""
        number = self._ledger.currencies.get(currency_code).number
        ensure(len(partner_sub_accounts) <= accounts_per_call_max, "one request of accounts")
        for sub_account in partner_sub_accounts:
            ensure(1 <= sub_account <= sub_account_max, "a partner number is 1 .. 2^32-1")
        await self._open(
            [
                tenant_account_id(tenant_id, AccountType.PARTNER_SETTLEMENT, number, sub_account)
                for sub_account in partner_sub_accounts
            ]
        )

    async def _open(self, account_ids: list[int]) -> None:
        accounts = [new_account(account_id) for account_id in dict.fromkeys(account_ids)]
        if accounts:
            results = await self._ledger.client.create_accounts(accounts)
            check_account_results(accounts, results)

    # ----------------------------------------------------------------------------------
    # Allocation: the wallet's main account into the buckets, one chain per run.

    async def allocate_many(self, allocations: Sequence[Allocation]) -> list[Posted | LedgerError]:
        """Apply each allocation's chain, all in as few requests as the chains fit: per
        allocation its `Posted` (the first leg's id; `existed` when applied before), or the
        error that refused it and moved nothing (`insufficient_funds` when the wallet is
        short of the sum, `invalid_amount` for an amount out of range or no legs)."""
        ensure(len(allocations) <= items_per_call_max, "at most items_per_call_max")
        chains: list[Chain | LedgerError] = []
        for allocation in allocations:
            try:
                chains.append(self._allocation_chain(allocation))
            except LedgerError as error:
                chains.append(error)
        return await create_chains(self._ledger.client, chains)

    def _allocation_chain(self, allocation: Allocation) -> Chain:
        number = self._ledger.currencies.get(allocation.currency_code).number
        legs = allocation.legs
        if not legs:
            raise InvalidAmount("an allocation moves money into at least one bucket")
        ensure(len(legs) <= legs_per_allocation_max, "at most legs_per_allocation_max legs")
        ensure(len({leg.line_id for leg in legs}) == len(legs), "one leg per allocation line")
        wallet = tenant_account_id(allocation.tenant_id, AccountType.TENANT_WALLET, number)
        transfers = [
            tb.Transfer(
                id=transfer_id(object_id=leg.line_id, leg=Leg.BUCKET_ALLOCATION),
                debit_account_id=wallet,
                credit_account_id=self._bucket_id(allocation.tenant_id, number, leg),
                amount=validate_amount(leg.amount_minor),
                ledger=number,
                code=TransferCode.BUCKET_ALLOCATION,
                user_data_128=allocation.orchestration_id,
                user_data_64=allocation.tenant_id,
            )
            for leg in legs
        ]
        # The legs' ids derive from the lines, not the run, so no leg of the run's own id
        # can be missing from a retried chain: the step names none.
        return Chain(object_id=allocation.orchestration_id, step=(), transfers=linked(transfers))

    @staticmethod
    def _bucket_id(tenant_id: int, number: int, leg: AllocationLeg) -> int:
        sub_account = leg.bucket_sub_account
        ensure(1 <= sub_account <= sub_account_max, "a bucket is sub-account 1 .. 2^32-1")
        return tenant_account_id(tenant_id, AccountType.TENANT_WALLET, number, sub_account)

    async def allocation_states(self, allocations: Sequence[Allocation]) -> list[bool]:
        """Whether each allocation's chain is in the ledger, by one lookup of every leg id
        for the whole batch. A chain is all or nothing, so its legs are all there or none
        is; an allocation without legs is never there."""
        ensure(len(allocations) <= items_per_call_max, "at most items_per_call_max")
        ids = [
            transfer_id(object_id=leg.line_id, leg=Leg.BUCKET_ALLOCATION)
            for allocation in allocations
            for leg in allocation.legs
        ]
        found = await self._lookup(ids)
        states: list[bool] = []
        for allocation in allocations:
            present = [
                transfer_id(object_id=leg.line_id, leg=Leg.BUCKET_ALLOCATION) in found
                for leg in allocation.legs
            ]
            ensure(all(present) or not any(present), "an allocation chain is all or nothing")
            states.append(bool(present) and all(present))
        return states

    # ----------------------------------------------------------------------------------
    # Delivery: bucket -> partner settlement, reserved, then posted or voided.

    async def reserve_many(self, deliveries: Sequence[Delivery]) -> list[Posted | LedgerError]:
        """Reserve each delivery's amount on its bucket (a pending transfer without a
        timeout) for its partner: `insufficient_funds` when the bucket is short."""
        return await self._deliver(deliveries, Leg.PARTNER_DELIVERY)

    async def post_many(self, deliveries: Sequence[Delivery]) -> list[Posted | LedgerError]:
        """Post each reserved delivery: the partner took it. `hold_already_voided` for one
        voided before, `not_found` for one never reserved."""
        return await self._deliver(deliveries, Leg.PARTNER_DELIVERY_POST)

    async def void_many(self, deliveries: Sequence[Delivery]) -> list[Posted | LedgerError]:
        """Void each reserved delivery: the money stays in its bucket.
        `hold_already_captured` for one posted before, `not_found` for one never reserved."""
        return await self._deliver(deliveries, Leg.PARTNER_DELIVERY_VOID)

    async def _deliver(
        self, deliveries: Sequence[Delivery], leg: Leg
    ) -> list[Posted | LedgerError]:
        ensure(len(deliveries) <= items_per_call_max, "at most items_per_call_max")
        chains: list[Chain | LedgerError] = []
        for delivery in deliveries:
            try:
                transfer = self._delivery_transfer(delivery, leg)
            except LedgerError as error:
                chains.append(error)
            else:
                chains.append(Chain(object_id=delivery.order_id, step=(leg,), transfers=[transfer]))
        return await create_chains(self._ledger.client, chains)

    def _delivery_transfer(self, delivery: Delivery, leg: Leg) -> tb.Transfer:
        number = self._ledger.currencies.get(delivery.currency_code).number
        amount = validate_amount(delivery.amount_minor)
        ensure(1 <= delivery.bucket_sub_account <= sub_account_max, "a bucket sub-account")
        ensure(1 <= delivery.partner_sub_account <= sub_account_max, "a partner number")
        reserve_id = transfer_id(object_id=delivery.order_id, leg=Leg.PARTNER_DELIVERY)
        flags, pending_id = {
            Leg.PARTNER_DELIVERY: (tb.TransferFlags.PENDING, 0),
            Leg.PARTNER_DELIVERY_POST: (tb.TransferFlags.POST_PENDING_TRANSFER, reserve_id),
            # A void names no amount (0): it releases what the reservation holds.
            Leg.PARTNER_DELIVERY_VOID: (tb.TransferFlags.VOID_PENDING_TRANSFER, reserve_id),
        }[leg]
        return tb.Transfer(
            id=transfer_id(object_id=delivery.order_id, leg=leg),
            # Naming the accounts makes TigerBeetle refuse a post or void of a reservation
            # on other accounts (another tenant's, another bucket's) as not found.
            debit_account_id=tenant_account_id(
                delivery.tenant_id, AccountType.TENANT_WALLET, number, delivery.bucket_sub_account
            ),
            credit_account_id=tenant_account_id(
                delivery.tenant_id,
                AccountType.PARTNER_SETTLEMENT,
                number,
                delivery.partner_sub_account,
            ),
            amount=0 if leg is Leg.PARTNER_DELIVERY_VOID else amount,
            pending_id=pending_id,
            ledger=number,
            code=TransferCode.PARTNER_DELIVERY,
            flags=flags,
            user_data_128=delivery.order_id,
            user_data_64=delivery.tenant_id,
        )

    async def delivery_states(self, deliveries: Sequence[Delivery]) -> list[DeliveryStatus]:
        """Each delivery's status by one lookup of its three ids for the whole batch."""
        ensure(len(deliveries) <= items_per_call_max, "at most items_per_call_max")
        found = await self._lookup(
            [
                transfer_id(object_id=delivery.order_id, leg=leg)
                for delivery in deliveries
                for leg in _delivery_legs
            ]
        )
        states: list[DeliveryStatus] = []
        for delivery in deliveries:
            reserved, posted, voided = (
                transfer_id(object_id=delivery.order_id, leg=leg) in found for leg in _delivery_legs
            )
            ensure(not (posted and voided), "a reservation is posted or voided, not both")
            ensure(reserved or not (posted or voided), "only a reservation is posted or voided")
            if posted:
                states.append(DeliveryStatus.POSTED)
            elif voided:
                states.append(DeliveryStatus.VOIDED)
            elif reserved:
                states.append(DeliveryStatus.RESERVED)
            else:
                states.append(DeliveryStatus.ABSENT)
        return states

    # ----------------------------------------------------------------------------------
    # Balances.

    async def balances(
        self, *, tenant_id: int, currency_code: str, sub_accounts: Sequence[int]
    ) -> list[BucketBalance]:
        """Each bucket's balances, in the order asked, by one lookup."""
        return await self.balances_many(
            tenant_id=tenant_id, buckets=[(currency_code, sub) for sub in sub_accounts]
        )

    async def balances_many(
        self, *, tenant_id: int, buckets: Sequence[tuple[str, int]]
    ) -> list[BucketBalance]:
        """The balances of buckets in any currencies, each named (currency code,
        sub-account), in the order asked, by one lookup (a page of a customer's buckets)."""
        ensure(len(buckets) <= accounts_per_call_max, "one lookup of accounts")
        ids = [
            tenant_account_id(
                tenant_id,
                AccountType.TENANT_WALLET,
                self._ledger.currencies.get(currency_code).number,
                sub_account,
            )
            for currency_code, sub_account in buckets
        ]
        found = {account.id: account for account in await self._lookup_accounts(ids)}
        balances: list[BucketBalance] = []
        for (_, sub_account), account_id in zip(buckets, ids, strict=True):
            account = found.get(account_id)
            credited, debited, pending = (
                (0, 0, 0)
                if account is None
                else (account.credits_posted, account.debits_posted, account.debits_pending)
            )
            balances.append(
                BucketBalance(
                    sub_account=sub_account,
                    allocated_minor=credited,
                    delivered_minor=debited,
                    pending_delivery_minor=pending,
                    balance_minor=credited - debited,
                )
            )
        return balances

    async def _lookup_accounts(self, ids: list[int]) -> list[tb.Account]:
        unique = list(dict.fromkeys(ids))
        return await self._ledger.client.lookup_accounts(unique) if unique else []

    async def _lookup(self, ids: list[int]) -> set[int]:
        """The ids among `ids` that are stored, in as few lookups as TigerBeetle allows."""
        unique = list(dict.fromkeys(ids))
        found: set[int] = set()
        for start in range(0, len(unique), lookups_per_request_max):
            stored = await self._ledger.client.lookup_transfers(
                unique[start : start + lookups_per_request_max]
            )
            found.update(transfer.id for transfer in stored)
        return found
