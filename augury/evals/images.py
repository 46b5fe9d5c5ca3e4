"""Image tasks: exact-match accuracy with the real image, a blank image and images shuffled across questions.

The two controls show whether a model reads the image: with a blank image (uniform grey) or another question's
image, a model that answers from the image falls to about chance, while one that answers from the question's
wording alone keeps its accuracy. Each task reports the three accuracies per template next to that template's
chance level. No torch here: the model is a callable `answer_fn(questions, images) -> answers` (images as uint8
(S, S, 3) arrays), e.g. `augury.model.image_prompt.answer` wrapped by the caller.

    report = evaluate_image_tasks(examples, answer_fn, batch_size=64)
    report["digits"]["which_digit"] == {"n": 300, "chance": 0.1, "real": 0.93, "real_ci95": [0.90, 0.95], ...}

Each accuracy has a Wilson 95% interval (`CONDITION_ci95`). A template with a single question, or whose
questions all show one picture, has no shuffled control: `shuffled` is None, with the reason in `shuffled_note`.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # augury.data's package imports torch; this module stays torch-free when imported
    from augury.data.images import ImageExample

CONDITIONS = ("real", "blank", "shuffled")
IMAGE_MARK = "<|image|>"  # where the image goes in a question (augury.model.image_prompt)
UNMEASURED_SHUFFLE = ("not measurable: the template has one question, so there is no other question's image to "
                      "give it")
SAME_IMAGE_SHUFFLE = "not measurable: every question of the template is about the same image"


def normalise(text: str) -> str:
    return " ".join(text.strip().lower().rstrip(".").split())


def _shuffle_donors(items: Sequence[ImageExample]) -> list[int] | None:
    """For each question, the next question (cyclically) whose image differs from its own, or None when every
    question has the same image. Several questions about one picture sit side by side in a record file, so
    "the next question's image" alone would often hand a question its own picture."""
    keys = [hashlib.sha256(repr(e.image.shape).encode() + e.image.tobytes()).digest() for e in items]
    if len(set(keys)) < 2:
        return None
    n, donors = len(items), []
    for i in range(n):
        j = (i + 1) % n
        while keys[j] == keys[i]:
            j = (j + 1) % n
        donors.append(j)
    return donors


def evaluate_image_tasks(examples: Sequence[ImageExample],
                         answer_fn: Callable[[list[str], list[np.ndarray]], list[str]],
                         batch_size: int = 64) -> dict:
    """{task: {template: {n, chance, real, blank, shuffled, and each one's _ci95}}}; accuracy is exact match after
    normalising case, spaces and a final full stop. `chance` is the mean of the questions' chances, or None when
    any question's is not known (0.0). Under `shuffled` each question gets the next question's image that is
    not its own picture. Questions are batched per template, in order (deterministic)."""
    from augury.evals.graded import wilson_interval

    groups: dict[tuple[str, str], list[ImageExample]] = defaultdict(list)
    for e in examples:
        groups[(e.task, e.template)].append(e)
    report: dict = {}
    for (task, template), items in groups.items():
        # guessing uniformly among each question's answers scores the mean of their chances; 0.0 is
        # ImageExample's "not known" (a record without `chance`), which no mean may hide
        chances = [e.chance for e in items]
        row = {"n": len(items), "chance": math.fsum(chances) / len(chances) if all(c > 0 for c in chances) else None}
        donors = _shuffle_donors(items)
        for condition in CONDITIONS:
            if condition == "shuffled" and donors is None:  # no other picture to hand any question
                row.update(shuffled=None, shuffled_ci95=None,
                           shuffled_note=UNMEASURED_SHUFFLE if len(items) < 2 else SAME_IMAGE_SHUFFLE)
                continue
            correct = 0
            for i in range(0, len(items), batch_size):
                batch = items[i:i + batch_size]
                if condition == "real":
                    images = [e.image for e in batch]
                elif condition == "blank":
                    images = [np.full_like(e.image, 128) for e in batch]
                else:
                    images = [items[donors[j]].image for j in range(i, i + len(batch))]
                preds = answer_fn([e.question for e in batch], images)
                correct += sum(normalise(p) == normalise(e.answer) for p, e in zip(preds, batch))
            row[condition] = correct / len(items)
            row[f"{condition}_ci95"] = list(wilson_interval(correct, len(items)))
        report.setdefault(task, {})[template] = row
    return report


def _accuracy(r: dict, condition: str) -> str:
    if r.get(condition) is None:  # the report's own reason: one question, or one picture for all of them
        return f"{condition} {r.get(f'{condition}_note') or 'not measurable'}"
    ci = r.get(f"{condition}_ci95")
    return f"{condition} {r[condition]:.3f}" + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "")


def summary_lines(report: dict) -> list[str]:
    """One line per task and template: n, chance, real / blank / shuffled accuracy with 95% intervals."""
    lines = []
    for task, templates in report.items():
        for template, r in templates.items():
            chance = "unknown" if r["chance"] is None else f"{r['chance']:.2f}"
            lines.append(f"{task:7s} {template:12s} n={r['n']:4d} chance {chance}  "
                         + "  ".join(_accuracy(r, c) for c in CONDITIONS))
    return lines


# ---- image task records: JSONL with an `image` field ----------------------------------------------------------
BUILTIN_TASKS = {"image_digits": "digits", "image_charts": "charts", "image_words": "words"}


def read_image_records(path: str | Path, image_size: int) -> list[ImageExample]:
    """Records of an image task from JSONL: `question`, `answer` (not empty), `image` (a file path, relative to the
    JSONL file's folder) and optional `task`, `template` (non-empty strings), `chance` (in (0, 1)). A bad record or
    image is one error naming it."""
    from augury.data.images import ImageExample, load_image
    from augury.data.records import TaskDataError
    from augury.io import jsonl_objects

    path = Path(path)
    if not path.is_file():
        raise TaskDataError(f"image task file {str(path)!r} does not exist")
    out = []
    for n, rec in jsonl_objects(path.read_text(encoding="utf-8"), str(path), TaskDataError):
        problem = _record_problem(rec)
        if problem:
            raise TaskDataError(f"{path}:{n}: {problem}")
        try:
            pixels = load_image(path.parent / rec["image"], image_size)
        except ValueError as err:
            raise TaskDataError(f"{path}:{n}: {err}") from None
        image = np.rint(pixels.transpose(1, 2, 0) * 255).astype(np.uint8)
        out.append(ImageExample(rec.get("task", path.stem), rec.get("template", "default"), rec["question"],
                                rec["answer"], image, chance=float(rec.get("chance", 0.0))))
    if not out:
        raise TaskDataError(f"{path}: no records")
    return out


def _record_problem(rec: dict) -> str | None:
    """What is wrong with one image record, or None; checked on reading, so nothing fails once answers come in."""
    missing = [k for k in ("question", "answer", "image") if not isinstance(rec.get(k), str)]
    if missing:
        return f"missing text field(s) {', '.join(missing)}"
    if not normalise(rec["answer"]):  # an empty reply would be scored correct
        return "answer is empty"
    if rec["question"].count(IMAGE_MARK) > 1:
        return (f"the question has {rec['question'].count(IMAGE_MARK)} {IMAGE_MARK} markers, but a record has one "
                "image: use one marker (or none, and the image comes first)")
    for key in ("task", "template"):
        if key in rec and not (isinstance(rec[key], str) and rec[key].strip()):
            return f"{key} must be a non-empty string, got {rec[key]!r}"
    chance = rec.get("chance")
    if "chance" in rec and (isinstance(chance, bool) or not isinstance(chance, (int, float)) or not 0 < chance < 1):
        return f"chance must be a number between 0 and 1 (the accuracy of guessing), got {chance!r}"
    return None


def write_image_records(examples: Sequence[ImageExample], folder: str | Path, name: str) -> Path:
    """Write examples as FOLDER/NAME.jsonl plus one PNG per image (the format read_image_records reads)."""
    from PIL import Image

    folder = Path(folder)
    (folder / name).mkdir(parents=True, exist_ok=True)
    lines = []
    for i, e in enumerate(examples):
        rel = f"{name}/{i:05d}.png"
        Image.fromarray(e.image).save(folder / rel)
        rec = {"task": e.task, "template": e.template, "question": e.question, "answer": e.answer, "image": rel}
        if e.chance:  # 0.0 is ImageExample's "not known", which a record leaves out
            rec["chance"] = e.chance
        lines.append(json.dumps(rec))
    from augury.io import atomic_write_text

    out = folder / f"{name}.jsonl"
    atomic_write_text(out, "\n".join(lines) + "\n")
    return out
