"""`kovra serve` through a real process: it refuses several workers on the embedded ledger,
which lives in one process, and names the settings that would share it."""

from __future__ import annotations

from tests.gateway.kovra_cli import run_kovra


def test_serve_refuses_several_workers_on_the_embedded_ledger() -> None:
    result = run_kovra(["serve", "--workers", "2"], {})
    assert result.returncode == 2
    assert "TB_ADDRESSES" in result.stderr
    assert "KOVRA_LEDGER_ADDRESS" in result.stderr
