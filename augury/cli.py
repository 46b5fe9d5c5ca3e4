"""The `augury` console script: a thin dispatcher to one module per subcommand.

Each subcommand lives beside the capability it drives and exposes `main(argv) -> int`. Modules are imported
lazily so `augury fit` does not pay for importing torch, and `augury --help` is instant.

    augury train --config configs/train/tiny.yaml --model.depth 2
    augury fit runs.csv --law gpt4-loss --out fits/
"""

from __future__ import annotations

import importlib
import sys

from augury.command import function_cli  # noqa: F401  (re-exported for older imports)
from augury.errors import UsageError

# name -> (module, one-line summary). A module exposes `main(argv: list[str]) -> int | None`.
COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("augury.train.cli", "pretrain a decoder-only Transformer (YAML config + dotted overrides)"),
    "sample": ("augury.model.sample_cli", "generate text from a trained run with a KV cache"),
    "export": ("augury.model.export_cli", "export a run to the Hugging Face Llama layout"),
    "data": ("augury.data.cli", "prepare a corpus: tokenizer + token memmaps"),
    "fit": ("augury.scaling.cli", "fit a scaling law to a runs table"),
    "backtest": ("augury.scaling.backtest_cli", "fit on part of a runs table and check the held-out rows"),
    "eval": ("augury.evals.cli", "evaluate a model on benchmark tasks"),
    "ladder": ("augury.forecast.ladder_cli", "plan a model ladder"),
    "forecast": ("augury.forecast.cli", "train a ladder, pre-register a forecast, train the target, verify"),
    "sft": ("augury.align.sft", "supervised fine-tuning of a run on conversations (loss on the assistant's tokens)"),
    "rm": ("augury.align.rm", "train a reward model on preference pairs (Bradley-Terry)"),
    "rl": ("augury.align.rl", "improve a run with rewards (PPO with a value head, or GRPO/RLOO; KL-penalised)"),
    "rl-demo": ("augury.align.demo", "pretrain, SFT, RL on doctest arithmetic (exact-answer reward), and a report"),
    "align": ("augury.align.pipeline", "pretrain, SFT, reward model, RL with rule-based rewards, and a safety report"),
    "grader": ("augury.safety.grader", "train the offline yes/no proposition grader on the RBR gold set"),
    "rubric-fit": ("augury.align.rubric_fit", "fit a rubric's class rewards so RM + class reward orders classes"),
    "serve": ("augury.serve.cli", "serve a model (or front an upstream) over the OpenAI API, with moderation"),
    "monitor": ("augury.serve.monitor", "summarise a server's request log per key and list keys over thresholds"),
}


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
        print(f"{err.prog or f'augury {name}'}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\naugury {name}: interrupted", file=sys.stderr)
        return 130
    return int(code or 0)


if __name__ == "__main__":
    raise SystemExit(main())
