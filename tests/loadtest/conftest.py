"""The load tests run against the same kind of real deployment as the end-to-end tests:
the e2e `deployment` fixture is imported here, not copied."""

from tests.gateway.e2e.conftest import deployment  # noqa: F401
