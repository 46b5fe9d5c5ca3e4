"""The `augury` console script: a thin dispatcher to one module per subcommand.

Each subcommand lives beside the capability it drives and exposes `main(argv) -> int`. Modules are imported
lazily so `augury fit` does not pay for importing torch, and `augury --help` is instant.

    augury train --config configs/train/tiny.yaml --model.depth 2
    augury fit runs.csv --law gpt4-loss --out fits/
"""

from __future__ import annotations

import importlib
import inspect
import json
import sys
import types
import typing

# name -> (module, one-line summary). A module exposes `main(argv: list[str]) -> int | None`.
COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("augury.train.cli", "pretrain a decoder-only Transformer (YAML config + dotted overrides)"),
    "sample": ("augury.model.sample_cli", "generate text from a trained run with a KV cache"),
    "export": ("augury.model.export_cli", "export a run to the Hugging Face Llama layout"),
    "data": ("augury.data.cli", "prepare a corpus: tokenizer + token shards"),
    "fit": ("augury.scaling.cli", "fit a scaling law to a runs table"),
    "backtest": ("augury.scaling.backtest_cli", "fit on part of a runs table and check the held-out rows"),
    "eval": ("augury.evals.cli", "evaluate a model on benchmark tasks"),
    "ladder": ("augury.forecast.ladder_cli", "plan a model ladder"),
    "forecast": ("augury.forecast.cli", "train a ladder, pre-register a forecast, train the target, verify"),
}


class UsageError(Exception):
    """A user error found before any work started: printed as one line, exit code 2."""


def _usage() -> str:
    width = max(len(n) for n in COMMANDS)
    lines = ["usage: augury COMMAND [ARGS...]", "", "commands:"]
    lines += [f"  {name:<{width}}  {summary}" for name, (_, summary) in COMMANDS.items()]
    lines += ["", "Run `augury COMMAND --help` for a command's options."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    if argv[0] in ("-V", "--version"):
        from augury import __version__

        print(f"augury {__version__}")
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"augury: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    try:
        code = module.main(rest)
    except UsageError as err:
        print(f"augury {name}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\naugury {name}: interrupted", file=sys.stderr)
        return 130
    return int(code or 0)


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


if __name__ == "__main__":
    # Run as `python -m augury.cli`, this file is `__main__`, a second copy of augury.cli: the subcommands raise
    # augury.cli.UsageError, not this copy's, so dispatch through the imported module to catch them.
    from augury.cli import main as cli_main

    raise SystemExit(cli_main())
