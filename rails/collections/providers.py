"""The mandate providers a process talks to, built in one place with explicit dependencies.

`build_sandbox_providers` gives the three sandbox providers (PayWithAccount, SEPA Direct
Debit for the configured creditor, Bacs Direct Debit), their shared state in Redis, each
behind its own `ResilientProvider` (a breaker of its own, the timeout and retries of
`resilience`), keyed by name as the
collections domain looks them up.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from redis.asyncio import Redis

from rails.collections.bacs_dd import BacsDirectDebit
from rails.collections.paywithaccount import PayWithAccount
from rails.collections.provider import MandateProvider, ProviderName
from rails.collections.resilient import ResilientProvider
from rails.collections.sandbox import (
    ProviderReferenceUnknown,
    SandboxProvider,
    namespace_default,
    notification_delay_ms_default,
    return_delay_ms_default,
)
from rails.collections.scheme import Scheme
from rails.collections.sepa_dd import SepaCreditor, SepaDirectDebit
from rails.resilience import Resilience


def schemes(*, creditor: SepaCreditor) -> dict[ProviderName, Scheme]:
    """Every scheme Kovra collects through, the SEPA one for `creditor`."""
    return {
        ProviderName.PAYWITHACCOUNT: PayWithAccount(),
        ProviderName.SEPA_DD: SepaDirectDebit(creditor),
        ProviderName.BACS_DD: BacsDirectDebit(),
    }


def build_sandbox_providers(
    *,
    redis: Redis,
    creditor: SepaCreditor,
    namespace: str = namespace_default,
    notification_delay_ms: int = notification_delay_ms_default,
    return_delay_ms: int = return_delay_ms_default,
    resilience: Resilience | None = None,
    clock: Callable[[], float] = time.time,
) -> dict[ProviderName, MandateProvider]:
    """A resilient sandbox provider per scheme, sharing `redis` under `namespace`."""
    guard = resilience or Resilience()
    providers: dict[ProviderName, MandateProvider] = {}
    for name, scheme in schemes(creditor=creditor).items():
        sandbox = SandboxProvider(
            scheme,
            redis=redis,
            namespace=namespace,
            notification_delay_ms=notification_delay_ms,
            return_delay_ms=return_delay_ms,
            clock=clock,
        )
        providers[name] = ResilientProvider(
            sandbox,
            breaker=guard.breaker(),
            retry=guard.retry,
            timeout_ms=guard.timeout_ms,
            passthrough=(ProviderReferenceUnknown,),
        )
    return providers
