"""The background work of `kovra worker` (and of `kovra dev`, in-process): the reconciler,
the transfer lifecycle, the batch watcher, the audit outbox drain, webhook delivery,
retention, the collections passes (with the sandbox providers' notifier), the orchestration
runs' passes and the schedules' due passes, each as its own task sharing the process's
connections.

Each job is given exactly what it needs, picked here from the process's runtime.
"""

from __future__ import annotations

import asyncio

from compliance.audit import outbox as audit_outbox
from gateway.batches import worker as batch_watcher
from gateway.batches.repair import BatchRepair
from gateway.batches.worker import BatchWatcher
from gateway.collections import worker as collections_worker
from gateway.collections.setup import sandbox_notifier
from gateway.collections.worker import CollectionsWorker
from gateway.jobs import reconciler, retention
from gateway.jobs.reconciler import Reconciliation
from gateway.orchestrations import worker as orchestrations_worker
from gateway.orchestrations.worker import OrchestrationsWorker
from gateway.runtime import Runtime
from gateway.schedules import worker as schedules_worker
from gateway.transfers import worker as transfer_worker
from gateway.transfers.orphan_admissions import OrphanAdmissions
from gateway.transfers.rails_setup import build_rail
from gateway.transfers.worker import Lifecycle
from gateway.webhooks import worker as webhook_worker
from ledger.buckets import BucketsLedger

transfer_idle_seconds = 0.2


def orphan_admissions(runtime: Runtime) -> OrphanAdmissions:
    return OrphanAdmissions(
        redis=runtime.redis,
        ledger_client=runtime.ledger_client,
        admission=runtime.admission,
        limits=runtime.limits,
        reconcile_after_seconds=runtime.settings.reconcile_after_seconds,
    )


def reconciliation(runtime: Runtime) -> Reconciliation:
    return Reconciliation(
        pool=runtime.pool,
        redis=runtime.redis,
        writer=runtime.writer,
        ledger=runtime.ledger,
        ledger_client=runtime.ledger_client,
        orphans=orphan_admissions(runtime),
        reconcile_after_seconds=runtime.settings.reconcile_after_seconds,
    )


def lifecycle(runtime: Runtime) -> Lifecycle:
    return Lifecycle(
        pool=runtime.pool,
        ledger=runtime.ledger,
        recipients=runtime.recipients,
        pending_rail_base_ms=runtime.settings.pending_rail_base_ms,
        lease_seconds=runtime.settings.transfer_lease_seconds,
    )


def batch_repair(runtime: Runtime) -> BatchRepair:
    return BatchRepair(
        pool=runtime.pool,
        ledger=runtime.ledger,
        ledger_client=runtime.ledger_client,
        limits=runtime.limits,
        reconcile_after_seconds=runtime.settings.reconcile_after_seconds,
    )


def batch_watching(runtime: Runtime) -> BatchWatcher:
    return BatchWatcher(
        pool=runtime.pool,
        redis=runtime.redis,
        ledger=runtime.ledger,
        repair=batch_repair(runtime),
    )


def collections(runtime: Runtime) -> CollectionsWorker:
    domain = runtime.collections_domain
    notifier = sandbox_notifier(runtime.settings, domain, redis=runtime.redis)
    return CollectionsWorker(
        pool=runtime.pool,
        providers=domain.providers,
        secret_box=runtime.secret_box,
        applier=domain.applier,
        deliver_notifications=None if notifier is None else notifier.deliver_due,
        pending_expiry_seconds=runtime.settings.mandate_pending_expiry_seconds,
    )


def orchestrations(runtime: Runtime) -> OrchestrationsWorker:
    return OrchestrationsWorker(
        pool=runtime.pool,
        collections=runtime.collections,
        buckets=runtime.buckets,
        ledger=BucketsLedger(runtime.ledger),
        partners=runtime.partners,
        partner_attempts_max=runtime.settings.partner_attempts_max,
    )


def start_workers(runtime: Runtime) -> list[asyncio.Task[None]]:
    loop = asyncio.get_running_loop()
    settings = runtime.settings
    return [
        loop.create_task(audit_outbox.run_forever(runtime.pool)),
        loop.create_task(batch_watcher.run_forever(batch_watching(runtime))),
        loop.create_task(
            reconciler.run_forever(
                reconciliation(runtime), interval_seconds=reconciler.interval_seconds_default
            )
        ),
        loop.create_task(
            transfer_worker.run_forever(
                lifecycle(runtime),
                build_rail(settings, redis=runtime.redis),
                idle_seconds=transfer_idle_seconds,
            )
        ),
        loop.create_task(retention.run_forever(runtime.pool, settings.retention)),
        loop.create_task(collections_worker.run_forever(collections(runtime))),
        loop.create_task(schedules_worker.run_forever(runtime.schedules)),
        loop.create_task(orchestrations_worker.run_forever(orchestrations(runtime))),
        loop.create_task(
            webhook_worker.run_forever(
                runtime.pool,
                runtime.secret_box,
                schedule=settings.webhook_retry_schedule,
                timeout_seconds=settings.webhook_timeout_seconds,
                sandbox=settings.sandbox,
            )
        ),
    ]


async def run_workers(runtime: Runtime) -> None:
    """Run every background task until cancelled (`kovra worker`)."""
    tasks = start_workers(runtime)
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
