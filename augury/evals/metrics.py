"""Per-sample scores and their aggregation, as lm-evaluation-harness defines them.

- acc: the choice with the highest log-likelihood is the gold one. acc_norm: the same after dividing each
  log-likelihood by the choice's length in characters.
- truthfulqa_mc1: acc over the MC1 targets. truthfulqa_mc2: the normalised probability mass on the true answers.
- exact_match: the (regex-extracted, stripped) output equals the target. f1: SQuAD-style token F1.
- pass@k: the unbiased estimator over n samples with c correct (from the sandbox module).
- word_perplexity, byte_perplexity, bits_per_byte: from summed log-likelihoods over the whole corpus.
- stderr: sample standard deviation (ddof=1) / sqrt(n); groups pool their members' variances the way
  lm-evaluation-harness does (`pooled_stderr`) and weight the means by size.

    score_multiple_choice(lls=[-4.2, -1.3, -6.0], choices=["a", "bb", "c"], gold=1)   # acc, acc_norm, confidence, pred

`augury eval` scores each sample with these (augury/evals/runner.py) and aggregates them in
`augury.evals.results`.
"""

from __future__ import annotations

import collections
import math
import re
import string
from collections.abc import Sequence

import numpy as np


def softmax(lls: Sequence[float]) -> np.ndarray:
    x = np.asarray(lls, dtype=np.float64)
    e = np.exp(x - x.max())
    return e / e.sum()


def score_multiple_choice(lls: Sequence[float], choices: Sequence[str], gold: int) -> dict[str, float]:
    lls_arr = np.asarray(lls, dtype=np.float64)
    lengths = np.array([float(len(c)) for c in choices])
    probs = softmax(lls_arr)
    pred = int(lls_arr.argmax())
    return {"acc": float(pred == gold), "acc_norm": float(int((lls_arr / lengths).argmax()) == gold),
            "confidence": float(probs[pred]), "pred": pred}


def score_mc2(lls: Sequence[float], labels: Sequence[int]) -> float:
    """Probability mass on the true answers, normalised over all listed answers."""
    probs = softmax(lls)
    return float(sum(p for p, lab in zip(probs, labels) if lab))


_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)


def normalize_answer(text: str) -> str:
    text = text.lower()
    text = "".join(ch for ch in text if ch not in set(string.punctuation))
    return " ".join(_ARTICLES.sub(" ", text).split())


def token_f1(prediction: str, target: str) -> float:
    pred, gold = normalize_answer(prediction).split(), normalize_answer(target).split()
    if not pred or not gold:
        return float(pred == gold)
    common = collections.Counter(pred) & collections.Counter(gold)
    overlap = sum(common.values())
    if overlap == 0:
        return 0.0
    precision, recall = overlap / len(pred), overlap / len(gold)
    return 2 * precision * recall / (precision + recall)


def extract_answer(text: str, pattern: str | None) -> str:
    """The first capture group (or whole match) of `pattern` in `text`; "[invalid]" when it does not match."""
    if not pattern:
        return text.strip()
    m = re.search(pattern, text)
    if not m:
        return "[invalid]"
    return (m.group(1) if m.groups() else m.group(0)).strip()


def score_generation(output: str, target: str, metrics: Sequence[str], pattern: str | None) -> dict:
    answer = extract_answer(output, pattern)
    out: dict[str, float | str] = {"extracted": answer}
    if "exact_match" in metrics:
        out["exact_match"] = float(answer == target.strip())
    if "f1" in metrics:
        out["f1"] = token_f1(answer, target)
    return out


def mean_stderr(values: Sequence[float]) -> float | str:
    n = len(values)
    if n < 2:
        return "N/A"
    return float(np.std(np.asarray(values, dtype=np.float64), ddof=1) / math.sqrt(n))


def pooled_stderr(stderrs: Sequence[float], sizes: Sequence[int]) -> float:
    """lm-evaluation-harness's pooled standard error of a size-weighted group mean."""
    total = sum(sizes)
    if total - len(sizes) <= 0:
        return float("nan")
    var = sum((n - 1) * se ** 2 * n for n, se in zip(sizes, stderrs)) / (total - len(sizes))
    return math.sqrt(var / total)


def perplexity_metrics(lls: Sequence[float], words: Sequence[int], nbytes: Sequence[int]) -> dict[str, float]:
    total = -float(sum(lls))
    w, b = float(sum(words)), float(sum(nbytes))
    return {"word_perplexity": math.exp(total / w), "byte_perplexity": math.exp(total / b),
            "bits_per_byte": total / (b * math.log(2))}


def count_words(text: str) -> int:
    return len(re.split(r"\s+", text))
