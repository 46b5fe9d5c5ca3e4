"""`augury data prepare`: prepare a corpus (tokenizer + token memmaps) and print its manifest summary.

    augury data prepare                          # the default: CPython's standard library, vocab 4096
    augury data prepare --source corpus/ --vocab_size 8192 --max_bytes 2000000
    augury data prepare --config data.yaml       # a YAML of DataConfig fields (source, vocab_size, ...)

Prints where the prepared data lives; a second run with the same inputs reuses it.
"""

from __future__ import annotations

import sys

from augury.data.config import DataConfig, DataError

_USAGE = "usage: augury data prepare [--config FILE] [--source SOURCE] [--vocab_size N] [...]  (see --help)"


def parse_args(argv: list[str]) -> DataConfig:
    """The DataConfig of `augury data prepare`'s options (`--config FILE.yaml` and the fields as flags)."""
    from augury.command import config_cli

    return config_cli(DataConfig, argv, prog="augury data prepare",
                      description="Prepare a corpus: train the BPE tokenizer and write token memmaps.")


def summary(data) -> str:
    """A few human lines from a PreparedData's manifest."""
    from augury.data.contamination import describe

    m = data.manifest
    lines = [f"source: {m['source']['spec']} ({m['source']['kind']}: {m['source']['root']})",
             f"vocab_size: {m['vocab_size']} (learned {m['tokenizer_vocab_size']}), dtype {m['dtype']}"]
    for split, info in m["splits"].items():
        lines.append(f"{split}: {info['documents']:,} documents, {info['bytes']:,} bytes, "
                     f"{info['tokens']:,} tokens"
                     + (f" ({info['bytes'] / info['tokens']:.2f} bytes/token)" if info["tokens"] else ""))
    if m["skipped_non_utf8"]:
        lines.append(f"skipped non-UTF-8 documents: {m['skipped_non_utf8']}")
    if m["truncated_by_max_bytes"]:
        lines.append(f"stopped at max_bytes={m['config']['max_bytes']}")
    lines.append(describe(m.get("contamination")))
    lines.append(f"prepared data: {data.dir}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from augury.errors import UsageError

    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_USAGE)
        return 0
    if argv[0] != "prepare":
        raise UsageError(f"unknown data command {argv[0]!r}; {_USAGE}")
    cfg = parse_args(argv[1:])
    from augury.data.prepare import prepare_data

    try:
        data = prepare_data(cfg)
    except DataError as err:
        raise UsageError(str(err), prog="augury data prepare") from None
    print(summary(data))
    return 0
