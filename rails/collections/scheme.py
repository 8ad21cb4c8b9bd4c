"""What a direct-debit scheme is to Kovra, apart from any provider's API: its currency, the
bank details a mandate needs, its reason codes, the limits of one collection, and the message
a collection run sends (if the scheme has one).

The sandbox provider and a real provider of the same scheme share it, so the rules a tenant's
request is checked against do not depend on whether the money is real.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from typing import Protocol

from rails.bank_details import InvalidBankDetails
from rails.collections.provider import CollectionRequest, ProviderName

field_length_max = 64


class Scheme(Protocol):
    """A direct-debit scheme's rules, messages and reason codes."""

    @property
    def name(self) -> ProviderName: ...

    @property
    def currency(self) -> str: ...

    @property
    def amount_max_minor(self) -> int:
        """The largest amount one collection may carry, in minor units."""
        ...

    @property
    def mandate_cancelled_code(self) -> str:
        """The code a collection under a cancelled mandate fails with."""
        ...

    @property
    def no_mandate_code(self) -> str:
        """The code a collection under a mandate the provider does not hold fails with."""
        ...

    @property
    def unspecified_code(self) -> str:
        """The code of a failure whose reason is not given."""
        ...

    @property
    def invalid_amount_code(self) -> str: ...

    @property
    def invalid_currency_code(self) -> str: ...

    def validate_bank_details(self, bank_details: Mapping[str, str]) -> dict[str, str]: ...

    def reason_description(self, reason_code: str) -> str: ...

    def is_mandate_fatal(self, reason_code: str) -> bool: ...

    def knows_reason(self, reason_code: str) -> bool: ...

    def collection_message(
        self, requests: Sequence[CollectionRequest], *, created_at: datetime.datetime
    ) -> bytes | None:
        """The message one collection run sends, or None when the scheme sends none."""
        ...


def required_field(details: Mapping[str, object], name: str) -> str:
    """`bank_details.<name>`, stripped; refused (naming it) when missing, blank or too long."""
    value = details.get(name)
    field = f"bank_details.{name}"
    if not isinstance(value, str) or not value.strip():
        raise InvalidBankDetails(field, f"{field} is required")
    if len(value) > field_length_max:
        raise InvalidBankDetails(field, f"{field} is at most {field_length_max} characters")
    return value.strip()


def optional_field(details: Mapping[str, object], name: str) -> str | None:
    """`bank_details.<name>` when given and not blank, else None."""
    value = details.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return required_field(details, name)


def only_fields(details: Mapping[str, object], names: tuple[str, ...], *, scheme: str) -> None:
    """Refuses the first field (in name order) that is not one of `names`."""
    for unknown in sorted(set(details) - set(names)):
        raise InvalidBankDetails(
            f"bank_details.{unknown}", f"bank_details.{unknown} is not a field of {scheme}"
        )
