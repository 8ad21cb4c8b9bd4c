"""The code keeps its shape: no function in Kovra's packages is longer than 70 lines except
those that mirror one of TigerBeetle's, named in pyproject.toml (`[tool.kovra.long-functions]`,
each of which must still exist and still need its exception); no function takes more than
five positional parameters; the packages' modules import one another without a cycle,
counting imports inside functions and under TYPE_CHECKING; and the lower layers import
nothing from the higher ones: `ledger` nothing from gateway, fx, rails or compliance, and
`fx` and `rails` nothing from gateway or compliance; and a package's modules are imported
from outside it only when its `__init__` names them public (`__all__`)."""

from __future__ import annotations

import ast
import importlib
import inspect
import itertools
import tomllib
from collections.abc import Iterator
from pathlib import Path

import grimp
import pytest

repository = Path(__file__).resolve().parents[1]
packages = ("gateway", "ledger", "fx", "rails", "compliance", "loadtest")
function_lines_max = 70
positional_parameters_max = 5
# Each lower package, and the packages it must not import, directly or through another.
forbidden_imports = {
    "ledger": ("gateway", "fx", "rails", "compliance"),
    "fx": ("gateway", "compliance"),
    "rails": ("gateway", "compliance"),
}

Function = ast.FunctionDef | ast.AsyncFunctionDef


def functions() -> Iterator[tuple[str, Function]]:
    """Every function of the packages, as `path::Class.method` (or `path::outer.inner`)."""
    for package in packages:
        for path in sorted((repository / package).rglob("*.py")):
            relative = path.relative_to(repository).as_posix()
            yield from _functions_in(ast.parse(path.read_text(encoding="utf-8")), f"{relative}::")


def _functions_in(node: ast.AST, prefix: str) -> Iterator[tuple[str, Function]]:
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
            yield prefix + child.name, child
            yield from _functions_in(child, f"{prefix}{child.name}.")
        elif isinstance(child, ast.ClassDef):
            yield from _functions_in(child, f"{prefix}{child.name}.")
        else:
            yield from _functions_in(child, prefix)


def length(function: Function) -> int:
    """Lines from the first decorator (or the `def`) to the last line."""
    first = min([decorator.lineno for decorator in function.decorator_list] + [function.lineno])
    assert function.end_lineno is not None
    return function.end_lineno - first + 1


def named_long_functions() -> dict[str, str]:
    with (repository / "pyproject.toml").open("rb") as file:
        configuration = tomllib.load(file)
    named: dict[str, str] = configuration["tool"]["kovra"]["long-functions"]
    return named


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    # No cache: the graph is built from the files as they are now.
    return grimp.build_graph(*packages, cache_dir=None)


def test_no_function_is_longer_than_70_lines_but_the_named_exceptions() -> None:
    named = named_long_functions()
    too_long = {
        name: length(function)
        for name, function in functions()
        if length(function) > function_lines_max and name not in named
    }
    assert too_long == {}, "split these, or name them in [tool.kovra.long-functions]"


def test_every_named_long_function_still_exists_and_is_still_long() -> None:
    lengths = {name: length(function) for name, function in functions()}
    named = named_long_functions()
    assert named, "pyproject.toml names the long functions that mirror TigerBeetle's"
    missing = sorted(set(named) - set(lengths))
    assert missing == [], "these named exceptions no longer exist: drop them from pyproject.toml"
    short = {name: lengths[name] for name in named if lengths[name] <= function_lines_max}
    assert short == {}, "these fit in 70 lines now: drop their exceptions from pyproject.toml"


def test_no_function_takes_more_than_five_positional_parameters() -> None:
    crowded = {}
    for name, function in functions():
        parameters = [*function.args.posonlyargs, *function.args.args]
        positional = [p.arg for p in parameters if p.arg not in ("self", "cls")]
        if len(positional) > positional_parameters_max:
            crowded[name] = positional
    assert crowded == {}, "make the arguments after the fifth keyword-only"


def test_no_import_cycles(graph: grimp.ImportGraph) -> None:
    cycles = [describe(graph, cycle(graph, group)) for group in strongly_connected(graph)]
    assert cycles == [], "\n\n".join(cycles)


@pytest.mark.parametrize("lower", sorted(forbidden_imports))
def test_lower_layers_import_nothing_from_higher_ones(graph: grimp.ImportGraph, lower: str) -> None:
    chains = [
        describe(graph, list(chain))
        for higher in forbidden_imports[lower]
        for chain in sorted(graph.find_shortest_chains(lower, higher, as_packages=True))
    ]
    assert chains == [], "\n\n".join(chains)


def test_packages_are_imported_from_outside_only_through_their_public_modules(
    graph: grimp.ImportGraph,
) -> None:
    private_imports = []
    for package in sorted(m for m in graph.modules if _is_package(m)):
        public = _public_modules(package)
        for module in sorted(graph.find_children(package)):
            if _is_package(module) or module in public:
                continue
            outsiders = {
                importer
                for importer in graph.find_modules_that_directly_import(module)
                if importer != package and not importer.startswith(package + ".")
            }
            private_imports += [f"{importer} -> {module}" for importer in sorted(outsiders)]
    assert private_imports == [], "name the module in its package's __all__, or stop importing it"


def _public_modules(package: str) -> set[str]:
    """The modules a package's `__all__` makes public: those it names, and those whose
    names it re-exports (msgspec's style: a few names from private modules)."""
    namespace = vars(importlib.import_module(package))
    public = set()
    for name in namespace.get("__all__", ()):
        value = namespace.get(name)
        if value is None or inspect.ismodule(value):
            public.add(f"{package}.{name}")  # A module named, whether imported yet or not.
            continue
        module = getattr(value, "__module__", None)
        if isinstance(module, str) and module.startswith(package + "."):
            public.add(module)
    return public


def _is_package(module: str) -> bool:
    return (repository / module.replace(".", "/") / "__init__.py").exists()


def strongly_connected(graph: grimp.ImportGraph) -> list[set[str]]:
    """The groups of two or more modules that import one another, directly or not (Tarjan's
    algorithm, iterative: the import graph is deep enough to exhaust Python's recursion)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []
    for root in sorted(graph.modules):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            module, imported = work[-1]
            following = next(imported, None)
            if following is None:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[module])
                if low[module] == index[module]:
                    group = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        group.add(member)
                        if member == module:
                            break
                    if len(group) > 1:
                        groups.append(group)
            elif following not in index:
                index[following] = low[following] = len(index)
                stack.append(following)
                on_stack.add(following)
                work.append(
                    (following, iter(sorted(graph.find_modules_directly_imported_by(following))))
                )
            elif following in on_stack:
                low[module] = min(low[module], index[following])
    return groups


def cycle(graph: grimp.ImportGraph, group: set[str]) -> list[str]:
    """One cycle through the group: its first module, round and back to it."""
    start = min(group)
    shortest: list[str] | None = None
    for imported in sorted(graph.find_modules_directly_imported_by(start) & group):
        back = graph.find_shortest_chain(importer=imported, imported=start)
        if back is not None and (shortest is None or len(back) + 1 < len(shortest)):
            shortest = [start, *back]
    assert shortest is not None
    return shortest


def describe(graph: grimp.ImportGraph, chain: list[str]) -> str:
    """Each import of the chain with the line that makes it."""
    steps = []
    for importer, imported in itertools.pairwise(chain):
        details = graph.get_import_details(importer=importer, imported=imported)
        where = ", ".join(f"line {d['line_number']}: {d['line_contents']}" for d in details)
        steps.append(f"{importer} -> {imported} ({where})")
    return "\n".join(steps)
