"""Dependencies between augury's subpackages point down: the table below is the allowed direction.

A new subpackage adds one line. Imports inside functions count too (they are still dependencies), so a lazy import
cannot hide an upward one.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "augury"
BASE = {"errors", "io", "command", "__init__"}  # augury/__init__.py holds only the version

# top-level part of augury -> what it may import (besides itself and BASE)
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "io": set(),
    "command": set(),
    "data": set(),
    "model": {"data"},
    "evals": {"data", "model"},
    "train": {"data", "model", "evals"},
    "scaling": set(),
    "forecast": {"data", "model", "evals", "train", "scaling"},
    "align": {"data", "model", "evals", "train", "scaling", "serve", "safety"},
    "serve": {"data", "model", "evals", "safety"},
    "safety": {"data", "model", "evals"},
    "cli": {"command", "errors"},  # the dispatcher imports subcommands by name, at run time
    "__main__": {"cli"},
    "__init__": set(),
}


def _imports(path: Path) -> list[tuple[int, str]]:
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
    return [(line, mod) for line, mod in out if mod == "augury" or mod.startswith("augury.")]


def _part(path: Path) -> str:
    return path.relative_to(PACKAGE).parts[0].removesuffix(".py")


def test_every_part_is_in_the_table():
    parts = {_part(p) for p in PACKAGE.rglob("*.py")}
    assert parts <= set(ALLOWED), f"add {sorted(parts - set(ALLOWED))} to ALLOWED with what they may import"


@pytest.mark.parametrize("source", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_point_down(source):
    part = _part(source)
    allowed = ALLOWED.get(part, set()) | {part} | (BASE if part not in BASE else set())
    for line, module in _imports(source):
        target = module.split(".")[1] if "." in module else "__init__"
        assert target in allowed, f"{source.relative_to(PACKAGE.parent)}:{line} imports {module} ({part} -> {target})"


def test_a_lazy_upward_import_is_caught(tmp_path):
    source = tmp_path / "x.py"
    source.write_text("def f():\n    from augury.train import trainer\n")
    assert [m for _, m in _imports(source)] == ["augury.train"]
    assert "train" not in ALLOWED["model"]
