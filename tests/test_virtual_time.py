"""The virtual clock the timeout tests run on (`tests/virtual_time.py`): it stands still while
work is ready, jumps to the next timer when every task waits, so timers fire in order at
exactly their moments, and a hang fails at once instead of blocking the suite."""

from __future__ import annotations

import asyncio

import pytest

from tests import virtual_time
from tests.virtual_time import VirtualTimeHang, VirtualTimeLoop


def test_a_sleep_moves_the_clock_by_exactly_its_delay() -> None:
    async def sleep_an_hour() -> float:
        started = virtual_time.now()
        await asyncio.sleep(3_600)
        return virtual_time.now() - started

    assert virtual_time.run(sleep_an_hour(), hang_guard_seconds=7_200) == 3_600


def test_ready_work_does_not_move_the_clock() -> None:
    async def busy() -> float:
        started = virtual_time.now()
        for _ in range(1_000):
            await asyncio.sleep(0)
        await asyncio.gather(*(asyncio.sleep(0) for _ in range(100)))
        return virtual_time.now() - started

    assert virtual_time.run(busy()) == 0


def test_timers_fire_in_order_at_their_moments() -> None:
    async def wake_ups() -> list[tuple[str, float]]:
        woken: list[tuple[str, float]] = []

        async def sleeper(name: str, delay: float) -> None:
            await asyncio.sleep(delay)
            woken.append((name, virtual_time.now()))

        await asyncio.gather(sleeper("late", 0.75), sleeper("early", 0.25), sleeper("mid", 0.5))
        return woken

    assert virtual_time.run(wake_ups()) == [("early", 0.25), ("mid", 0.5), ("late", 0.75)]


def test_a_task_that_never_finishes_fails_at_its_guard() -> None:
    with pytest.raises(VirtualTimeHang, match="not finished after 60"):
        virtual_time.run(asyncio.Event().wait(), hang_guard_seconds=60)


def test_waiting_with_no_timer_set_is_a_hang() -> None:
    loop = VirtualTimeLoop()
    try:
        with pytest.raises(VirtualTimeHang, match="no timer is set"):
            loop.run_until_complete(asyncio.Event().wait())
    finally:
        loop.close()


def test_the_virtual_clock_is_refused_on_a_real_loop() -> None:
    async def read_the_clock() -> float:
        return virtual_time.now()

    with pytest.raises(AssertionError, match="a real clock"):
        asyncio.run(read_the_clock())


def test_an_error_of_the_code_under_test_is_its_own() -> None:
    async def times_out_by_itself() -> None:
        async with asyncio.timeout(1):
            await asyncio.Event().wait()

    with pytest.raises(TimeoutError):
        virtual_time.run(times_out_by_itself())
