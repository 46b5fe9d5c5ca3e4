"""Building blocks shared by every subcommand's command line (jsonargparse).

A subcommand module (`augury/<package>/cli.py`) exposes `main(argv) -> int` and is registered in `augury.cli`.
Subpackages import from here, never from the dispatcher in `augury.cli`.
"""

from __future__ import annotations

import argparse
import functools
import inspect
import json
import math
import re
import sys
import types
import typing


def one_line(message: str) -> str:
    """jsonargparse's error as one line in the flags' own spelling: 'Parser key "lr":\n  Expected a <class
    'float'>. Got value: abc' becomes '--lr: Expected a float. Got value: abc'."""
    message = re.sub(r'Parser key "([^"]+)":', r"--\1:", " ".join(message.split()))
    message = re.sub(r"<class '([\w.]+)'>", r"\1", message)
    return re.sub(r"Expected a (?=[aeiou])", "Expected an ", message)


@functools.cache
def _parser_class():
    """jsonargparse's ArgumentParser, printing a bad flag or value as the one `augury CMD: error: ...` line every
    other user error gets (instead of the usage block), with the way to the options."""
    from jsonargparse import ArgumentParser

    class Parser(ArgumentParser):
        def error(self, message: str, ex: Exception | None = None):
            if not self.exit_on_error:  # the caller reports it (and jsonargparse's own trial parses)
                super().error(message, ex)
            sys.stderr.write(f"{self.prog}: error: {one_line(message)} (options: {self.prog} --help)\n")
            self.exit(2)

    return Parser


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
    required (`def export(run, *, hf)` gives `augury export RUN --hf OUT`). Hyphenated flags are aliases of the
    underscore spelling (`--max-new-tokens` = `--max_new_tokens`).
    """
    from jsonargparse import CLI, capture_parser

    parser_class = _parser_class()
    argv = underscore_flags(argv)
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
    problem = next(filter(None, map(config_file_problem, _config_values(fixed))), None)
    if problem:
        capture_parser(CLI, fn, args=fixed, prog=prog, as_positional=True, allow_abbrev=False,
                       parser_class=parser_class).error(f"Problems parsing config: {problem}")
    return CLI(fn, args=fixed, prog=prog, as_positional=True, allow_abbrev=False, parser_class=parser_class)


def underscore_flags(argv: list[str]) -> list[str]:
    """`--max-body-bytes` is accepted as an alias of `--max_body_bytes` (the field name is the canonical spelling)."""
    out = []
    for arg in argv:
        if arg.startswith("--") and not arg.startswith("---"):
            name, eq, value = arg[2:].partition("=")
            arg = "--" + name.replace("-", "_") + eq + value
        out.append(arg)
    return out


# `inf` as a float flag's value: YAML (which jsonargparse reads values with) spells infinity `.inf` and reads `inf`
# as text, refused as "Expected a float", although `--max_kl inf` is how one says "no limit"
_INFINITY = {"inf": ".inf", "+inf": ".inf", "infinity": ".inf", "+infinity": ".inf", "-inf": "-.inf",
             "-infinity": "-.inf"}


def infinity_values(argv: list[str], floats: set[str]) -> list[str]:
    """`argv` with `inf` / `Infinity` (either sign, any case) after a float flag in `floats` written as YAML's
    `.inf`, in both `--flag inf` and `--flag=inf`. NaN is left as it is: no setting means anything by it."""
    out = []
    for i, arg in enumerate(argv):
        flag, eq, value = arg.partition("=")
        if eq and flag in floats and value.lower() in _INFINITY:
            arg = f"{flag}={_INFINITY[value.lower()]}"
        elif i and argv[i - 1] in floats and arg.lower() in _INFINITY:
            arg = _INFINITY[arg.lower()]
        out.append(arg)
    return out


def _float_fields(cls, prefix: str = "") -> set[str]:
    """`--lr`, `--rl.kl_coef`, ...: the flags of the float fields of a config dataclass and its sections."""
    import dataclasses

    out, hints = set(), typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        hint = hints.get(f.name)
        held = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
        for kind in held:
            if kind is float:
                out.add(f"--{prefix}{f.name}")
            elif dataclasses.is_dataclass(kind):
                out |= _float_fields(kind, f"{prefix}{f.name}.")
    return out


def spaced_option(argv: list[str], name: str) -> list[str]:
    """`argv` with `NAME=VALUE` written as `NAME VALUE`, for a flag a command reads itself before its parser
    (`--preset`): both spellings are the same option, as for every parsed flag."""
    out = []
    for arg in argv:
        flag, eq, value = arg.partition("=")
        out += [flag, value] if eq and flag == name else [arg]
    return out


def preset_option(names: list[str], file: str, default: str | None = None) -> dict[str, dict]:
    """`--preset NAME` as a `listed` flag of config_cli: the commands that take a preset (`augury align`, `rl-demo`,
    `forecast`, `ladder plan`) read it before their parser, so it is added there only for --help to show it, with
    the preset names, like every other option. `file` is where a preset lives, e.g. "configs/align/NAME.yaml"."""
    then = f"; default {default}" if default else ""
    return {"preset": {"choices": list(names), "default": argparse.SUPPRESS,
                       "help": f"start from a preset's settings ({file}), which --config and the other "
                               f"flags override: one of {', '.join(names)}{then}"}}


def _config_values(argv: list[str]) -> list[str]:
    """The values of `--config FILE` and `--config=FILE` in a command line."""
    return [argv[i + 1] if a == "--config" else a.partition("=")[2] for i, a in enumerate(argv)
            if (a == "--config" and i + 1 < len(argv)) or a.startswith("--config=")]


def config_file_problem(value: str) -> str | None:
    """"FILE, line L, column C: what is wrong" when `value` names a file that is not valid YAML, else None.

    jsonargparse reads a config file's text and parses that, so its YAML errors point into "<unicode string>";
    parsing the file here first names the file. Only the syntax is checked: keys and values are jsonargparse's.
    """
    import yaml

    try:
        with open(value, encoding="utf-8") as f:
            yaml.compose(f, Loader=yaml.SafeLoader)
    except (OSError, ValueError):  # not a file (a YAML text, a folder) or not UTF-8: jsonargparse reports it
        return None
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        context = f" ({err.context})" if err.context else ""
        return f"{value}{where}: {err.problem}{context}"
    except yaml.YAMLError as err:
        return f"{value}: {err}"
    return None


def run_config_section(value: str, section: str) -> str:
    """`value` (a `--config` value), or, when it names a run's config.yaml (`{model: ..., <section>: ...}`, as
    `augury sft`, `rm` and `rl` write it), the YAML text of its `section`. The `model` part is not read: the
    command takes its model from the run it starts from, so the stored one only records what that was."""
    import yaml

    try:
        with open(value, encoding="utf-8") as f:
            stored = yaml.safe_load(f)
    except (OSError, ValueError, yaml.YAMLError):  # not a file, or a broken one: reported as any --config is
        return value
    if isinstance(stored, dict) and set(stored) == {"model", section} and isinstance(stored[section], dict):
        # YAML, not JSON: JSON has no infinity (`max_kl: .inf` would come back as the text Infinity)
        return yaml.safe_dump(stored[section], default_flow_style=True, width=math.inf).strip()
    return value


def config_cli(cls, argv: list[str], prog: str, description: str = "", positional: str | None = None, *,
               configs: list[str] = (), options: dict[str, dict] | None = None, exit_on_error: bool = True,
               run_section: str | None = None, listed: dict[str, dict] | None = None):
    """An instance of the config dataclass `cls` from `--config FILE.yaml` plus dotted overrides (jsonargparse).

    Nested dataclass fields become dotted flags (`--optim.lr 3e-4`); a list field takes a JSON list or a repeated
    flag; a boolean field may be given bare (`--chat` = `--chat true`); `positional` names a field that may also be
    given as the first bare argument (`augury serve RUN`).
    `configs` are YAML files or YAML texts read before argv (a preset: what argv's flags and `--config` override).
    `options` adds flags that are not fields ({name: argparse keywords}, e.g. `augury train --resume`); their values
    come back beside the instance: `(cfg, {name: value})`. With `exit_on_error=False` a bad key or value raises
    jsonargparse's ArgumentError instead of printing the usage and exiting (for callers that report it their way).
    With `run_section`, `--config` also takes a finished or interrupted run's own config.yaml and reads that
    section of it (`augury sft --config runs/sft/config.yaml --resume true`; see `run_config_section`).
    `listed` ({name: argparse keywords}) are flags the command reads itself before calling this (`--preset`:
    `preset_option`); they are added only so that --help lists them, and never reach the parser otherwise.
    Validation is the caller's: call `cfg.validate()`.

        cfg = config_cli(SFTConfig, argv, prog="augury sft", run_section="sft")
    """
    import dataclasses
    import types
    import typing

    from jsonargparse import ActionConfigFile

    parser = _parser_class()(prog=prog, description=description, default_env=False, allow_abbrev=False,
                            exit_on_error=exit_on_error)
    parser.add_argument("--config", action=ActionConfigFile, help="YAML file with any of the options below")
    if positional:
        parser.add_argument("_positional", nargs="?", default=None, help=f"same as --{positional}")
    for name, kwargs in {**(options or {}), **(listed or {})}.items():
        parser.add_argument(f"--{name}", **kwargs)
    parser.add_class_arguments(cls, None)
    lists = {f"--{f.name}" for f in dataclasses.fields(cls) if str(f.type).startswith("list")}
    bools = {f"--{f.name}" for f in dataclasses.fields(cls) if str(f.type) in ("bool", "<class 'bool'>")}
    argv, repeated = infinity_values(underscore_flags(argv), _float_fields(cls)), {}
    kept = [arg for text in configs for arg in ("--config", str(text))]
    i = 0
    while i < len(argv):  # `--reward_functions a:b --reward_functions c:d` as well as a JSON list
        if argv[i] in lists and i + 1 < len(argv) and not argv[i + 1].lstrip().startswith("["):
            repeated.setdefault(argv[i], []).append(argv[i + 1])
            i += 2
            continue
        kept.append(argv[i])
        if argv[i] in bools and (i + 1 == len(argv) or argv[i + 1].startswith("--")):
            kept.append("true")
        i += 1
    for flag, values in repeated.items():
        kept += [flag, json.dumps(values)]
    problem = next(filter(None, map(config_file_problem, _config_values(kept))), None)
    if problem:
        parser.error(f"Problems parsing config: {problem}")
    if run_section:
        kept = [run_config_section(arg, run_section) if i and kept[i - 1] == "--config" else
                f"--config={run_config_section(arg[9:], run_section)}" if arg.startswith("--config=") else arg
                for i, arg in enumerate(kept)]
    ns = parser.parse_args(kept)
    values = ns.as_dict()
    values.pop("config", None)
    extra = {name: values.pop(name) for name in (options or {})}
    for name in listed or {}:
        values.pop(name, None)
    bare = values.pop("_positional", None)
    if bare is not None:
        values[positional] = bare

    def section_type(annotation):
        """The dataclass a field holds, also when it is optional (`VisionConfig | None`), else None."""
        if dataclasses.is_dataclass(annotation):
            return annotation
        if typing.get_origin(annotation) in (typing.Union, types.UnionType):
            held = [a for a in typing.get_args(annotation) if dataclasses.is_dataclass(a)]
            return held[0] if len(held) == 1 else None
        return None

    def build(kind, raw):
        kwargs, hints = {}, typing.get_type_hints(kind)
        for f in dataclasses.fields(kind):
            if f.name not in raw:
                continue
            value, sub = raw[f.name], section_type(hints.get(f.name))
            if sub is not None and isinstance(value, dict):
                value = build(sub, value)
            kwargs[f.name] = value
        return kind(**kwargs)

    cfg = build(cls, values)
    return (cfg, extra) if options is not None else cfg
