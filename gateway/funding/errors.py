"""The funding domain's operating errors, each with a stable `code` (mapped to problems by
`gateway.http.problems`)."""

from __future__ import annotations

from ledger.errors import DomainError


class NoFundingInstructions(DomainError):
    """The deployment has no settlement bank account in this currency, so there is nowhere
    to send money in it."""

    code = "no_funding_instructions"


class UnknownSettlementAccount(DomainError):
    """A statement is for an account that is not the settlement account of its currency:
    it says nothing about money Kovra holds, so none of it is believed."""

    code = "unknown_settlement_account"


class StatementConflict(DomainError):
    """A statement with this account and message id was recorded from another file: a bank
    correcting a file sends a new message, never the same one changed."""

    code = "statement_conflict"


class StatementUnknown(DomainError):
    code = "not_found"


class ReleaseNotApplicable(DomainError):
    """Only an unmatched statement entry's money, held in suspense, can be released to a
    tenant."""

    code = "release_not_applicable"


class UnknownTenant(DomainError):
    code = "unknown_tenant"
