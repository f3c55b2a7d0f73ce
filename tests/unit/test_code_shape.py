"""The shape of the code base (issue 13): rooms, module sizes, no import cycles.

These are the limits the README's "Code map" promises; the layering itself is
checked by ``lint-imports`` (contracts in ``.importlinter``).
"""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("tusd_py", "handlers", "storage")

#: Most entries at the top of ``tusd_py/`` besides these.
MAX_TOP_ENTRIES = 12
ALWAYS_THERE = {"__init__.py", "__main__.py", "py.typed", "__pycache__"}
MAX_MODULE_LINES = 450


def _modules() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py") if "__pycache__" not in p.parts)


def test_tusd_py_has_at_most_twelve_rooms() -> None:
    entries = sorted(p.name for p in (ROOT / "tusd_py").iterdir() if p.name not in ALWAYS_THERE)
    assert len(entries) <= MAX_TOP_ENTRIES, entries
    # every entry is a room (a package), not a loose module
    assert [e for e in entries if not (ROOT / "tusd_py" / e / "__init__.py").exists()] == []


def test_no_module_is_longer_than_the_limit() -> None:
    sizes = {str(p.relative_to(ROOT)): len(p.read_text().splitlines()) for p in _modules()}
    too_long = {path for path, n in sizes.items() if n > MAX_MODULE_LINES}
    assert too_long == set()
    assert len(sizes) > 100  # the walk found the code


def test_every_module_states_its_contract() -> None:
    missing = [
        str(p.relative_to(ROOT))
        for p in _modules()
        if p.read_text().strip() and ast.get_docstring(ast.parse(p.read_text())) is None
    ]
    assert missing == []


def _cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(graph.modules):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.find_modules_directly_imported_by(child)))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_import_cycles_counting_function_level_and_type_checking_imports() -> None:
    graph = grimp.build_graph(*PACKAGES, cache_dir=None, exclude_type_checking_imports=False)
    assert len(graph.modules) > 100
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = grimp.ImportGraph()
    for name in ("x", "x.a", "x.b", "x.c"):
        graph.add_module(name)
    graph.add_import(importer="x.a", imported="x.b")
    graph.add_import(importer="x.b", imported="x.a")
    graph.add_import(importer="x.b", imported="x.c")
    assert _cycles(graph) == [["x.a", "x.b"]]


def _code_map() -> str:
    readme = (ROOT / "README.md").read_text()
    start = readme.index("## Code map")
    end = readme.find("\n## ", start + 1)
    return readme[start : end if end > 0 else None]


def test_the_readme_code_map_is_short_and_names_every_room() -> None:
    code_map = _code_map()
    assert len(code_map.splitlines()) <= 30
    rooms = [p.name for p in sorted((ROOT / "tusd_py").iterdir()) if (p / "__init__.py").exists()]
    assert rooms and [room for room in rooms if f"`{room}/`" not in code_map] == []
    assert "`handlers/`" in code_map and "`storage/`" in code_map


def test_every_module_and_function_the_code_map_names_exists() -> None:
    code_map = _code_map()
    named = re.findall(r"`((?:handlers|storage|core)\.[\w.]+)`", code_map)
    assert len(named) >= 5
    for dotted in named:
        parts = ("tusd_py." + dotted if dotted.startswith("core.") else dotted).split(".")
        for cut in range(len(parts), 0, -1):
            try:
                target: object = importlib.import_module(".".join(parts[:cut]))
            except ModuleNotFoundError:
                continue
            for attribute in parts[cut:]:
                assert hasattr(target, attribute), dotted
                target = getattr(target, attribute)
            break
        else:
            raise AssertionError(f"{dotted} names no module")
    core_section = code_map[code_map.index("`core/`") : code_map.index("`auth/`")]
    for module in re.findall(r"`(\w+)`", core_section):
        assert (ROOT / "tusd_py" / "core" / f"{module}.py").exists(), module
