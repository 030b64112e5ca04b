"""The shape of the code, checked over the shipped packages (``data``, ``world_model``,
``events``, ``engine``, ``policies``; not ``bench`` or ``tests``):

- no function or method over ``MAX_FUNCTION_LINES`` lines (decorators to last line);
- no module over ``MAX_MODULE_LINES`` lines;
- no import cycle between modules (imports inside functions count; ``TYPE_CHECKING`` ones
  do not, nor those of an ``if __name__ == "__main__":`` block: a module run as a script is
  not the module imported, so the old ``python -m`` paths may hand over to their command);
- no upward import between layers (docs ARCHITECTURE: data < world_model < events < engine
  < policies), except in the entry points that wire the layers together.

``KNOWN`` lists the exceptions still being mended. It may only shrink: an entry that no
longer fails fails the test, so remove it with the fix.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LAYERS = ("data", "world_model", "events", "engine", "policies")
"""Bottom to top: a module may import its own layer and those below."""
ENTRY_POINTS = frozenset(
    {"engine.cli", "engine.commands.train", "engine.commands.tune", "engine.commands.plan"}
)
"""Modules allowed to import a layer above theirs: the command layer, which sits on top of
every layer (``engine.commands.train`` wires an agent to the engine, ``engine.commands.plan`` the
tuned plan search of ``policies.tuned``)."""
MAX_FUNCTION_LINES = 100
MAX_MODULE_LINES = 600

KNOWN: frozenset[str] = frozenset(
    {
        # Being split or rewritten by other work in progress.
    }
)
"""Exceptions, as ``"module NAME"``, ``"function MODULE.QUALNAME"``, ``"cycle A -> B"``
(the cycle's modules, sorted, joined by `` -> ``) or ``"upward A -> B"``."""


def _modules() -> dict[str, Path]:
    out = {}
    for layer in LAYERS:
        for path in sorted((ROOT / layer).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            out[name] = path
    return out


MODULES = _modules()


def _tree(name: str) -> ast.Module:
    return ast.parse(MODULES[name].read_text(), filename=str(MODULES[name]))


def _functions(node: ast.AST, prefix: str) -> Iterator[tuple[str, int]]:
    """(qualified name, lines) of every function under ``node``."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
            first = min([child.lineno, *(d.lineno for d in child.decorator_list)])
            assert child.end_lineno is not None
            yield f"{prefix}{child.name}", child.end_lineno - first + 1
            yield from _functions(child, f"{prefix}{child.name}.")
        elif isinstance(child, ast.ClassDef):
            yield from _functions(child, f"{prefix}{child.name}.")


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _is_main_guard(node: ast.If) -> bool:
    test = node.test
    return (
        isinstance(test, ast.Compare)
        and isinstance(test.left, ast.Name)
        and test.left.id == "__name__"
        and any(isinstance(c, ast.Constant) and c.value == "__main__" for c in test.comparators)
    )


def _imported(name: str) -> set[str]:
    """The package modules ``name`` imports (``from a import b`` counts ``a.b`` when that
    is a module, else ``a``)."""
    package = name if MODULES[name].name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and (_is_type_checking(child) or _is_main_guard(child)):
                for orelse in child.orelse:
                    visit(orelse)
                continue
            if isinstance(child, ast.Import):
                found.update(a.name for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    anchor = package.split(".")
                    anchor = anchor[: len(anchor) - child.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                for a in child.names:
                    sub = f"{base}.{a.name}"
                    found.add(sub if sub in MODULES else base)
            visit(child)

    visit(_tree(name))
    return {m for m in found if m in MODULES and m != name}


GRAPH = {name: _imported(name) for name in MODULES}


def _layer(name: str) -> int:
    return LAYERS.index(name.split(".")[0])


def _cycles() -> set[str]:
    """Every strongly connected group of two or more modules (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: set[str] = set()

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(GRAPH[v]):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.add("cycle " + " -> ".join(sorted(group)))

    for v in sorted(GRAPH):
        if v not in index:
            connect(v)
    return groups


def violations() -> set[str]:
    """Every breach of the rules above, named as in ``KNOWN``."""
    out: set[str] = set()
    for name, path in MODULES.items():
        if len(path.read_text().splitlines()) > MAX_MODULE_LINES:
            out.add(f"module {name}")
        for qual, lines in _functions(_tree(name), ""):
            if lines > MAX_FUNCTION_LINES:
                out.add(f"function {name}.{qual}")
        if name not in ENTRY_POINTS:
            out.update(
                f"upward {name} -> {dep}" for dep in GRAPH[name] if _layer(dep) > _layer(name)
            )
    return out | _cycles()


def test_the_scan_sees_the_packages() -> None:
    # Guards against a scan that finds nothing and so passes vacuously.
    assert {"engine.stepper", "data.store", "events.sampler", "policies.dp"} <= set(MODULES)
    assert "engine.state" in GRAPH["engine.stepper"]
    assert any(lines > 20 for _, lines in _functions(_tree("engine.stepper"), ""))


@pytest.mark.parametrize("rule", ["module", "function", "cycle", "upward"])
def test_structure(rule: str) -> None:
    found = {v for v in violations() if v.startswith(rule + " ")}
    known = {k for k in KNOWN if k.startswith(rule + " ")}
    new = sorted(found - known)
    mended = sorted(known - found)
    assert not new, f"new {rule} breaches (split the code, or fix the import): {new}"
    assert not mended, f"mended, remove from KNOWN in tests/test_structure.py: {mended}"
