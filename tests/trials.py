"""Independent seeded trials of a statistical test spread over the machine's cores.

A coverage test repeats one fit a few hundred times; the trials do not depend on each other, so they run in a
pool of fresh (spawned) processes, one per core, and come back in order: the same numbers as a plain loop.

    from tests.trials import trial_map
    results = trial_map(one_trial, [args_0, args_1, ...])  # one_trial: a module-level function
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterable


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def trial_map(fn: Callable, items: Iterable, max_workers: int = 8) -> list:
    """[fn(item) for item in items], computed over up to `max_workers` processes (in this one on a single core).

    Spawned, not forked: the test process may hold torch's or BLAS's thread pools, which a fork copies broken."""
    items = list(items)
    workers = min(cores(), max_workers, len(items))
    if workers <= 1:
        return [fn(item) for item in items]
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        return list(pool.map(fn, items, chunksize=max(1, len(items) // (4 * workers))))
