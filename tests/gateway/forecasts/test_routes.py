"""The income forecast through the API (the whole app in this process, real Postgres and
Redis): a customer's succeeded collections in the currency make the forecast (failed ones,
other currencies and other customers' do not); without three days of income there is none;
a currency that is not an ISO code is a 422 naming it; another tenant's customer is a 404."""

from __future__ import annotations

import datetime
import uuid
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from gateway.http.ids import decode_id
from tests import redis_server
from tests.gateway.api_matrix import Api, Tenant, api_for_a_module, customer_body

redis_url = redis_server.redis_url(2)
pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def api(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Api]:
    async with api_for_a_module(tmp_path_factory.mktemp("forecasts"), redis_url=redis_url) as made:
        yield made


async def _customer(api: Api, tenant: Tenant) -> str:
    return str((await api.created(tenant, "/v1/customers", customer_body))["id"])


async def _collections(
    api: Api,
    tenant: Tenant,
    customer_id: str,
    history: list[tuple[str, int, str, str]],
) -> None:
    """A mandate of the customer and its collections (date, amount, currency, status)."""
    mandate_id = uuid.uuid4()
    await api.pool.execute(
        """INSERT INTO mandates (compliance_region, id, tenant_id, customer_id, provider,
               currency, reference, bank_details_sealed, bank_details_masked,
               consent_accepted_at, consent_ip, consent_user_agent, status)
           VALUES ('EU', $1, $2, $3, 'sepa_dd', 'EUR', 'r', 'sealed:v1:x', '{}', now(),
                   '203.0.113.7', 'tests', 'active')""",
        mandate_id,
        tenant.tenant_id,
        uuid.UUID(int=decode_id("cus", customer_id)),
    )
    for number, (day, amount, currency, status) in enumerate(history):
        await api.pool.execute(
            """INSERT INTO collections (compliance_region, id, tenant_id, mandate_id, provider,
                   currency, amount_minor, reference, end_to_end_id, collection_date, status)
               VALUES ('EU', $1, $2, $3, 'sepa_dd', $4, $5, 'r', $6, $7, $8)""",
            uuid.uuid4(),
            tenant.tenant_id,
            mandate_id,
            currency,
            amount,
            f"E2E{mandate_id.hex[:20]}{number}",
            datetime.date.fromisoformat(day),
            status,
        )


async def _forecast(api: Api, tenant: Tenant, customer_id: str, currency: str = "EUR") -> object:
    return await api.client.get(
        f"/v1/customers/{customer_id}/income-forecast",
        params={"currency": currency},
        headers=tenant.headers("read_only"),
    )


async def test_the_forecast_is_made_from_the_customers_succeeded_collections(api: Api) -> None:
    tenant = await api.tenant("forecast")
    customer = await _customer(api, tenant)
    other = await _customer(api, tenant)
    await _collections(
        api,
        tenant,
        customer,
        [
            ("2026-01-01", 1_000, "EUR", "succeeded"),
            ("2026-01-31", 1_200, "EUR", "succeeded"),
            ("2026-03-02", 1_000, "EUR", "succeeded"),
            ("2026-04-01", 1_100, "EUR", "succeeded"),
            ("2026-04-15", 9_999, "EUR", "failed"),
            ("2026-04-20", 9_999, "EUR", "returned"),
            ("2026-04-25", 9_999, "GBP", "succeeded"),
        ],
    )
    await _collections(api, tenant, other, [("2026-04-10", 5, "EUR", "succeeded")])
    answer = await _forecast(api, tenant, customer)
    assert answer.status_code == 200, answer.text  # type: ignore[attr-defined]
    assert answer.json() == {  # type: ignore[attr-defined]
        "object": "income_forecast",
        "customer_id": customer,
        "currency": "EUR",
        "next_date": "2026-05-01",
        "next_amount": 1_050,
        "interval_days": 30,
        "confidence": 0.9524,
        "observations": 4,
        "method": "median_interval_and_amount",
    }
    none = (await _forecast(api, tenant, other)).json()  # type: ignore[attr-defined]
    assert (none["next_date"], none["confidence"], none["observations"]) == (None, 0.0, 1)


async def test_a_bad_currency_is_a_422_and_another_tenants_customer_a_404(api: Api) -> None:
    tenant = await api.tenant("forecast-owner")
    stranger = await api.tenant("forecast-stranger")
    customer = await _customer(api, tenant)
    refused = await _forecast(api, tenant, customer, currency="euro")
    assert refused.status_code == 422  # type: ignore[attr-defined]
    assert refused.json()["errors"][0]["field"] == "currency"  # type: ignore[attr-defined]
    hidden = await _forecast(api, stranger, customer)
    assert hidden.status_code == 404  # type: ignore[attr-defined]
