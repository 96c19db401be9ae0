"""The import graph of adapters/ has no cycles and every import goes down the layers of ARCHITECTURE.md.

The graph is read with `ast` from the source (every import statement, also those inside functions
or under TYPE_CHECKING: a deferred import is still a dependency), so nothing is imported to check it.
That only the LiteLLM façade imports `litellm` is checked in tests/test_litellm_contract.py.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from tests.conftest import PLUGIN_ROOT

# Top to bottom; a module may import only from its own unit or from a unit of a LOWER layer. Two units
# of one layer are independent of each other. Why this order:
# - runtime: main.py's start-up checks and SDK patches; nothing in adapters/ needs them.
# - provider, models: what Dify calls (the provider's credential check, the five model types); they
#   put the pieces below together for one call, and nothing below knows Dify's model types.
# - catalog: which models exist and how each is reached; a route names its dialect, checked against
#   the dialect registry, so the catalog sits above the dialects.
# - dialects: wire formats, one object per name in routes.yaml (a request body, an answer).
# - engine (the LiteLLM façade) and gateway (endpoint, auth, transport, retry, errors, sse): what a
#   dialect builds on; the gateway moves bytes to a route path and knows no model, route or dialect.
# - credentials, cooperative, message_size: used at every level and built on nothing of the plugin's:
#   reading one credential field with the one error phrasing; giving the gevent hub its turn; the
#   size of one message to the plugin daemon.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("adapters.runtime",),
    ("adapters.provider", "adapters.models"),
    ("adapters.catalog",),
    ("adapters.dialects",),
    ("adapters.engine", "adapters.gateway"),
    ("adapters.credentials", "adapters.message_size"),
    ("adapters.cooperative",),  # below message_size: measuring a result's size gives the hub its turns
)
ADAPTERS = PLUGIN_ROOT / "adapters"


def modules(root: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every .py file of the package at `root`."""
    found = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _imported(node: ast.Import | ast.ImportFrom, module: str, is_package: bool) -> Iterator[str]:
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names)
        return
    if node.level:  # relative: from the module's own package, up `level - 1` packages
        package = module.split(".") if is_package else module.split(".")[:-1]
        base = ".".join(package[: len(package) - node.level + 1] + ([node.module] if node.module else []))
    else:
        base = node.module or ""
    yield base
    yield from (f"{base}.{alias.name}" for alias in node.names)  # `from pkg import submodule`


def import_graph(root: Path) -> dict[str, set[str]]:
    """Module -> the modules of the same package it imports (names that are not modules are dropped)."""
    known = modules(root)
    graph: dict[str, set[str]] = {}
    for module, path in known.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        nodes = (n for n in ast.walk(tree) if isinstance(n, ast.Import | ast.ImportFrom))
        names = {name for n in nodes for name in _imported(n, module, path.name == "__init__.py")}
        graph[module] = {name for name in names if name in known and name != module}
    return graph


def unit_of(module: str, layers: tuple[tuple[str, ...], ...]) -> tuple[int, str] | None:
    """(layer index, unit) of a module: the longest unit that is the module or a package holding it."""
    matches = [(len(unit), index, unit) for index, units in enumerate(layers) for unit in units]
    found = [(n, i, u) for n, i, u in matches if module == u or module.startswith(u + ".")]
    return max(found)[1:] if found else None


def layer_violations(graph: Mapping[str, set[str]], layers: tuple[tuple[str, ...], ...]) -> list[str]:
    problems = []
    for module, imported in sorted(graph.items()):
        here = unit_of(module, layers)
        if here is None:
            if module.count(".") >= 1:  # the package's own __init__ has no layer
                problems.append(f"{module} belongs to no layer: add it to LAYERS")
            continue
        for target in sorted(imported):
            there = unit_of(target, layers)
            if there is None or there[1] == here[1]:
                continue
            if there[0] <= here[0]:
                kind = "upward" if there[0] < here[0] else "sideways"
                problems.append(f"{module} imports {target}: {kind} ({here[1]} -> {there[1]})")
    return problems


def cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """Every import cycle, as found by a depth-first search (each reported once, from its first module)."""
    found: list[list[str]] = []
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        for target in sorted(graph.get(module, ())):
            if target in path:
                cycle = path[path.index(target) :]
                if not any(set(cycle) == set(c) for c in found):
                    found.append([*cycle, target])
            elif target not in done:
                visit(target, [*path, target])
        done.add(module)

    for module in sorted(graph):
        if module not in done:
            visit(module, [module])
    return found


def test_the_import_graph_of_adapters_has_no_cycle() -> None:
    assert cycles(import_graph(ADAPTERS)) == []


def test_every_import_goes_down_the_layers() -> None:
    assert layer_violations(import_graph(ADAPTERS), LAYERS) == []


def test_every_part_of_adapters_is_in_a_layer() -> None:
    top_level = {p.stem for p in ADAPTERS.iterdir() if p.suffix == ".py" or (p / "__init__.py").exists()}
    placed = {unit.split(".")[1] for units in LAYERS for unit in units}
    assert top_level - {"__init__"} == placed


def unnamed_modules(root: Path, text: str) -> list[str]:
    """Modules of the package at `root` that `text` never names by file name.

    The dialect files and the five entry points are named by their patterns
    (dialects/<provider>/<capability>.py, models/<type>/<type>.py), so they are not looked for.
    """
    missing = []
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).parts
        if path.name == "__init__.py" or path.stem == path.parent.name or (parts[0] == "dialects" and len(parts) == 3):
            continue
        if not re.search(rf"(?<![\w.]){re.escape(path.name)}", text):
            missing.append("/".join(parts))
    return missing


def test_architecture_md_names_every_module_of_adapters() -> None:
    """A module added without its place in ARCHITECTURE.md's layers is a newcomer's blind spot."""
    text = (PLUGIN_ROOT / "ARCHITECTURE.md").read_text(encoding="utf-8")
    assert unnamed_modules(ADAPTERS, text) == []


def test_a_module_the_text_does_not_name_is_found(tangled: Path) -> None:
    assert unnamed_modules(tangled, "top.py; side.py, helper.py and myother.py") == ["low/other.py"]


@pytest.fixture
def tangled(tmp_path: Path) -> Path:
    """A package with one upward import, one sideways import and one cycle, written as relative imports."""
    files = {
        "__init__.py": "",
        "top.py": "from .low import helper\n",
        "low/__init__.py": "",
        "low/helper.py": "def f():\n    from ..top import x  # deferred, still a dependency\n",
        "low/other.py": "from . import helper\nfrom pkg.side import y\n",
        "side.py": "import pkg.low.other\n",
    }
    for name, text in files.items():
        path = tmp_path / "pkg" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return tmp_path / "pkg"


def test_the_checks_find_upward_and_sideways_imports_and_cycles(tangled: Path) -> None:
    graph = import_graph(tangled)
    assert graph["pkg.low.other"] == {"pkg.low", "pkg.low.helper", "pkg.side"}
    layers = (("pkg.top",), ("pkg.low", "pkg.side"))
    assert layer_violations(graph, layers) == [
        "pkg.low.helper imports pkg.top: upward (pkg.low -> pkg.top)",
        "pkg.low.other imports pkg.side: sideways (pkg.low -> pkg.side)",
        "pkg.side imports pkg.low.other: sideways (pkg.side -> pkg.low)",
    ]
    assert cycles(graph) == [
        ["pkg.low.helper", "pkg.top", "pkg.low.helper"],
        ["pkg.low.other", "pkg.side", "pkg.low.other"],
    ]
