"""The reference docs name only options the commands accept.

Every `augury CMD ... --option` in README.md (its commands table included) and docs/*.md (fenced shell examples
and inline code) is checked against the parser CMD really builds, read in-process with jsonargparse's
`capture_parser` (nothing runs). docs/experiments.md is a history of findings and is not checked.

    pytest -q tests/test_docs.py
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import importlib
import io
import re
import types
import typing
from pathlib import Path

import pytest

from augury import cli

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md"] + sorted(p for p in (REPO / "docs").glob("*.md") if p.name != "experiments.md")

# a command's words before its options: `augury data prepare`, `augury ladder plan`, `augury serve keys`
SUBCOMMANDS = {"data": ("prepare",), "ladder": ("plan",), "serve": ("keys",)}
# flags a command reads itself before its parser sees the rest
HANDLED_BEFORE_PARSING = {"forecast": {"--preset"}, "ladder plan": {"--preset", "--no_probe"},
                          "rl-demo": {"--preset"}, "align": {"--preset"}, "serve keys": {"--keys", "--help"}}
# other programs' flags the docs name in prose: torchrun, scripts/setup.sh, lm-eval, unshare, the OLMo benchmark
# and the OLMo-ladder paper's scripts
FOREIGN = {"--rdzv_endpoint", "--test", "--log_samples", "--kill_child", "--task_protocol", "--free_ceiling",
           "--moving_avg", "--skip_perc"}

INVOCATION = re.compile(r"\baugury\s+([a-z][a-z-]*)(?:\s+([a-z]+))?")
OPTION = re.compile(r"(?<![\w-])--[A-Za-z][\w.-]*")
END_OF_COMMAND = re.compile(r"\s#\s|&&|\|\||;|\||\n")


def canonical(option: str) -> str:
    """`--max-new-tokens` and `--max_new_tokens` are one option (augury.command.underscore_flags)."""
    return "--" + option[2:].partition("=")[0].replace("-", "_")


def _dataclass_options(prefix: str, hint) -> set[str]:
    """`--vision.depth`, ...: the fields of an optional dataclass section, which jsonargparse resolves only when
    given (its help lists `--vision.help` instead)."""
    held = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    out = set()
    for kind in held:
        if dataclasses.is_dataclass(kind):
            hints = typing.get_type_hints(kind)
            for f in dataclasses.fields(kind):
                out.add(f"{prefix}.{f.name}")
                out |= _dataclass_options(f"{prefix}.{f.name}", hints.get(f.name))
    return out


@functools.cache
def accepted(command: str) -> frozenset[str]:
    """Every option `augury COMMAND` accepts, from the parser its main() builds (captured before parsing)."""
    from jsonargparse import capture_parser

    words = command.split()
    extra = HANDLED_BEFORE_PARSING.get(command, set())
    if command == "serve keys":  # parsed by hand (augury.serve.cli._keys)
        return frozenset(extra)
    module = importlib.import_module(cli.COMMANDS[words[0]][0])
    with contextlib.redirect_stdout(io.StringIO()):
        parser = capture_parser(lambda: module.main(words[1:]))
    options = set()
    for action in parser._actions:
        options |= {canonical(s) for s in action.option_strings if s.startswith("--")}
        if action.option_strings and hasattr(action, "_typehint"):
            options |= _dataclass_options(canonical(action.option_strings[0]), action._typehint)
    return frozenset(options | extra)


def invocations(text: str):
    """(command, option, line number) for each option written after `augury COMMAND` in shell examples (fenced
    blocks that are not Python or YAML, with `\\` continuations joined) and in inline code spans."""
    fenced = re.compile(r"^```([a-z]*)\n(.*?)^```", re.M | re.S)
    pieces = []
    for m in fenced.finditer(text):
        if m.group(1) in ("", "bash", "sh", "shell", "console"):
            pieces.append((m.start(2), m.group(2).replace("\\\n", "  ")))
    prose = fenced.sub(lambda m: "\n" * m.group(0).count("\n"), text)
    pieces += [(m.start(1), m.group(1)) for m in re.finditer(r"`([^`\n]+)`", prose)]
    for start, piece in pieces:
        for m in INVOCATION.finditer(piece):
            name, word = m.group(1), m.group(2)
            if name not in cli.COMMANDS:
                continue
            command = f"{name} {word}" if word in SUBCOMMANDS.get(name, ()) else name
            if name in ("data", "ladder") and command == name:
                continue  # `augury ladder` alone names the command, not an invocation
            rest = piece[m.end(2) if command != name else m.end(1):]
            rest = rest[:m2.start()] if (m2 := END_OF_COMMAND.search(rest)) else rest
            line = text.count("\n", 0, start + m.start()) + 1
            for option in OPTION.findall(rest):
                yield command, canonical(option), line


def test_every_option_a_doc_writes_after_a_command_is_one_it_accepts():
    wrong, seen = [], 0
    for doc in DOCS:
        for command, option, line in invocations(doc.read_text(encoding="utf-8")):
            seen += 1
            if option not in accepted(command):
                wrong.append(f"{doc.relative_to(REPO)}:{line}: `augury {command}` has no {option}")
    assert seen > 100, f"only {seen} options found in the docs' commands: the extraction has stopped working"
    assert not wrong, "\n".join(wrong)


def test_every_option_named_in_prose_belongs_to_some_command():
    """An option named on its own (`--max_n`) is one that some command accepts (or another program's)."""
    commands = [f"{n} {SUBCOMMANDS[n][0]}" if n in ("data", "ladder") else n for n in cli.COMMANDS] + ["serve keys"]
    known = set(FOREIGN).union(*map(accepted, commands))
    wrong = []
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        for m in re.finditer(r"`([^`\n]+)`", text):
            for option in OPTION.findall(m.group(1)):
                if canonical(option) not in known:
                    wrong.append(f"{doc.relative_to(REPO)}:{text.count(chr(10), 0, m.start()) + 1}: {option}")
    assert not wrong, "no command accepts:\n" + "\n".join(wrong)


@pytest.mark.parametrize("snippet, found", [
    ("```bash\naugury train --config c.yaml --model.depht 3   # a typo\n```\n", ("train", "--model.depht")),
    ("Run `augury serve RUN --max-batch 4 --max_bach 2`.", ("serve", "--max_bach")),
    ("```bash\naugury ladder plan --preset smoke \\\n  --no-such-flag\n```\n", ("ladder plan", "--no_such_flag")),
    ("```bash\ntorchrun --nproc_per_node 2 -m augury train --resumee\n```\n", ("train", "--resumee")),
])
def test_a_misspelled_option_in_a_doc_is_caught(snippet, found):
    command, option = found
    wrong = [(c, o) for c, o, _ in invocations(snippet) if o not in accepted(c)]
    assert wrong == [(command, option)]


def test_options_read_before_parsing_and_optional_sections_are_accepted():
    assert {"--no_probe", "--preset", "--ladder.rungs"} <= accepted("ladder plan")
    assert {"--vision.depth", "--images.train_examples", "--model.depth", "--resume"} <= accepted("train")
    assert "--nproc_per_node" not in accepted("train")
