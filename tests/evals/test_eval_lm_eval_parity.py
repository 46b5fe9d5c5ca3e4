"""Where lm-eval 0.4 decides what is scored, augury does the same: BOS handling of a tokenizer that adds one, and
the choice strings of multiple choice under a chat template. Checked against plain transformers passes and, where
lm-eval is installed, against lm-eval's own `hf` model and request construction."""

from __future__ import annotations

import json

import pytest
import torch

from augury.evals.lm import LM, GenRequest
from augury.evals.runner import evaluate
from augury.evals.taskconfig import build_config

MESSAGES = [{"role": "user", "content": "Question: what is it?"}]
TEXT = "Q: Where is Rome?\nA: Rome is in Italy. " * 3


@pytest.fixture(scope="module")
def bos_lm(tiny_bos_model_dir):
    from augury.evals.backends import load_model

    return load_model(f"hf:{tiny_bos_model_dir}", batch_size=4)


def full_pass_logprob(lm, ids: list[int], n_scored: int) -> float:
    """Summed log-probability of the last `n_scored` of `ids`, from one plain forward pass."""
    with torch.no_grad():
        logp = lm.model(torch.tensor([ids[:-1]])).logits.float().log_softmax(-1)[0]
    return float(logp[-n_scored:].gather(1, torch.tensor(ids[-n_scored:])[:, None]).sum())


def test_a_prompt_that_starts_with_bos_gets_no_second_one(bos_lm, monkeypatch):
    bos = bos_lm.tokenizer.bos_token_id
    assert bos_lm.tok_encode("Question")[0] == bos  # the tokenizer does add one to plain text
    ctx = bos_lm.apply_chat_template(MESSAGES)
    assert ctx.startswith("<s>")
    ids = bos_lm.tok_encode(ctx)
    assert ids[0] == bos and ids[1] != bos
    whole = bos_lm.tokenizer.encode(ctx + " A", add_special_tokens=False)
    lp, _ = bos_lm.loglikelihood([(ctx, " A")])[0]
    assert lp == pytest.approx(full_pass_logprob(bos_lm, whole, len(whole) - len(ids)), abs=1e-4)

    seen = []
    forward = type(bos_lm).forward

    def recording(self, ids, past=None, logits_to_keep=None):
        seen.append(ids[0].tolist())
        return forward(self, ids, past, logits_to_keep)

    monkeypatch.setattr(type(bos_lm), "forward", recording)
    bos_lm.generate_until([GenRequest(ctx, until=["\n"], max_gen_toks=2)])
    assert seen[0] == bos_lm.tokenizer.encode(ctx, add_special_tokens=False)


def test_rolling_loglikelihood_predicts_the_bos_the_tokenizer_adds(bos_lm):
    bos = bos_lm.tokenizer.bos_token_id
    tokens = bos_lm.tokenizer.encode(TEXT)
    assert tokens[0] == bos and len(tokens) < bos_lm.max_length
    got = bos_lm.loglikelihood_rolling([TEXT])[0]
    assert got == pytest.approx(full_pass_logprob(bos_lm, [bos] + tokens, len(tokens)), abs=1e-3)


def test_hf_scores_equal_lm_eval_hflm(bos_lm, tiny_bos_model_dir):
    pytest.importorskip("lm_eval", reason="lm-eval is not installed (pip install -e '.[bench]')")
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    ref = HFLM(pretrained=str(tiny_bos_model_dir), device="cpu", batch_size=1, dtype="float32")
    ctx = bos_lm.apply_chat_template(MESSAGES)
    reqs = [(ctx, " A"), (ctx, " B"), ("Question: what is it?\nAnswer:", " C"), ("", "Rome is in Italy")]
    want = ref.loglikelihood([Instance("loglikelihood", {}, r, i) for i, r in enumerate(reqs)], disable_tqdm=True)
    got = bos_lm.loglikelihood(reqs)
    assert [g[0] for g in got] == pytest.approx([w[0] for w in want], abs=1e-4)
    assert [g[1] for g in got] == [w[1] for w in want]
    want = ref.loglikelihood_rolling([Instance("loglikelihood_rolling", {}, (TEXT,), 0)], disable_tqdm=True)
    assert bos_lm.loglikelihood_rolling([TEXT]) == pytest.approx(want, abs=1e-3)
    gen = {"until": ["\n"], "max_gen_toks": 6, "do_sample": False}
    want = ref.generate_until([Instance("generate_until", {}, (ctx, gen), 0),
                               Instance("generate_until", {}, ("Q: Where is Rome?\nA:", gen), 1)], disable_tqdm=True)
    got = bos_lm.generate_until([GenRequest(ctx, until=["\n"], max_gen_toks=6),
                                 GenRequest("Q: Where is Rome?\nA:", until=["\n"], max_gen_toks=6)])
    assert got == want


class RecordingLM(LM):
    """Records the likelihood requests it is given; its chat template is a plain transcript."""

    def __init__(self):
        self.requests = []

    def loglikelihood(self, requests):
        self.requests += requests
        return [(-float(len(c)), False) for _, c in requests]

    def loglikelihood_rolling(self, texts):
        raise AssertionError("not used")

    def generate_until(self, requests):
        raise AssertionError("not used")

    def apply_chat_template(self, messages):
        return "".join(f"<{m['role']}>{m['content']}" for m in messages) + "<assistant>"


ROWS = [{"question": "2+2?", "choices": ["3", "4", "5", "22"], "answer": 1},
        {"question": "Capital of Italy?", "choices": ["Rome", "Milan", "Paris", "Oslo"], "answer": 0}]
TASK = {"doc_to_text": "{{question}}\nAnswer:", "doc_to_choice": ["A", "B", "C", "D"], "doc_to_target": "{{answer}}"}


@pytest.mark.parametrize("chat,delimiter", [(False, " "), (True, "")])
def test_chat_choices_are_scored_without_the_target_delimiter(chat, delimiter, tmp_path):
    (tmp_path / "t.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    cfg = build_config({"task": "t", "kind": "multiple_choice", "data": "t.jsonl", **TASK}, "t.yaml")
    lm = RecordingLM()
    evaluate(lm, [cfg], tmp_path, tmp_path / "out", "rec", chat=chat, progress=False)
    assert [c for _, c in lm.requests[:4]] == [delimiter + c for c in "ABCD"]


def test_chat_and_plain_requests_equal_lm_evals(tmp_path):
    pytest.importorskip("lm_eval", reason="lm-eval is not installed (pip install -e '.[bench]')")
    datasets = pytest.importorskip("datasets")
    from lm_eval.api.task import ConfigurableTask

    def docs(**_):
        return datasets.DatasetDict({"test": datasets.Dataset.from_list(ROWS)})

    ref = ConfigurableTask(config={"task": "t", "custom_dataset": docs, "test_split": "test",
                                   "output_type": "multiple_choice", "doc_to_text": TASK["doc_to_text"],
                                   "doc_to_choice": TASK["doc_to_choice"], "doc_to_target": "answer",
                                   "metric_list": [{"metric": "acc"}]})
    (tmp_path / "t.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    cfg = build_config({"task": "t", "kind": "multiple_choice", "data": "t.jsonl", **TASK}, "t.yaml")
    for chat in (False, True):
        lm = RecordingLM()
        template = (lambda msgs, add_generation_prompt=True: lm.apply_chat_template(msgs)) if chat else None
        ref.build_all_requests(limit=len(ROWS), rank=0, world_size=1, apply_chat_template=chat,
                               fewshot_as_multiturn=chat, chat_template=template)
        evaluate(lm, [cfg], tmp_path, tmp_path / f"out{chat}", "rec", chat=chat, progress=False)
        assert lm.requests == [tuple(inst.arguments) for inst in ref.instances]
