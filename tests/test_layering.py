"""Import direction between augury's subpackages: dependencies point down.

Parses every module's imports (module level and inside functions) with `ast` and checks each import of another
augury subpackage against `ALLOWED` below. A new package adds one line naming the packages below it.

Run: python -m pytest tests/test_layering.py -q
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE_ROOT = Path(__file__).resolve().parents[1] / "augury"

BASE = {"errors", "io", "command"}

# Each top-level module or subpackage of augury -> the ones it may import. Nothing but `__main__` imports `cli`.
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "io": {"errors"},
    "command": {"errors", "io"},
    "data": BASE,
    "model": BASE | {"data"},
    "evals": BASE | {"data", "model"},
    "train": BASE | {"data", "model", "evals"},
    "scaling": BASE,
    "forecast": BASE | {"data", "model", "evals", "train", "scaling"},
    "align": BASE | {"data", "model", "evals", "train"},
    "safety": BASE | {"data", "model", "evals"},
    "serve": BASE | {"data", "model", "evals"},
    "vision": BASE | {"data", "model", "evals", "train"},
    "cli": BASE,
    "__main__": {"cli"},
    "__init__": set(),
}


def _unit(path: Path) -> str:
    """The top-level module or subpackage that `path` belongs to."""
    return path.relative_to(PACKAGE_ROOT).with_suffix("").parts[0]


def _imported_units(path: Path) -> set[str]:
    """The augury top-level units that `path` imports, absolute or relative."""
    package = path.relative_to(PACKAGE_ROOT.parent).with_suffix("").parts[:-1]
    units = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                names = [".".join(base + ((node.module,) if node.module else ()))]
                if not node.module:
                    names = [".".join(base + (alias.name,)) for alias in node.names]
            else:
                names = [node.module or ""]
                if node.module == "augury":  # `from augury import x`: x is a unit, or a name of augury/__init__.py
                    names = [f"augury.{alias.name}" if not alias.name.startswith("__") else "augury.__init__"
                             for alias in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "augury" and len(parts) > 1:
                units.add(parts[1])
    return units


def _violations(root: Path) -> list[str]:
    found = []
    for path in sorted(root.rglob("*.py")):
        unit = _unit(path)
        if unit not in ALLOWED:
            found.append(f"{path}: '{unit}' has no line in ALLOWED")
            continue
        for target in sorted(_imported_units(path) - {unit, "__init__"} - ALLOWED[unit]):
            found.append(f"{path.relative_to(root.parent)} imports augury.{target}")
    return found


def test_every_import_points_down():
    assert _violations(PACKAGE_ROOT) == []


def test_a_model_module_importing_train_is_caught(tmp_path):
    (tmp_path / "augury" / "model").mkdir(parents=True)
    (tmp_path / "augury" / "model" / "run.py").write_text("def load():\n    import augury.train\n")
    (tmp_path / "augury" / "evals").mkdir()
    (tmp_path / "augury" / "evals" / "core.py").write_text("from ..cli import main\n")
    global PACKAGE_ROOT
    saved, PACKAGE_ROOT = PACKAGE_ROOT, tmp_path / "augury"
    try:
        found = _violations(tmp_path / "augury")
    finally:
        PACKAGE_ROOT = saved
    assert found == ["augury/evals/core.py imports augury.cli", "augury/model/run.py imports augury.train"]


@pytest.mark.parametrize("unit", sorted(ALLOWED))
def test_allowed_table_has_no_cycle(unit):
    seen, stack = set(), list(ALLOWED[unit])
    while stack:
        below = stack.pop()
        assert below != unit, f"{unit} can reach itself through ALLOWED"
        if below not in seen:
            seen.add(below)
            stack.extend(ALLOWED.get(below, ()))
