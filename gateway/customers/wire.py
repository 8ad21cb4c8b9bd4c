"""The JSON shapes of customers."""

from __future__ import annotations

from typing import Annotated

import msgspec
import pycountry
from msgspec import Meta

from gateway.http.wire import Timestamp, printable_text_pattern

name_length_max = 200
email_length_max = 254  # RFC 5321's limit on a forward path, less its angle brackets.
external_id_length_max = 128
# ISO 3166-1 alpha-2 codes of countries, as the OpenAPI document lists them; `country` is
# refused (422, naming it) unless it is one of these.
country_codes = tuple(sorted(country.alpha_2 for country in pycountry.countries))
# The WHATWG's valid e-mail address (what a browser's email field accepts), with a dot in
# the domain, as a customer's reachable address has.
email_pattern = (
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+"
    r"@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$"
)

CustomerName = Annotated[
    str, Meta(min_length=1, max_length=name_length_max, pattern=printable_text_pattern)
]
Email = Annotated[str, Meta(max_length=email_length_max, pattern=email_pattern)]
Country = Annotated[
    str,
    Meta(
        pattern="^[A-Z]{2}$",
        description="ISO 3166-1 alpha-2 code of a country",
        extra_json_schema={"enum": list(country_codes)},
    ),
]
ExternalId = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=external_id_length_max,
        pattern=printable_text_pattern,
        description="the tenant's own id for the customer, unique among its customers",
    ),
]


class CustomerCreate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: CustomerName
    email: Email | None = None
    country: Country
    external_id: ExternalId | None = None


class Customer(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    object: str = "customer"
    name: str
    email: str | None
    country: str
    external_id: str | None
    created_at: Timestamp


class CustomerPage(msgspec.Struct, frozen=True, kw_only=True):
    data: list[Customer]
    next_cursor: str | None


class CustomerCreated(msgspec.Struct, frozen=True, kw_only=True):
    """The `customer.created` event's payload. It carries no personal data (the event log
    and webhook deliveries are stored in the clear): a receiver reads the customer by id."""

    id: str
    object: str = "customer"
    country: str
    created_at: Timestamp
