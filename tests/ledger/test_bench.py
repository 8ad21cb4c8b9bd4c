"""The ledger benchmark runs end to end on the embedded engine (at a tiny scale, so the
suite stays fast) and reports a row per shape with positive throughput."""

from __future__ import annotations

import pytest

from ledger.bench import render, run


async def test_bench_reports_every_shape(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TB_ADDRESSES", raising=False)
    rows = await run(scale=0.01)
    assert [(r.backend, r.shape) for r in rows] == [
        (backend, shape)
        for backend in ("embedded (memory)", "embedded (journal)")
        for shape in (
            "sequential batches of 1",
            "sequential batches of 100",
            "sequential batches of 8189",
            "1000 concurrent calls of 1",
        )
    ]
    assert all(r.transfers > 0 and r.transfers_per_second > 0 for r in rows)
    assert "transfers/s" in render(rows)
