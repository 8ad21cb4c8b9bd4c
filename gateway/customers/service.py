"""Customers: created with their personal data sealed and indexed, read back opened.

A customer's name, email and external id are sealed with the process's `SecretBox`, each
bound to the row and the column it is stored in, so a sealed value copied onto another row
(or into another column) does not open. Email and external id also get a keyed blind index
(`BlindIndex`), the only way a list finds a customer by either. The email is indexed
normalised (trimmed, lower-cased), so a lookup ignores case; an external id is the tenant's
own identifier and is indexed exactly as given.
"""

from __future__ import annotations

import datetime
import hashlib
import uuid
from collections.abc import Callable
from typing import TypeVar

import asyncpg
import msgspec

from gateway.customers import records, wire
from gateway.customers.errors import CustomerNotFound, ExternalIdTaken, InvalidCountry
from gateway.http.ids import as_uuid, encode_id, uuid_from_bytes
from gateway.http.paging import Page, PageRequest, Position
from gateway.infra.sealing import BlindIndex, SecretBox

id_prefix = "cus"
T = TypeVar("T")
_known_countries = frozenset(wire.country_codes)


class CustomerRecord(msgspec.Struct, frozen=True, kw_only=True):
    """A customer with its personal data opened: what the API shows and mandates need."""

    id: int
    tenant_id: int
    region: str  # The tenant's compliance region, where the row lives.
    name: str
    email: str | None
    country: str
    external_id: str | None
    created_at: datetime.datetime


def check_country(country: str) -> None:
    """`InvalidCountry` unless `country` is an ISO 3166-1 alpha-2 code of a country."""
    if country not in _known_countries:
        raise InvalidCountry(f"{country!r} is not an ISO 3166-1 alpha-2 country code")


def normalised_email(email: str) -> str:
    """The form an email is indexed and looked up in."""
    return email.strip().lower()


def bound_to(customer_id: uuid.UUID, column: str) -> bytes:
    """What a sealed value of `column` is bound to: its row and its column."""
    return customer_id.bytes + b":" + column.encode()


def event_id(customer_id: uuid.UUID) -> uuid.UUID:
    """The customer's `customer.created` event: one per customer, however often written."""
    digest = hashlib.blake2b(
        f"{customer_id}:customer.created".encode(), digest_size=16, person=b"kovra.event"
    ).digest()
    return uuid_from_bytes(digest)


def view(record: CustomerRecord) -> wire.Customer:
    return wire.Customer(
        id=encode_id(id_prefix, record.id),
        name=record.name,
        email=record.email,
        country=record.country,
        external_id=record.external_id,
        created_at=record.created_at,
    )


class Customers:
    """A tenant's customers over Postgres, sealed with `box` and indexed with `index`."""

    def __init__(self, *, pool: asyncpg.Pool, box: SecretBox, index: BlindIndex) -> None:
        self._pool = pool
        self._box = box
        self._index = index

    async def create(
        self, *, tenant_id: int, region: str, customer_id: int, body: wire.CustomerCreate
    ) -> CustomerRecord:
        """Store a new customer and its `customer.created` event, or answer the one stored
        under this id before (a retry). `ExternalIdTaken` when another customer of the
        tenant has the external id; `InvalidCountry` for a code that names no country."""
        check_country(body.country)
        row_id = as_uuid(customer_id)
        email = None if body.email is None else body.email.strip()
        row = await records.insert_customer(
            self._pool, self._new_row(tenant_id, region, row_id, body, email)
        )
        if row is None:
            raise ExternalIdTaken("another customer of this tenant has this external_id")
        return self._opened(row)

    def _new_row(
        self,
        tenant_id: int,
        region: str,
        row_id: uuid.UUID,
        body: wire.CustomerCreate,
        email: str | None,
    ) -> records.NewCustomer:
        index = self._index
        created = wire.CustomerCreated(
            id=encode_id(id_prefix, row_id.int),
            country=body.country,
            created_at=datetime.datetime.now(tz=datetime.UTC),
        )
        external_id = body.external_id
        return records.NewCustomer(
            id=row_id,
            compliance_region=region,
            tenant_id=tenant_id,
            name_sealed=self._seal(body.name, row_id, "name"),
            email_sealed=_maybe(email, lambda value: self._seal(value, row_id, "email")),
            external_id_sealed=_maybe(
                external_id, lambda value: self._seal(value, row_id, "external_id")
            ),
            country=body.country,
            email_index=_maybe(email, lambda value: index.index("email", normalised_email(value))),
            external_id_index=_maybe(external_id, lambda value: index.index("external_id", value)),
            index_key_id=index.current_key_id,
            external_id_candidates=[]
            if external_id is None
            else index.candidates("external_id", external_id),
            event_id=event_id(row_id),
            event_payload=msgspec.json.encode(created).decode(),
        )

    def _seal(self, plaintext: str, row_id: uuid.UUID, column: str) -> str:
        return self._box.seal(plaintext, bound_to=bound_to(row_id, column))

    async def get(self, *, tenant_id: int, customer_id: int) -> CustomerRecord:
        """The tenant's customer, opened; `CustomerNotFound` for an unknown id or another
        tenant's customer."""
        row = await records.get_customer(
            self._pool, tenant_id=tenant_id, customer_id=as_uuid(customer_id)
        )
        if row is None:
            raise CustomerNotFound(f"no customer with id {encode_id(id_prefix, customer_id)}")
        return self._opened(row)

    async def list(
        self,
        *,
        tenant_id: int,
        region: str,
        page: PageRequest[Position],
        external_id: str | None = None,
        email: str | None = None,
    ) -> Page[CustomerRecord]:
        """A page of the tenant's customers, oldest first; only the one with this external
        id, or those with this email (case ignored), when given."""
        index = self._index
        found = await records.list_customers(
            self._pool,
            region=region,
            tenant_id=tenant_id,
            external_id_candidates=None
            if external_id is None
            else index.candidates("external_id", external_id),
            email_candidates=None
            if email is None
            else index.candidates("email", normalised_email(email)),
            page=page,
        )
        return found.map(self._opened)

    def _opened(self, row: records.CustomerRow) -> CustomerRecord:
        def opened(sealed: str, column: str) -> str:
            return self._box.open(sealed, bound_to=bound_to(row.id, column))

        return CustomerRecord(
            id=row.id.int,
            tenant_id=row.tenant_id,
            region=row.compliance_region,
            name=opened(row.name_sealed, "name"),
            email=_maybe(row.email_sealed, lambda sealed: opened(sealed, "email")),
            country=row.country,
            external_id=_maybe(
                row.external_id_sealed, lambda sealed: opened(sealed, "external_id")
            ),
            created_at=row.created_at,
        )


def _maybe(value: str | None, make: Callable[[str], T]) -> T | None:
    """`make(value)`, or None for a field the customer does not have."""
    return None if value is None else make(value)


async def reseal_customers(pool: asyncpg.Pool, box: SecretBox, index: BlindIndex) -> int:
    """Seal every customer's personal data under the current key and recompute its blind
    indexes under the current index key, a bounded batch per transaction; the number of
    customers changed. Run after a key rotation, before the old key leaves
    KOVRA_SECRETS_KEYS_PREVIOUS. `SecretUnreadable` stops it at the first value that does
    not open (the batches before it stay resealed: running it again resumes)."""
    changed = 0
    while True:
        async with pool.acquire() as connection, connection.transaction():
            rows = await records.rows_to_reseal(
                connection, box_key_id=box.current_key_id, index_key_id=index.current_key_id
            )
            await records.store_resealed(connection, [_resealed(row, box, index) for row in rows])
        changed += len(rows)
        if len(rows) < records.reseal_batch_size:
            return changed


def _resealed(row: records.CustomerRow, box: SecretBox, index: BlindIndex) -> records.Resealed:
    def opened(sealed: str, column: str) -> str:
        return box.open(sealed, bound_to=bound_to(row.id, column))

    def sealed(plaintext: str, column: str) -> str:
        return box.seal(plaintext, bound_to=bound_to(row.id, column))

    name = opened(row.name_sealed, "name")
    email = _maybe(row.email_sealed, lambda sealed: opened(sealed, "email"))
    external_id = _maybe(row.external_id_sealed, lambda sealed: opened(sealed, "external_id"))
    return records.Resealed(
        compliance_region=row.compliance_region,
        id=row.id,
        name_sealed=box.seal(name, bound_to=bound_to(row.id, "name")),
        email_sealed=_maybe(
            email, lambda value: box.seal(value, bound_to=bound_to(row.id, "email"))
        ),
        external_id_sealed=_maybe(
            external_id, lambda value: box.seal(value, bound_to=bound_to(row.id, "external_id"))
        ),
        email_index=_maybe(email, lambda value: index.index("email", normalised_email(value))),
        external_id_index=_maybe(external_id, lambda value: index.index("external_id", value)),
        index_key_id=index.current_key_id,
    )
