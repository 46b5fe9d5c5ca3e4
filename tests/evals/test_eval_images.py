"""Image tasks' controls: a reader of the image falls to chance with blank or shuffled images; a guesser does not."""

import numpy as np

from augury.data.images import ImageExample
from augury.evals.images import evaluate_image_tasks, summary_lines


def _examples(n=40):
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        digit = int(rng.integers(10))
        out.append(ImageExample("toy", "which", "Which digit?", str(digit),
                                np.full((4, 4, 3), 10 * digit, dtype=np.uint8), chance=0.1))
    return out


def test_a_model_that_reads_the_image_drops_under_both_controls():
    def reader(questions, images):
        return [str(int(im[0, 0, 0]) // 10) for im in images]

    r = evaluate_image_tasks(_examples(), reader, batch_size=8)["toy"]["which"]
    assert r["real"] == 1.0 and r["blank"] < 0.3 and r["shuffled"] < 0.3 and r["n"] == 40 and r["chance"] == 0.1
    assert "real 1.000" in summary_lines({"toy": {"which": r}})[0]


def test_a_model_that_ignores_the_image_scores_the_same_under_the_controls():
    examples = _examples()
    majority = max({e.answer for e in examples}, key=[e.answer for e in examples].count)

    def guesser(questions, images):
        return [majority + "." for _ in questions]  # case, spaces and a final full stop are normalised

    r = evaluate_image_tasks(examples, guesser, batch_size=7)["toy"]["which"]
    assert r["real"] == r["blank"] == r["shuffled"] > 0
