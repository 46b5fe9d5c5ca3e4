"""Building blocks shared by every subcommand's command line (jsonargparse).

A subcommand module (`augury/<package>/cli.py`) exposes `main(argv) -> int` and is registered in `augury.cli`.
Subpackages import from here, never from the dispatcher in `augury.cli`.
"""

from __future__ import annotations

import inspect
import json
import types
import typing


def _params_of_type(fn, want) -> set[str]:
    hints = typing.get_type_hints(fn)
    out = set()
    for name in inspect.signature(fn).parameters:
        hint = hints.get(name)
        options = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
        if any(o is want or typing.get_origin(o) is want for o in options):
            out.add(name)
    return out


def function_cli(fn, argv: list[str], prog: str):
    """Run `fn` as a CLI whose schema is its signature and docstring (jsonargparse).

    Bare boolean flags (`--resume`) are accepted as well as `--resume true`, and a list-typed option may be
    repeated (`--stop A --stop B`) or given as a JSON list. Keyword-only parameters are options even when
    required (`def export(run, *, hf)` gives `augury export RUN --hf OUT`).
    """
    from jsonargparse import CLI

    flags = {f"--{n}" for n in _params_of_type(fn, bool)}
    lists = {f"--{n}" for n in _params_of_type(fn, list)}
    fixed: list[str] = []
    repeated: dict[str, list[str]] = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        nxt = argv[i + 1] if i + 1 < len(argv) else None
        if arg in lists and nxt is not None and not nxt.lstrip().startswith("["):
            repeated.setdefault(arg, []).append(nxt)
            i += 2
            continue
        fixed.append(arg)
        if arg in flags and (nxt is None or nxt.startswith("--")):
            fixed.append("true")
        i += 1
    for name, values in repeated.items():
        fixed += [name, json.dumps(values)]
    return CLI(fn, args=fixed, prog=prog, as_positional=True, allow_abbrev=False)
