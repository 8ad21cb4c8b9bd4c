"""Partners: created by a tenant (audited, an http partner's secret sealed and shown once),
read by the API and the other domains, and the one way the orchestration sends partner
orders (`Partners.send_many`).

Each order goes to its partner's adapter, built from the partner's row the first time it is
needed and kept (a partner never changes once created), wrapped in
`rails.partners.resilient.ResilientPartner`: a timeout per try, retries with jitter, and a
circuit breaker of the partner's own. Sends run concurrently, at most `sends_in_flight_max`
at a time in the process. An order whose partner is unknown, another tenant's, disabled or
of another currency is rejected for good without being sent: the orchestration leaves the
money in the bucket.

Where an http partner may point is the webhook policy (`gateway.webhooks.destinations`):
any http(s) URL in the sandbox; in production https only, to public addresses, checked when
the partner is created and again at every send (DNS answers change), the connection pinned
to the address checked.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import uuid
from collections.abc import Awaitable, Callable, Sequence

import asyncpg
import httpx
import msgspec
from redis.asyncio import Redis

from compliance.audit.outbox import outbox_row
from gateway.http.ids import as_uuid, encode_id, uuid_from_bytes
from gateway.http.paging import Page, PageRequest, Position
from gateway.http.ratelimit import Principal
from gateway.http.wire import fields_at_fault
from gateway.infra.sealing import SecretBox, SecretUnreadable
from gateway.partners import records, wire
from gateway.partners.errors import InvalidPartner, PartnerNotFound, PartnerUnreachable
from gateway.webhooks import destinations
from gateway.webhooks.signing import new_secret
from ledger.currencies import CurrencyRegistry
from ledger.invariants import ensure, unreachable
from rails.adapter import CircuitBreaker, RetryPolicy
from rails.partners.http import DestinationRefused, HttpPartner, PartnerTarget, Resolver
from rails.partners.partner import (
    Partner,
    PartnerOrder,
    PartnerReceipt,
    PartnerRejected,
    PartnerUnavailable,
)
from rails.partners.resilient import ResilientPartner
from rails.partners.sandbox import SandboxPartner
from rails.partners.sandbox import payments as sandbox_payments

id_prefix = "ptn"
# The most orders one `send_many` takes: what the orchestration worker claims in a pass.
send_batch_size_max = 1_000
# Adapters kept built (each holds its breaker); the least recently used goes first.
adapters_cached_max = 10_000
namespace_default = "kovra"
user_agent = "Kovra-Partners/1"
milliseconds_per_second = 1_000

Answer = PartnerReceipt | PartnerRejected | PartnerUnavailable


class PartnerLimits(msgspec.Struct, frozen=True, kw_only=True):
    """How sends are bounded: a try's timeout, the tries per send and their backoff, each
    partner's breaker, and the sends in flight at once in the process."""

    timeout_ms: int = 10_000
    send_tries_max: int = 3
    retry_base_ms: int = 200
    retry_cap_ms: int = 5_000
    failure_threshold: int = 5
    reset_timeout_ms: int = 30_000
    sends_in_flight_max: int = 64

    def __post_init__(self) -> None:
        ensure(self.timeout_ms > 0, "a partner's timeout is positive")
        ensure(self.send_tries_max >= 1, "an order is tried at least once")
        ensure(1 <= self.sends_in_flight_max <= send_batch_size_max, "sends in flight bounded")


class PartnerRecord(msgspec.Struct, frozen=True, kw_only=True):
    """A partner as the other domains need it (buckets copy its ledger number)."""

    id: uuid.UUID
    tenant_id: int
    kind: str
    name: str
    currency: str
    adapter: str
    reference: str
    ledger_number: int


def resolver_for(*, sandbox: bool) -> Resolver:
    """The webhook address policy as an http partner's resolver: the URL checked (and in
    production resolved, every address public) at each send, the connection pinned."""

    async def resolved(url: str) -> PartnerTarget:
        try:
            destination = await destinations.resolve(url, sandbox=sandbox)
        except destinations.DestinationRefused as refusal:
            raise DestinationRefused(str(refusal)) from None
        if destination.address is None:
            return PartnerTarget(connect_url=destination.url)
        return PartnerTarget(
            connect_url=destinations.connect_url(destination),
            host_header=destinations.host_header(destination),
            server_name=destination.host,
        )

    return resolved


def view(row: records.PartnerRow, *, secret: str | None = None) -> wire.Partner:
    return wire.Partner(
        id=encode_id(id_prefix, row.id.int),
        kind=row.kind,
        name=row.name,
        currency=row.currency,
        adapter=row.adapter,
        reference=row.reference,
        url=row.url,
        status=row.status,
        created_at=row.created_at,
        secret=secret,
    )


def audit_id(partner_id: uuid.UUID) -> uuid.UUID:
    """The partner's creation audit record: one per partner, however often written."""
    digest = hashlib.blake2b(
        f"{partner_id}:partner.create".encode(), digest_size=16, person=b"kovra.audit"
    ).digest()
    return uuid_from_bytes(digest)


class Partners:
    """A tenant's partners over Postgres, and the sends of partner orders."""

    def __init__(
        self,
        *,
        pool: asyncpg.Pool,
        redis: Redis,
        box: SecretBox,
        currencies: CurrencyRegistry,
        sandbox: bool,
        resolver: Resolver | None = None,
        limits: PartnerLimits | None = None,
        namespace: str = namespace_default,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._pool = pool
        self._redis = redis
        self._box = box
        self._currencies = currencies
        self._sandbox = sandbox
        self._resolver = resolver or resolver_for(sandbox=sandbox)
        self._limits = limits or PartnerLimits()
        self._namespace = namespace
        self._sleep = sleep
        self._adapters: collections.OrderedDict[uuid.UUID, tuple[records.PartnerRow, Partner]]
        self._adapters = collections.OrderedDict()
        self._in_flight = asyncio.Semaphore(self._limits.sends_in_flight_max)
        self._client = httpx.AsyncClient(
            follow_redirects=False,
            trust_env=False,
            timeout=self._limits.timeout_ms / milliseconds_per_second,
            limits=httpx.Limits(max_connections=self._limits.sends_in_flight_max),
            headers={"user-agent": user_agent},
        )

    async def close(self) -> None:
        await self._client.aclose()

    async def _check(self, body: wire.PartnerCreate) -> None:
        """`InvalidPartner`, `PartnerUnreachable` (or the ledger's currency error) naming
        the field at fault."""
        self._currencies.get(body.currency)  # Unknown or not enabled: a 422 naming it.
        field, missing = fields_at_fault(body, "adapter", wire.adapter_fields)
        if field:
            verb = "needs the url orders are sent to" if missing else "has no url"
            raise InvalidPartner(f"a {body.adapter} partner {verb}", field=field)
        if body.adapter == "sandbox":
            if not self._sandbox:
                raise PartnerUnreachable(
                    "the sandbox adapter pays no one: it exists in the sandbox only",
                    field="adapter",
                )
            return
        if body.url is None:
            unreachable("an http partner without a url was refused above")
        try:
            await destinations.resolve(body.url, sandbox=self._sandbox)
        except destinations.DestinationRefused as refusal:
            detail = f"this URL cannot receive orders: {refusal}"
            raise PartnerUnreachable(detail, field="url") from None

    async def create(
        self, principal: Principal, *, partner_id: int, body: wire.PartnerCreate
    ) -> tuple[records.PartnerRow, str | None]:
        """Store a new partner, audited; the row and, for an http partner created now, its
        signing secret (shown this once). A retry answers the row stored before, without
        the secret."""
        await self._check(body)
        row_id = as_uuid(partner_id)
        secret = new_secret() if body.adapter == "http" else None
        new = records.NewPartner(
            id=row_id,
            tenant_id=principal.tenant_id,
            kind=body.kind,
            name=body.name,
            currency=body.currency,
            adapter=body.adapter,
            reference=body.reference,
            url=body.url,
            secret_sealed=None if secret is None else self._box.seal(secret, bound_to=row_id.bytes),
        )
        row, created = await records.insert_partner(self._pool, new, _audit(new, principal))
        return row, secret if created else None

    async def read(self, *, tenant_id: int, partner_id: int) -> records.PartnerRow:
        row = await records.get_partner(
            self._pool, tenant_id=tenant_id, partner_id=as_uuid(partner_id)
        )
        if row is None:
            raise PartnerNotFound(f"no partner with id {encode_id(id_prefix, partner_id)}")
        return row

    async def get(self, *, tenant_id: int, partner_id: int) -> PartnerRecord:
        """The tenant's partner; `PartnerNotFound` (`not_found`) for an unknown id or
        another tenant's partner."""
        row = await self.read(tenant_id=tenant_id, partner_id=partner_id)
        return PartnerRecord(
            id=row.id,
            tenant_id=row.tenant_id,
            kind=row.kind,
            name=row.name,
            currency=row.currency,
            adapter=row.adapter,
            reference=row.reference,
            ledger_number=row.ledger_number,
        )

    async def list_partners(
        self, *, tenant_id: int, page: PageRequest[Position]
    ) -> Page[records.PartnerRow]:
        return await records.list_partners(self._pool, tenant_id=tenant_id, page=page)

    async def sandbox_payments(self, order_id: int) -> int:
        """How many times the sandbox partners paid the order (0 or 1): what tests of the
        orchestration read to prove nothing is paid twice."""
        return await sandbox_payments(self._redis, order_id, namespace=self._namespace)

    async def send_many(self, orders: Sequence[PartnerOrder]) -> list[Answer]:
        """One answer per order, in order: the partner's receipt, its rejection, or
        `PartnerUnavailable` (try later). Sent concurrently, bounded."""
        ensure(
            len(orders) <= send_batch_size_max,
            f"send_many takes at most {send_batch_size_max} orders, not {len(orders)}",
        )
        adapters = await self._adapters_for({as_uuid(order.partner_id) for order in orders})

        async def answer(order: PartnerOrder) -> Answer:
            found = adapters.get(as_uuid(order.partner_id))
            if found is None:
                return PartnerRejected("unknown_partner", "no such partner")
            if isinstance(found, PartnerUnavailable):
                return found
            refusal = _refusal(order, found[0])
            if refusal is not None:
                return refusal
            async with self._in_flight:
                try:
                    return await found[1].send(order)
                except (PartnerRejected, PartnerUnavailable) as error:
                    return error

        return list(await asyncio.gather(*(answer(order) for order in orders)))

    async def _adapters_for(
        self, partner_ids: set[uuid.UUID]
    ) -> dict[uuid.UUID, tuple[records.PartnerRow, Partner] | PartnerUnavailable]:
        """Each partner's row and adapter, those not yet built read in one query; a
        partner whose secret does not open is unavailable (nothing is sent) until the
        operator's keys open it."""
        found: dict[uuid.UUID, tuple[records.PartnerRow, Partner] | PartnerUnavailable] = {}
        for partner_id in partner_ids:
            if partner_id in self._adapters:
                self._adapters.move_to_end(partner_id)
                found[partner_id] = self._adapters[partner_id]
        missing = [partner_id for partner_id in partner_ids if partner_id not in found]
        for row in await records.partners_by_ids(self._pool, missing):
            try:
                built = (row, self._built(row))
            except SecretUnreadable as unreadable:
                found[row.id] = PartnerUnavailable(f"the partner's secret: {unreadable}")
                continue
            found[row.id] = self._adapters[row.id] = built
            if len(self._adapters) > adapters_cached_max:
                self._adapters.popitem(last=False)
        return found

    def _built(self, row: records.PartnerRow) -> Partner:
        """The partner's adapter behind its own breaker, timeout and retries."""
        inner: Partner
        if row.adapter == "http":
            ensure(row.url is not None and row.secret_sealed is not None, "http has url, secret")
            inner = HttpPartner(
                partner_id=row.id.int,
                url=row.url or "",
                secret=self._box.open(row.secret_sealed or "", bound_to=row.id.bytes),
                resolver=self._resolver,
                client=self._client,
                public_id=encode_id,
                timeout_ms=self._limits.timeout_ms,
            )
        else:
            inner = SandboxPartner(
                partner_id=row.id.int,
                reference=row.reference,
                redis=self._redis,
                namespace=self._namespace,
            )
        limits = self._limits
        return ResilientPartner(
            inner,
            breaker=_breaker(limits),
            retry=RetryPolicy(
                attempts_max=limits.send_tries_max,
                base_delay_ms=limits.retry_base_ms,
                delay_max_ms=limits.retry_cap_ms,
            ),
            timeout_ms=limits.timeout_ms,
            sleep=self._sleep,
        )


def _breaker(limits: PartnerLimits) -> CircuitBreaker:
    """A breaker of the partner's own: one partner failing opens no other's."""
    return CircuitBreaker(
        failure_threshold=limits.failure_threshold, reset_timeout_ms=limits.reset_timeout_ms
    )


def _refusal(order: PartnerOrder, row: records.PartnerRow) -> PartnerRejected | None:
    """Why the order cannot go to this partner at all, or None."""
    if row.tenant_id != order.tenant_id:
        return PartnerRejected("unknown_partner", "no such partner")
    if row.status != "active":
        return PartnerRejected("partner_disabled", "the partner takes no orders")
    if row.currency != order.currency:
        return PartnerRejected(
            "currency_mismatch", f"the partner is paid in {row.currency}, not {order.currency}"
        )
    return None


def _audit(new: records.NewPartner, principal: Principal) -> records.AuditRow:
    """The creation's audit record: what the partner is and where it is paid, no secret."""
    return outbox_row(
        record_id=audit_id(new.id),
        actor=f"tenant:{principal.tenant_id}:key:{principal.key_id}",
        action="partner.create",
        target=f"partner:{new.id}",
        details={
            "tenant_id": new.tenant_id,
            "kind": new.kind,
            "name": new.name,
            "currency": new.currency,
            "adapter": new.adapter,
            "reference": new.reference,
            "url": new.url,
        },
    )


async def reseal_partner_secrets(pool: asyncpg.Pool, box: SecretBox) -> int:
    """Seal every partner's secret under the current key; the number changed. Run after a
    key rotation, before the old key leaves KOVRA_SECRETS_KEYS_PREVIOUS."""
    async with pool.acquire() as connection, connection.transaction():
        changed = [
            (partner_id, _resealed(box, sealed, partner_id))
            for partner_id, sealed in await records.sealed_secrets(connection)
            if not box.is_current(sealed)
        ]
        await records.store_secrets(connection, changed)
    return len(changed)


def _resealed(box: SecretBox, sealed: str, partner_id: uuid.UUID) -> str:
    return box.seal(box.open(sealed, bound_to=partner_id.bytes), bound_to=partner_id.bytes)
