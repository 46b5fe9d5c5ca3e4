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


def test_image_records_round_trip_and_bad_records_are_one_error(tmp_path):
    import pytest

    from augury.data.images import make_examples
    from augury.data.records import TaskDataError
    from augury.evals.images import read_image_records, write_image_records

    examples = make_examples("words", "heldout", 3, seed=0, image_size=16)
    path = write_image_records(examples, tmp_path, "words")
    back = read_image_records(path, 16)
    assert [(e.question, e.answer, e.template) for e in back] == [(e.question, e.answer, e.template) for e in examples]
    assert all(np.array_equal(a.image, b.image) for a, b in zip(back, examples))
    bad = tmp_path / "bad.jsonl"
    from PIL import Image

    Image.fromarray(examples[0].image).save(tmp_path / "x.png")  # a good image: the record itself is at fault
    for line, message in [('{"question": "q", "answer": "a"}', "missing text field"),
                          ('{"question": "q", "answer": "a", "image": "none.png"}', "does not exist"),
                          ("{not json", "line 1 is not valid JSON"),
                          ("[1, 2]", "line 1 is a JSON list, not an object"),
                          ('{"question": "q", "answer": " . ", "image": "x.png"}', "answer is empty"),
                          ('{"question": "<|image|> or <|image|>?", "answer": "a", "image": "x.png"}',
                           "2 <\\|image\\|> markers"),
                          ('{"question": "q", "answer": "a", "image": "x.png", "template": 3}', "template must be"),
                          ('{"question": "q", "answer": "a", "image": "x.png", "task": ""}', "task must be"),
                          ('{"question": "q", "answer": "a", "image": "x.png", "chance": "high"}', "chance must be"),
                          ('{"question": "q", "answer": "a", "image": "x.png", "chance": 7}', "chance must be"),
                          ('{"question": "q", "answer": "a", "image": "x.png", "chance": 0}', "chance must be")]:
        bad.write_text(line + "\n")
        with pytest.raises(TaskDataError, match=message):
            read_image_records(bad, 16)


def test_the_image_scoring_modules_do_not_import_torch():
    import subprocess
    import sys

    code = "import sys, augury.evals.images, augury.evals.image_eval; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_a_lone_question_has_no_shuffled_control_and_every_accuracy_has_an_interval():
    def reader(questions, images):
        return [str(int(im[0, 0, 0]) // 10) for im in images]

    examples = _examples(5)
    examples[4].template = "alone"
    report = evaluate_image_tasks(examples, reader, batch_size=2)["toy"]
    alone, rest = report["alone"], report["which"]
    assert alone["real"] == 1.0 and alone["shuffled"] is None and "not measurable" in alone["shuffled_note"]
    assert rest["shuffled"] is not None and rest["n"] == 4
    lo, hi = rest["real_ci95"]
    assert 0.45 < lo < 0.55 and hi == 1.0  # Wilson, 4 of 4
    lines = summary_lines({"toy": report})
    assert "shuffled not measurable" in lines[1] and "real 1.000 [" in lines[0]


def test_chance_is_the_groups_mean_and_unknown_chance_is_not_printed_as_zero():
    def item(chance, answer="a"):
        return ImageExample("t", "x", "q", answer, np.zeros((4, 4, 3), dtype=np.uint8), chance=chance)

    def constant(questions, images):
        return ["a"] * len(questions)

    mixed = evaluate_image_tasks([item(0.5), item(0.1), item(0.1), item(0.1)], constant)["t"]["x"]
    assert abs(mixed["chance"] - 0.2) < 1e-12  # guessing each question's answers uniformly: the mean of their chances
    unknown = evaluate_image_tasks([item(0.0), item(0.0)], constant)  # records without a `chance` field
    assert unknown["t"]["x"]["chance"] is None
    line = summary_lines(unknown)[0]
    assert "chance 0.00" not in line and "chance unknown" in line


def test_the_shuffled_control_never_hands_a_question_the_same_picture():
    # two questions per picture, as a record file asking several things about one image has them
    examples = [ImageExample("t", "x", q, str(i % 10), np.full((4, 4, 3), 10 * (i % 10), dtype=np.uint8),
                             chance=0.1) for i in range(20) for q in ("Which digit?", "Digit?")]

    def reader(questions, images):
        return [str(int(im[0, 0, 0]) // 10) for im in images]

    r = evaluate_image_tasks(examples, reader, batch_size=8)["t"]["x"]
    assert r["real"] == 1.0 and r["shuffled"] == 0.0
    same = evaluate_image_tasks(examples[:2], reader)["t"]["x"]  # one picture: no other one to give
    assert same["shuffled"] is None and "same image" in same["shuffled_note"]


def test_an_unmeasured_shuffle_control_prints_its_own_reason():
    # a template of many questions about one picture printed "shuffled not measurable (n < 2)" beside n=6
    one_picture = [ImageExample("toy", "same", "Which digit?", "3", np.full((4, 4, 3), 30, dtype=np.uint8),
                                chance=0.1) for _ in range(6)]
    report = evaluate_image_tasks(one_picture + _examples(1), lambda qs, ims: ["3"] * len(qs))
    same, single = summary_lines(report)
    assert "n=   6" in same and "n < 2" not in same
    assert "shuffled not measurable: every question of the template is about the same image" in same
    assert "n=   1" in single and "shuffled not measurable: the template has one question" in single
