"""FX quotes for tenants: priced on a fresh mid rate with the tenant's margin and fee,
locked for their lifetime (`KOVRA_QUOTE_TTL_SECONDS`, 10 minutes by default) and usable
once; and the admin plane's internal rate table."""

from __future__ import annotations

import datetime
from typing import Literal

import asyncpg
import msgspec

from compliance.audit.chain import record_admin_action
from fx.quoter import Quoter
from fx.quotes import LockedQuote
from fx.sources import HttpRateFeed, TableRateSource, parse_table
from gateway.http.ids import encode_id
from gateway.http.ratelimit import Principal
from gateway.http.wire import Money
from gateway.quotes import wire
from gateway.quotes.errors import RatesFromFeed, RateTableInvalid
from gateway.tenancy.pricing_cache import PricingCache
from ledger.currencies import CurrencyRegistry


class Quotes:
    """Quoting, reading quotes back, and setting the internal rate table."""

    def __init__(
        self,
        *,
        quoter: Quoter,
        pricing: PricingCache,
        currencies: CurrencyRegistry,
        rate_source: TableRateSource | HttpRateFeed,
        pool: asyncpg.Pool,
    ) -> None:
        self._quoter = quoter
        self._pricing = pricing
        self.currencies = currencies
        self._rate_source = rate_source
        self._pool = pool

    async def quote(
        self, principal: Principal, *, quote_id: int, body: wire.QuoteCreate
    ) -> wire.Quote:
        """Price the conversion at the tenant's terms and lock it under `quote_id`."""
        pricing = await self._pricing.pricing(principal.tenant_id)
        quote = await self._quoter.quote(
            tenant_id=principal.tenant_id,
            quote_id=quote_id,
            pricing=pricing,
            source_currency=body.source_currency,
            target_currency=body.target_currency,
            source_amount=body.source_amount,
            target_amount=body.target_amount,
        )
        return quote_view(quote)

    async def read(self, principal: Principal, quote_id: int) -> wire.Quote | None:
        """The tenant's quote and whether it can still be used; None if there is none."""
        state = await self._quoter.store.read(tenant_id=principal.tenant_id, quote_id=quote_id)
        return None if state is None else quote_view(state.quote, state.status)

    async def set_rates(self, *, actor: str, body: wire.FxRatesUpdate) -> None:
        """Replace rates in the internal table (audited first); refused when rates come
        from the HTTP feed."""
        if not isinstance(self._rate_source, TableRateSource):
            raise RatesFromFeed("rates come from the HTTP feed (KOVRA_FX_SOURCE)")
        try:
            rates = parse_table(msgspec.json.encode(body.rates).decode())
        except ValueError as error:
            raise RateTableInvalid(str(error), field="rates") from None
        observed_at = body.observed_at or datetime.datetime.now(tz=datetime.UTC)
        await record_admin_action(
            self._pool,
            actor=actor,
            action="fx.rates",
            target="fx:table",
            details={"rates": body.rates, "observed_at": observed_at},
        )
        await self._rate_source.set_rates(rates, observed_at=observed_at)


def quote_view(
    quote: LockedQuote, status: Literal["active", "used", "expired"] = "active"
) -> wire.Quote:
    return wire.Quote(
        id=encode_id("quote", quote.id),
        source_currency=quote.source_currency,
        target_currency=quote.target_currency,
        source_amount=quote.source_amount,
        target_amount=quote.target_amount,
        rate=quote.rate,
        mid_rate=quote.mid_rate,
        margin_bps=quote.margin_bps,
        fee=Money(amount=quote.fee_amount, currency=quote.source_currency),
        status=status,
        rate_observed_at=quote.rate_observed_at,
        created_at=quote.created_at,
        expires_at=quote.expires_at,
    )
