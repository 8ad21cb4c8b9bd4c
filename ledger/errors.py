"""Typed domain errors raised by the ledger.

Operating errors (a client asked for something the ledger refuses: not enough money, a hold
already captured) are subclasses of `LedgerError`, each with a stable machine `code` that the
gateway maps to an RFC 9457 problem. Programmer errors are `InvariantViolation`
(see `ledger.invariants`) and are never mapped: they fail loudly.
"""

from __future__ import annotations


class LedgerError(Exception):
    """An operating error: the request was understood and refused, nothing moved."""

    code: str = "ledger_error"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class UnknownCurrency(LedgerError):
    """The currency code is not an ISO 4217 currency with minor units."""

    code = "unknown_currency"


class CurrencyNotEnabled(LedgerError):
    """The currency exists but this Kovra deployment does not enable it."""

    code = "currency_not_enabled"


class InvalidAmount(LedgerError):
    """An amount is not a positive integer in minor units within the ledger's range."""

    code = "invalid_amount"


class InsufficientFunds(LedgerError):
    """The tenant's wallet cannot cover the amount (TigerBeetle `exceeds_credits`)."""

    code = "insufficient_funds"


class InsufficientLiquidity(LedgerError):
    """The platform's FX position in the target currency cannot cover the conversion."""

    code = "insufficient_liquidity"


class SettlementShortfall(LedgerError):
    """A regional settlement account would pay out more than it ever received."""

    code = "settlement_shortfall"


class AccountNotOpen(LedgerError):
    """A ledger account the operation needs has not been opened (e.g. a wallet currency)."""

    code = "account_not_open"


class AccountClosed(LedgerError):
    """A ledger account the operation needs is closed."""

    code = "account_closed"


class HoldNotFound(LedgerError):
    """No pending transfer exists for the hold."""

    code = "not_found"


class HoldAlreadyCaptured(LedgerError):
    """The hold was already captured (posted)."""

    code = "hold_already_captured"


class HoldAlreadyVoided(LedgerError):
    """The hold was already voided."""

    code = "hold_already_voided"


class HoldExpired(LedgerError):
    """The hold's timeout passed and TigerBeetle released it."""

    code = "hold_expired"


class CaptureExceedsHold(LedgerError):
    """A capture asked for more than the hold reserved."""

    code = "capture_exceeds_hold"


class ReservationReleased(LedgerError):
    """A retried payout whose earlier attempt's reservation was already released.

    The earlier attempt held the funds, but its transfer was never recorded, and the
    reconciler voided the hold. The retry finds the same ledger transfers in place (they
    exist, voided): recording the payout now would send money the ledger no longer holds, so
    the retry is refused. The caller creates a new payout to try again.
    """

    code = "transfer_abandoned"

    def __init__(
        self,
        detail: str = "an earlier attempt of this transfer was abandoned and its funds "
        "released; create a new transfer (with a new Idempotency-Key) to try again",
    ) -> None:
        super().__init__(detail)


class AttemptAlreadyFailed(LedgerError):
    """This object's transfer failed before on a transient error; its id can never succeed.

    TigerBeetle remembers transient failures (`id_already_failed`) so that a retry can never
    produce a different outcome. The caller must create a new object to try again.
    """

    code = "attempt_already_failed"


class LedgerIdConflict(LedgerError):
    """A transfer or account id exists with different fields: an id was reused for another
    object, which deterministic ids make a bug or a tampered request."""

    code = "ledger_id_conflict"


class LedgerUnavailable(LedgerError):
    """The ledger did not answer (closed, evicted, or timed out). The outcome of a create
    request is unknown: retry it with the same ids, which is safe."""

    code = "ledger_unavailable"
