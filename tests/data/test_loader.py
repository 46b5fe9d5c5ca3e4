"""TokenLoader: shift, per-epoch permutations, exact resume, disjoint ranks; val batches; bits/byte."""

from __future__ import annotations

import json
import math
import pickle

import numpy as np
import pytest
import torch

from augury.data.config import DataError
from augury.data.loader import TokenLoader, bits_per_byte, iter_val_batches


def token_file(tmp_path, n: int, dtype=np.uint16, name="train.bin"):
    """A .bin whose token at position i is i (mod the dtype range): a window's start is its first token."""
    path = tmp_path / name
    np.arange(n, dtype=np.int64).astype(dtype).tofile(path)
    (tmp_path / "manifest.json").write_text(json.dumps({"dtype": np.dtype(dtype).name}))
    return path


def window_starts(x: torch.Tensor) -> list[int]:
    return x[:, 0].tolist()


def test_batch_shapes_and_shift(tmp_path):
    loader = TokenLoader(token_file(tmp_path, 1001), batch_size=4, seq_len=10, seed=1)
    x, y = loader.next_batch()
    assert x.shape == y.shape == (4, 10) and x.dtype == y.dtype == torch.int64
    assert x.is_contiguous() and y.is_contiguous()  # a model may call y.view(-1)
    assert torch.equal(y, x + 1)  # tokens are positions, so the shift is visible as +1
    assert all(s % 10 == 0 for s in window_starts(x))
    assert loader.tokens_per_epoch == 100 * 10


def test_each_window_once_per_epoch_new_order_each_epoch(tmp_path):
    loader = TokenLoader(token_file(tmp_path, 241), batch_size=4, seq_len=10, seed=3)  # 24 windows, 6 steps
    epochs = []
    for _ in range(3):
        assert loader.epoch == len(epochs)
        seen = [s for _ in range(6) for s in window_starts(loader.next_batch()[0])]
        assert sorted(seen) == list(range(0, 240, 10))
        epochs.append(seen)
    assert loader.epoch == 3
    assert epochs[0] != epochs[1] != epochs[2]



def test_each_token_but_the_first_and_the_tail_is_a_target_once_per_epoch(tmp_path):
    loader = TokenLoader(token_file(tmp_path, 248), batch_size=4, seq_len=10, seed=3)  # 24 windows, 7 left over
    targets = sorted(t for _ in range(6) for t in loader.next_batch()[1].flatten().tolist())
    assert targets == list(range(1, 241)) and loader.tokens_per_epoch == 240  # tokens 241..247: never read

def test_epoch_rollover_mid_batch_keeps_every_window_once_per_epoch(tmp_path):
    loader = TokenLoader(token_file(tmp_path, 71), batch_size=4, seq_len=10, seed=0)  # 7 windows
    stream = [s for _ in range(7) for s in window_starts(loader.next_batch()[0])]  # 28 = 4 epochs
    for e in range(4):
        assert sorted(stream[7 * e:7 * (e + 1)]) == list(range(0, 70, 10))
    assert loader.epoch == 4


def test_seed_changes_order(tmp_path):
    path = token_file(tmp_path, 1001)
    a = TokenLoader(path, 8, 10, seed=0).next_batch()[0]
    b = TokenLoader(path, 8, 10, seed=1).next_batch()[0]
    assert not torch.equal(a, b)


@pytest.mark.parametrize("k", [0, 3, 7, 12])
def test_exact_resume(tmp_path, k):
    path = token_file(tmp_path, 537)
    n = 15  # spans several epochs of 53 windows / 4 per batch
    straight = TokenLoader(path, batch_size=4, seq_len=10, seed=7)
    expected = [straight.next_batch() for _ in range(n)]

    first = TokenLoader(path, batch_size=4, seq_len=10, seed=7)
    got = [first.next_batch() for _ in range(k)]
    state = json.loads(json.dumps(first.state_dict()))  # plain JSON round trip, as a checkpoint stores it
    assert all(isinstance(v, int) for v in state.values())
    resumed = TokenLoader(path, batch_size=4, seq_len=10, seed=7)
    resumed.load_state_dict(state)
    assert resumed.epoch == first.epoch
    got += [resumed.next_batch() for _ in range(n - k)]
    for (ex, ey), (gx, gy) in zip(expected, got, strict=True):
        assert torch.equal(ex, gx) and torch.equal(ey, gy)


def test_resume_refuses_other_data_or_shape(tmp_path):
    path = token_file(tmp_path, 537)
    state = TokenLoader(path, 4, 10, seed=7).state_dict()
    with pytest.raises(ValueError, match="seq_len: saved 10, now 12"):
        TokenLoader(path, 4, 12, seed=7).load_state_dict(state)
    with pytest.raises(ValueError, match="seed: saved 7, now 8"):
        TokenLoader(path, 4, 10, seed=8).load_state_dict(state)
    other = token_file(tmp_path, 999, name="other.bin")
    with pytest.raises(ValueError, match="num_windows"):
        TokenLoader(other, 4, 10, seed=7).load_state_dict(state)


def test_ranks_read_disjoint_windows_covering_the_epoch(tmp_path):
    path = token_file(tmp_path, 361)  # 36 windows = 3 steps of 3 ranks x 4
    per_rank = []
    for rank in range(3):
        loader = TokenLoader(path, batch_size=4, seq_len=10, seed=5, rank=rank, world_size=3)
        per_rank.append([window_starts(loader.next_batch()[0]) for _ in range(3)])
    for step in range(3):
        step_sets = [set(per_rank[r][step]) for r in range(3)]
        assert not (step_sets[0] & step_sets[1] or step_sets[0] & step_sets[2] or step_sets[1] & step_sets[2])
    everything = [s for r in per_rank for b in r for s in b]
    assert sorted(everything) == list(range(0, 360, 10))
    # The ranks together read exactly what one process with the global batch would.
    single = TokenLoader(path, batch_size=12, seq_len=10, seed=5)
    for step in range(3):
        together = per_rank[0][step] + per_rank[1][step] + per_rank[2][step]
        assert window_starts(single.next_batch()[0]) == together


def test_memmap_is_lazy_read_only_and_picklable(tmp_path):
    loader = TokenLoader(token_file(tmp_path, 1001), 2, 10)
    assert loader._file._tokens is None  # nothing opened until the first batch
    loader.next_batch()
    assert not loader._file.tokens.flags.writeable
    clone = pickle.loads(pickle.dumps(loader))
    assert torch.equal(clone.next_batch()[0], loader.next_batch()[0])


def test_uint32_tokens(tmp_path):
    path = token_file(tmp_path, 70001, dtype=np.uint32)
    x, y = TokenLoader(path, 2, 100).next_batch()
    assert torch.equal(y, x + 1) and all(s % 100 == 0 for s in window_starts(x))
    *_, (x, y) = iter_val_batches(path, 10, 100, None)  # the last windows hold ids above the uint16 range
    assert int(x.max()) > 65535 and torch.equal(y, x + 1)


def test_training_loader_too_small_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match=r"has 8 tokens, fewer than one window of seq_len \+ 1 = 11"):
        TokenLoader(token_file(tmp_path, 8), 2, 10)


def test_val_batches_deterministic_non_overlapping_and_spread(tmp_path):
    path = token_file(tmp_path, 1001, name="val.bin")  # 100 windows -> 12 batches of 8
    all_batches = list(iter_val_batches(path, 8, 10, None))
    assert len(all_batches) == 12
    again = list(iter_val_batches(path, 8, 10, None))
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(all_batches, again))
    starts = [s for x, _ in all_batches for s in window_starts(x)]
    assert len(set(starts)) == len(starts) and all(s % 10 == 0 for s in starts)
    assert all(torch.equal(y, x + 1) for x, y in all_batches)

    few = list(iter_val_batches(path, 8, 10, max_batches=2))
    few_starts = [s for x, _ in few for s in window_starts(x)]
    assert len(few) == 2 and len(set(few_starts)) == 16
    assert max(few_starts) >= 900  # spread over the whole split, not just its start
    again = iter_val_batches(path, 8, 10, 2)
    assert [window_starts(x) for x, _ in few] == [window_starts(x) for x, _ in again]


def test_val_too_small_names_sizes(tmp_path):
    path = token_file(tmp_path, 50, name="val.bin")
    with pytest.raises(DataError, match=r"val\.bin' has 50 tokens, too few for one validation batch .*"
                                        r"4 x 16 \+ 1 = 65"):
        next(iter_val_batches(path, 4, 16, None))



@pytest.mark.parametrize("batch_size, seq_len, max_batches", [(0, 16, None), (4, 0, None), (4, 16, -1)])
def test_val_batches_of_a_bad_shape_are_refused_like_training_batches(tmp_path, batch_size, seq_len, max_batches):
    path = token_file(tmp_path, 1000, name="val.bin")
    with pytest.raises(ValueError, match="must be >= 1"):
        next(iter_val_batches(path, batch_size, seq_len, max_batches))
    assert list(iter_val_batches(path, 4, 16, 0)) == []  # no validation batch asked for, none read

def test_missing_token_file_or_dtype(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        TokenLoader(tmp_path / "nope.bin", 2, 10)
    bare = tmp_path / "bare"
    bare.mkdir()
    np.arange(100, dtype=np.uint16).tofile(bare / "t.bin")
    with pytest.raises(DataError, match="cannot tell the token dtype"):
        TokenLoader(bare / "t.bin", 2, 10)
    assert TokenLoader(bare / "t.bin", 2, 10, dtype="uint16").num_windows == 9


def test_bits_per_byte_closed_form():
    assert bits_per_byte(math.log(2), 100, 100) == pytest.approx(1.0)
    # 2.0 nats/token at 3.5 bytes/token: 2 / 3.5 / ln 2 bits per byte.
    assert bits_per_byte(2.0, 3500, 12250) == pytest.approx(2.0 * 3500 / 12250 / math.log(2), rel=1e-12)
    assert bits_per_byte(0.0, 10, 5) == 0.0
    with pytest.raises(ValueError):
        bits_per_byte(1.0, 0, 10)
