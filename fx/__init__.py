"""Foreign exchange: mid rates from a source (internal table or HTTP feed), the tenant's
margin and fee, rounding in the platform's favour, and quotes locked in Redis for single use.
Every module here is public."""

__all__ = ["netting", "pricing", "quoter", "quotes", "rates", "sources"]
