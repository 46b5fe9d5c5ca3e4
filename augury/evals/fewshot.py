"""Which few-shot examples each record gets: lm-evaluation-harness 0.4's samplers (lm_eval/api/samplers.py), ported
so that a task YAML gives the same shots, and so the same prompts and scores, in augury as in lm-eval.

`default` (also when a task names no sampler): one `random.Random`, seeded once per task with lm-eval's fewshot
seed 1234, draws k examples for each record in turn; when the few-shot split is the evaluated split it draws
k + 1 and drops the record itself (every copy of it), drawing again from the pool without it if fewer than k are
left. `first_n`: the split's first k, less the record itself when the split is the evaluated one (MMLU's fixed
dev examples). Shots depend on the records before the one asked, so a record gets the same shots under any
larger `--limit`.

    sampler = ShotSampler(pool_records, "default")
    chosen = [sampler.sample(k, doc if same_split else None) for doc in docs]   # indices into pool_records
"""

from __future__ import annotations

import random
from collections.abc import Sequence

# lm-eval's default fewshot_random_seed (lm_eval.defaults.DEFAULT_OTHER_SEED), set on every task by its evaluator
FEWSHOT_SEED = 1234
SAMPLERS = ("default", "first_n")


class ShotSampler:
    """lm-eval's ContextSampler (`default`) or FirstNSampler (`first_n`) over `pool`, returning indices into it.

    Records are compared by value (dict equality), as lm-eval does: the pool and the evaluated records are read
    separately from the same file. Raises ValueError when fewer than k examples are left to choose from."""

    def __init__(self, pool: Sequence[dict], sampler: str = "default", seed: int = FEWSHOT_SEED):
        if sampler not in SAMPLERS:
            raise ValueError(f"fewshot_config.sampler {sampler!r} is not one of {', '.join(SAMPLERS)}")
        self.pool = pool
        self.first_n = sampler == "first_n"
        self.rnd = random.Random(seed)

    def _others(self, doc: dict | None) -> list[int]:
        return [i for i in range(len(self.pool)) if doc is None or self.pool[i] != doc]

    def sample(self, k: int, eval_doc: dict | None = None) -> list[int]:
        """Indices of the k examples for `eval_doc` (None when the few-shot split is not the evaluated one).
        Sampling positions draws exactly what lm-eval's `rnd.sample(docs, n)` draws (random.sample uses only
        the population's length)."""
        if k <= 0:
            return []
        if self.first_n:
            others = self._others(eval_doc)
            if len(others) < k:
                raise ValueError(f"{k}-shot needs {k} examples besides the record, the split has {len(others)} other")
            return others[:k]
        positions = range(len(self.pool))
        need = k + 1 if eval_doc else k  # lm-eval tests the record's truth, not `is None`
        if len(self.pool) < need:
            raise ValueError(f"{k}-shot needs {need} examples, the split has {len(self.pool)}")
        if not eval_doc:
            return self.rnd.sample(positions, k)
        chosen = [i for i in self.rnd.sample(positions, k + 1) if self.pool[i] != eval_doc][:k]
        if len(chosen) < k:  # several copies of the record were drawn: lm-eval draws again without any of them
            others = self._others(eval_doc)
            if len(others) < k:
                raise ValueError(f"{k}-shot needs {k} examples besides the record, the split has {len(others)} other")
            chosen = self.rnd.sample(others, k)
        return chosen
