"""The income forecast for a tenant's customer: their history read, the pure method applied
(`gateway.forecasts.forecasting`). It reads and suggests; it never moves money."""

from __future__ import annotations

import uuid
from typing import Protocol

import asyncpg

from gateway.forecasts import records, wire
from gateway.forecasts.forecasting import forecast
from gateway.http.ids import encode_id
from gateway.http.ratelimit import Principal

customer_prefix = "cus"


class RegionalCustomer(Protocol):
    @property
    def region(self) -> str: ...


class CustomerLookup(Protocol):
    """What the forecast needs of customers: one by id (where it lives), or `not_found`."""

    async def get(self, *, tenant_id: int, customer_id: int) -> RegionalCustomer: ...


class Forecasts:
    def __init__(self, *, pool: asyncpg.Pool, customers: CustomerLookup) -> None:
        self._pool = pool
        self._customers = customers

    async def income(
        self, principal: Principal, *, customer_id: int, currency: str
    ) -> wire.IncomeForecast:
        """The customer's next expected income in `currency`; `not_found` for another
        tenant's customer."""
        customer = await self._customers.get(tenant_id=principal.tenant_id, customer_id=customer_id)
        days = await records.income_days(
            self._pool,
            region=customer.region,
            tenant_id=principal.tenant_id,
            customer_id=uuid.UUID(int=customer_id),
            currency=currency,
        )
        expected = forecast(days)
        return wire.IncomeForecast(
            customer_id=encode_id(customer_prefix, customer_id),
            currency=currency,
            next_date=expected.next_date,
            next_amount=expected.next_amount_minor,
            interval_days=expected.interval_days,
            confidence=expected.confidence,
            observations=expected.observations,
        )
