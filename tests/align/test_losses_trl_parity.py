"""augury's SFT and reward-model losses equal TRL's on the same inputs (TRL is a test-only dependency)."""

from __future__ import annotations

import json
import re
from types import SimpleNamespace

import pytest
import torch

from augury.align.losses import bradley_terry_loss, masked_token_loss

trl = pytest.importorskip("trl")


def test_masked_sft_loss_over_micro_batches_equals_trl_collator_and_transformers_loss():
    from transformers.loss.loss_utils import ForCausalLMLoss
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    torch.manual_seed(0)
    V = 50
    examples = [{"input_ids": torch.randint(1, V, (n,)).tolist()} for n in (7, 12, 5, 9)]
    masks = [[0, 0, 1, 1, 1, 1, 1], [0] * 6 + [1] * 6, [0] * 5, [0, 0, 0, 1, 1, 0, 0, 1, 1]]  # one all-masked row
    for e, m in zip(examples, masks):
        e["labels"] = [t if k else -100 for t, k in zip(e["input_ids"], m)]
    collate = DataCollatorForLanguageModeling(pad_token_id=0)
    micro = [collate([examples[0], examples[1]]), collate([examples[2], examples[3]])]
    logits = [torch.randn(b["input_ids"].shape + (V,)) for b in micro]
    n_items = sum(int((b["labels"][:, 1:] != -100).sum()) for b in micro)
    theirs = sum(ForCausalLMLoss(lg, b["labels"], V, num_items_in_batch=n_items) for lg, b in zip(logits, micro))
    ours = 0.0
    for lg, b in zip(logits, micro):
        targets = b["input_ids"][:, 1:]
        mask = b["labels"][:, 1:] != -100
        ours = ours + masked_token_loss(lg[:, :-1], targets, mask, n_items)
    assert float(ours) == pytest.approx(float(theirs), abs=1e-5)
    # the all-masked micro-batch row adds nothing, and a wholly masked micro-batch gives 0, not NaN
    empty = masked_token_loss(logits[1][:, :-1], micro[1]["input_ids"][:, 1:], torch.zeros(2, 8, dtype=torch.bool),
                              0)
    assert float(empty) == 0.0


def test_bradley_terry_equals_trl_reward_trainer():
    from trl.trainer.reward_trainer import RewardTrainer

    torch.manual_seed(1)
    rewards = torch.randn(16, 1)

    class Model:
        def __call__(self, **inputs):
            return SimpleNamespace(logits=rewards)

    identity = SimpleNamespace(gather=lambda x: x, gather_for_metrics=lambda x: x)
    fake = SimpleNamespace(model=SimpleNamespace(training=False), args=SimpleNamespace(center_rewards_coefficient=None),
                           _metrics={"eval": __import__("collections").defaultdict(list)}, _total_train_tokens=0,
                           accelerator=identity)
    theirs = RewardTrainer.compute_loss(fake, Model(), {"attention_mask": torch.ones(16, 3)})
    chosen, rejected = rewards.squeeze(-1).chunk(2)
    assert float(bradley_terry_loss(chosen, rejected)) == pytest.approx(float(theirs), abs=1e-6)


def test_bradley_terry_with_a_margin_column_equals_trl_reward_trainer(chat_run):
    """TRL's preference rows may carry a `margin` (how much better chosen is): the loss is
    -log sigmoid(r_chosen - r_rejected - margin), and the reward model reads it from the data."""
    from trl.trainer.reward_trainer import RewardTrainer

    from augury.align.data import preference_pair
    from augury.data.tokenizer import load_tokenizer

    torch.manual_seed(2)
    rewards, margin = torch.randn(16, 1), torch.rand(8) * 2

    class Model:
        def __call__(self, **inputs):
            return SimpleNamespace(logits=rewards)

    identity = SimpleNamespace(gather=lambda x: x, gather_for_metrics=lambda x: x)
    fake = SimpleNamespace(model=SimpleNamespace(training=False), args=SimpleNamespace(center_rewards_coefficient=None),
                           _metrics={"eval": __import__("collections").defaultdict(list)}, _total_train_tokens=0,
                           accelerator=identity)
    theirs = RewardTrainer.compute_loss(fake, Model(), {"attention_mask": torch.ones(16, 3), "margin": margin})
    chosen, rejected = rewards.squeeze(-1).chunk(2)
    assert float(bradley_terry_loss(chosen, rejected, margin)) == pytest.approx(float(theirs), abs=1e-6)

    tok = load_tokenizer(chat_run / "tokenizer.json")
    row = {"prompt": "Q", "chosen": "good", "rejected": "bad"}
    assert preference_pair(tok, row, 64).margin == 0.0
    assert preference_pair(tok, {**row, "margin": 1.5}, 64).margin == 1.5
    for bad in ("big", float("nan"), None):
        with pytest.raises(ValueError, match="margin must be a finite number"):
            preference_pair(tok, {**row, "margin": bad}, 64)


def test_implicit_prompt_preference_rows_are_split_as_trl_extracts_the_prompt(chat_run, tmp_path):
    """TRL's preference shape without a `prompt` column: chosen and rejected each hold the whole conversation (or
    text), and the prompt is their common beginning (`trl.data_utils.maybe_extract_prompt`). Such a row scores
    exactly the sequences of its explicit-prompt form, and a file of them trains a reward model."""
    from trl.data_utils import maybe_extract_prompt

    from augury.align.data import preference_pair
    from augury.align.rm import RMConfig, train_rm
    from augury.data.tokenizer import load_tokenizer

    tok = load_tokenizer(chat_run / "tokenizer.json")
    user = {"role": "user", "content": "What is two plus two?"}
    rows = [{"chosen": [user, {"role": "assistant", "content": "Four."}],
             "rejected": [user, {"role": "assistant", "content": "Sorry, I can't help."}]},
            {"prompt": "What is two plus two?", "chosen": [user, {"role": "assistant", "content": "Four."}],
             "rejected": [user, {"role": "assistant", "content": "Five."}]},
            {"chosen": "Q: What is two plus two? A: Four.", "rejected": "Q: What is two plus two? A: Five."}]
    for row in rows:
        explicit = maybe_extract_prompt(dict(row))
        assert preference_pair(tok, row, 128) == preference_pair(tok, explicit, 128)
    data = tmp_path / "implicit.jsonl"
    data.write_text("".join(json.dumps({"chosen": [{"role": "user", "content": f"{q} ({i})"},
                                                   {"role": "assistant", "content": a}],
                                        "rejected": [{"role": "user", "content": f"{q} ({i})"},
                                                     {"role": "assistant", "content": "Sorry, I can't help."}]}) + "\n"
                        for i in range(10) for q, a in [("What is two plus two?", "Four."), ("Capital?", "Rome.")]))
    logs = []
    train_rm(RMConfig(base_run=str(chat_run), data=str(data), out=str(tmp_path / "rm"), steps=1, batch_size=2,
                      held_out=0.3, dtype="float32"), log=logs.append)
    used = [re.search(r"(\d+) of (\d+) rows used", line).groups() for line in logs if "rows used" in line]
    assert len(used) == 2 and all(u == n != "0" for u, n in used)  # training and held out: every row, both sides


def test_reward_centering_equals_trl_reward_trainer():
    """TRL's `center_rewards_coefficient` adds c * mean((r_chosen + r_rejected)^2), keeping rewards near zero
    (the Bradley-Terry loss alone leaves their offset free); a TRL reward config sets it, and so may augury rm's."""
    from trl.trainer.reward_trainer import RewardTrainer

    from augury.align.rm import RMConfig

    torch.manual_seed(3)
    rewards, margin = torch.randn(16, 1) + 3.0, torch.rand(8)

    class Model:
        def __call__(self, **inputs):
            return SimpleNamespace(logits=rewards)

    identity = SimpleNamespace(gather=lambda x: x, gather_for_metrics=lambda x: x)
    fake = SimpleNamespace(model=SimpleNamespace(training=False), args=SimpleNamespace(center_rewards_coefficient=0.01),
                           _metrics={"eval": __import__("collections").defaultdict(list)}, _total_train_tokens=0,
                           accelerator=identity)
    theirs = RewardTrainer.compute_loss(fake, Model(), {"attention_mask": torch.ones(16, 3), "margin": margin})
    chosen, rejected = rewards.squeeze(-1).chunk(2)
    ours = bradley_terry_loss(chosen, rejected, margin, center_rewards_coefficient=0.01)
    assert float(ours) == pytest.approx(float(theirs), abs=1e-6)
    assert RMConfig().center_rewards_coefficient is None
    with pytest.raises(ValueError, match="center_rewards_coefficient"):
        RMConfig(base_run="x", data="y", center_rewards_coefficient=-1.0).validate()
