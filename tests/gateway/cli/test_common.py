"""What every `kovra` command shares, through a real process: bad settings are named, with
the usage error's exit code, before anything starts."""

from __future__ import annotations

from tests.gateway.kovra_cli import run_kovra


def test_bad_settings_are_named_before_anything_starts() -> None:
    result = run_kovra(["migrate"], {"KOVRA_ENV": "staging", "TB_CLUSTER_ID": "x"})
    assert result.returncode == 2
    assert "KOVRA_ENV" in result.stderr
    assert "TB_CLUSTER_ID" in result.stderr
