"""Schedules and the due pass over real Postgres and Redis with the real orchestrations
service: a cron schedule's occurrence starts exactly one run when due, in its time zone, and
a second pass at the same instant starts nothing; a pass after a long pause runs the latest
occurrence only; two workers racing over many due schedules start exactly one run per
occurrence; a balance trigger pulls (the excess, or its amount) at or above its threshold and
not below, at most once per check interval and not while its previous pull runs; a mandate
no longer active starts nothing; deletion is audited and stops the runs; and a pull the
orchestrations would refuse is refused at creation."""

from __future__ import annotations

import asyncio
import datetime
import uuid

import asyncpg
import pytest
from redis.asyncio import Redis

from gateway.http.ids import decode_id, encode_id
from gateway.http.paging import PageRequest, Position, positions
from gateway.orchestrations.errors import MandateInactive
from gateway.schedules import wire
from gateway.schedules.errors import InvalidCron, InvalidSchedule, InvalidTimezone
from gateway.schedules.service import run_id
from tests.gateway.schedules.fixtures import Setting, make_setting

utc = datetime.UTC


def at(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text).astimezone(utc)


created_at = at("2026-03-01T00:00:00Z")


@pytest.fixture
async def setting(pool: asyncpg.Pool, redis_client: Redis, namespace: str) -> Setting:
    return await make_setting(pool, redis_client, namespace)


def cron_body(
    mandate_id: int, cron: str = "0 9 * * *", tz: str = "Europe/Berlin"
) -> wire.ScheduleCreate:
    return wire.ScheduleCreate(
        kind="cron", mandate_id=encode_id("mdt", mandate_id), amount=5_000, cron=cron, timezone=tz
    )


def trigger_body(
    mandate_id: int, *, threshold: int, amount: int | None = None
) -> wire.ScheduleCreate:
    return wire.ScheduleCreate(
        kind="balance_threshold",
        mandate_id=encode_id("mdt", mandate_id),
        amount=amount,
        threshold=threshold,
        check_every_minutes=30,
    )


async def test_a_cron_occurrence_starts_one_run_when_due_in_its_zone(setting: Setting) -> None:
    schedules = setting.schedules()
    mandate = await setting.mandate()
    schedule = await setting.create(schedules, cron_body(mandate), now=created_at)
    # 09:00 in Berlin on 1 March (CET) is 08:00 UTC.
    assert schedule.next_run_at == at("2026-03-01T08:00:00Z")
    assert (await schedules.run_due(at("2026-03-01T07:59:59Z"))).started == []
    report = await schedules.run_due(at("2026-03-01T08:00:00Z"))
    (started,) = report.started
    assert started.occurrence_at == at("2026-03-01T08:00:00Z")
    assert (started.amount, started.currency, started.trigger) == (5_000, "EUR", "schedule")
    again = await schedules.run_due(at("2026-03-01T08:00:00Z"))
    assert (again.started, again.skipped) == ([], [])
    (run,) = await setting.runs()
    schedule_uuid = uuid.UUID(int=decode_id("sch", schedule.id))
    assert run["id"].int == run_id(schedule_uuid, at("2026-03-01T08:00:00Z"))
    assert (run["trigger"], run["schedule_id"], run["amount_minor"]) == (
        "schedule",
        schedule_uuid,
        5_000,
    )
    (listed,) = (
        await schedules.list_schedules(
            setting.principal, customer_id=setting.customer_id, page=_page()
        )
    ).items
    assert listed.next_run_at == at("2026-03-02T08:00:00Z")
    assert listed.last_run_at == at("2026-03-01T08:00:00Z")


async def test_a_pass_after_a_pause_runs_the_latest_occurrence_only(setting: Setting) -> None:
    schedules = setting.schedules()
    mandate = await setting.mandate()
    await setting.create(schedules, cron_body(mandate), now=created_at)
    report = await schedules.run_due(at("2026-03-04T12:00:00Z"))
    assert [s.occurrence_at for s in report.started] == [at("2026-03-04T08:00:00Z")]
    assert len(await setting.runs()) == 1


async def test_two_workers_racing_start_exactly_one_run_per_occurrence(
    setting: Setting,
) -> None:
    mandate = await setting.mandate()
    first, second = setting.schedules(batch_size=3), setting.schedules(batch_size=3)
    for minute in range(20):
        await setting.create(first, cron_body(mandate, cron=f"{minute} 9 * * *"), now=created_at)
    moment = at("2026-03-01T08:30:00Z")
    reports = await asyncio.gather(*(w.run_due(moment) for w in (first, second, first, second)))
    started = [s for report in reports for s in report.started]
    assert len(started) == 20
    assert len({(s.schedule_id, s.occurrence_at) for s in started}) == 20
    runs = await setting.runs()
    assert len(runs) == 20
    occurrences = await setting.pool.fetchval(
        "SELECT count(*) FROM schedule_occurrences WHERE tenant_id = $1",
        setting.principal.tenant_id,
    )
    assert occurrences == 20


async def test_a_balance_trigger_pulls_at_or_above_its_threshold_not_below(
    setting: Setting,
) -> None:
    schedules = setting.schedules()
    rich = await setting.mandate(reference="sandbox:balance:50000")
    poor = await setting.mandate(reference="sandbox:balance:39999")
    fixed = await setting.mandate(reference="sandbox:balance:40000")
    excess = await setting.create(schedules, trigger_body(rich, threshold=40_000), now=created_at)
    below = await setting.create(schedules, trigger_body(poor, threshold=40_000), now=created_at)
    exact = await setting.create(
        schedules, trigger_body(fixed, threshold=40_000, amount=2_500), now=created_at
    )
    report = await schedules.run_due(created_at)
    assert sorted((s.schedule_id, s.amount, s.balance) for s in report.started) == sorted(
        [(excess.id, 10_000, 50_000), (exact.id, 2_500, 40_000)]
    )
    assert [(s.schedule_id, s.reason) for s in report.skipped] == [(below.id, "below_threshold")]
    assert {r["trigger"] for r in await setting.runs()} == {"balance_threshold"}
    # Checked again within the interval: not due. After it, the pulls still run: skipped.
    assert (await schedules.run_due(created_at + datetime.timedelta(minutes=29))).started == []
    later = await schedules.run_due(created_at + datetime.timedelta(minutes=30))
    assert later.started == []
    assert sorted(s.reason for s in later.skipped) == [
        "below_threshold",
        "previous_pull_running",
        "previous_pull_running",
    ]
    # Once they landed, a balance still above pulls again.
    await setting.pool.execute(
        "UPDATE orchestrations SET status = 'completed' WHERE tenant_id = $1",
        setting.principal.tenant_id,
    )
    again = await schedules.run_due(created_at + datetime.timedelta(minutes=60))
    assert len(again.started) == 2
    assert len(await setting.runs()) == 4


async def test_a_mandate_no_longer_active_starts_nothing(setting: Setting) -> None:
    schedules = setting.schedules()
    mandate = await setting.mandate()
    await setting.create(schedules, cron_body(mandate), now=created_at)
    await setting.pool.execute(
        "UPDATE mandates SET status = 'deactivated' WHERE id = $1", uuid.UUID(int=mandate)
    )
    report = await schedules.run_due(at("2026-03-01T08:00:00Z"))
    assert report.started == []
    assert [s.reason for s in report.skipped] == ["mandate_inactive"]
    assert await setting.runs() == []
    with pytest.raises(MandateInactive):
        await setting.create(schedules, cron_body(mandate), now=created_at)


async def test_deletion_is_audited_and_stops_the_runs(setting: Setting) -> None:
    schedules = setting.schedules()
    mandate = await setting.mandate()
    schedule = await setting.create(schedules, cron_body(mandate), now=created_at)
    schedule_id = decode_id("sch", schedule.id)
    deleted = await schedules.delete(
        setting.principal, customer_id=setting.customer_id, schedule_id=schedule_id
    )
    assert (deleted.status, deleted.next_run_at) == ("deleted", None)
    again = await schedules.delete(
        setting.principal, customer_id=setting.customer_id, schedule_id=schedule_id
    )
    assert again == deleted
    report = await schedules.run_due(at("2026-03-05T08:00:00Z"))
    assert (report.started, report.skipped) == ([], [])
    actions = await setting.pool.fetch(
        "SELECT action FROM audit_outbox WHERE target = $1 ORDER BY action",
        f"schedule:{uuid.UUID(int=schedule_id)}",
    )
    assert [r["action"] for r in actions] == ["schedule.create", "schedule.delete"]
    assert (
        await schedules.list_schedules(
            setting.principal, customer_id=setting.customer_id, page=_page()
        )
    ).items == []


async def test_bad_fields_are_refused_naming_them(setting: Setting) -> None:
    schedules = setting.schedules()
    mandate = await setting.mandate()
    with pytest.raises(InvalidCron):
        await setting.create(schedules, cron_body(mandate, cron="0 9 31 2 *"))
    with pytest.raises(InvalidTimezone):
        await setting.create(schedules, cron_body(mandate, tz="Europe/Atlantis"))
    with pytest.raises(InvalidSchedule) as missing:
        await setting.create(
            schedules,
            wire.ScheduleCreate(kind="cron", mandate_id=cron_body(mandate).mandate_id, amount=1),
        )
    assert missing.value.field == "cron"
    with pytest.raises(InvalidSchedule) as foreign:
        await setting.create(
            schedules,
            wire.ScheduleCreate(
                kind="balance_threshold",
                mandate_id=cron_body(mandate).mandate_id,
                threshold=1,
                cron="0 9 * * *",
            ),
        )
    assert foreign.value.field == "cron"
    assert await setting.pool.fetchval("SELECT count(*) FROM schedules") == 0


def _page() -> PageRequest[Position]:
    return PageRequest(limit=100, cursor=None, kind=positions)
