"""The HTTP edge every domain shares: middleware, authentication, rate limits, problems,
idempotency, paging and request plumbing."""
