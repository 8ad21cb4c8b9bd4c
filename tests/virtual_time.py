"""An event loop on a virtual clock, for tests of timeouts, retries and deadlines that must
not depend on how fast or how busy the machine is.

The loop's `time()` moves only when every task waits on a timer: when nothing is ready and
the next timer is due in t seconds, the clock jumps t seconds at once instead of the process
sleeping. A 50 ms timeout then fires after exactly 50 virtual milliseconds however loaded the
machine, so a test can assert *when* something happened without timing the machine; and an
hour's guard against a hang costs no wall time at all.

Only for code that waits on timers and on other tasks of the same loop. Bytes from a socket
or a thread's result arrive in real time, which the clock does not wait for: a timeout would
jump past them. Tests of sockets keep the real loop and assert outcomes instead.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Coroutine
from typing import Any, TypeVar

ResultT = TypeVar("ResultT")

# A hang shows as this many virtual seconds passing: instantly, in real time.
hang_guard_seconds_default = 3_600.0


class VirtualClock:
    """Seconds since the loop started, moved only by the loop when everything waits."""

    def __init__(self) -> None:
        self.now = 0.0


class _JumpingSelector(selectors.DefaultSelector):
    """Polls without blocking; where the loop would sleep until its next timer, it moves the
    clock there instead."""

    def __init__(self, clock: VirtualClock) -> None:
        super().__init__()
        self._clock = clock

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if timeout is None:
            # Nothing ready and no timer set: every task waits for something that only real
            # I/O could bring, which code run in virtual time must not do.
            raise VirtualTimeHang("every task waits and no timer is set")
        ready = super().select(0)
        if not ready and timeout > 0:
            self._clock.now += timeout
        return ready


class VirtualTimeHang(AssertionError):
    """The code under test waits forever, in virtual time."""


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """A selector event loop whose clock is a `VirtualClock`."""

    def __init__(self) -> None:
        self.clock = VirtualClock()
        super().__init__(_JumpingSelector(self.clock))

    def time(self) -> float:
        return self.clock.now


def now() -> float:
    """The running loop's virtual clock. Fails on a real loop, whose time is the machine's:
    the suite asserts durations only in virtual time (`tests/test_suite_rules.py`)."""
    loop = asyncio.get_running_loop()
    if not isinstance(loop, VirtualTimeLoop):
        raise AssertionError("virtual_time.now() outside virtual_time.run: a real clock")
    return loop.time()


def run(
    main: Coroutine[Any, Any, ResultT], *, hang_guard_seconds: float = hang_guard_seconds_default
) -> ResultT:
    """Run `main` on a fresh `VirtualTimeLoop`. If it has not finished once
    `hang_guard_seconds` of virtual time have passed, it is cancelled and the test fails with
    `VirtualTimeHang`: a bound that only a hang reaches, and that costs no wall time."""

    async def guarded() -> ResultT:
        scope = asyncio.timeout(hang_guard_seconds)
        try:
            async with scope:
                return await main
        except TimeoutError:
            if scope.expired():
                raise VirtualTimeHang(
                    f"not finished after {hang_guard_seconds} virtual seconds"
                ) from None
            raise

    with asyncio.Runner(loop_factory=VirtualTimeLoop) as runner:
        return runner.run(guarded())
