"""Parity and speed: augury eval vs lm-evaluation-harness on the same MMLU questions and the same model.

Creates a random-weight Hugging Face Llama (~10M parameters, byte-level BPE tokenizer trained on the MMLU text)
in a temporary folder, then scores the same 5-shot MMLU questions (default: three subjects, 1,215 questions)
through lm-evaluation-harness's Python API (`simple_evaluate` with local CSV task YAMLs, fully offline) and
through augury (`load_model` + the shipped `mmlu_<subject>` tasks + `evaluate`), in one process, same batch
size. Each side is timed from model loading to the last score (lm-eval's task index and augury's task registry
are built before the clock starts). It checks the prompts are the same strings, then
compares every question's chosen answer. The last line contains `identical` only if every choice matched,
and `speedup X` = lm-eval time / augury time.

Needs lm-eval in the running interpreter (`pip install "lm-eval[hf]"`; the project keeps it in a separate venv):

    PYTHONPATH=. /path/to/venv-with-lm-eval/bin/python -m benchmarks.eval_vs_lm_eval --data-dir ../shared/data
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import tempfile
import time
from pathlib import Path

DEFAULT_SUBJECTS = ["miscellaneous", "marketing", "high_school_geography"]
LM_EVAL_TASK = """task: bench_{subject}
dataset_path: csv
dataset_kwargs:
  data_files:
    test: {test}
    dev: {dev}
  keep_default_na: false
  na_filter: false
test_split: test
fewshot_split: dev
fewshot_config:
  sampler: first_n
output_type: multiple_choice
num_fewshot: 5
description: {description}
doc_to_text: "{{{{question.strip()}}}}\\nA. {{{{choice0}}}}\\nB. {{{{choice1}}}}\\nC. {{{{choice2}}}}\\n\\
  D. {{{{choice3}}}}\\nAnswer:"
doc_to_choice: ["A", "B", "C", "D"]
doc_to_target: "{{{{answer}}}}"
metric_list:
  - metric: acc
"""


def make_model(data_dir: Path, out: Path, hidden: int, layers: int, vocab: int) -> tuple[Path, int]:
    from augury.evals.tiny_model import make_random_llama

    texts = []
    for split in ("dev", "test"):
        for f in sorted((data_dir / "mmlu" / split).glob("*.csv")):
            with open(f, encoding="utf-8", newline="") as fh:
                texts += [" ".join(row) for row in csv.reader(fh)]
    folder = make_random_llama(out, texts, vocab_size=vocab, hidden=hidden, layers=layers,
                               heads=max(1, hidden // 64), intermediate=int(hidden * 8 / 3) // 8 * 8)
    from safetensors.torch import load_file

    n_params = sum(t.numel() for t in load_file(str(folder / "model.safetensors")).values())
    return folder, n_params


def run_lm_eval(model_dir: Path, data_dir: Path, subjects: list[str], limit: int | None, batch_size: int,
                tmp: Path) -> tuple[dict, tuple[float, float]]:
    """Per (subject, doc_id): (context, chosen index, gold); plus (wall, CPU) seconds from model load to the
    last score."""
    tasks_dir = tmp / "lm_eval_tasks"
    tasks_dir.mkdir()
    for s in subjects:
        desc = json.dumps(f"The following are multiple choice questions (with answers) about "
                          f"{s.replace('_', ' ')}.\n\n")
        (tasks_dir / f"bench_{s}.yaml").write_text(LM_EVAL_TASK.format(
            subject=s, test=(data_dir / "mmlu" / "test" / f"{s}_test.csv").resolve(),
            dev=(data_dir / "mmlu" / "dev" / f"{s}_dev.csv").resolve(), description=desc))
    import lm_eval
    from lm_eval.tasks import TaskManager

    # Indexing lm-eval's task folder is start-up, like loading augury's task registry: both stay untimed.
    manager = TaskManager(include_path=str(tasks_dir))
    start, cpu = time.perf_counter(), time.process_time()
    out = lm_eval.simple_evaluate(model="hf", model_args=f"pretrained={model_dir},dtype=float32",
                                  tasks=[f"bench_{s}" for s in subjects], batch_size=batch_size, device="cpu",
                                  limit=limit, log_samples=True, task_manager=manager)
    seconds = (time.perf_counter() - start, time.process_time() - cpu)
    picks = {}
    for s in subjects:
        for rec in out["samples"][f"bench_{s}"]:
            lls = [float(r[0]) for r in rec["filtered_resps"]]
            picks[(s, int(rec["doc_id"]))] = (rec["arguments"][0][0], lls.index(max(lls)), int(rec["target"]))
    return picks, seconds


def run_augury(model_dir: Path, data_dir: Path, subjects: list[str], limit: int | None, batch_size: int,
               tmp: Path) -> tuple[dict, tuple[float, float]]:
    from augury.evals.backends import load_model
    from augury.evals.runner import evaluate
    from augury.evals.taskconfig import TaskRegistry

    configs = TaskRegistry.load().resolve([f"mmlu_{s}" for s in subjects])
    start, cpu = time.perf_counter(), time.process_time()
    lm = load_model(f"hf:{model_dir}", batch_size=batch_size)
    scored = evaluate(lm, configs, data_dir, tmp / "augury_out", f"hf:{model_dir}", limit=limit,
                      chunk_size=100_000, progress=False)
    seconds = (time.perf_counter() - start, time.process_time() - cpu)
    picks = {}
    for s in subjects:
        for rec in scored[f"mmlu_{s}"]["samples"]:
            picks[(s, rec["doc_id"])] = (rec["arguments"][0][0], rec["pred"], rec["gold"])
    return picks, seconds


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data-dir", required=True, help="folder holding mmlu/dev and mmlu/test")
    p.add_argument("--subjects", default=",".join(DEFAULT_SUBJECTS))
    p.add_argument("--limit", type=int, default=None, help="questions per subject (default: all)")
    p.add_argument("--batch-size", type=int, default=16, help="same on both sides")
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--layers", type=int, default=8)
    p.add_argument("--vocab", type=int, default=8192)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    a = p.parse_args(argv)
    data_dir = Path(a.data_dir)
    subjects = [s.strip() for s in a.subjects.split(",") if s.strip()]
    tmp = Path(tempfile.mkdtemp(prefix="augury_bench_"))
    # Fully offline: nothing may come from a hub; caches go to the temporary folder.
    os.environ.update(HF_HOME=str(tmp / "hf_home"), HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1",
                      TOKENIZERS_PARALLELISM="false")
    import torch

    if a.threads:
        torch.set_num_threads(a.threads)
    model_dir, n_params = make_model(data_dir, tmp / "model", a.hidden, a.layers, a.vocab)
    print(f"model: random-weight Llama, {n_params / 1e6:.1f}M parameters, hidden {a.hidden}, {a.layers} layers, "
          f"vocab {a.vocab}; torch threads {torch.get_num_threads()}; batch size {a.batch_size}")
    lm_picks, lm_s = run_lm_eval(model_dir, data_dir, subjects, a.limit, a.batch_size, tmp)
    au_picks, au_s = run_augury(model_dir, data_dir, subjects, a.limit, a.batch_size, tmp)
    if set(lm_picks) != set(au_picks):
        print(f"question sets differ: lm-eval {len(lm_picks)}, augury {len(au_picks)}")
        return 1
    keys = sorted(lm_picks)
    prompt_diff = sum(lm_picks[k][0] != au_picks[k][0] for k in keys)
    gold_diff = sum(lm_picks[k][2] != au_picks[k][2] for k in keys)
    choice_diff = sum(lm_picks[k][1] != au_picks[k][1] for k in keys)
    acc_lm = sum(lm_picks[k][1] == lm_picks[k][2] for k in keys) / len(keys)
    acc_au = sum(au_picks[k][1] == au_picks[k][2] for k in keys) / len(keys)
    print(f"questions: {len(keys)} ({', '.join(subjects)}), 5-shot")
    print(f"prompts differing: {prompt_diff}; gold answers differing: {gold_diff}")
    print(f"lm-eval {_version()}: acc {acc_lm:.4f}, {lm_s[0]:.1f} s wall, {lm_s[1]:.1f} s CPU")
    print(f"augury:            acc {acc_au:.4f}, {au_s[0]:.1f} s wall, {au_s[1]:.1f} s CPU")
    print(f"load average (1 min) at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; "
          f"CPU-time ratio {lm_s[1] / au_s[1]:.2f}")
    same = choice_diff == 0 and prompt_diff == 0 and gold_diff == 0
    verdict = (f"identical: all {len(keys)} per-question choices matched" if same
               else f"MISMATCH: {choice_diff} of {len(keys)} per-question choices differ")
    print(f"{verdict}; speedup {lm_s[0] / au_s[0]:.2f}")
    return 0 if same else 1


def _version() -> str:
    from importlib import metadata

    return metadata.version("lm_eval")


if __name__ == "__main__":
    sys.exit(main())
