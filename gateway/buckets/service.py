"""A customer's buckets and allocation rules, their preview, and the allocation plan of an
orchestration run.

Buckets are created with their ledger account opened first (and their partner's settlement
account), then the row and its `bucket.created` event in one transaction; balances are read
from TigerBeetle, one lookup per page. Rules are validated against their kind and the
customer's buckets, and every change (creation, deletion) is audited in the transaction that
makes it. A run's plan is the rules function (`gateway.buckets.rules`) over the customer's
live rules, with period caps counted from the lines earlier runs recorded; the plan is
recorded once per run, inside the orchestration's own transaction.
"""

from __future__ import annotations

import datetime
import hashlib
import uuid
from collections.abc import Sequence
from typing import Protocol

import asyncpg
import msgspec

from compliance.audit.outbox import outbox_insert_one, outbox_row
from gateway.buckets import records, wire
from gateway.buckets.errors import (
    InvalidField,
    InvalidWindow,
    PartnerCurrencyMismatch,
    RuleNotFound,
    TooManyBuckets,
    TooManyRules,
    UnknownBucket,
    UnknownPartner,
)
from gateway.buckets.records import BucketRow, Event, LineRow, RuleRow
from gateway.buckets.rules import Evaluation, evaluate
from gateway.buckets.views import (
    bucket_prefix,
    bucket_view,
    partner_prefix,
    rule_of,
    rule_prefix,
    rule_view,
)
from gateway.http.ids import decode_id, encode_id, uuid_from_bytes
from gateway.http.paging import Page, PageRequest, Position
from gateway.http.problems import ProblemError
from gateway.http.ratelimit import Principal
from gateway.http.wire import fields_at_fault
from ledger.buckets import BucketsLedger
from ledger.currencies import CurrencyRegistry
from ledger.errors import DomainError
from ledger.invariants import ensure


class PartnerFacts(Protocol):
    """What a bucket needs of its partner (`gateway.partners`' `PartnerRecord`)."""

    @property
    def id(self) -> uuid.UUID: ...

    @property
    def currency(self) -> str: ...

    @property
    def ledger_number(self) -> int: ...


class PartnerLookup(Protocol):
    """What this domain needs of partners: one of the tenant's by id, or `not_found`."""

    async def get(self, *, tenant_id: int, partner_id: int) -> PartnerFacts: ...


class CustomerLookup(Protocol):
    """What this domain needs of customers (`gateway.customers`): that one of the tenant's
    has this id (`not_found` otherwise)."""

    async def get(self, *, tenant_id: int, customer_id: int) -> object: ...


class AllocationLine(msgspec.Struct, frozen=True, kw_only=True):
    """One bucket's share of a run, with what its allocation and delivery need."""

    line_id: uuid.UUID  # line_id_for(orchestration_id, rule_id); the partner order's id too.
    orchestration_id: uuid.UUID
    tenant_id: int
    customer_id: uuid.UUID
    rule_id: uuid.UUID
    bucket_id: uuid.UUID
    bucket_sub_account: int
    partner_id: uuid.UUID | None
    partner_ledger_number: int | None
    account_reference: str | None
    currency: str
    amount_minor: int


class AllocationPlan(msgspec.Struct, frozen=True, kw_only=True):
    """How a run's collected amount splits, before it is recorded."""

    orchestration_id: uuid.UUID
    tenant_id: int
    customer_id: uuid.UUID
    currency: str
    amount_minor: int
    lines: tuple[AllocationLine, ...]
    unallocated_minor: int


def line_id_for(orchestration_id: uuid.UUID, rule_id: uuid.UUID) -> uuid.UUID:
    """A line's id: the same for a run and a rule however often it is planned, never 0."""
    digest = hashlib.blake2b(
        orchestration_id.bytes + rule_id.bytes, digest_size=16, person=b"kovra.alloc.line"
    ).digest()
    return uuid_from_bytes(digest if any(digest) else b"\x00" * 15 + b"\x01")


def _derived_id(object_id: uuid.UUID, what: str) -> uuid.UUID:
    """An event's or audit record's id: one per object and kind, however often written."""
    digest = hashlib.blake2b(
        f"{object_id}:{what}".encode(), digest_size=16, person=b"kovra.event"
    ).digest()
    return uuid_from_bytes(digest)


def _line(row: LineRow) -> AllocationLine:
    return AllocationLine(
        line_id=row.id,
        orchestration_id=row.orchestration_id,
        tenant_id=row.tenant_id,
        customer_id=row.customer_id,
        rule_id=row.rule_id,
        bucket_id=row.bucket_id,
        bucket_sub_account=row.bucket_sub_account,
        partner_id=row.partner_id,
        partner_ledger_number=row.partner_ledger_number,
        account_reference=row.account_reference,
        currency=row.currency,
        amount_minor=row.amount_minor,
    )


def _actor(principal: Principal) -> str:
    return f"tenant:{principal.tenant_id}:key:{principal.key_id}"


class Buckets:
    """Buckets, rules and allocation plans of every tenant, through one process's
    connections."""

    def __init__(
        self,
        *,
        pool: asyncpg.Pool,
        ledger: BucketsLedger,
        currencies: CurrencyRegistry,
        customers: CustomerLookup,
        partners: PartnerLookup,
        buckets_per_customer_max: int,
        rules_per_customer_max: int,
    ) -> None:
        ensure(0 < buckets_per_customer_max <= wire.buckets_per_customer_limit_max, "a limit")
        ensure(0 < rules_per_customer_max <= wire.rules_per_customer_limit_max, "a limit")
        self._pool = pool
        self._ledger = ledger
        self._currencies = currencies
        self._customers = customers
        self._partners = partners
        self._buckets_max = buckets_per_customer_max
        self._rules_max = rules_per_customer_max

    async def _check_customer(self, principal: Principal, customer_id: int) -> uuid.UUID:
        await self._customers.get(tenant_id=principal.tenant_id, customer_id=customer_id)
        return uuid.UUID(int=customer_id)

    # ----------------------------------------------------------------------------------
    # Buckets.

    async def create_bucket(
        self, principal: Principal, *, customer_id: int, bucket_id: int, body: wire.BucketCreate
    ) -> wire.Bucket:
        """A new bucket of the customer, its ledger account open; a retry answers the
        bucket it created."""
        currency = self._currencies.get(body.currency).code
        customer = await self._check_customer(principal, customer_id)
        row_id = uuid.UUID(int=bucket_id)
        stored = await records.get_bucket(
            self._pool, tenant_id=principal.tenant_id, bucket_id=row_id
        )
        if stored is None:
            partner = await self._partner(principal, body, currency)
            async with self._pool.acquire() as connection:
                await self._check_bucket_room(connection, principal.tenant_id, customer)
            sub_account = await records.next_sub_account(self._pool)
            await self._open_accounts(principal.tenant_id, currency, sub_account, partner)
            row = BucketRow(
                id=row_id,
                tenant_id=principal.tenant_id,
                customer_id=customer,
                kind=body.kind,
                name=body.name,
                currency=currency,
                sub_account=sub_account,
                partner_id=None if partner is None else partner.id,
                partner_ledger_number=None if partner is None else partner.ledger_number,
                account_reference=body.account_reference,
                target_amount_minor=body.target_amount,
                created_at=datetime.datetime.now(tz=datetime.UTC),
            )
            stored = await self._insert_bucket(row)
        return (await self._viewed([stored]))[0]

    async def _partner(
        self, principal: Principal, body: wire.BucketCreate, currency: str
    ) -> PartnerFacts | None:
        if body.partner_id is None:
            if body.account_reference is not None:
                raise InvalidField(
                    "an account reference names the customer's account at the bucket's"
                    " partner; this bucket has no partner",
                    field="account_reference",
                )
            return None
        try:
            partner_id = decode_id(partner_prefix, body.partner_id)
            partner = await self._partners.get(tenant_id=principal.tenant_id, partner_id=partner_id)
        except (ProblemError, DomainError) as error:
            if isinstance(error, DomainError) and error.code != "not_found":
                raise
            if isinstance(error, ProblemError) and error.status != 404:
                raise
            raise UnknownPartner(f"no partner {body.partner_id[:64]!r} of this tenant") from None
        if partner.currency != currency:
            raise PartnerCurrencyMismatch(
                f"the partner is paid in {partner.currency}; the bucket is in {currency}"
            )
        return partner

    async def _check_bucket_room(
        self, connection: records.Connection, tenant_id: int, customer: uuid.UUID
    ) -> None:
        count = await records.count_buckets(connection, tenant_id=tenant_id, customer_id=customer)
        if count >= self._buckets_max:
            raise TooManyBuckets(f"a customer has at most {self._buckets_max} buckets")

    async def _open_accounts(
        self, tenant_id: int, currency: str, sub_account: int, partner: PartnerFacts | None
    ) -> None:
        """The bucket's account, and its partner's, before any row names them: a row is
        never without its account, and an account without a row is empty and harmless."""
        await self._ledger.open_buckets(
            tenant_id=tenant_id, currency_code=currency, sub_accounts=[sub_account]
        )
        if partner is not None:
            await self._ledger.open_partner_accounts(
                tenant_id=tenant_id,
                currency_code=currency,
                partner_sub_accounts=[partner.ledger_number],
            )

    async def _insert_bucket(self, row: BucketRow) -> BucketRow:
        event = Event(
            id=_derived_id(row.id, "bucket.created"),
            tenant_id=row.tenant_id,
            type="bucket.created",
            object_id=row.id,
            payload=msgspec.json.encode(bucket_view(row)).decode(),
        )
        async with self._pool.acquire() as connection, connection.transaction():
            await records.lock_customer(connection, row.customer_id)
            existing = await records.get_bucket(
                connection, tenant_id=row.tenant_id, bucket_id=row.id
            )
            if existing is not None:
                return existing
            await self._check_bucket_room(connection, row.tenant_id, row.customer_id)
            inserted = await records.insert_bucket(connection, row, event)
        ensure(inserted is not None, "a bucket id not stored a moment ago under the lock")
        assert inserted is not None  # For the type checker; ensure() checked it.
        return inserted

    async def _viewed(self, rows: Sequence[BucketRow]) -> list[wire.Bucket]:
        """The buckets with their balances, read from the ledger in one lookup."""
        if not rows:
            return []
        balances = await self._ledger.balances_many(
            tenant_id=rows[0].tenant_id, buckets=[(row.currency, row.sub_account) for row in rows]
        )
        return [bucket_view(row, balance) for row, balance in zip(rows, balances, strict=True)]

    async def list_buckets(
        self, principal: Principal, *, customer_id: int, page: PageRequest[Position]
    ) -> Page[wire.Bucket]:
        customer = await self._check_customer(principal, customer_id)
        rows = await records.list_buckets(
            self._pool, tenant_id=principal.tenant_id, customer_id=customer, page=page
        )
        return Page(items=await self._viewed(rows.items), next_cursor=rows.next_cursor)

    # ----------------------------------------------------------------------------------
    # Rules.

    async def create_rule(
        self, principal: Principal, *, customer_id: int, rule_id: int, body: wire.RuleCreate
    ) -> wire.Rule:
        """A new rule of the customer, audited; a retry answers the rule it created."""
        check_rule_fields(body)
        customer = await self._check_customer(principal, customer_id)
        bucket = await self._bucket_of(principal, customer, body.bucket_id)
        row = _rule_row(principal, customer, uuid.UUID(int=rule_id), bucket, body)
        async with self._pool.acquire() as connection, connection.transaction():
            await records.lock_customer(connection, customer)
            stored = await records.get_rule(
                connection, tenant_id=principal.tenant_id, customer_id=customer, rule_id=row.id
            )
            if stored is None:
                live = await records.count_live_rules(
                    connection, tenant_id=principal.tenant_id, customer_id=customer
                )
                if live >= self._rules_max:
                    raise TooManyRules(f"a customer has at most {self._rules_max} live rules")
                stored = await records.insert_rule(connection, row)
                ensure(stored is not None, "a rule id not stored a moment ago under the lock")
                assert stored is not None  # For the type checker; ensure() checked it.
                await connection.execute(
                    outbox_insert_one, *_rule_audit(stored, principal, "rule.create")
                )
        return rule_view(stored)

    async def _bucket_of(self, principal: Principal, customer: uuid.UUID, text: str) -> BucketRow:
        """The customer's bucket a rule names, else `unknown_bucket` naming `bucket_id`."""
        try:
            bucket_id = uuid.UUID(int=decode_id(bucket_prefix, text))
        except ProblemError:
            raise UnknownBucket(f"{text[:64]!r} is not a bucket id") from None
        bucket = await records.get_bucket(
            self._pool, tenant_id=principal.tenant_id, bucket_id=bucket_id
        )
        if bucket is None or bucket.customer_id != customer:
            raise UnknownBucket(f"the customer has no bucket {text[:64]!r}")
        return bucket

    async def list_rules(
        self, principal: Principal, *, customer_id: int, page: PageRequest[Position]
    ) -> Page[wire.Rule]:
        customer = await self._check_customer(principal, customer_id)
        rows = await records.list_rules(
            self._pool, tenant_id=principal.tenant_id, customer_id=customer, page=page
        )
        return rows.map(rule_view)

    async def delete_rule(
        self, principal: Principal, *, customer_id: int, rule_id: int
    ) -> wire.Rule:
        """Delete the live rule (it no longer applies), audited; a rule deleted before
        answers as it was deleted, and is not audited again."""
        customer = await self._check_customer(principal, customer_id)
        row_id = uuid.UUID(int=rule_id)
        async with self._pool.acquire() as connection, connection.transaction():
            await records.lock_customer(connection, customer)
            deleted = await records.delete_rule(
                connection, tenant_id=principal.tenant_id, customer_id=customer, rule_id=row_id
            )
            if deleted is not None:
                await connection.execute(
                    outbox_insert_one, *_rule_audit(deleted, principal, "rule.delete")
                )
                return rule_view(deleted)
        stored = await records.get_rule(
            self._pool, tenant_id=principal.tenant_id, customer_id=customer, rule_id=row_id
        )
        if stored is None:
            raise RuleNotFound(f"the customer has no rule {encode_id(rule_prefix, rule_id)}")
        return rule_view(stored)

    # ----------------------------------------------------------------------------------
    # Evaluation: the preview, and a run's plan.

    async def _evaluate(
        self,
        *,
        tenant_id: int,
        customer_id: uuid.UUID,
        currency: str,
        amount_minor: int,
        at: datetime.datetime,
        orchestration_id: uuid.UUID | None,
    ) -> tuple[Evaluation, dict[uuid.UUID, records.LiveRule]]:
        live = await records.live_rules(
            self._pool, tenant_id=tenant_id, customer_id=customer_id, currency=currency
        )
        by_id = {found.rule.id: found for found in live}
        totals = await records.period_totals(
            self._pool,
            tenant_id=tenant_id,
            rule_ids=[found.rule.id for found in live if found.rule.cap_minor is not None],
            at=at,
            excluding_orchestration=orchestration_id,
        )
        rules = [rule_of(found.rule) for found in live]
        return evaluate(amount_minor, rules, at=at, allocated_in_period=totals), by_id

    async def preview(
        self, principal: Principal, *, customer_id: int, body: wire.PreviewCreate
    ) -> wire.Preview:
        """How `body.amount` would split now, moving nothing."""
        currency = self._currencies.get(body.currency).code
        customer = await self._check_customer(principal, customer_id)
        evaluation, _ = await self._evaluate(
            tenant_id=principal.tenant_id,
            customer_id=customer,
            currency=currency,
            amount_minor=body.amount,
            at=datetime.datetime.now(tz=datetime.UTC),
            orchestration_id=None,
        )
        return wire.Preview(
            customer_id=encode_id("cus", customer_id),
            amount=body.amount,
            currency=currency,
            allocations=[
                wire.PreviewAllocation(
                    rule_id=encode_id(rule_prefix, allocation.rule_id.int),
                    bucket_id=encode_id(bucket_prefix, allocation.bucket_id.int),
                    amount=allocation.amount_minor,
                )
                for allocation in evaluation.allocations
            ],
            unallocated=evaluation.unallocated_minor,
        )

    async def plan(
        self,
        *,
        tenant_id: int,
        customer_id: uuid.UUID,
        orchestration_id: uuid.UUID,
        currency: str,
        amount_minor: int,
        at: datetime.datetime,
    ) -> AllocationPlan:
        """How a run's collected amount splits at `at`: the customer's live rules on
        buckets of the currency, period caps counted from other runs' recorded lines."""
        evaluation, live = await self._evaluate(
            tenant_id=tenant_id,
            customer_id=customer_id,
            currency=currency,
            amount_minor=amount_minor,
            at=at,
            orchestration_id=orchestration_id,
        )
        lines = []
        for allocation in evaluation.allocations:
            found = live[allocation.rule_id]
            lines.append(
                AllocationLine(
                    line_id=line_id_for(orchestration_id, allocation.rule_id),
                    orchestration_id=orchestration_id,
                    tenant_id=tenant_id,
                    customer_id=customer_id,
                    rule_id=allocation.rule_id,
                    bucket_id=allocation.bucket_id,
                    bucket_sub_account=found.bucket_sub_account,
                    partner_id=found.partner_id,
                    partner_ledger_number=found.partner_ledger_number,
                    account_reference=found.account_reference,
                    currency=currency,
                    amount_minor=allocation.amount_minor,
                )
            )
        return AllocationPlan(
            orchestration_id=orchestration_id,
            tenant_id=tenant_id,
            customer_id=customer_id,
            currency=currency,
            amount_minor=amount_minor,
            lines=tuple(lines),
            unallocated_minor=evaluation.unallocated_minor,
        )

    async def record_plan(
        self,
        connection: records.Connection,
        *,
        compliance_region: str,
        plan: AllocationPlan,
        allocated_at: datetime.datetime,
    ) -> tuple[AllocationLine, ...]:
        """Record the run's plan inside the caller's transaction, unless the run recorded
        one before; the lines the run has (the first plan's, always)."""
        ensure(
            sum(line.amount_minor for line in plan.lines) + plan.unallocated_minor
            == plan.amount_minor,
            "a plan's lines and unallocated add up to its amount",
        )
        await records.insert_plan(
            connection,
            records.PlanRow(
                compliance_region=compliance_region,
                orchestration_id=plan.orchestration_id,
                tenant_id=plan.tenant_id,
                customer_id=plan.customer_id,
                currency=plan.currency,
                amount_minor=plan.amount_minor,
                unallocated_minor=plan.unallocated_minor,
                allocated_at=allocated_at,
            ),
            [_line_row(line, position, allocated_at) for position, line in enumerate(plan.lines)],
        )
        stored = await records.lines_of(connection, orchestration_id=plan.orchestration_id)
        return tuple(_line(row) for row in stored)

    async def lines(self, *, orchestration_id: uuid.UUID) -> tuple[AllocationLine, ...]:
        """The run's recorded lines, in the order its rules applied."""
        stored = await records.lines_of(self._pool, orchestration_id=orchestration_id)
        return tuple(_line(row) for row in stored)


def _line_row(line: AllocationLine, position: int, allocated_at: datetime.datetime) -> LineRow:
    return LineRow(
        id=line.line_id,
        orchestration_id=line.orchestration_id,
        position=position,
        tenant_id=line.tenant_id,
        customer_id=line.customer_id,
        rule_id=line.rule_id,
        bucket_id=line.bucket_id,
        bucket_sub_account=line.bucket_sub_account,
        partner_id=line.partner_id,
        partner_ledger_number=line.partner_ledger_number,
        account_reference=line.account_reference,
        currency=line.currency,
        amount_minor=line.amount_minor,
        allocated_at=allocated_at,
    )


# The amount field each kind takes (and requires); every other kind refuses it.
def check_rule_fields(body: wire.RuleCreate) -> None:
    """`InvalidField` naming the first field that does not fit the rule's kind (what the
    document says, `wire.rule_kind_fields`); `InvalidWindow` for the conditions' window that
    ends before it starts (which it cannot say)."""
    field, missing = fields_at_fault(body, "kind", wire.rule_kind_fields)
    if field:
        verb = "needs" if missing else "takes no"
        raise InvalidField(f"a {body.kind} rule {verb} {field}", field=field)
    conditions = body.conditions
    if (
        conditions is not None
        and conditions.active_from is not None
        and conditions.active_until is not None
        and conditions.active_until <= conditions.active_from
    ):
        raise InvalidWindow(
            "active_until must be later than active_from", field="conditions.active_until"
        )


def _rule_row(
    principal: Principal,
    customer: uuid.UUID,
    rule_id: uuid.UUID,
    bucket: BucketRow,
    body: wire.RuleCreate,
) -> RuleRow:
    conditions = body.conditions or wire.RuleConditions()
    cap = conditions.maximum_per_period
    days = conditions.days_of_month
    return RuleRow(
        id=rule_id,
        tenant_id=principal.tenant_id,
        customer_id=customer,
        bucket_id=bucket.id,
        kind=body.kind,
        priority=body.priority,
        percent_bps=body.percent_bps,
        amount_minor=body.amount,
        above_minor=body.above,
        minimum_left_minor=conditions.minimum_left,
        cap_minor=None if cap is None else cap.amount,
        cap_period=None if cap is None else cap.period,
        days_of_month=None if days is None else sorted(set(days)),
        active_from=conditions.active_from,
        active_until=conditions.active_until,
        created_at=datetime.datetime.now(tz=datetime.UTC),
        deleted_at=None,
    )


def _rule_audit(
    row: RuleRow, principal: Principal, action: str
) -> tuple[uuid.UUID, str, str, str, str]:
    """The audit record of a change to a rule: who, and the rule as it stands after it."""
    view = msgspec.to_builtins(rule_view(row))
    return outbox_row(
        record_id=_derived_id(row.id, f"audit.{action}"),
        actor=_actor(principal),
        action=action,
        target=f"rule:{row.id}",
        details={"tenant_id": row.tenant_id, "rule": view},
    )
