"""lm-evaluation-harness's `local-completions` model, pointed at `augury serve`, picks the same MMLU answers as
`augury eval` does directly on the same run (5-shot, a few questions of one subject, from the shared MMLU CSVs
through an lm-eval task defined on the local files; nothing from a hub).

Needs lm-eval (`pip install -e ".[bench]"`); skipped without it. Run it alone with
`python -m pytest tests/serve/test_lm_eval_through_server.py`.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest

pytest.importorskip("lm_eval", reason="lm-eval is not installed (pip install -e '.[bench]')")

pytestmark = pytest.mark.integration  # lm-eval's start-up and a few hundred scored requests: ~20 s

SUBJECT = "high_school_geography"
LIMIT = 4
TASK = """task: served_{subject}
dataset_path: csv
dataset_kwargs:
  data_files:
    test: {test}
    dev: {dev}
  keep_default_na: false
  na_filter: false
  cache_dir: {cache}
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


def _mmlu_dir() -> Path:
    data = Path(os.environ.get("AUGURY_SHARED_DATA", Path(__file__).resolve().parents[3] / "shared" / "data"))
    if not (data / "mmlu" / "test" / f"{SUBJECT}_test.csv").is_file():
        pytest.skip(f"MMLU CSVs not found under {data} (set AUGURY_SHARED_DATA)")
    return data


@pytest.fixture
def mmlu_run(tmp_path):
    """A random-weight augury run whose tokenizer is trained on the subject's text, context long enough for
    5-shot prompts; and the same tokenizer as a Hugging Face folder for lm-eval."""
    import torch
    import yaml
    from transformers import PreTrainedTokenizerFast

    from augury.data.tokenizer import train_tokenizer
    from augury.io import to_jsonable
    from augury.model import ModelConfig, Transformer
    from augury.train.checkpoint import save_checkpoint

    data = _mmlu_dir()
    texts = []
    for split in ("dev", "test"):
        with open(data / "mmlu" / split / f"{SUBJECT}_{split}.csv", encoding="utf-8", newline="") as f:
            texts += [" ".join(row) for row in csv.reader(f)]
    tok = train_tokenizer(texts, vocab_size=1024)
    run = tmp_path / "run"
    run.mkdir()
    tok.save(str(run / "tokenizer.json"))
    cfg = ModelConfig(vocab_size=tok.get_vocab_size(), depth=2, d_model=64, n_heads=4, n_kv_heads=2,
                      max_seq_len=2048).resolved()
    torch.manual_seed(0)
    (run / "config.yaml").write_text(yaml.safe_dump({"model": to_jsonable(cfg)}))
    model = Transformer(cfg)
    with torch.no_grad():  # sharper next-token distributions, so the choices depend on the question
        for p in model.parameters():
            p.mul_(4.0)
    save_checkpoint(run, 1, model, torch.optim.AdamW(model.parameters()), {"step": 1})
    hf_tok = tmp_path / "hf_tokenizer"
    PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>",
                            pad_token="<|endoftext|>").save_pretrained(hf_tok)
    return run, hf_tok, data


def _lm_eval_picks(url: str, hf_tok: Path, data: Path, tmp: Path) -> dict[int, tuple[str, int, list[float]]]:
    """Per question: (prompt, chosen index, log-likelihood of each choice), from lm-eval through the server."""
    import lm_eval
    from lm_eval.tasks import TaskManager

    tasks = tmp / "lm_eval_tasks"
    tasks.mkdir()
    desc = json.dumps(f"The following are multiple choice questions (with answers) about "
                      f"{SUBJECT.replace('_', ' ')}.\n\n")
    (tasks / f"served_{SUBJECT}.yaml").write_text(TASK.format(
        subject=SUBJECT, test=data / "mmlu" / "test" / f"{SUBJECT}_test.csv",
        dev=data / "mmlu" / "dev" / f"{SUBJECT}_dev.csv", cache=tmp / "datasets_cache", description=desc))
    args = (f"base_url={url}/completions,model=run,tokenizer_backend=huggingface,tokenizer={hf_tok},"
            "tokenized_requests=True,max_retries=1,num_concurrent=1")
    out = lm_eval.simple_evaluate(model="local-completions", model_args=args, tasks=[f"served_{SUBJECT}"],
                                  task_manager=TaskManager(include_path=str(tasks), include_defaults=False),
                                  limit=LIMIT, log_samples=True, batch_size=1)
    picks = {}
    for rec in out["samples"][f"served_{SUBJECT}"]:
        lls = [float(r[0]) for r in rec["filtered_resps"]]
        picks[int(rec["doc_id"])] = (rec["arguments"][0][0], lls.index(max(lls)), lls)
    return picks


def _augury_picks(run: Path, data: Path, tmp: Path) -> dict[int, tuple[str, int, list[float]]]:
    """The same from `augury eval`'s own backend on the run."""
    from augury.evals.backends import load_model
    from augury.evals.runner import evaluate
    from augury.evals.taskconfig import TaskRegistry

    configs = TaskRegistry.load().resolve([f"mmlu_{SUBJECT}"])
    scored = evaluate(load_model(f"augury:{run}"), configs, data, tmp / "augury_out", f"augury:{run}", limit=LIMIT,
                      progress=False)
    return {rec["doc_id"]: (rec["arguments"][0][0], rec["pred"], [float(r[0]) for r in rec["filtered_resps"]])
            for rec in scored[f"mmlu_{SUBJECT}"]["samples"]}


def test_lm_eval_local_completions_through_the_server_picks_what_augury_eval_picks(
        mmlu_run, make_client, tmp_path, serving, monkeypatch):
    run, hf_tok, data = mmlu_run
    for name, value in (("HF_DATASETS_OFFLINE", "1"), ("HF_HUB_OFFLINE", "1"), ("HF_HOME", str(tmp_path / "hf"))):
        monkeypatch.setenv(name, value)
    client, _ = make_client(run, tmp_path, max_tokens_limit=16)
    with serving(client.app) as port:
        served = _lm_eval_picks(f"http://127.0.0.1:{port}/v1", hf_tok, data, tmp_path)
    direct = _augury_picks(run, data, tmp_path)
    assert sorted(served) == sorted(direct) == list(range(LIMIT))
    assert [served[i][0] for i in range(LIMIT)] == [direct[i][0] for i in range(LIMIT)]  # the same prompts
    assert [served[i][1] for i in range(LIMIT)] == [direct[i][1] for i in range(LIMIT)]  # the same choices
    assert len({direct[i][1] for i in range(LIMIT)}) > 1  # the choices depend on the question
    for i in range(LIMIT):
        assert served[i][2] == pytest.approx(direct[i][2], abs=1e-3)
