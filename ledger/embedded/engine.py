"""The embedded ledger's state machine: TigerBeetle's semantics in one Python process.

It follows TigerBeetle's `state_machine.zig`: the same checks in the same order of
precedence, linked chains applied all-or-nothing, two-phase transfers with timeouts that
expire, balancing and closing flags, imported events, transient failures remembered per id,
balance history and the scan filters of the query operations. It is synchronous and knows
nothing of files or event loops: `EmbeddedClient` drives it and `Journal` makes it durable.

Every mutating operation takes its timestamp as an argument, so replaying a journal of
(operation, timestamp, events) rebuilds exactly the same state.
"""

from __future__ import annotations

import bisect
import copy
import enum
import functools
import heapq
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TypeVar

import tigerbeetle as tb

from ledger.invariants import ensure

A = tb.CreateAccountStatus
T = tb.CreateTransferStatus

u128_max = (1 << 128) - 1
u63_max = (1 << 63) - 1
# TigerBeetle's valid timestamps: the top bit of the u64 is its tombstone flag.
timestamp_valid_min = 1
timestamp_valid_max = u63_max
ns_per_s = 1_000_000_000

account_flags_known = sum(int(flag) for flag in tb.AccountFlags)
transfer_flags_known = sum(int(flag) for flag in tb.TransferFlags)
account_filter_flags_known = int(
    tb.AccountFilterFlags.DEBITS | tb.AccountFilterFlags.CREDITS | tb.AccountFilterFlags.REVERSED
)
query_filter_flags_known = int(tb.QueryFilterFlags.REVERSED)
_post_or_void = int(tb.TransferFlags.POST_PENDING_TRANSFER | tb.TransferFlags.VOID_PENDING_TRANSFER)
_closing = int(tb.TransferFlags.CLOSING_DEBIT | tb.TransferFlags.CLOSING_CREDIT)
_balancing = int(tb.TransferFlags.BALANCING_DEBIT | tb.TransferFlags.BALANCING_CREDIT)

_transient_statuses = frozenset(
    {
        T.DEBIT_ACCOUNT_NOT_FOUND,
        T.CREDIT_ACCOUNT_NOT_FOUND,
        T.PENDING_TRANSFER_NOT_FOUND,
        T.EXCEEDS_CREDITS,
        T.EXCEEDS_DEBITS,
        T.DEBIT_ACCOUNT_ALREADY_CLOSED,
        T.CREDIT_ACCOUNT_ALREADY_CLOSED,
    }
)

ObjectT = TypeVar("ObjectT", tb.Account, tb.Transfer)
# debits_pending, debits_posted, credits_pending, credits_posted:
Balance = tuple[int, int, int, int]


class PendingStatus(enum.Enum):
    PENDING = "pending"
    POSTED = "posted"
    VOIDED = "voided"
    EXPIRED = "expired"


def _has(flags: int, flag: int) -> bool:
    # Both as plain ints: `int & IntFlag` goes through `Flag.__rand__`, which builds a flag
    # member on every test (0.8 µs against 0.1), and a payout's legs test a dozen flags each.
    return int(flags) & int(flag) != 0


@functools.cache
def _transfer_flags(flags: int) -> tb.TransferFlags:
    """The stored transfer's flags as the client's type, built once per distinct value
    (`transfer_flags_known` bounds them): the enum's constructor costs 0.5 µs a call."""
    return tb.TransferFlags(flags)


def _balance(account: tb.Account) -> Balance:
    return (
        account.debits_pending,
        account.debits_posted,
        account.credits_pending,
        account.credits_posted,
    )


def _timestamp_valid(timestamp: int) -> bool:
    return timestamp_valid_min <= timestamp <= timestamp_valid_max


class Engine:
    """TigerBeetle's state machine, in memory. Not thread-safe; one caller at a time."""

    def __init__(self) -> None:
        self._accounts: dict[int, tb.Account] = {}
        self._accounts_ordered: list[tb.Account] = []
        self._account_timestamps: set[int] = set()
        self._transfers: dict[int, tb.Transfer] = {}
        self._transfers_ordered: list[tb.Transfer] = []
        self._transfers_failed: set[int] = set()
        self._pending_status: dict[int, PendingStatus] = {}
        self._expiry_queue: list[tuple[int, int]] = []
        self._account_transfers: dict[int, list[tb.Transfer]] = {}
        self._balance_snapshots: dict[int, tuple[int, Balance, int, Balance]] = {}
        self._undo_log: list[Callable[[], None]] | None = None
        self.commit_timestamp = 0

    # ----------------------------------------------------------------------------------
    # Timestamps.

    def next_expiry_ns(self) -> int | None:
        """When the earliest pending transfer with a timeout expires, if any."""
        while self._expiry_queue:
            expires_at, pending_id = self._expiry_queue[0]
            if self._expiry_is_current(expires_at, pending_id):
                return expires_at
            heapq.heappop(self._expiry_queue)
        return None

    def _expiry_is_current(self, expires_at: int, pending_id: int) -> bool:
        """Whether a queued expiry still belongs to a live pending transfer: entries of
        transfers since resolved, or rolled back with their chain, are stale."""
        if self._pending_status.get(pending_id) is not PendingStatus.PENDING:
            return False
        pending = self._transfers[pending_id]
        return pending.timestamp + pending.timeout * ns_per_s == expires_at

    # ----------------------------------------------------------------------------------
    # Creates.

    def create_accounts(
        self, timestamp: int, events: list[tb.Account]
    ) -> list[tb.CreateAccountResult]:
        """Apply a `create_accounts` batch committed at `timestamp`."""
        results = self._execute_create(timestamp, events, transfers=False)
        return [tb.CreateAccountResult(timestamp=ts, status=A(status)) for status, ts in results]

    def create_transfers(
        self, timestamp: int, events: list[tb.Transfer]
    ) -> list[tb.CreateTransferResult]:
        """Apply a `create_transfers` batch committed at `timestamp`."""
        results = self._execute_create(timestamp, events, transfers=True)
        return [tb.CreateTransferResult(timestamp=ts, status=T(status)) for status, ts in results]

    def _execute_create(
        self, timestamp: int, events: Sequence[tb.Account | tb.Transfer], *, transfers: bool
    ) -> list[tuple[A | T, int]]:
        """TigerBeetle's `execute_create`: per-event timestamps and linked-chain scopes."""
        status_type: type[A] | type[T] = T if transfers else A
        linked_flag = int(tb.TransferFlags.LINKED if transfers else tb.AccountFlags.LINKED)
        imported_flag = int(tb.TransferFlags.IMPORTED if transfers else tb.AccountFlags.IMPORTED)
        ensure(timestamp > self.commit_timestamp, "timestamps only move forward")

        results: list[tuple[A | T, int]] = []
        chain_start: int | None = None
        chain_broken = False
        batch_imported = bool(events) and _has(int(events[0].flags), imported_flag)
        count = len(events)
        for index, event in enumerate(events):
            timestamp_event = timestamp - count + index + 1
            linked = _has(int(event.flags), linked_flag)
            if linked and chain_start is None:
                chain_start = index
                self._undo_log = []
            status: A | T | None
            timestamp_actual: int | None = None
            if linked and index == count - 1:
                status = status_type.LINKED_EVENT_CHAIN_OPEN
            elif chain_broken:
                status = status_type.LINKED_EVENT_FAILED
            else:
                status = self._check_import(
                    status_type, event, batch_imported, imported_flag, timestamp
                )
                if status is None:
                    if isinstance(event, tb.Transfer):
                        status, timestamp_actual = self._create_transfer(timestamp_event, event)
                    else:
                        status, timestamp_actual = self._create_account(timestamp_event, event)
            if status is not status_type.CREATED:
                if chain_start is not None and not chain_broken:
                    chain_broken = True
                    self._rollback()
                    for chain_index in range(chain_start, index):
                        results[chain_index] = (
                            status_type.LINKED_EVENT_FAILED,
                            results[chain_index][1],
                        )
                # Transfers failing on a transient error burn their id for good.
                if transfers and status in _transient_statuses:
                    self._transfers_failed.add(event.id)
            if status is not status_type.CREATED and status is not status_type.EXISTS:
                timestamp_actual = timestamp_event
            ensure(timestamp_actual is not None, "created and exists carry a timestamp")
            assert timestamp_actual is not None  # For the type checker; ensure() checked it.
            results.append((status, timestamp_actual))
            if chain_start is not None and (
                not linked or status is status_type.LINKED_EVENT_CHAIN_OPEN
            ):
                self._undo_log = None
                chain_start = None
                chain_broken = False
        ensure(chain_start is None and self._undo_log is None, "every chain is closed")
        return results

    def _check_import(
        self,
        status_type: type[A] | type[T],
        event: tb.Account | tb.Transfer,
        batch_imported: bool,
        imported_flag: int,
        timestamp: int,
    ) -> A | T | None:
        imported = _has(event.flags, imported_flag)
        if batch_imported != imported:
            if imported:
                return status_type.IMPORTED_EVENT_NOT_EXPECTED
            return status_type.IMPORTED_EVENT_EXPECTED
        if imported:
            if not _timestamp_valid(event.timestamp):
                return status_type.IMPORTED_EVENT_TIMESTAMP_OUT_OF_RANGE
            if event.timestamp >= timestamp:
                return status_type.IMPORTED_EVENT_TIMESTAMP_MUST_NOT_ADVANCE
        elif event.timestamp != 0:
            return status_type.TIMESTAMP_MUST_BE_ZERO
        return None

    def _rollback(self) -> None:
        undo_log = self._undo_log
        ensure(undo_log is not None, "rollback happens inside a linked chain")
        assert undo_log is not None  # For the type checker; ensure() above is the real check.
        for undo in reversed(undo_log):
            undo()
        undo_log.clear()

    def _remember(self, undo: Callable[[], None]) -> None:
        if self._undo_log is not None:
            self._undo_log.append(undo)

    # ----------------------------------------------------------------------------------
    # create_accounts.

    def _create_account(self, timestamp_event: int, a: tb.Account) -> tuple[A, int | None]:
        flags = int(a.flags)
        if flags & ~account_flags_known:
            return A.RESERVED_FLAG, None
        if a.id == 0:
            return A.ID_MUST_NOT_BE_ZERO, None
        if a.id == u128_max:
            return A.ID_MUST_NOT_BE_INT_MAX, None
        existing = self._accounts.get(a.id)
        if existing is not None:
            return self._create_account_exists(a, existing)
        if _has(flags, tb.AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS) and _has(
            flags, tb.AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS
        ):
            return A.FLAGS_ARE_MUTUALLY_EXCLUSIVE, None
        if a.debits_pending != 0:
            return A.DEBITS_PENDING_MUST_BE_ZERO, None
        if a.debits_posted != 0:
            return A.DEBITS_POSTED_MUST_BE_ZERO, None
        if a.credits_pending != 0:
            return A.CREDITS_PENDING_MUST_BE_ZERO, None
        if a.credits_posted != 0:
            return A.CREDITS_POSTED_MUST_BE_ZERO, None
        if a.ledger == 0:
            return A.LEDGER_MUST_NOT_BE_ZERO, None
        if a.code == 0:
            return A.CODE_MUST_NOT_BE_ZERO, None

        timestamp_actual = timestamp_event
        if _has(flags, tb.AccountFlags.IMPORTED):
            if self._accounts_ordered and a.timestamp <= self._accounts_ordered[-1].timestamp:
                return A.IMPORTED_EVENT_TIMESTAMP_MUST_NOT_REGRESS, None
            if self._transfer_at(a.timestamp) is not None:
                return A.IMPORTED_EVENT_TIMESTAMP_MUST_NOT_REGRESS, None
            timestamp_actual = a.timestamp

        account = tb.Account(
            id=a.id,
            user_data_128=a.user_data_128,
            user_data_64=a.user_data_64,
            user_data_32=a.user_data_32,
            ledger=a.ledger,
            code=a.code,
            flags=tb.AccountFlags(flags),
            timestamp=timestamp_actual,
        )
        self._insert_account(account)
        self.commit_timestamp = timestamp_actual
        return A.CREATED, timestamp_actual

    @staticmethod
    def _create_account_exists(a: tb.Account, e: tb.Account) -> tuple[A, int | None]:
        if int(a.flags) != int(e.flags):
            return A.EXISTS_WITH_DIFFERENT_FLAGS, None
        if a.user_data_128 != e.user_data_128:
            return A.EXISTS_WITH_DIFFERENT_USER_DATA_128, None
        if a.user_data_64 != e.user_data_64:
            return A.EXISTS_WITH_DIFFERENT_USER_DATA_64, None
        if a.user_data_32 != e.user_data_32:
            return A.EXISTS_WITH_DIFFERENT_USER_DATA_32, None
        if a.ledger != e.ledger:
            return A.EXISTS_WITH_DIFFERENT_LEDGER, None
        if a.code != e.code:
            return A.EXISTS_WITH_DIFFERENT_CODE, None
        return A.EXISTS, e.timestamp

    def _insert_account(self, account: tb.Account) -> None:
        self._accounts[account.id] = account
        self._accounts_ordered.append(account)
        self._account_timestamps.add(account.timestamp)

        def undo() -> None:
            del self._accounts[account.id]
            self._accounts_ordered.pop()
            self._account_timestamps.discard(account.timestamp)

        self._remember(undo)

    # ----------------------------------------------------------------------------------
    # create_transfers.

    def _create_transfer(self, timestamp_event: int, t: tb.Transfer) -> tuple[T, int | None]:
        flags = int(t.flags)
        if flags & ~transfer_flags_known:
            return T.RESERVED_FLAG, None
        if t.id == 0:
            return T.ID_MUST_NOT_BE_ZERO, None
        if t.id == u128_max:
            return T.ID_MUST_NOT_BE_INT_MAX, None
        existing = self._transfers.get(t.id)
        if existing is not None:
            return self._create_transfer_exists(t, existing)
        if t.id in self._transfers_failed:
            return T.ID_ALREADY_FAILED, None
        if _has(flags, _post_or_void):
            return self._post_or_void_pending_transfer(timestamp_event, t)

        if t.debit_account_id == 0:
            return T.DEBIT_ACCOUNT_ID_MUST_NOT_BE_ZERO, None
        if t.debit_account_id == u128_max:
            return T.DEBIT_ACCOUNT_ID_MUST_NOT_BE_INT_MAX, None
        if t.credit_account_id == 0:
            return T.CREDIT_ACCOUNT_ID_MUST_NOT_BE_ZERO, None
        if t.credit_account_id == u128_max:
            return T.CREDIT_ACCOUNT_ID_MUST_NOT_BE_INT_MAX, None
        if t.credit_account_id == t.debit_account_id:
            return T.ACCOUNTS_MUST_BE_DIFFERENT, None
        if t.pending_id != 0:
            return T.PENDING_ID_MUST_BE_ZERO, None
        pending = _has(flags, tb.TransferFlags.PENDING)
        if not pending:
            if t.timeout != 0:
                return T.TIMEOUT_RESERVED_FOR_PENDING_TRANSFER, None
            if _has(flags, _closing):
                return T.CLOSING_TRANSFER_MUST_BE_PENDING, None
        if t.ledger == 0:
            return T.LEDGER_MUST_NOT_BE_ZERO, None
        if t.code == 0:
            return T.CODE_MUST_NOT_BE_ZERO, None

        dr = self._accounts.get(t.debit_account_id)
        if dr is None:
            return T.DEBIT_ACCOUNT_NOT_FOUND, None
        cr = self._accounts.get(t.credit_account_id)
        if cr is None:
            return T.CREDIT_ACCOUNT_NOT_FOUND, None
        if dr.ledger != cr.ledger:
            return T.ACCOUNTS_MUST_HAVE_THE_SAME_LEDGER, None
        if t.ledger != dr.ledger:
            return T.TRANSFER_MUST_HAVE_THE_SAME_LEDGER_AS_ACCOUNTS, None

        timestamp_actual = timestamp_event
        if _has(flags, tb.TransferFlags.IMPORTED):
            regress = self._imported_transfer_regresses(t.timestamp)
            if regress is not None:
                return regress, None
            if t.timestamp <= dr.timestamp:
                return T.IMPORTED_EVENT_TIMESTAMP_MUST_POSTDATE_DEBIT_ACCOUNT, None
            if t.timestamp <= cr.timestamp:
                return T.IMPORTED_EVENT_TIMESTAMP_MUST_POSTDATE_CREDIT_ACCOUNT, None
            if t.timeout != 0:
                return T.IMPORTED_EVENT_TIMEOUT_MUST_BE_ZERO, None
            timestamp_actual = t.timestamp
        ensure(
            timestamp_actual > dr.timestamp and timestamp_actual > cr.timestamp,
            "transfers postdate their accounts",
        )

        if _has(int(dr.flags), tb.AccountFlags.CLOSED):
            return T.DEBIT_ACCOUNT_ALREADY_CLOSED, None
        if _has(int(cr.flags), tb.AccountFlags.CLOSED):
            return T.CREDIT_ACCOUNT_ALREADY_CLOSED, None

        amount = t.amount
        if _has(flags, tb.TransferFlags.BALANCING_DEBIT):
            dr_balance = dr.debits_posted + dr.debits_pending
            amount = min(amount, max(dr.credits_posted - dr_balance, 0))
        if _has(flags, tb.TransferFlags.BALANCING_CREDIT):
            cr_balance = cr.credits_posted + cr.credits_pending
            amount = min(amount, max(cr.debits_posted - cr_balance, 0))

        overflow = self._overflow_status(dr, cr, amount, pending=pending)
        if overflow is not None:
            return overflow, None
        if timestamp_actual + t.timeout * ns_per_s > u63_max:
            return T.OVERFLOWS_TIMEOUT, None
        if _has(int(dr.flags), tb.AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS) and (
            dr.debits_pending + dr.debits_posted + amount > dr.credits_posted
        ):
            return T.EXCEEDS_CREDITS, None
        if _has(int(cr.flags), tb.AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS) and (
            cr.credits_pending + cr.credits_posted + amount > cr.debits_posted
        ):
            return T.EXCEEDS_DEBITS, None

        transfer = tb.Transfer(
            id=t.id,
            debit_account_id=t.debit_account_id,
            credit_account_id=t.credit_account_id,
            amount=amount,
            pending_id=0,
            user_data_128=t.user_data_128,
            user_data_64=t.user_data_64,
            user_data_32=t.user_data_32,
            timeout=t.timeout,
            ledger=t.ledger,
            code=t.code,
            flags=_transfer_flags(flags),
            timestamp=timestamp_actual,
        )
        self._insert_transfer(transfer)
        if pending:
            self._update_account(dr, debits_pending=dr.debits_pending + amount)
            self._update_account(cr, credits_pending=cr.credits_pending + amount)
            self._set_pending_status(transfer.id, PendingStatus.PENDING)
        else:
            self._update_account(dr, debits_posted=dr.debits_posted + amount)
            self._update_account(cr, credits_posted=cr.credits_posted + amount)
        if _has(flags, tb.TransferFlags.CLOSING_DEBIT):
            self._update_account(dr, flags=int(dr.flags) | int(tb.AccountFlags.CLOSED))
        if _has(flags, tb.TransferFlags.CLOSING_CREDIT):
            self._update_account(cr, flags=int(cr.flags) | int(tb.AccountFlags.CLOSED))
        self._record_balances(transfer.timestamp, dr, cr)
        if t.timeout > 0:
            expires_at = timestamp_actual + t.timeout * ns_per_s
            heapq.heappush(self._expiry_queue, (expires_at, transfer.id))
        self.commit_timestamp = timestamp_actual
        return T.CREATED, timestamp_actual

    @staticmethod
    def _overflow_status(dr: tb.Account, cr: tb.Account, amount: int, *, pending: bool) -> T | None:
        if pending:
            if amount + dr.debits_pending > u128_max:
                return T.OVERFLOWS_DEBITS_PENDING
            if amount + cr.credits_pending > u128_max:
                return T.OVERFLOWS_CREDITS_PENDING
        if amount + dr.debits_posted > u128_max:
            return T.OVERFLOWS_DEBITS_POSTED
        if amount + cr.credits_posted > u128_max:
            return T.OVERFLOWS_CREDITS_POSTED
        if amount + dr.debits_pending + dr.debits_posted > u128_max:
            return T.OVERFLOWS_DEBITS
        if amount + cr.credits_pending + cr.credits_posted > u128_max:
            return T.OVERFLOWS_CREDITS
        return None

    def _imported_transfer_regresses(self, timestamp: int) -> T | None:
        if self._transfers_ordered and timestamp <= self._transfers_ordered[-1].timestamp:
            return T.IMPORTED_EVENT_TIMESTAMP_MUST_NOT_REGRESS
        if timestamp in self._account_timestamps:
            return T.IMPORTED_EVENT_TIMESTAMP_MUST_NOT_REGRESS
        return None

    def _create_transfer_exists(self, t: tb.Transfer, e: tb.Transfer) -> tuple[T, int | None]:
        flags = int(t.flags)
        if flags != int(e.flags):
            return T.EXISTS_WITH_DIFFERENT_FLAGS, None
        if t.pending_id != e.pending_id:
            return T.EXISTS_WITH_DIFFERENT_PENDING_ID, None
        if t.timeout != e.timeout:
            return T.EXISTS_WITH_DIFFERENT_TIMEOUT, None
        if _has(flags, _post_or_void):
            p = self._transfers[t.pending_id]
            return self._post_or_void_exists(t, e, p)
        if t.debit_account_id != e.debit_account_id:
            return T.EXISTS_WITH_DIFFERENT_DEBIT_ACCOUNT_ID, None
        if t.credit_account_id != e.credit_account_id:
            return T.EXISTS_WITH_DIFFERENT_CREDIT_ACCOUNT_ID, None
        # A balancing transfer's amount is an upper bound; any resubmission within it exists.
        if _has(flags, _balancing):
            if t.amount < e.amount:
                return T.EXISTS_WITH_DIFFERENT_AMOUNT, None
        elif t.amount != e.amount:
            return T.EXISTS_WITH_DIFFERENT_AMOUNT, None
        if t.user_data_128 != e.user_data_128:
            return T.EXISTS_WITH_DIFFERENT_USER_DATA_128, None
        if t.user_data_64 != e.user_data_64:
            return T.EXISTS_WITH_DIFFERENT_USER_DATA_64, None
        if t.user_data_32 != e.user_data_32:
            return T.EXISTS_WITH_DIFFERENT_USER_DATA_32, None
        if t.ledger != e.ledger:
            return T.EXISTS_WITH_DIFFERENT_LEDGER, None
        if t.code != e.code:
            return T.EXISTS_WITH_DIFFERENT_CODE, None
        return T.EXISTS, e.timestamp

    @staticmethod
    def _post_or_void_exists(
        t: tb.Transfer, e: tb.Transfer, p: tb.Transfer
    ) -> tuple[T, int | None]:
        if t.debit_account_id != 0 and t.debit_account_id != e.debit_account_id:
            return T.EXISTS_WITH_DIFFERENT_DEBIT_ACCOUNT_ID, None
        if t.credit_account_id != 0 and t.credit_account_id != e.credit_account_id:
            return T.EXISTS_WITH_DIFFERENT_CREDIT_ACCOUNT_ID, None
        if _has(int(t.flags), tb.TransferFlags.VOID_PENDING_TRANSFER):
            expected = p.amount if t.amount == 0 else t.amount
            if e.amount != expected:
                return T.EXISTS_WITH_DIFFERENT_AMOUNT, None
        if _has(int(t.flags), tb.TransferFlags.POST_PENDING_TRANSFER):
            expected = p.amount if t.amount == u128_max else t.amount
            if e.amount != expected:
                return T.EXISTS_WITH_DIFFERENT_AMOUNT, None
        for field, status in (
            ("user_data_128", T.EXISTS_WITH_DIFFERENT_USER_DATA_128),
            ("user_data_64", T.EXISTS_WITH_DIFFERENT_USER_DATA_64),
            ("user_data_32", T.EXISTS_WITH_DIFFERENT_USER_DATA_32),
        ):
            requested = getattr(t, field)
            expected = getattr(p, field) if requested == 0 else requested
            if getattr(e, field) != expected:
                return status, None
        if t.ledger != 0 and t.ledger != e.ledger:
            return T.EXISTS_WITH_DIFFERENT_LEDGER, None
        if t.code != 0 and t.code != e.code:
            return T.EXISTS_WITH_DIFFERENT_CODE, None
        return T.EXISTS, e.timestamp

    def _post_or_void_pending_transfer(
        self, timestamp_event: int, t: tb.Transfer
    ) -> tuple[T, int | None]:
        flags = int(t.flags)
        post = _has(flags, tb.TransferFlags.POST_PENDING_TRANSFER)
        void = _has(flags, tb.TransferFlags.VOID_PENDING_TRANSFER)
        if post and void:
            return T.FLAGS_ARE_MUTUALLY_EXCLUSIVE, None
        for exclusive in (
            tb.TransferFlags.PENDING,
            tb.TransferFlags.BALANCING_DEBIT,
            tb.TransferFlags.BALANCING_CREDIT,
            tb.TransferFlags.CLOSING_DEBIT,
            tb.TransferFlags.CLOSING_CREDIT,
        ):
            if _has(flags, exclusive):
                return T.FLAGS_ARE_MUTUALLY_EXCLUSIVE, None
        if t.pending_id == 0:
            return T.PENDING_ID_MUST_NOT_BE_ZERO, None
        if t.pending_id == u128_max:
            return T.PENDING_ID_MUST_NOT_BE_INT_MAX, None
        if t.pending_id == t.id:
            return T.PENDING_ID_MUST_BE_DIFFERENT, None
        if t.timeout != 0:
            return T.TIMEOUT_RESERVED_FOR_PENDING_TRANSFER, None

        p = self._transfers.get(t.pending_id)
        if p is None:
            return T.PENDING_TRANSFER_NOT_FOUND, None
        if not _has(int(p.flags), tb.TransferFlags.PENDING):
            return T.PENDING_TRANSFER_NOT_PENDING, None
        dr = self._accounts[p.debit_account_id]
        cr = self._accounts[p.credit_account_id]
        if t.debit_account_id > 0 and t.debit_account_id != p.debit_account_id:
            return T.PENDING_TRANSFER_HAS_DIFFERENT_DEBIT_ACCOUNT_ID, None
        if t.credit_account_id > 0 and t.credit_account_id != p.credit_account_id:
            return T.PENDING_TRANSFER_HAS_DIFFERENT_CREDIT_ACCOUNT_ID, None
        if t.ledger > 0 and t.ledger != p.ledger:
            return T.PENDING_TRANSFER_HAS_DIFFERENT_LEDGER, None
        if t.code > 0 and t.code != p.code:
            return T.PENDING_TRANSFER_HAS_DIFFERENT_CODE, None

        if void:
            amount = p.amount if t.amount == 0 else t.amount
        else:
            amount = p.amount if t.amount == u128_max else t.amount
        if amount > p.amount:
            return T.EXCEEDS_PENDING_TRANSFER_AMOUNT, None
        if void and amount < p.amount:
            return T.PENDING_TRANSFER_HAS_DIFFERENT_AMOUNT, None

        match self._pending_status[p.id]:
            case PendingStatus.PENDING:
                pass
            case PendingStatus.POSTED:
                return T.PENDING_TRANSFER_ALREADY_POSTED, None
            case PendingStatus.VOIDED:
                return T.PENDING_TRANSFER_ALREADY_VOIDED, None
            case PendingStatus.EXPIRED:
                return T.PENDING_TRANSFER_EXPIRED, None
        if p.timeout > 0 and p.timestamp + p.timeout * ns_per_s <= timestamp_event:
            return T.PENDING_TRANSFER_EXPIRED, None

        timestamp_actual = timestamp_event
        if _has(flags, tb.TransferFlags.IMPORTED):
            regress = self._imported_transfer_regresses(t.timestamp)
            if regress is not None:
                return regress, None
            timestamp_actual = t.timestamp
        if _has(int(dr.flags), tb.AccountFlags.CLOSED) and not void:
            return T.DEBIT_ACCOUNT_ALREADY_CLOSED, None
        if _has(int(cr.flags), tb.AccountFlags.CLOSED) and not void:
            return T.CREDIT_ACCOUNT_ALREADY_CLOSED, None

        transfer = tb.Transfer(
            id=t.id,
            debit_account_id=p.debit_account_id,
            credit_account_id=p.credit_account_id,
            amount=amount,
            pending_id=t.pending_id,
            user_data_128=t.user_data_128 or p.user_data_128,
            user_data_64=t.user_data_64 or p.user_data_64,
            user_data_32=t.user_data_32 or p.user_data_32,
            timeout=0,
            ledger=p.ledger,
            code=p.code,
            flags=_transfer_flags(flags),
            timestamp=timestamp_actual,
        )
        self._insert_transfer(transfer)
        self._set_pending_status(p.id, PendingStatus.POSTED if post else PendingStatus.VOIDED)
        self._release_pending(p, dr, cr, posted_amount=amount if post else 0)
        self._record_balances(transfer.timestamp, dr, cr)
        self.commit_timestamp = timestamp_actual
        return T.CREATED, timestamp_actual

    def _release_pending(
        self, p: tb.Transfer, dr: tb.Account, cr: tb.Account, *, posted_amount: int
    ) -> None:
        """Remove `p`'s pending amounts, post `posted_amount`, and undo a closing transfer."""
        dr_flags, cr_flags = int(dr.flags), int(cr.flags)
        if posted_amount == 0:
            if _has(int(p.flags), tb.TransferFlags.CLOSING_DEBIT):
                dr_flags &= ~int(tb.AccountFlags.CLOSED)
            if _has(int(p.flags), tb.TransferFlags.CLOSING_CREDIT):
                cr_flags &= ~int(tb.AccountFlags.CLOSED)
        self._update_account(
            dr,
            debits_pending=dr.debits_pending - p.amount,
            debits_posted=dr.debits_posted + posted_amount,
            flags=dr_flags,
        )
        self._update_account(
            cr,
            credits_pending=cr.credits_pending - p.amount,
            credits_posted=cr.credits_posted + posted_amount,
            flags=cr_flags,
        )

    def _insert_transfer(self, transfer: tb.Transfer) -> None:
        self._transfers[transfer.id] = transfer
        self._transfers_ordered.append(transfer)
        for account_id in (transfer.debit_account_id, transfer.credit_account_id):
            self._account_transfers.setdefault(account_id, []).append(transfer)

        def undo() -> None:
            del self._transfers[transfer.id]
            self._transfers_ordered.pop()
            for account_id in (transfer.debit_account_id, transfer.credit_account_id):
                self._account_transfers[account_id].pop()
            self._balance_snapshots.pop(transfer.timestamp, None)

        self._remember(undo)

    def _update_account(
        self,
        account: tb.Account,
        *,
        debits_pending: int | None = None,
        debits_posted: int | None = None,
        credits_pending: int | None = None,
        credits_posted: int | None = None,
        flags: int | None = None,
    ) -> None:
        before = (*_balance(account), int(account.flags))
        if debits_pending is not None:
            account.debits_pending = debits_pending
        if debits_posted is not None:
            account.debits_posted = debits_posted
        if credits_pending is not None:
            account.credits_pending = credits_pending
        if credits_posted is not None:
            account.credits_posted = credits_posted
        if flags is not None:
            account.flags = tb.AccountFlags(flags)
        ensure(min(_balance(account)) >= 0, "balances never go below zero")

        def undo() -> None:
            (
                account.debits_pending,
                account.debits_posted,
                account.credits_pending,
                account.credits_posted,
            ) = before[:4]
            account.flags = tb.AccountFlags(before[4])

        self._remember(undo)

    def _set_pending_status(self, pending_id: int, status: PendingStatus) -> None:
        previous = self._pending_status.get(pending_id)
        self._pending_status[pending_id] = status

        def undo() -> None:
            if previous is None:
                del self._pending_status[pending_id]
            else:
                self._pending_status[pending_id] = previous

        self._remember(undo)

    def _record_balances(self, timestamp: int, dr: tb.Account, cr: tb.Account) -> None:
        history = int(tb.AccountFlags.HISTORY)
        if _has(int(dr.flags), history) or _has(int(cr.flags), history):
            self._balance_snapshots[timestamp] = (dr.id, _balance(dr), cr.id, _balance(cr))

    # ----------------------------------------------------------------------------------
    # Expiry (TigerBeetle's `pulse`).

    def expire_pending_transfers(self, timestamp: int) -> int:
        """Expire every pending transfer whose timeout passed by `timestamp`; return how many.

        Like TigerBeetle's pulse, the expirations take the timestamps just below `timestamp`.
        """
        ensure(timestamp > self.commit_timestamp, "timestamps only move forward")
        due: list[tb.Transfer] = []
        while self._expiry_queue and self._expiry_queue[0][0] <= timestamp:
            expires_at, pending_id = heapq.heappop(self._expiry_queue)
            if self._expiry_is_current(expires_at, pending_id):
                due.append(self._transfers[pending_id])
        due.sort(
            key=lambda transfer: (
                transfer.timestamp + transfer.timeout * ns_per_s,
                transfer.timestamp,
            )
        )
        for index, p in enumerate(due):
            timestamp_event = timestamp - len(due) + index + 1
            ensure(timestamp_event > self.commit_timestamp, "expiry timestamps move forward")
            dr = self._accounts[p.debit_account_id]
            cr = self._accounts[p.credit_account_id]
            self._release_pending(p, dr, cr, posted_amount=0)
            self._pending_status[p.id] = PendingStatus.EXPIRED
            self.commit_timestamp = timestamp_event
        return len(due)

    # ----------------------------------------------------------------------------------
    # Lookups and queries. Results are copies: callers may not mutate the engine's state.

    def lookup_accounts(self, ids: list[int]) -> list[tb.Account]:
        return [copy.copy(self._accounts[i]) for i in ids if i in self._accounts]

    def lookup_transfers(self, ids: list[int]) -> list[tb.Transfer]:
        return [copy.copy(self._transfers[i]) for i in ids if i in self._transfers]

    def get_account_transfers(self, account_filter: tb.AccountFilter) -> list[tb.Transfer]:
        return [copy.copy(t) for t in self._scan_account(account_filter)]

    def get_account_balances(self, account_filter: tb.AccountFilter) -> list[tb.AccountBalance]:
        account = self._accounts.get(account_filter.account_id)
        if account is None or not _has(int(account.flags), tb.AccountFlags.HISTORY):
            return []
        balances: list[tb.AccountBalance] = []
        for transfer in self._scan_account(account_filter):
            dr_id, dr_balance, _, cr_balance = self._balance_snapshots[transfer.timestamp]
            balance = dr_balance if dr_id == account_filter.account_id else cr_balance
            balances.append(
                tb.AccountBalance(
                    debits_pending=balance[0],
                    debits_posted=balance[1],
                    credits_pending=balance[2],
                    credits_posted=balance[3],
                    timestamp=transfer.timestamp,
                )
            )
        return balances

    def query_accounts(self, query_filter: tb.QueryFilter) -> list[tb.Account]:
        return [copy.copy(a) for a in self._scan_query(self._accounts_ordered, query_filter)]

    def query_transfers(self, query_filter: tb.QueryFilter) -> list[tb.Transfer]:
        return [copy.copy(t) for t in self._scan_query(self._transfers_ordered, query_filter)]

    def _scan_account(self, f: tb.AccountFilter) -> list[tb.Transfer]:
        flags = int(f.flags)
        valid = (
            f.account_id not in (0, u128_max)
            and (f.timestamp_min == 0 or _timestamp_valid(f.timestamp_min))
            and (f.timestamp_max == 0 or _timestamp_valid(f.timestamp_max))
            and (f.timestamp_max == 0 or f.timestamp_min <= f.timestamp_max)
            and f.limit != 0
            and _has(flags, tb.AccountFilterFlags.DEBITS | tb.AccountFilterFlags.CREDITS)
            and flags & ~account_filter_flags_known == 0
        )
        if not valid:
            return []
        debit_side = _has(flags, tb.AccountFilterFlags.DEBITS)
        credit_side = _has(flags, tb.AccountFilterFlags.CREDITS)

        def matches(t: tb.Transfer) -> bool:
            side = (debit_side and t.debit_account_id == f.account_id) or (
                credit_side and t.credit_account_id == f.account_id
            )
            return side and (
                (f.user_data_128 == 0 or t.user_data_128 == f.user_data_128)
                and (f.user_data_64 == 0 or t.user_data_64 == f.user_data_64)
                and (f.user_data_32 == 0 or t.user_data_32 == f.user_data_32)
                and (f.code == 0 or t.code == f.code)
            )

        candidates = self._account_transfers.get(f.account_id, [])
        reversed_order = _has(flags, tb.AccountFilterFlags.REVERSED)
        return _take(
            _in_range(candidates, f.timestamp_min, f.timestamp_max, reversed_order=reversed_order),
            matches,
            f.limit,
        )

    @staticmethod
    def _scan_query(ordered: list[ObjectT], f: tb.QueryFilter) -> list[ObjectT]:
        flags = int(f.flags)
        valid = (
            (f.timestamp_min == 0 or _timestamp_valid(f.timestamp_min))
            and (f.timestamp_max == 0 or _timestamp_valid(f.timestamp_max))
            and (f.timestamp_max == 0 or f.timestamp_min <= f.timestamp_max)
            and f.limit != 0
            and flags & ~query_filter_flags_known == 0
        )
        if not valid:
            return []

        def matches(o: ObjectT) -> bool:
            return (
                (f.user_data_128 == 0 or o.user_data_128 == f.user_data_128)
                and (f.user_data_64 == 0 or o.user_data_64 == f.user_data_64)
                and (f.user_data_32 == 0 or o.user_data_32 == f.user_data_32)
                and (f.ledger == 0 or o.ledger == f.ledger)
                and (f.code == 0 or o.code == f.code)
            )

        reversed_order = _has(flags, tb.QueryFilterFlags.REVERSED)
        return _take(
            _in_range(ordered, f.timestamp_min, f.timestamp_max, reversed_order=reversed_order),
            matches,
            f.limit,
        )

    def _transfer_at(self, timestamp: int) -> tb.Transfer | None:
        index = bisect.bisect_left(
            self._transfers_ordered, timestamp, key=lambda transfer: transfer.timestamp
        )
        if index < len(self._transfers_ordered):
            transfer = self._transfers_ordered[index]
            if transfer.timestamp == timestamp:
                return transfer
        return None

    # ----------------------------------------------------------------------------------
    # Whole-ledger views, for invariant checks in tests and reconciliation.

    def accounts(self) -> Iterator[tb.Account]:
        """Copies of every account, in creation order."""
        return (copy.copy(account) for account in self._accounts_ordered)


def _in_range(
    ordered: list[ObjectT], timestamp_min: int, timestamp_max: int, *, reversed_order: bool
) -> Iterable[ObjectT]:
    """The objects of `ordered` (sorted by timestamp) within the inclusive range."""
    low = timestamp_min or timestamp_valid_min
    high = timestamp_max or timestamp_valid_max
    start = bisect.bisect_left(ordered, low, key=lambda o: o.timestamp)
    stop = bisect.bisect_right(ordered, high, key=lambda o: o.timestamp)
    if reversed_order:
        return (ordered[index] for index in range(stop - 1, start - 1, -1))
    return (ordered[index] for index in range(start, stop))


def _take(
    objects: Iterable[ObjectT], matches: Callable[[ObjectT], bool], limit: int
) -> list[ObjectT]:
    taken: list[ObjectT] = []
    for candidate in objects:
        if matches(candidate):
            taken.append(candidate)
            if len(taken) == limit:
                break
    return taken
