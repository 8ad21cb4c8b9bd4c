"""The orchestration worker: in passes of bounded batches it takes every started run through
its steps, and each pass is safe to repeat after a crash anywhere in it.

1. collect (`pending`): the run's collection is created through the collections service,
   its id derived from the run's (so a repeat finds the same collection); `collecting`.
2. confirmation (`collecting`): the collections' final states, read for the batch in one
   query: `succeeded` → `allocating`; `failed` or `returned` → `failed`.
3. allocation (`allocating`): the customer's rules planned and the plan recorded (a resumed
   run gets its first plan, never a second), then ONE linked ledger chain per run moving
   the collected money from the wallet into the buckets, then the partner orders, the
   `bucket.credited` events and the run's state in one transaction. A chain the ledger
   refuses (the wallet was spent meanwhile) fails the run; the money stays on the wallet.
4. delivery (`partner_orders`): each order's bucket money is held for its partner (a
   pending transfer), the order sent, and the hold posted on the partner's receipt or
   voided on its refusal (or after `partner_attempts_max` sends without an answer); the
   money of a failed order stays in its bucket. The ledger is asked first where each order
   stands (`delivery_states`), so a pass resumed after a crash re-sends (the partner keys
   on the order id and answers its first receipt) and re-posts (idempotent), and never
   sends an order whose hold was voided.
5. finish (`delivering`): a run none of whose orders is still open is `completed` when
   every order was delivered, else `failed` naming the failed orders.

The ledger moves first and the rows follow (as in `gateway.collections.applying`): the
ledger's operations are idempotent by ids derived from the run and its lines, so a crash
between the two is repaired by the next pass, which asks the ledger again and writes the
rows. Every transition is conditional on the state it leaves (`records.move_runs`).
"""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

import asyncpg
import msgspec
import structlog

from gateway.collections.service import Collections
from gateway.http.ids import encode_id
from gateway.operations.records import NewException
from gateway.operations.records import record as record_exceptions
from gateway.orchestrations import records, wire
from gateway.orchestrations.records import (
    Event,
    Move,
    NewOrder,
    OrchestrationRow,
    OrderRow,
    StepChange,
)
from gateway.orchestrations.service import run_event
from gateway.orchestrations.views import order_prefix, order_view, payload
from ledger.buckets import Allocation, AllocationLeg, BucketsLedger, Delivery, DeliveryStatus
from ledger.errors import DomainError, LedgerError
from ledger.invariants import ensure
from ledger.service import Posted
from rails.partners.partner import (
    PartnerOrder,
    PartnerReceipt,
    PartnerRejected,
    PartnerUnavailable,
)

if TYPE_CHECKING:
    from gateway.buckets.service import AllocationLine, Buckets
    from gateway.partners.service import Partners

log = structlog.get_logger("kovra.orchestrations.worker")
# Runs (and partner orders) one pass of a step takes.
runs_per_pass_max = 200
lease_seconds_default = 60
idle_seconds_default = 0.5
# Collections created at once (each is its own short transaction in the collections domain).
collections_in_flight_max = 16
# A partner that did not answer is asked again after base * 2^(attempts - 1), at most max.
partner_retry_base_seconds_default = 5.0
partner_retry_seconds_max = 3_600.0
failure_description_length_max = 500
# The failure code of an order given up on after its partner never answered.
partner_unavailable_code = "partner_unavailable"
_collection_person = b"kovra.orc.col"
# An order in one of these states is over; its bucket's event says how.
_final = ("delivered", "failed")


def collection_id_for(orchestration_id: uuid.UUID) -> uuid.UUID:
    """The run's collection id: derived from the run's (a repeat creates the same one), and
    never equal to it (the two objects' ledger transfers must not share an id)."""
    digest = hashlib.blake2b(
        orchestration_id.bytes, digest_size=16, person=_collection_person
    ).digest()
    derived = uuid.UUID(bytes=digest)
    ensure(derived != orchestration_id, "a run's collection id is not the run's")
    return derived


def _changed(row: OrchestrationRow, move: Move) -> OrchestrationRow:
    """The run as `move` leaves it, for its events."""
    values = {
        name: getattr(move, name)
        for name in (
            "collection_id",
            "collected_minor",
            "allocated_minor",
            "unallocated_minor",
            "failure_code",
            "failure_description",
        )
        if getattr(move, name) is not None
    }
    return msgspec.structs.replace(row, status=move.to_status, **values)


def _steps(
    row: OrchestrationRow, states: dict[str, str], **details: dict[str, object]
) -> list[StepChange]:
    return [
        StepChange(
            compliance_region=row.compliance_region,
            orchestration_id=row.id,
            step=step,
            state=state,
            detail=details.get(step, {}),
        )
        for step, state in states.items()
    ]


def _failed_steps(
    row: OrchestrationRow, failed_step: str, detail: dict[str, object]
) -> list[StepChange]:
    """The step that failed, every later one skipped, and the notification (the
    `orchestration.failed` event) sent."""
    later = wire.step_names[wire.step_names.index(failed_step) + 1 : -1]
    states = {failed_step: "failed", **dict.fromkeys(later, "skipped"), "notification": "succeeded"}
    return _steps(row, states, **{failed_step: detail})


def _failure(row: OrchestrationRow, *, from_status: str, code: str, description: str) -> Move:
    return Move(
        run=row,
        from_status=from_status,
        to_status="failed",
        failure_code=code,
        failure_description=description[:failure_description_length_max],
        next_attempt_at=records.parked_until,
    )


class Transition(msgspec.Struct, kw_only=True):
    """What one transaction writes for a batch: the runs' moves, and for each run what goes
    with its move only if the move happens (steps, events, orders)."""

    moves: list[Move] = msgspec.field(default_factory=list)
    steps: dict[uuid.UUID, list[StepChange]] = msgspec.field(default_factory=dict)
    events: dict[uuid.UUID, list[Event]] = msgspec.field(default_factory=dict)
    orders: dict[uuid.UUID, list[NewOrder]] = msgspec.field(default_factory=dict)

    def add(
        self,
        move: Move,
        steps: Sequence[StepChange],
        events: Sequence[Event] = (),
        orders: Sequence[NewOrder] = (),
    ) -> None:
        self.moves.append(move)
        self.steps[move.run.id] = list(steps)
        self.events[move.run.id] = list(events)
        self.orders[move.run.id] = list(orders)

    async def write(self, connection: records.Executor) -> int:
        """Move the runs; write the rest of those that moved; how many moved."""
        moved = await records.move_runs(connection, self.moves)
        await records.set_steps(connection, [s for i in moved for s in self.steps[i]])
        await records.insert_orders(connection, [o for i in moved for o in self.orders[i]])
        await records.insert_events(connection, [e for i in moved for e in self.events[i]])
        return len(moved)


class OrchestrationsWorker:
    """One process's orchestration passes, on exactly the services they need."""

    def __init__(
        self,
        *,
        pool: asyncpg.Pool,
        collections: Collections,
        buckets: Buckets,
        ledger: BucketsLedger,
        partners: Partners,
        partner_attempts_max: int,
        partner_retry_base_seconds: float = partner_retry_base_seconds_default,
        lease_seconds: int = lease_seconds_default,
        batch_size: int = runs_per_pass_max,
    ) -> None:
        ensure(0 < batch_size <= runs_per_pass_max, "a pass takes a bounded batch")
        ensure(partner_attempts_max > 0, "a partner is asked at least once")
        self._pool = pool
        self._collections = collections
        self._buckets = buckets
        self._ledger = ledger
        self._partners = partners
        self._attempts_max = partner_attempts_max
        self._retry_base_seconds = partner_retry_base_seconds
        self._lease_seconds = lease_seconds
        self._batch_size = batch_size

    async def process_due(self) -> int:
        """One pass of every step; how much it did (0: nothing was due). A step that fails
        is logged and the others still run."""
        steps: list[tuple[str, Callable[[], Awaitable[int]]]] = [
            ("collect", self.collect),
            ("confirm", self.confirm),
            ("allocate", self.allocate),
            ("deliver", self.deliver),
            ("finish", self.finish),
        ]
        done = 0
        for name, step in steps:
            try:
                done += await step()
            except Exception:
                log.exception("orchestration_step_failed", step=name)
        return done

    # ----------------------------------------------------------------------------------
    # 1. Collect.

    async def collect(self) -> int:
        """Create the collection of each pending run; how many runs moved."""
        runs = await records.claim_runs(
            self._pool, status="pending", limit=self._batch_size, lease_seconds=self._lease_seconds
        )
        if not runs:
            return 0
        limit = asyncio.Semaphore(collections_in_flight_max)

        async def one(run: OrchestrationRow) -> uuid.UUID | DomainError | None:
            async with limit:
                return await self._collect_one(run)

        outcomes = await asyncio.gather(*(one(run) for run in runs))
        transition = Transition()
        for run, outcome in zip(runs, outcomes, strict=True):
            if isinstance(outcome, DomainError):
                move = _failure(
                    run, from_status="pending", code=outcome.code, description=outcome.detail
                )
                steps = _failed_steps(run, "collect", {"code": outcome.code})
                transition.add(
                    move, steps, [run_event(_changed(run, move), "orchestration.failed")]
                )
            elif outcome is not None:
                move = Move(
                    run=run,
                    from_status="pending",
                    to_status="collecting",
                    collection_id=outcome,
                    next_attempt_at=records.parked_until,
                )
                collection: dict[str, object] = {"collection_id": encode_id("col", outcome.int)}
                states = {"collect": "succeeded", "confirmation": "running"}
                transition.add(move, _steps(run, states, collect=collection))
        async with self._pool.acquire() as connection, connection.transaction():
            return await transition.write(connection)

    async def _collect_one(self, run: OrchestrationRow) -> uuid.UUID | DomainError | None:
        """The run's collection id once it exists; the refusal that ends the run (its
        mandate is no longer active); None when it could not be done now (left leased)."""
        collection_id = collection_id_for(run.id)
        try:
            await self._collections.collect_for(
                tenant_id=run.tenant_id,
                compliance_region=run.compliance_region,
                mandate_id=run.mandate_id.int,
                collection_id=collection_id.int,
                amount_minor=run.amount_minor,
                reference=run.reference,
            )
        except LedgerError:
            log.exception("orchestration_collect_failed", orchestration_id=str(run.id))
            return None
        except DomainError as refusal:
            return refusal
        return collection_id

    # ----------------------------------------------------------------------------------
    # 2. Confirmation.

    async def confirm(self) -> int:
        """Move the collecting runs whose collection is final; how many moved."""
        async with self._pool.acquire() as connection, connection.transaction():
            found = await records.lock_collected(connection, limit=self._batch_size)
            transition = Transition()
            for item in found:
                run = item.run
                detail: dict[str, object] = {"collection_status": item.collection_status}
                if item.collection_status == "succeeded":
                    move = Move(
                        run=run,
                        from_status="collecting",
                        to_status="allocating",
                        collected_minor=run.amount_minor,
                    )
                    steps = _steps(
                        run,
                        {"confirmation": "succeeded", "allocation": "running"},
                        confirmation=detail,
                    )
                    event = run_event(_changed(run, move), "orchestration.collected")
                else:
                    detail["failure_code"] = item.failure_code
                    move = _failure(
                        run,
                        from_status="collecting",
                        code="collection_failed",
                        description=f"the collection {item.collection_status}"
                        + (f" ({item.failure_code})" if item.failure_code else ""),
                    )
                    steps = _failed_steps(run, "confirmation", detail)
                    event = run_event(_changed(run, move), "orchestration.failed")
                transition.add(move, steps, [event])
            return await transition.write(connection)

    # ----------------------------------------------------------------------------------
    # 3. Allocation.

    async def allocate(self) -> int:
        """Plan, record and move each allocating run's allocation; how many runs moved."""
        runs = await records.claim_runs(
            self._pool,
            status="allocating",
            limit=self._batch_size,
            lease_seconds=self._lease_seconds,
        )
        if not runs:
            return 0
        now = datetime.datetime.now(tz=datetime.UTC)
        plans = [
            await self._buckets.plan(
                tenant_id=run.tenant_id,
                customer_id=run.customer_id,
                orchestration_id=run.id,
                currency=run.currency,
                amount_minor=run.collected_minor,
                at=now,
            )
            for run in runs
        ]
        async with self._pool.acquire() as connection, connection.transaction():
            lines = [
                await self._buckets.record_plan(
                    connection, compliance_region=run.compliance_region, plan=plan, allocated_at=now
                )
                for run, plan in zip(runs, plans, strict=True)
            ]
            planned = [
                _steps(run, {"allocation": "running"}, allocation={"planned_lines": len(found)})
                for run, found in zip(runs, lines, strict=True)
            ]
            await records.set_steps(connection, [step for steps in planned for step in steps])
        moving = [(run, found) for run, found in zip(runs, lines, strict=True) if found]
        results = await self._ledger.allocate_many(
            [_allocation(run, found) for run, found in moving]
        )
        answers = {run.id: result for (run, _), result in zip(moving, results, strict=True)}
        transition = Transition()
        for run, found in zip(runs, lines, strict=True):
            answer = answers.get(run.id)
            if isinstance(answer, LedgerError):
                self._refused(transition, run, answer)
            else:
                self._allocated(transition, run, found)
        async with self._pool.acquire() as connection, connection.transaction():
            return await transition.write(connection)

    def _refused(self, transition: Transition, run: OrchestrationRow, error: LedgerError) -> None:
        """A chain the ledger refused: the run fails, the money stays on the wallet."""
        log.warning(
            "orchestration_allocation_refused", orchestration_id=str(run.id), code=error.code
        )
        move = _failure(
            run,
            from_status="allocating",
            code="allocation_refused",
            description=f"the ledger refused the allocation: {error.code}: {error.detail}",
        )
        steps = _failed_steps(run, "allocation", {"code": error.code})
        transition.add(move, steps, [run_event(_changed(run, move), "orchestration.failed")])

    def _allocated(
        self, transition: Transition, run: OrchestrationRow, lines: Sequence[AllocationLine]
    ) -> None:
        """An allocation in the ledger (or one with nothing to move): the partner orders of
        its lines, its events, and the run delivering (or completed: no orders)."""
        allocated = sum(line.amount_minor for line in lines)
        ensure(0 <= allocated <= run.collected_minor, "an allocation is within the collection")
        orders = [_new_order(run, line) for line in lines if line.partner_id is not None]
        move = Move(
            run=run,
            from_status="allocating",
            to_status="delivering" if orders else "completed",
            allocated_minor=allocated,
            unallocated_minor=run.collected_minor - allocated,
            next_attempt_at=records.parked_until,
        )
        after = _changed(run, move)
        events = [run_event(after, "orchestration.allocated")]
        events += [_credited_event(run, line) for line in lines]
        detail: dict[str, object] = {
            "lines": len(lines),
            "allocated": allocated,
            "unallocated": run.collected_minor - allocated,
        }
        if orders:
            states = {"allocation": "succeeded", "partner_orders": "succeeded"}
            states["delivery"] = "running"
            order_ids = [encode_id(order_prefix, order.id.int) for order in orders]
            steps = _steps(run, states, allocation=detail, partner_orders={"orders": order_ids})
        else:
            states = {"allocation": "succeeded", "partner_orders": "skipped"}
            states |= {"delivery": "skipped", "notification": "succeeded"}
            steps = _steps(run, states, allocation=detail)
            events.append(run_event(after, "orchestration.completed"))
        transition.add(move, steps, events, orders)

    # ----------------------------------------------------------------------------------
    # 4. Delivery.

    async def deliver(self) -> int:
        """Reserve, send, and post or void each due partner order; how many were taken."""
        orders = await records.claim_orders(
            self._pool, limit=self._batch_size, lease_seconds=self._lease_seconds
        )
        if not orders:
            return 0
        states = await self._ledger.delivery_states([_delivery(order) for order in orders])
        after: dict[uuid.UUID, OrderRow] = {}
        to_reserve: list[OrderRow] = []
        to_send: list[OrderRow] = []
        posted: set[uuid.UUID] = set()
        for order, state in zip(orders, states, strict=True):
            if state is DeliveryStatus.VOIDED:
                after[order.id] = _failed(
                    order, order.failure_code or "voided", "the hold was voided"
                )
            elif state is DeliveryStatus.ABSENT:
                to_reserve.append(order)
            else:
                to_send.append(order)
                if state is DeliveryStatus.POSTED:
                    posted.add(order.id)
        to_send += await self._reserve(to_reserve, after)
        await self._send(to_send, after, posted=posted)
        written = [after[order.id] for order in orders if order.id in after]
        async with self._pool.acquire() as connection, connection.transaction():
            stored = await records.write_orders(connection, written)
            await records.insert_events(
                connection, [_order_event(order) for order in stored if order.status in _final]
            )
            await record_exceptions(
                connection,
                [_unconfirmed(order) for order in stored if _unanswered(order)],
            )
        return len(orders)

    async def _reserve(
        self, orders: Sequence[OrderRow], after: dict[uuid.UUID, OrderRow]
    ) -> list[OrderRow]:
        """Hold each order's money in its bucket for its partner; those held. One the
        ledger refuses fails unsent (nothing moved; the money stays in the bucket)."""
        if not orders:
            return []
        results = await self._ledger.reserve_many([_delivery(order) for order in orders])
        held: list[OrderRow] = []
        for order, result in zip(orders, results, strict=True):
            if isinstance(result, LedgerError):
                log.error("partner_order_reserve_refused", order_id=str(order.id), code=result.code)
                after[order.id] = _failed(order, result.code, result.detail)
            else:
                held.append(order)
                after[order.id] = msgspec.structs.replace(order, status="reserved")
        return held

    async def _send(
        self,
        orders: Sequence[OrderRow],
        after: dict[uuid.UUID, OrderRow],
        *,
        posted: set[uuid.UUID],
    ) -> None:
        """Send the held orders (one call for the batch), then post the receipts and void
        the refusals and the orders out of attempts (one ledger request each). An order
        the ledger shows posted (a crash after the post) was taken by its partner: it is
        sent again only for the receipt's reference, and delivered whatever the answer."""
        if not orders:
            return
        answers = await self._partners.send_many([_partner_order(order) for order in orders])
        ensure(len(answers) == len(orders), "a partner answers every order")
        to_post: list[tuple[OrderRow, OrderRow]] = []
        to_void: list[tuple[OrderRow, OrderRow]] = []
        for order, answer in zip(orders, answers, strict=True):
            sent = msgspec.structs.replace(order, status="reserved", attempts=order.attempts + 1)
            if order.id in posted:
                reference = answer.partner_reference if isinstance(answer, PartnerReceipt) else None
                after[order.id] = msgspec.structs.replace(
                    sent, status="delivered", partner_reference=reference
                )
            elif isinstance(answer, PartnerReceipt):
                to_post.append(
                    (
                        sent,
                        msgspec.structs.replace(sent, partner_reference=answer.partner_reference),
                    )
                )
            elif isinstance(answer, PartnerRejected):
                to_void.append((sent, _failed(sent, answer.code, answer.description)))
            elif isinstance(answer, PartnerUnavailable) and sent.attempts < self._attempts_max:
                after[order.id] = self._later(sent)
            else:
                reason = f"the partner did not answer {sent.attempts} times"
                to_void.append((sent, _failed(sent, partner_unavailable_code, reason)))
        await self._settle(to_post, after, post=True)
        await self._settle(to_void, after, post=False)

    async def _settle(
        self,
        pairs: Sequence[tuple[OrderRow, OrderRow]],
        after: dict[uuid.UUID, OrderRow],
        *,
        post: bool,
    ) -> None:
        """Post (the partner took it) or void (it did not) the holds of `pairs` (each the
        order as sent and as it ends): the order ends so once the ledger did; one the ledger
        refuses stays reserved, asked again later."""
        if not pairs:
            return
        deliveries = [_delivery(order) for order, _ in pairs]
        results = await (
            self._ledger.post_many(deliveries) if post else self._ledger.void_many(deliveries)
        )
        for (sent, final), result in zip(pairs, results, strict=True):
            if isinstance(result, Posted):
                after[sent.id] = (
                    msgspec.structs.replace(final, status="delivered") if post else final
                )
            else:
                log.error(
                    "partner_order_settle_refused",
                    order_id=str(sent.id),
                    post=post,
                    code=result.code,
                    detail=result.detail,
                )
                after[sent.id] = self._later(sent)

    def _later(self, order: OrderRow) -> OrderRow:
        """The order, still held, asked again after a backoff that grows with its attempts."""
        delay = min(
            self._retry_base_seconds * 2 ** max(order.attempts - 1, 0), partner_retry_seconds_max
        )
        at = datetime.datetime.now(tz=datetime.UTC) + datetime.timedelta(seconds=delay)
        return msgspec.structs.replace(order, next_attempt_at=at)

    # ----------------------------------------------------------------------------------
    # 5. Finish.

    async def finish(self) -> int:
        """Complete (or fail) the delivering runs none of whose orders is open; how many."""
        async with self._pool.acquire() as connection, connection.transaction():
            finished = await records.lock_finished_runs(connection, limit=self._batch_size)
            transition = Transition()
            for run, orders in finished:
                failed = [encode_id(order_prefix, o.id.int) for o in orders if o.status == "failed"]
                delivered = sum(1 for order in orders if order.status == "delivered")
                if not failed:
                    move = Move(run=run, from_status="delivering", to_status="completed")
                    states = {"delivery": "succeeded", "notification": "succeeded"}
                    steps = _steps(run, states, delivery={"delivered": delivered})
                    event = run_event(_changed(run, move), "orchestration.completed")
                else:
                    move = _failure(
                        run,
                        from_status="delivering",
                        code="delivery_failed",
                        description=f"{len(failed)} of {len(orders)} partner orders failed;"
                        " their money stays in their buckets",
                    )
                    detail = {"delivered": delivered, "failed_orders": failed}
                    steps = _failed_steps(run, "delivery", detail)
                    event = run_event(_changed(run, move), "orchestration.failed")
                    event.payload["failed_orders"] = failed
                transition.add(move, steps, [event])
            return await transition.write(connection)


async def run_forever(
    worker: OrchestrationsWorker, *, idle_seconds: float = idle_seconds_default
) -> None:
    """Run passes until cancelled; sleep only when a pass found nothing to do."""
    while True:
        try:
            worked = await worker.process_due()
        except Exception:
            log.exception("orchestrations_pass_failed")
            worked = 0
        if worked == 0:
            await asyncio.sleep(idle_seconds)


def _allocation(run: OrchestrationRow, lines: Sequence[AllocationLine]) -> Allocation:
    return Allocation(
        orchestration_id=run.id.int,
        tenant_id=run.tenant_id,
        currency_code=run.currency,
        legs=tuple(
            AllocationLeg(
                line_id=line.line_id.int,
                bucket_sub_account=line.bucket_sub_account,
                amount_minor=line.amount_minor,
            )
            for line in lines
        ),
    )


def _new_order(run: OrchestrationRow, line: AllocationLine) -> NewOrder:
    ensure(line.partner_id is not None and line.partner_ledger_number is not None, "a partner")
    assert line.partner_id is not None
    assert line.partner_ledger_number is not None
    return NewOrder(
        compliance_region=run.compliance_region,
        id=line.line_id,
        orchestration_id=run.id,
        tenant_id=run.tenant_id,
        customer_id=run.customer_id,
        partner_id=line.partner_id,
        bucket_id=line.bucket_id,
        bucket_sub_account=line.bucket_sub_account,
        partner_ledger_number=line.partner_ledger_number,
        account_reference=line.account_reference,
        currency=line.currency,
        amount_minor=line.amount_minor,
    )


def _credited_event(run: OrchestrationRow, line: AllocationLine) -> Event:
    return Event(
        tenant_id=run.tenant_id,
        type="bucket.credited",
        object_id=line.bucket_id,
        key=line.line_id,
        payload={
            "bucket_id": encode_id("bkt", line.bucket_id.int),
            "orchestration_id": encode_id("orc", run.id.int),
            "rule_id": encode_id("rul", line.rule_id.int),
            "customer_id": encode_id("cus", run.customer_id.int),
            "amount": line.amount_minor,
            "currency": line.currency,
        },
    )


def _delivery(order: OrderRow) -> Delivery:
    return Delivery(
        order_id=order.id.int,
        tenant_id=order.tenant_id,
        currency_code=order.currency,
        bucket_sub_account=order.bucket_sub_account,
        partner_sub_account=order.partner_ledger_number,
        amount_minor=order.amount_minor,
    )


def _partner_order(order: OrderRow) -> PartnerOrder:
    return PartnerOrder(
        order_id=order.id.int,
        tenant_id=order.tenant_id,
        partner_id=order.partner_id.int,
        orchestration_id=order.orchestration_id.int,
        bucket_id=order.bucket_id.int,
        customer_id=order.customer_id.int,
        currency=order.currency,
        amount_minor=order.amount_minor,
        account_reference=order.account_reference,
    )


def _failed(order: OrderRow, code: str, description: str) -> OrderRow:
    return msgspec.structs.replace(
        order,
        status="failed",
        failure_code=code[:64],
        failure_description=description[:failure_description_length_max],
        next_attempt_at=records.parked_until,
    )


def _order_event(order: OrderRow) -> Event:
    ensure(order.status in _final, "an order's event says how it ended")
    return Event(
        tenant_id=order.tenant_id,
        type="bucket.delivered" if order.status == "delivered" else "bucket.delivery_failed",
        object_id=order.bucket_id,
        key=order.id,
        payload=payload(order_view(order)),
    )


def _unanswered(order: OrderRow) -> bool:
    """An order given up on because its partner never answered: whether the partner took it
    is unknown (a timeout may hide a payment made)."""
    return order.status == "failed" and order.failure_code == partner_unavailable_code


def _unconfirmed(order: OrderRow) -> NewException:
    """The operations exception of an order its partner never answered: the hold was voided
    and the money is back in the bucket, but a person must ask the partner whether it paid
    (then move the money by hand) before anything is sent again."""
    return NewException(
        id=uuid.uuid4(),
        kind="partner_delivery_unconfirmed",
        dedupe_key=f"partner_delivery_unconfirmed:{order.id}",
        tenant_id=order.tenant_id,
        currency=order.currency,
        amount_minor=order.amount_minor,
        object_type="partner_order",
        object_id=order.id,
        details={
            "orchestration_id": encode_id("orc", order.orchestration_id.int),
            "partner_id": encode_id("ptn", order.partner_id.int),
            "attempts": order.attempts,
        },
    )
