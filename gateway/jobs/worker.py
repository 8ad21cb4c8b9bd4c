"""The background work of `kovra worker` (and of `kovra dev`, in-process): the reconciler,
the transfer lifecycle, the audit outbox drain, webhook delivery and retention, each as its own task
sharing the process's connections."""

from __future__ import annotations

import asyncio

from compliance.audit import outbox as audit_outbox
from gateway.batches import worker as batch_watcher
from gateway.jobs import reconciler, retention
from gateway.runtime import Services
from gateway.transfers import worker as transfer_worker
from gateway.transfers.rails_setup import build_rail
from gateway.webhooks import worker as webhook_worker

transfer_idle_seconds = 0.2


def start_workers(services: Services) -> list[asyncio.Task[None]]:
    loop = asyncio.get_running_loop()
    settings = services.settings
    return [
        loop.create_task(audit_outbox.run_forever(services.pool)),
        loop.create_task(batch_watcher.run_forever(services)),
        loop.create_task(
            reconciler.run_forever(services, interval_seconds=reconciler.interval_seconds_default)
        ),
        loop.create_task(
            transfer_worker.run_forever(
                services, build_rail(services.settings), idle_seconds=transfer_idle_seconds
            )
        ),
        loop.create_task(retention.run_forever(services.pool, settings.retention)),
        loop.create_task(
            webhook_worker.run_forever(
                services.pool,
                services.secret_box,
                schedule=settings.webhook_retry_schedule,
                timeout_seconds=settings.webhook_timeout_seconds,
                sandbox=settings.sandbox,
            )
        ),
    ]


async def run_workers(services: Services) -> None:
    """Run every background task until cancelled (`kovra worker`)."""
    tasks = start_workers(services)
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
