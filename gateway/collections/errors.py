"""The collections domain's operating errors, each with a stable `code` (mapped to problems
by `gateway.http.problems`)."""

from __future__ import annotations

from ledger.errors import DomainError


class MandateUnknown(DomainError):
    """No mandate of this tenant has this id."""

    code = "not_found"


class CollectionUnknown(DomainError):
    """No collection of this tenant has this id."""

    code = "not_found"


class UnknownProvider(DomainError):
    """No mandate provider by this name is configured in this deployment."""

    code = "not_found"


class ProviderNotConfigured(DomainError):
    """The provider exists but this deployment has no transport to it (production, until
    its contract and credentials are configured): nothing can be set up through it."""

    code = "provider_not_configured"


class ProviderCurrencyMismatch(DomainError):
    """A provider collects exactly one currency; the mandate named another."""

    code = "provider_currency_mismatch"


class MandateInactive(DomainError):
    """Collections are taken only under an active mandate."""

    code = "mandate_inactive"


class MandateNotDeactivatable(DomainError):
    """A mandate that failed or expired has nothing left to deactivate."""

    code = "mandate_not_deactivatable"


class InvalidCollectionDate(DomainError):
    """A collection date is today or later, within the bound the domain sets."""

    code = "invalid_collection_date"


class InvalidConsent(DomainError):
    """A consent that cannot have been given as stated (accepted in the future)."""

    code = "invalid_consent"


class InvalidSignature(DomainError):
    """A provider notification whose signature does not verify: nothing is stored."""

    code = "invalid_signature"
