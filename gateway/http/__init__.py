"""The HTTP edge every domain shares: middleware, authentication (`Principal`), the roles'
table, rate limits, problems, idempotency, paging, request plumbing, the hot routes, the
OpenAPI completion, the `OPTIONS` answers and the granian server. Every module here is
public to the domains and the app."""

__all__ = [
    "auth",
    "exception_handlers",
    "hot_routes",
    "idempotency",
    "ids",
    "middleware",
    "openapi",
    "options",
    "paging",
    "problems",
    "ratelimit",
    "requests",
    "roles",
    "server",
    "wire",
]
