"""The `kovra` entry point: importing it does not load prometheus-client (which
`serve` must configure first), and `api-key revoke` without a key id is a usage error
before anything runs."""

from __future__ import annotations

import subprocess
import sys

import pytest

from gateway.cli import main
from tests.gateway.kovra_cli import repository


def test_the_cli_does_not_load_metrics_before_serve_configures_them() -> None:
    # prometheus-client picks its storage at import: loaded before `serve` sets
    # PROMETHEUS_MULTIPROC_DIR, every worker would keep its metrics to itself.
    probe = "import sys, gateway.cli.main; print('prometheus_client' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        cwd=repository,
        check=True,
        timeout=60,
    )
    assert result.stdout.strip() == "False"


def test_revoking_an_api_key_needs_its_id(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["api-key", "revoke", "--tenant", "1"])
    assert exited.value.code == 2
    assert "api-key revoke needs --key-id" in capsys.readouterr().err
