"""The JSON shape of an income forecast."""

from __future__ import annotations

import datetime

import msgspec

from gateway.http.wire import IssuedCurrencyCode


class IncomeForecast(msgspec.Struct, frozen=True, kw_only=True):
    """The next expected income of a customer in a currency, or none (`next_date` null and
    `confidence` 0) with fewer than three days of income to go by."""

    object: str = "income_forecast"
    customer_id: str
    currency: IssuedCurrencyCode
    next_date: datetime.date | None
    next_amount: int | None
    interval_days: int | None
    confidence: float  # 0 to 1: how regular the intervals and amounts have been.
    observations: int  # Days with succeeded collections, the latest `observation_days_max`.
    method: str = "median_interval_and_amount"
