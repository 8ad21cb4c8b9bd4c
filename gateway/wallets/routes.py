"""Deposits (sandbox) and two-phase holds on a tenant's wallet.

Each create writes its intent row to Postgres (batched with concurrent requests) and then
moves money in TigerBeetle with ids derived from the object's id, so a retry never moves
money twice. Capture and void read only TigerBeetle to move money: the hold's ledger
transfer says which tenant and currency it belongs to.
"""

from __future__ import annotations

import datetime
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, Literal

import msgspec
import tigerbeetle as tb
from litestar import Request, Response, get, post
from litestar.params import FromPath
from litestar.types import Scope

from compliance.freezes.service import ensure_active
from gateway.http import wire
from gateway.http.ids import as_uuid, decode_id, encode_id, utc_from_ns
from gateway.http.problems import ProblemError
from gateway.http.ratelimit import Principal
from gateway.http.requests import (
    Reply,
    decode_body,
    idempotent,
    idempotent_reply,
    json_response,
    principal_of,
    request_body,
    services_of,
)
from gateway.infra.database.batch import BatchStatement
from gateway.infra.database.records import event_insert
from gateway.runtime import Services
from gateway.wallets.records import HoldRow, deposit_insert, get_hold, hold_insert, mark_rejected
from ledger.errors import LedgerError
from ledger.service import Posted
from ledger.transfers import Leg, transfer_id

HoldStatus = Literal["pending", "captured", "voided", "expired"]


def _require_active(request: Request[Any, Any, Any]) -> None:
    ensure_active(principal_of(request))


async def _event(
    services: Services,
    *,
    event_id: int,
    tenant_id: int,
    event_type: str,
    object_id: int,
    payload: msgspec.Struct,
) -> None:
    """Write the event to the outbox; its id derives from the ledger transfer, so a
    reconciler re-creating it after a crash writes the very same event."""
    await services.writer.write(
        event_insert,
        (
            as_uuid(event_id),
            tenant_id,
            event_type,
            as_uuid(object_id),
            msgspec.json.encode(payload).decode(),
        ),
    )


async def _record_then_move(
    services: Services,
    *,
    statement: BatchStatement,
    row: tuple[Any, ...],
    region: str,
    move: Callable[[], Awaitable[Posted]],
) -> Posted:
    """Write the intent row (batched), then move the money; a refusal is noted on the row.

    The row comes first so that nothing the client sent is lost if the process dies between
    the two writes: the reconciler then finds a row without a transfer and settles it.
    """
    await services.writer.write(statement, row)
    try:
        return await move()
    except LedgerError as error:
        await mark_rejected(
            services.pool,
            table=statement.table,
            object_id=row[0],
            compliance_region=region,
            code=error.code,
        )
        raise


# --------------------------------------------------------------------------------------
# Deposits.


@post("/v1/deposits", summary="Credit the wallet (sandbox only)", tags=["deposits"])
async def create_deposit(request: Request[Any, Any, Any]) -> Response[bytes]:
    services = services_of(request)
    if not services.settings.sandbox:
        raise ProblemError(404, "not_found", "deposits exist only in the sandbox")
    _require_active(request)
    body = decode_body(await request_body(request), wire.DepositCreate)
    principal = principal_of(request)

    async def execute(deposit_id: int) -> tuple[int, msgspec.Struct]:
        currency = services.ledger.currencies.get(body.currency)
        row = (
            as_uuid(deposit_id),
            principal.compliance_region,
            principal.tenant_id,
            currency.code,
            body.amount,
            body.reference,
        )
        posted = await _record_then_move(
            services,
            statement=deposit_insert,
            row=row,
            region=principal.compliance_region,
            move=lambda: services.ledger.deposit(
                tenant_id=principal.tenant_id,
                deposit_id=deposit_id,
                currency_code=currency.code,
                amount_minor=body.amount,
            ),
        )
        deposit = wire.Deposit(
            id=encode_id("dep", deposit_id),
            currency=currency.code,
            amount=body.amount,
            reference=body.reference,
            status="posted",
            created_at=utc_from_ns(posted.timestamp_ns),
        )
        await _event(
            services,
            event_id=posted.transfer_id,
            tenant_id=principal.tenant_id,
            event_type="deposit.posted",
            object_id=deposit_id,
            payload=deposit,
        )
        return 201, deposit

    return await idempotent(request, kind="deposit", execute=execute)


# --------------------------------------------------------------------------------------
# Holds.


@post("/v1/holds", summary="Hold funds on the wallet", tags=["holds"])
async def create_hold(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Served by `gateway.http.hot_routes` in the running gateway; here for the OpenAPI document
    and for an app called without that dispatch."""
    reply = await create_hold_reply(
        services_of(request), principal_of(request), request.scope, await request_body(request)
    )
    return reply.response()


async def create_hold_reply(
    services: Services, principal: Principal, scope: Scope, raw: bytes
) -> Reply:
    ensure_active(principal)
    body = decode_body(raw, wire.HoldCreate)

    async def execute(hold_id: int) -> tuple[int, msgspec.Struct]:
        currency = services.ledger.currencies.get(body.currency)
        row = (
            as_uuid(hold_id),
            principal.compliance_region,
            principal.tenant_id,
            currency.code,
            body.amount,
            body.timeout_seconds,
            body.reference,
        )
        posted = await _record_then_move(
            services,
            statement=hold_insert,
            row=row,
            region=principal.compliance_region,
            move=lambda: services.ledger.hold(
                tenant_id=principal.tenant_id,
                hold_id=hold_id,
                currency_code=currency.code,
                amount_minor=body.amount,
                timeout_seconds=body.timeout_seconds,
            ),
        )
        created_at = utc_from_ns(posted.timestamp_ns)
        hold = wire.Hold(
            id=encode_id("hold", hold_id),
            currency=currency.code,
            amount=body.amount,
            captured_amount=0,
            status="pending",
            timeout_seconds=body.timeout_seconds,
            expires_at=_expiry(created_at, body.timeout_seconds),
            reference=body.reference,
            created_at=created_at,
        )
        await _event(
            services,
            event_id=posted.transfer_id,
            tenant_id=principal.tenant_id,
            event_type="hold.created",
            object_id=hold_id,
            payload=hold,
        )
        return 201, hold

    return await idempotent_reply(
        services, principal, scope, method="POST", body=raw, kind="hold", execute=execute
    )


def _expiry(created_at: datetime.datetime, timeout_seconds: int) -> datetime.datetime | None:
    return created_at + datetime.timedelta(seconds=timeout_seconds) if timeout_seconds else None


@get("/v1/holds/{hold_id:str}", summary="A hold and its state", tags=["holds"])
async def read_hold(request: Request[Any, Any, Any], hold_id: FromPath[str]) -> Response[bytes]:
    services = services_of(request)
    return json_response(200, await _load_hold(services, request, decode_id("hold", hold_id)))


@post("/v1/holds/{hold_id:str}/capture", summary="Capture a hold, fully or partly", tags=["holds"])
async def capture_hold(request: Request[Any, Any, Any], hold_id: FromPath[str]) -> Response[bytes]:
    body = decode_body(await request_body(request), wire.HoldCapture)
    return await _resolve_hold(request, hold_id, capture=True, amount=body.amount)


@post("/v1/holds/{hold_id:str}/void", summary="Release a hold", tags=["holds"])
async def void_hold(request: Request[Any, Any, Any], hold_id: FromPath[str]) -> Response[bytes]:
    decode_body(await request_body(request), wire.HoldVoid)
    return await _resolve_hold(request, hold_id, capture=False, amount=None)


async def _resolve_hold(
    request: Request[Any, Any, Any], hold_id_text: str, *, capture: bool, amount: int | None
) -> Response[bytes]:
    services = services_of(request)
    principal = principal_of(request)
    hold_id = decode_id("hold", hold_id_text)
    _require_active(request)

    async def execute(_: int) -> tuple[int, msgspec.Struct]:
        pending = await _pending_transfer(services, principal.tenant_id, hold_id)
        currency = services.ledger.currencies.by_number(pending.ledger).code
        if capture:
            posted = await services.ledger.capture_hold(
                tenant_id=principal.tenant_id,
                hold_id=hold_id,
                currency_code=currency,
                amount_minor=amount,
            )
        else:
            posted = await services.ledger.void_hold(
                tenant_id=principal.tenant_id,
                hold_id=hold_id,
                currency_code=currency,
            )
        row = await _hold_row(services, request, hold_id)
        # A replay with the same id can only have posted the same amount (else: a conflict).
        captured_amount = (pending.amount if amount is None else amount) if capture else None
        hold = _hold_view(
            hold_id, row, pending, captured_amount=captured_amount, voided=not capture
        )
        await _event(
            services,
            event_id=posted.transfer_id,
            tenant_id=principal.tenant_id,
            event_type="hold.captured" if capture else "hold.voided",
            object_id=hold_id,
            payload=hold,
        )
        return 200, hold

    kind = f"hold-{'capture' if capture else 'void'}-{hold_id}"
    return await idempotent(request, kind=kind, execute=execute)


async def _pending_transfer(services: Services, tenant_id: int, hold_id: int) -> tb.Transfer:
    """The hold's ledger transfer, if it belongs to this tenant; otherwise 404."""
    found = await services.ledger_client.lookup_transfers(
        [transfer_id(object_id=hold_id, leg=Leg.HOLD)]
    )
    if not found or found[0].user_data_64 != tenant_id:
        raise ProblemError(404, "not_found", f"no hold {encode_id('hold', hold_id)}")
    return found[0]


async def _hold_row(services: Services, request: Request[Any, Any, Any], hold_id: int) -> HoldRow:
    """The hold's metadata (reference, currency): decorates responses, never moves money."""
    principal = principal_of(request)
    row = await get_hold(
        services.pool,
        compliance_region=principal.compliance_region,
        tenant_id=principal.tenant_id,
        hold_id=uuid.UUID(int=hold_id),
    )
    if row is None:
        raise ProblemError(404, "not_found", f"no hold {encode_id('hold', hold_id)}")
    return row


async def _load_hold(
    services: Services, request: Request[Any, Any, Any], hold_id: int
) -> wire.Hold:
    tenant_id = principal_of(request).tenant_id
    row = await _hold_row(services, request, hold_id)
    ids = [
        transfer_id(object_id=hold_id, leg=leg)
        for leg in (Leg.HOLD, Leg.HOLD_CAPTURE, Leg.HOLD_VOID)
    ]
    by_id = {t.id: t for t in await services.ledger_client.lookup_transfers(ids)}
    pending = by_id.get(ids[0])
    if pending is None or pending.user_data_64 != tenant_id:
        raise ProblemError(404, "not_found", f"no hold {encode_id('hold', hold_id)}")
    captured = by_id.get(ids[1])
    return _hold_view(
        hold_id,
        row,
        pending,
        captured_amount=captured.amount if captured else None,
        voided=ids[2] in by_id,
    )


def _hold_view(
    hold_id: int,
    row: HoldRow,
    pending: tb.Transfer,
    *,
    captured_amount: int | None,
    voided: bool,
) -> wire.Hold:
    """The hold as the API shows it; its state comes from the ledger's transfers."""
    created_at = utc_from_ns(pending.timestamp)
    status: HoldStatus = (
        "captured" if captured_amount is not None else "voided" if voided else "pending"
    )
    expires_at = _expiry(created_at, pending.timeout)
    if status == "pending" and expires_at and expires_at.timestamp() <= time.time():
        status = "expired"
    return wire.Hold(
        id=encode_id("hold", hold_id),
        currency=row.currency,
        amount=pending.amount,
        captured_amount=captured_amount or 0,
        status=status,
        timeout_seconds=pending.timeout,
        expires_at=expires_at,
        reference=row.reference,
        created_at=created_at,
    )
