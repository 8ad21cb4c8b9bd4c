"""Quoting: price a conversion on a fresh mid rate and lock it for the quote's lifetime."""

from __future__ import annotations

import datetime

from fx.pricing import Pricing, price, usd_equivalent_minor
from fx.quotes import LockedQuote, QuoteStore
from fx.rates import RateBook, RateObservation, RateSnapshot, RateStale, RateUnavailable
from ledger.currencies import CurrencyRegistry
from ledger.errors import DomainError


class RateNotAvailable(DomainError):
    code = "rate_unavailable"


class RateTooOld(DomainError):
    code = "rate_stale"


def mid_rate(
    rates: RateSnapshot, base: str, quote: str, *, now: datetime.datetime | None = None
) -> RateObservation:
    """The mid rate, or the API's refusal: `rate_unavailable` or `rate_stale`."""
    try:
        return rates.mid(base, quote, now=now)
    except RateUnavailable as error:
        raise RateNotAvailable(str(error)) from None
    except RateStale as error:
        raise RateTooOld(str(error)) from None


class Quoter:
    def __init__(
        self,
        *,
        book: RateBook,
        store: QuoteStore,
        currencies: CurrencyRegistry,
        ttl_seconds: int,
    ) -> None:
        self._book = book
        self._store = store
        self._currencies = currencies
        self._ttl = datetime.timedelta(seconds=ttl_seconds)

    @property
    def store(self) -> QuoteStore:
        return self._store

    @property
    def book(self) -> RateBook:
        return self._book

    async def quote(
        self,
        *,
        tenant_id: int,
        quote_id: int,
        pricing: Pricing,
        source_currency: str,
        target_currency: str,
        source_amount: int | None,
        target_amount: int | None,
    ) -> LockedQuote:
        """A priced, stored quote (the first one stored, if `quote_id` was quoted before)."""
        source = self._currencies.get(source_currency)
        target = self._currencies.get(target_currency)
        now = datetime.datetime.now(tz=datetime.UTC)
        rates = await self._book.snapshot()  # One read of the source for both rates.
        mid = mid_rate(rates, source.code, target.code, now=now)
        usd = mid_rate(rates, "USD", source.code, now=now)
        to_usd = mid_rate(rates, source.code, "USD", now=now)
        terms = price(
            source=source,
            target=target,
            mid=mid.rate,
            mid_observed_at=mid.observed_at,
            pricing=pricing,
            usd_to_source_mid=usd.rate,
            source_amount=source_amount,
            target_amount=target_amount,
        )
        return await self._store.save(
            LockedQuote(
                id=quote_id,
                tenant_id=tenant_id,
                source_currency=terms.source_currency,
                target_currency=terms.target_currency,
                source_amount=terms.source_amount,
                target_amount=terms.target_amount,
                fee_amount=terms.fee_amount,
                rate=str(terms.rate),
                mid_rate=str(terms.mid_rate),
                margin_bps=terms.margin_bps,
                rate_observed_at=terms.rate_observed_at,
                created_at=now,
                expires_at=now + self._ttl,
                usd_equivalent_minor=usd_equivalent_minor(
                    amount_minor=terms.source_amount + terms.fee_amount,
                    currency=source,
                    to_usd_mid=to_usd.rate,
                ),
            )
        )
