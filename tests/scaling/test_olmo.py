"""OLMo ladder loader on the shared data (skipped when the data are absent)."""

import pytest

from augury.scaling.olmo import TASK_NAMES, load_ladder, load_paper_predictions, load_target


def test_ladder_final_rows(olmo_dir):
    rows = load_ladder(olmo_dir)
    assert len(rows) == 24  # 4 sizes x (0.5, 1, 2, 5, 10 xC + a 1xC rerun)
    one = next(r for r in rows if r["name"] == "1B-5xC")
    assert one["params"] == 1279395840 and one["tokens"] == 127955632128
    assert one["loss"] == pytest.approx(2.87846302986145)
    assert one["flops"] == pytest.approx(6 * one["params"] * one["tokens"])
    assert len(load_ladder(olmo_dir, sizes=("190M", "370M", "760M", "1B", "3B"))) == 30
    assert all(f"{t}_bpb" in one and f"{t}_acc" in one for t in TASK_NAMES)


def test_targets_and_paper_figures(olmo_dir):
    seven = load_target(olmo_dir, "7B")
    assert seven["loss"] == pytest.approx(2.4829182624816895)  # after the final anneal
    assert seven["pre_anneal_loss"] == pytest.approx(2.5158073902130127)
    thirteen = load_target(olmo_dir, "13B")
    assert thirteen["tokens"] == 596057 * 8388608
    paper = load_paper_predictions(olmo_dir)
    assert set(paper) == set(TASK_NAMES)
    # size-weighted MMLU of the 13B's final evaluation agrees with the paper's reported actual to 0.5%
    assert thirteen["mmlu_avg_test_5shot_acc"] == pytest.approx(paper["mmlu_avg_test_5shot"]["actual"], rel=5e-3)


def test_checkpoints_skip_untrained_step(olmo_dir):
    rows = load_ladder(olmo_dir, sizes=("190M",), checkpoints="all")
    assert all(r["tokens"] > 0 for r in rows) and len(rows) > 300
