"""Turning TigerBeetle result statuses into outcomes: success, a typed error, or a bug.

Every status is handled explicitly. Operating errors (insufficient funds, a hold already
captured) become `LedgerError` subclasses; statuses Kovra's own requests can never earn
(a zero id, mismatched ledgers) are programmer errors and raise `InvariantViolation`.

Idempotency: `exists` is success. A linked chain retried after it was applied answers
`exists` for its first event and `linked_event_failed` for the rest, which is success too,
once the rest is shown to be what was sent: TigerBeetle stops at the first event of a chain
that fails, and `exists` fails a chain, so it compares only the chain's first transfer with
what it holds. `chain_rests_applied_before` names the transfers it did not compare and
`check_stored_as_sent` compares them with the stored ones (an extra lookup, on retries only;
`check_found_as_sent` when one lookup served many chains).
An `exists` further into a chain whose first event was new means the ids were used for
another chain: the chain was rolled back, and that is a conflict, not a success.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence

import tigerbeetle as tb

from ledger.accounts import AccountIdError, AccountType, decode_account_id
from ledger.errors import (
    AccountClosed,
    AccountNotOpen,
    AttemptAlreadyFailed,
    CaptureExceedsHold,
    HoldAlreadyCaptured,
    HoldAlreadyVoided,
    HoldExpired,
    HoldNotFound,
    InsufficientFunds,
    InsufficientLiquidity,
    InvalidAmount,
    LedgerError,
    LedgerIdConflict,
    SettlementShortfall,
)
from ledger.invariants import ensure, unreachable

T = tb.CreateTransferStatus
A = tb.CreateAccountStatus


def check_transfer_results(
    transfers: Sequence[tb.Transfer], results: Sequence[tb.CreateTransferResult]
) -> list[int]:
    """Raise the first failure among `results` (linked chains or independent transfers).

    On success return the results' timestamps; for a chain that already existed only its
    first timestamp is the original one.
    """
    ensure(len(transfers) == len(results), "one result per transfer")
    chain_start = 0
    for index, (transfer, result) in enumerate(zip(transfers, results, strict=True)):
        status = result.status
        if status is T.LINKED_EVENT_FAILED:
            pass  # Explained by another event of the same chain, inspected on its own turn.
        elif (
            status is T.EXISTS
            and index == chain_start
            and _rest_of_chain_failed_linked(transfers, results, index)
        ):
            pass  # The whole chain was applied by an earlier attempt.
        elif status is T.EXISTS and index != chain_start:
            raise LedgerIdConflict(
                f"ledger transfer {transfer.id} exists, but not the chain it was sent in"
            )
        else:
            _raise_for_transfer_status(status, transfer)
        if not int(transfer.flags) & int(tb.TransferFlags.LINKED):
            chain_start = index + 1
    return [result.timestamp for result in results]


def _rest_of_chain_failed_linked(
    transfers: Sequence[tb.Transfer], results: Sequence[tb.CreateTransferResult], start: int
) -> bool:
    index = start
    while int(transfers[index].flags) & int(tb.TransferFlags.LINKED):
        index += 1
        if results[index].status is not T.LINKED_EVENT_FAILED:
            return False
    return True


def chain_rests_applied_before(
    transfers: Sequence[tb.Transfer], results: Sequence[tb.CreateTransferResult]
) -> list[list[tb.Transfer]]:
    """Per chain (in the order sent), the transfers after its first that TigerBeetle did not
    compare with what it holds because the first one `exists`; empty for a chain it applied
    now, refused, or that has one transfer."""
    ensure(len(transfers) == len(results), "one result per transfer")
    rests: list[list[tb.Transfer]] = []
    chain_start = 0
    for index, transfer in enumerate(transfers):
        if int(transfer.flags) & int(tb.TransferFlags.LINKED):
            continue
        applied_before = results[chain_start].status is T.EXISTS and all(
            result.status is T.LINKED_EVENT_FAILED
            for result in results[chain_start + 1 : index + 1]
        )
        rests.append(list(transfers[chain_start + 1 : index + 1]) if applied_before else [])
        chain_start = index + 1
    return rests


async def check_stored_as_sent(
    sent: Sequence[tb.Transfer],
    lookup_transfers: Callable[[list[int]], Awaitable[list[tb.Transfer]]],
    *,
    absent_ids: Sequence[int] = (),
) -> None:
    """Raise `LedgerIdConflict` unless every transfer of `sent` is stored under its id with
    the fields it was sent with (as TigerBeetle compares a resubmitted transfer), and none of
    `absent_ids` (legs the chain did not send this time: a fee leg of a payout now without a
    fee) is stored."""
    if not sent:
        return
    stored = {t.id: t for t in await lookup_transfers([t.id for t in sent] + list(absent_ids))}
    check_found_as_sent(sent, stored, absent_ids=absent_ids)


def check_found_as_sent(
    sent: Sequence[tb.Transfer],
    stored: Mapping[int, tb.Transfer],
    *,
    absent_ids: Sequence[int] = (),
) -> None:
    """`check_stored_as_sent` over what a lookup already found (`stored`, by id): a caller
    checking many chains looks up all their ids in one request, then each chain here."""
    for absent_id in absent_ids:
        if absent_id in stored:
            raise LedgerIdConflict(
                f"ledger transfer {absent_id} belongs to the chain an earlier attempt applied, "
                "and this attempt does not have it"
            )
    for transfer in sent:
        found = stored.get(transfer.id)
        if found is None:
            raise LedgerIdConflict(
                f"ledger transfer {transfer.id} is not in the chain an earlier attempt applied"
            )
        field = stored_field_differing(transfer, found)
        if field is not None:
            raise LedgerIdConflict(
                f"ledger transfer {transfer.id} already exists with another {field}"
            )


_resolves_pending = int(tb.TransferFlags.POST_PENDING_TRANSFER) | int(
    tb.TransferFlags.VOID_PENDING_TRANSFER
)
_compared_fields = ("pending_id", "timeout", "debit_account_id", "credit_account_id", "amount",
                    "user_data_128", "user_data_64", "user_data_32", "ledger", "code")  # fmt: skip


def stored_field_differing(sent: tb.Transfer, stored: tb.Transfer) -> str | None:
    """The first field in which `stored` differs from `sent` as TigerBeetle judges a
    resubmission, or None. A post or void may leave its accounts, user data, ledger and code
    to the pending transfer (zero), and its amount too (all of it: 0 to void, `AMOUNT_MAX` to
    post)."""
    if int(sent.flags) != int(stored.flags):
        return "flags"
    resolving = bool(int(sent.flags) & _resolves_pending)
    for field in _compared_fields:
        value = getattr(sent, field)
        if resolving and _left_to_the_pending_transfer(field, value):
            continue
        if value != getattr(stored, field):
            return field
    return None


def _left_to_the_pending_transfer(field: str, value: int) -> bool:
    if field == "amount":
        return value in (0, tb.AMOUNT_MAX)
    return field not in ("pending_id", "timeout") and value == 0


def _raise_for_transfer_status(status: T, transfer: tb.Transfer) -> None:
    match status:
        case T.CREATED | T.EXISTS:
            return
        case T.EXCEEDS_CREDITS:
            raise _exceeds_credits(transfer.debit_account_id)
        case T.EXCEEDS_DEBITS:
            raise SettlementShortfall(
                "the regional settlement account cannot pay out more than it received"
            )
        case T.DEBIT_ACCOUNT_NOT_FOUND:
            raise AccountNotOpen(f"account {_describe(transfer.debit_account_id)} is not open")
        case T.CREDIT_ACCOUNT_NOT_FOUND:
            raise AccountNotOpen(f"account {_describe(transfer.credit_account_id)} is not open")
        case (
            T.PENDING_TRANSFER_NOT_FOUND
            | T.PENDING_TRANSFER_HAS_DIFFERENT_DEBIT_ACCOUNT_ID
            | T.PENDING_TRANSFER_HAS_DIFFERENT_CREDIT_ACCOUNT_ID
        ):
            # A hold of another tenant answers exactly like a missing one.
            raise HoldNotFound("no such hold")
        case T.PENDING_TRANSFER_ALREADY_POSTED:
            raise HoldAlreadyCaptured("the hold was already captured")
        case T.PENDING_TRANSFER_ALREADY_VOIDED:
            raise HoldAlreadyVoided("the hold was already voided")
        case T.PENDING_TRANSFER_EXPIRED:
            raise HoldExpired("the hold expired and its funds were released")
        case T.EXCEEDS_PENDING_TRANSFER_AMOUNT:
            raise CaptureExceedsHold("the capture amount exceeds the held amount")
        case T.ID_ALREADY_FAILED:
            raise AttemptAlreadyFailed(
                "an earlier attempt of this operation failed; create a new one to try again"
            )
        case T.DEBIT_ACCOUNT_ALREADY_CLOSED | T.CREDIT_ACCOUNT_ALREADY_CLOSED:
            raise AccountClosed("a ledger account of this operation is closed")
        case (
            T.EXISTS_WITH_DIFFERENT_FLAGS
            | T.EXISTS_WITH_DIFFERENT_PENDING_ID
            | T.EXISTS_WITH_DIFFERENT_TIMEOUT
            | T.EXISTS_WITH_DIFFERENT_DEBIT_ACCOUNT_ID
            | T.EXISTS_WITH_DIFFERENT_CREDIT_ACCOUNT_ID
            | T.EXISTS_WITH_DIFFERENT_AMOUNT
            | T.EXISTS_WITH_DIFFERENT_USER_DATA_128
            | T.EXISTS_WITH_DIFFERENT_USER_DATA_64
            | T.EXISTS_WITH_DIFFERENT_USER_DATA_32
            | T.EXISTS_WITH_DIFFERENT_LEDGER
            | T.EXISTS_WITH_DIFFERENT_CODE
        ):
            raise LedgerIdConflict(
                f"ledger transfer {transfer.id} already exists with other fields ({status.name})"
            )
        case (
            T.OVERFLOWS_DEBITS_PENDING
            | T.OVERFLOWS_CREDITS_PENDING
            | T.OVERFLOWS_DEBITS_POSTED
            | T.OVERFLOWS_CREDITS_POSTED
            | T.OVERFLOWS_DEBITS
            | T.OVERFLOWS_CREDITS
        ):
            raise InvalidAmount("the amount would overflow a ledger balance")
        case (
            T.LINKED_EVENT_FAILED
            | T.LINKED_EVENT_CHAIN_OPEN
            | T.IMPORTED_EVENT_EXPECTED
            | T.IMPORTED_EVENT_NOT_EXPECTED
            | T.TIMESTAMP_MUST_BE_ZERO
            | T.IMPORTED_EVENT_TIMESTAMP_OUT_OF_RANGE
            | T.IMPORTED_EVENT_TIMESTAMP_MUST_NOT_ADVANCE
            | T.RESERVED_FLAG
            | T.ID_MUST_NOT_BE_ZERO
            | T.ID_MUST_NOT_BE_INT_MAX
            | T.FLAGS_ARE_MUTUALLY_EXCLUSIVE
            | T.DEBIT_ACCOUNT_ID_MUST_NOT_BE_ZERO
            | T.DEBIT_ACCOUNT_ID_MUST_NOT_BE_INT_MAX
            | T.CREDIT_ACCOUNT_ID_MUST_NOT_BE_ZERO
            | T.CREDIT_ACCOUNT_ID_MUST_NOT_BE_INT_MAX
            | T.ACCOUNTS_MUST_BE_DIFFERENT
            | T.PENDING_ID_MUST_BE_ZERO
            | T.PENDING_ID_MUST_NOT_BE_ZERO
            | T.PENDING_ID_MUST_NOT_BE_INT_MAX
            | T.PENDING_ID_MUST_BE_DIFFERENT
            | T.TIMEOUT_RESERVED_FOR_PENDING_TRANSFER
            | T.CLOSING_TRANSFER_MUST_BE_PENDING
            | T.LEDGER_MUST_NOT_BE_ZERO
            | T.CODE_MUST_NOT_BE_ZERO
            | T.ACCOUNTS_MUST_HAVE_THE_SAME_LEDGER
            | T.TRANSFER_MUST_HAVE_THE_SAME_LEDGER_AS_ACCOUNTS
            | T.PENDING_TRANSFER_NOT_PENDING
            | T.PENDING_TRANSFER_HAS_DIFFERENT_LEDGER
            | T.PENDING_TRANSFER_HAS_DIFFERENT_CODE
            | T.PENDING_TRANSFER_HAS_DIFFERENT_AMOUNT
            | T.IMPORTED_EVENT_TIMESTAMP_MUST_NOT_REGRESS
            | T.IMPORTED_EVENT_TIMESTAMP_MUST_POSTDATE_DEBIT_ACCOUNT
            | T.IMPORTED_EVENT_TIMESTAMP_MUST_POSTDATE_CREDIT_ACCOUNT
            | T.IMPORTED_EVENT_TIMEOUT_MUST_BE_ZERO
            | T.OVERFLOWS_TIMEOUT
        ):
            unreachable(f"Kovra built an invalid transfer {transfer!r}: {status.name}")
        case _:
            unreachable(f"unknown TigerBeetle transfer status {status!r}")


def _exceeds_credits(debit_account_id: int) -> LedgerError:
    account_type = decode_account_id(debit_account_id).account_type
    match account_type:
        case AccountType.TENANT_WALLET:
            return InsufficientFunds("the wallet's available balance does not cover the amount")
        case AccountType.FX_POSITION:
            return InsufficientLiquidity(
                "the platform's liquidity in the target currency does not cover the amount"
            )
        case (
            AccountType.FEE_REVENUE
            | AccountType.PENDING_INBOUND
            | AccountType.PENDING_OUTBOUND
            | AccountType.REGIONAL_SETTLEMENT
            | AccountType.SUSPENSE
            | AccountType.PARTNER_SETTLEMENT
        ):
            unreachable(f"{account_type.name} accounts do not limit debits")
        case _:
            unreachable(f"unknown account type {account_type!r}")


def _describe(account_id: int) -> str:
    try:
        address = decode_account_id(account_id)
    except AccountIdError:
        return str(account_id)
    return f"{address.account_type.name} of tenant {address.tenant_id} in {address.currency_number}"


def check_account_results(
    accounts: Sequence[tb.Account], results: Sequence[tb.CreateAccountResult]
) -> None:
    """Accounts are opened idempotently: `created` and `exists` succeed, the rest do not."""
    ensure(len(accounts) == len(results), "one result per account")
    for account, result in zip(accounts, results, strict=True):
        match result.status:
            case A.CREATED | A.EXISTS:
                continue
            case (
                A.EXISTS_WITH_DIFFERENT_FLAGS
                | A.EXISTS_WITH_DIFFERENT_USER_DATA_128
                | A.EXISTS_WITH_DIFFERENT_USER_DATA_64
                | A.EXISTS_WITH_DIFFERENT_USER_DATA_32
                | A.EXISTS_WITH_DIFFERENT_LEDGER
                | A.EXISTS_WITH_DIFFERENT_CODE
            ):
                raise LedgerIdConflict(
                    f"account {_describe(account.id)} exists with other fields "
                    f"({result.status.name})"
                )
            case (
                A.LINKED_EVENT_FAILED
                | A.LINKED_EVENT_CHAIN_OPEN
                | A.IMPORTED_EVENT_EXPECTED
                | A.IMPORTED_EVENT_NOT_EXPECTED
                | A.TIMESTAMP_MUST_BE_ZERO
                | A.IMPORTED_EVENT_TIMESTAMP_OUT_OF_RANGE
                | A.IMPORTED_EVENT_TIMESTAMP_MUST_NOT_ADVANCE
                | A.RESERVED_FIELD
                | A.RESERVED_FLAG
                | A.ID_MUST_NOT_BE_ZERO
                | A.ID_MUST_NOT_BE_INT_MAX
                | A.FLAGS_ARE_MUTUALLY_EXCLUSIVE
                | A.DEBITS_PENDING_MUST_BE_ZERO
                | A.DEBITS_POSTED_MUST_BE_ZERO
                | A.CREDITS_PENDING_MUST_BE_ZERO
                | A.CREDITS_POSTED_MUST_BE_ZERO
                | A.LEDGER_MUST_NOT_BE_ZERO
                | A.CODE_MUST_NOT_BE_ZERO
                | A.IMPORTED_EVENT_TIMESTAMP_MUST_NOT_REGRESS
            ):
                unreachable(f"Kovra built an invalid account {account!r}: {result.status.name}")
            case _:
                unreachable(f"unknown TigerBeetle account status {result.status!r}")
