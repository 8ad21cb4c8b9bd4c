"""Each corridor has its own rail adapter and breaker: a UK rail that keeps failing opens
only the UK breaker, while EU and ID submissions go on; production refuses to start
without real rails."""

from __future__ import annotations

import datetime
import uuid

import pytest

from gateway.settings import load_settings
from gateway.transfers.rails_setup import CorridorRouter, NoRailConfigured, build_rail
from rails.adapter import (
    CircuitBreaker,
    RailAdapter,
    RailResponse,
    RailSubmission,
    RailUnavailable,
    ResilientRail,
    RetryPolicy,
)
from rails.bank_details import validate_bank_details
from rails.corridors import Corridor, Rail
from rails.iso20022 import PayoutInstruction, build_pacs008
from rails.sandbox import SandboxRail


class Broken:
    async def submit(self, submission: RailSubmission) -> RailResponse:
        raise ConnectionError("the UK bank is down")


def _submission(rail: Rail, currency: str, details: dict[str, str], country: str) -> RailSubmission:
    message = build_pacs008(
        PayoutInstruction(
            message_id="M1",
            end_to_end_id="E1",
            uetr=uuid.uuid4(),
            rail=rail,
            currency=currency,
            amount_minor=100,
            minor_units=2,
            debtor_name="Kovra",
            debtor_agent_bic="KOVRGB2L",
            creditor_name="C",
            creditor_details=validate_bank_details(country=country, details=details),
            reference="INV",
            created_at=datetime.datetime.now(tz=datetime.UTC),
        )
    )
    return RailSubmission(
        transfer_id=1, attempt=1, rail=rail, end_to_end_id="E1", reference="INV", pacs008=message
    )


async def test_a_failing_corridor_does_not_stop_the_others() -> None:
    async def no_sleep(_: float) -> None:
        return

    def resilient(inner: RailAdapter) -> ResilientRail:
        return ResilientRail(
            inner,
            breaker=CircuitBreaker(failure_threshold=2),
            retry=RetryPolicy(attempts_max=1),
            timeout_ms=1_000,
            sleep=no_sleep,
        )

    router = CorridorRouter(
        {
            Corridor.EU: resilient(SandboxRail(latency_ms_min=0, latency_ms_max=0)),
            Corridor.UK: resilient(Broken()),
            Corridor.ID: resilient(SandboxRail(latency_ms_min=0, latency_ms_max=0)),
        }
    )
    uk = _submission(
        Rail.FASTER_PAYMENTS, "GBP", {"sort_code": "089999", "account_number": "66374958"}, "GB"
    )
    for _ in range(3):
        with pytest.raises(RailUnavailable):
            await router.submit(uk)
    eu = _submission(
        Rail.SEPA_INSTANT, "EUR", {"iban": "DE89370400440532013000", "bic": "COBADEFFXXX"}, "DE"
    )
    idr = _submission(Rail.BI_FAST, "IDR", {"bank_code": "014", "account_number": "123456"}, "ID")
    assert (await router.submit(eu)).outcome == "accepted"
    assert (await router.submit(idr)).outcome == "accepted"


def test_production_has_no_rails_yet() -> None:
    with pytest.raises(NoRailConfigured):
        build_rail(
            load_settings(
                {"KOVRA_ENV": "production", "TB_ADDRESSES": "3000", "KOVRA_SECRETS_KEY": "k" * 32}
            )
        )
    router = build_rail(load_settings({}))
    # Three corridors, three adapters, hence three breakers.
    assert len({id(router.adapter(corridor)) for corridor in Corridor}) == len(Corridor)
