"""The suite's own rules about time: no test asserts on elapsed wall-clock time, and Hypothesis
never times an example.

A duration measured on a shared, busy machine fails for reasons that are not defects, so a
test proves a timeout, a retry schedule or a bound by its outcome, or on a virtual clock
(`tests/virtual_time.py`), and speed is measured by the benchmarks (docs/performance.md).
The check reads every test module's syntax tree: an `assert` may not involve the difference
of two readings of a real clock (`time.perf_counter()`, `time.monotonic()`, `time.time()`
and their `_ns` forms, `process_time`, an event loop's `time()`, `datetime.now()`), directly
or through a name holding one. A deadline (a reading plus a bound) and the time left before
it are not durations: polling loops that fail once their deadline passes are hang guards and
stay allowed, and so is comparing an id's embedded time with a clock reading.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from hypothesis import settings

from tests.conftest import hypothesis_profile

tests_root = Path(__file__).resolve().parent
time_module_clocks = frozenset(
    {
        "time",
        "time_ns",
        "monotonic",
        "monotonic_ns",
        "perf_counter",
        "perf_counter_ns",
        "process_time",
        "process_time_ns",
    }
)
datetime_clocks = frozenset({"now", "utcnow"})


def _is_clock_call(node: ast.AST) -> bool:
    """A call that reads a real clock."""
    if not isinstance(node, ast.Call):
        return False
    function = node.func
    if isinstance(function, ast.Name):  # from time import perf_counter
        return function.id in time_module_clocks - {"time"}
    if not isinstance(function, ast.Attribute):
        return False
    owner = function.value
    owner_name = owner.id if isinstance(owner, ast.Name) else getattr(owner, "attr", None)
    if owner_name == "time":
        return function.attr in time_module_clocks
    if owner_name == "datetime":
        return function.attr in datetime_clocks
    # An event loop's clock: `loop.time()`, `asyncio.get_running_loop().time()`.
    return function.attr == "time" and not node.args and not node.keywords


class _Scope:
    """What the names of one function (with its nested functions) hold."""

    def __init__(self) -> None:
        self.readings: set[str] = set()  # A clock reading, possibly scaled.
        self.deadlines: set[str] = set()  # A reading plus a bound.
        self.durations: set[str] = set()  # The difference of two readings.

    def reads_clock(self, node: ast.AST) -> bool:
        return any(
            _is_clock_call(child) or (isinstance(child, ast.Name) and child.id in self.readings)
            for child in ast.walk(node)
        )

    def is_duration(self, node: ast.AST) -> bool:
        for child in ast.walk(node):
            if isinstance(child, ast.Name) and child.id in self.durations:
                return True
            if (
                isinstance(child, ast.BinOp)
                and isinstance(child.op, ast.Sub)
                and self.reads_clock(child.left)
                and self.reads_clock(child.right)
            ):
                return True
        return False

    def learn(self, names: list[str], value: ast.AST) -> None:
        if self.is_duration(value):
            self.durations.update(names)
        elif isinstance(value, ast.BinOp) and isinstance(value.op, ast.Add):
            if self.reads_clock(value):
                self.deadlines.update(names)
        elif self.reads_clock(value):
            self.readings.update(names)


def _assigned_names(node: ast.AST) -> list[str]:
    targets: list[ast.expr] = []
    if isinstance(node, ast.Assign):
        targets = node.targets
    elif isinstance(node, ast.AnnAssign | ast.AugAssign):
        targets = [node.target]
    return [
        name.id for target in targets for name in ast.walk(target) if isinstance(name, ast.Name)
    ]


def _appended_to(node: ast.AST) -> tuple[str, ast.AST] | None:
    """`samples.append(value)` as ("samples", value)."""
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "append"
        and isinstance(node.func.value, ast.Name)
        and len(node.args) == 1
    ):
        return node.func.value.id, node.args[0]
    return None


def _module_level(tree: ast.Module) -> list[ast.AST]:
    """The module's nodes outside any function."""
    found: list[ast.AST] = []
    pending: list[ast.AST] = [tree]
    while pending:
        node = pending.pop()
        found.append(node)
        pending.extend(
            child
            for child in ast.iter_child_nodes(node)
            if not isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
        )
    return found


def _scopes(tree: ast.Module) -> list[list[ast.AST]]:
    """The nodes of each function (its nested functions' included), and of the module
    outside its functions."""
    scopes = [_module_level(tree)]
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            scopes.append(list(ast.walk(node)))
    return scopes


def elapsed_time_assertions(source: str) -> list[int]:
    """The lines of `assert` statements in `source` that involve a wall-clock duration."""
    tree = ast.parse(source)
    found: set[int] = set()
    for scope_nodes in _scopes(tree):
        scope = _Scope()
        # Statements in source order, so a name is known before the assert that uses it.
        nodes = sorted(
            (node for node in scope_nodes if isinstance(node, ast.stmt | ast.expr)),
            key=lambda node: (node.lineno, node.col_offset),
        )
        for node in nodes:
            if isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign) and node.value:
                scope.learn(_assigned_names(node), node.value)
            elif (appended := _appended_to(node)) is not None and scope.is_duration(appended[1]):
                scope.durations.add(appended[0])
            elif isinstance(node, ast.Assert) and scope.is_duration(node.test):
                found.add(node.lineno)
    return sorted(found)


def test_no_test_asserts_on_elapsed_wall_clock_time() -> None:
    offenders = {
        path.relative_to(tests_root).as_posix(): lines
        for path in sorted(tests_root.rglob("*.py"))
        if (lines := elapsed_time_assertions(path.read_text(encoding="utf-8")))
    }
    assert offenders == {}, (
        "assert outcomes, or run on tests/virtual_time.py; measure speed in loadtest/"
    )


@pytest.mark.parametrize(
    "source",
    [
        "started = time.perf_counter()\nwork()\nassert time.perf_counter() - started < 0.01",
        "t = time.monotonic()\nwork()\nelapsed = time.monotonic() - t\nassert elapsed < 1",
        "began = loop.time()\nawait work()\nassert 0.7 <= loop.time() - began < 5",
        "s = asyncio.get_running_loop().time()\nwaited = asyncio.get_running_loop().time() - s\n"
        "assert waited < 2.0",
        "s = time.monotonic()\nrefilled = int((time.monotonic() - s) / 0.6)\nassert n <= refilled",
        "latencies = []\nfor q in qs:\n    s = perf_counter()\n"
        "    latencies.append((perf_counter() - s) * 1000)\nassert max(latencies) < 10",
        "s = datetime.datetime.now()\nassert datetime.datetime.now() - s < limit",
        "before_ns = time.time_ns()\nwork()\nassert time.time_ns() - before_ns < 10**6",
        "def test_quick():\n    started = time.monotonic()\n    work()\n"
        "    assert time.monotonic() - started < 1",
    ],
)
def test_the_check_finds_each_form_of_elapsed_time(source: str) -> None:
    assert elapsed_time_assertions(source) == [source.count("\n") + 1]


@pytest.mark.parametrize(
    "source",
    [
        # Hang guards: a deadline, and the time left before it.
        "deadline = time.monotonic() + 15\nwhile not done():\n"
        "    assert time.monotonic() < deadline, 'never finished'",
        "deadline = time.monotonic() + 15\nwhile True:\n"
        "    remaining = deadline - time.monotonic()\n    assert remaining > 0",
        # A clock reading compared with an id's embedded time.
        "before_ms = time.time_ns() // 1_000_000\nobject_id = new_id()\n"
        "assert before_ms <= object_id >> 80",
        # A reading minus a fixed interval is a moment, not a duration.
        "now = datetime.datetime.now(tz=UTC)\nassert record.at > now - datetime.timedelta(hours=1)",
        # The virtual clock.
        "started = virtual_time.now()\nawait work()\nassert virtual_time.now() - started == 0.05",
    ],
)
def test_the_check_allows_deadlines_readings_and_virtual_time(source: str) -> None:
    assert elapsed_time_assertions(source) == []


def test_hypothesis_never_times_an_example() -> None:
    """The suite's profile is loaded: a deadline would time the machine, not the property."""
    assert settings().deadline is None
    assert settings.get_profile(hypothesis_profile).deadline is None
