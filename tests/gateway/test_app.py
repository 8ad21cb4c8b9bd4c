"""The app is built without a warning: every route declares its path and query parameters
in the style Litestar keeps (`FromPath[...]`, `FromQuery[...]`), so the next Litestar
release, which drops the inferred style, finds nothing to break; and the OpenAPI document
still names each of those parameters where it comes from."""

from __future__ import annotations

import warnings
from pathlib import Path

from gateway.app import create_app
from gateway.settings import load_settings
from tests import redis_server


def test_the_app_builds_without_warnings_and_documents_its_parameters(tmp_path: Path) -> None:
    settings = load_settings(
        {
            "DATABASE_URL": "postgresql://127.0.0.1/unused",
            "REDIS_URL": redis_server.redis_url(0),
            "KOVRA_DATA_DIR": str(tmp_path),
        }
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        app = create_app(settings)
    assert [str(warning.message) for warning in caught] == []
    paths = app.openapi_schema.to_schema()["paths"]
    parameters = {
        (path, parameter["name"]): parameter["in"]
        for path, operations in paths.items()
        for operation in operations.values()
        for parameter in operation.get("parameters", [])
    }
    assert parameters[("/v1/transfers/{transfer_id}", "transfer_id")] == "path"
    assert parameters[("/v1/transfers", "limit")] == "query"
    assert parameters[("/admin/v1/tenants/{tenant_id}/api-keys/{key_id}", "key_id")] == "path"
    assert parameters[("/v1/batches/{batch_id}", "cursor")] == "query"
