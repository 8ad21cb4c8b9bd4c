"""`python -m loadtest.profile_transfers` drives the gateway's ASGI app in its own process
against the real services (a fresh Postgres database, the benchmarks' Redis database, a
`kovra ledger-server`): every quote and transfer it sends must be answered 201 or the run
fails, it prints each round's CPU per request and the minimum, and `--profile` writes
pyinstrument's profile of the transfer path. Its arguments are bounded."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from loadtest import profile_transfers

repository = Path(__file__).resolve().parents[2]


def test_a_small_run_pays_every_transfer_and_profiles_them(tmp_path: Path) -> None:
    output = tmp_path / "profile.txt"
    command = [sys.executable, "-m", "loadtest.profile_transfers"]
    arguments = ["--payers", "4", "--transfers", "40", "--rounds", "2", "--profile", str(output)]
    finished = subprocess.run(
        [*command, *arguments],
        cwd=repository,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert finished.returncode == 0, finished.stderr[-3000:]
    rounds = re.findall(
        r"^round \d: quote ([0-9.]+) ms CPU, transfer ([0-9.]+) ms CPU", finished.stdout, re.M
    )
    assert len(rounds) == 2
    assert all(float(quote) > 0 and float(transfer) > 0 for quote, transfer in rounds)
    assert "minimum of 2 round(s), 4 payers" in finished.stdout
    profile = output.read_text()
    assert "create_transfer" in profile
    assert "create_quote_reply" in profile


@pytest.mark.parametrize(
    "arguments",
    [
        ["--payers", "0"],
        ["--payers", str(profile_transfers.payers_max + 1)],
        ["--transfers", str(profile_transfers.transfers_max + 1)],
        ["--rounds", str(profile_transfers.rounds_max + 1)],
    ],
)
def test_arguments_out_of_bounds_are_refused(arguments: list[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        profile_transfers.main(arguments)
    assert exited.value.code == 2
