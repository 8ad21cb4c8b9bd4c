"""Typed operating errors: `DomainError`, the base of every domain's, and the ledger's own.

Operating errors (a client asked for something a domain refuses: not enough money, a hold
already captured, an expired quote, a frozen tenant) are subclasses of `DomainError`, each
with a stable machine `code`; `gateway.http.problems` is the one place that maps codes to
RFC 9457 problems. The base lives here, in the lowest package, so that every other package
(fx, rails, compliance, the gateway's domains) can raise its own without depending on the
HTTP edge. Programmer errors are `InvariantViolation` (see `ledger.invariants`) and are
never mapped: they fail loudly.
"""

from __future__ import annotations


class DomainError(Exception):
    """An operating error: the request was understood and refused, and nothing changed.

    `field` names the request field the error is about, when there is one."""

    code: str = "domain_error"
    # How long a client should wait before retrying, for a refusal that is only for now.
    retry_after_seconds: int | None = None

    def __init__(self, detail: str, *, field: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.field = field

    def field_errors(self) -> list[tuple[str, str]]:
        """(field, message) for each request field at fault; a refusal of several items
        names each of them."""
        return [(self.field, self.detail)] if self.field else []


class LedgerError(DomainError):
    """The ledger refused an operation; nothing moved."""

    code = "ledger_error"


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


class CollectionNotCredited(LedgerError):
    """A return names a collection whose credit the ledger never applied: nothing to take
    back, and nothing is made up to take back."""

    code = "collection_not_credited"


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
