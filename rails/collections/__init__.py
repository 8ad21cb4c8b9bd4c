"""Mandate providers (SPEC §10): the interface the collections domain speaks through, each
provider's scheme rules and messages, the sandbox simulation, and the providers'
notifications in. Every module here is public."""

__all__ = [
    "bacs_dd",
    "notifications",
    "notifier",
    "nuban",
    "paywithaccount",
    "provider",
    "providers",
    "reason_codes",
    "resilient",
    "sandbox",
    "scheme",
    "sepa_dd",
]
