"""Batches of token windows from a prepared split, with exact resume, data-parallel ranks and bits/byte.

    from augury.data.loader import TokenLoader, iter_val_batches, bits_per_byte
    loader = TokenLoader(data.split_path("train"), batch_size=8, seq_len=256, seed=0, rank=0, world_size=1)
    x, y = loader.next_batch()                # int64 [8, 256]; y is x shifted left by one token
    state = loader.state_dict()               # plain ints: save with the checkpoint ...
    loader.load_state_dict(state)             # ... and the next batches are identical, bit for bit
    for x, y in iter_val_batches(data.split_path("val"), 8, 256, max_batches=20): ...

Training windows. The split of N tokens is cut into W = (N - 1) // seq_len windows of seq_len + 1 tokens,
window i starting at token i * seq_len (consecutive windows share one token, so tokens 1 .. W * seq_len are each a
target exactly once; the last (N - 1) % seq_len tokens fill no window and are never read). Windows are read in
a permutation drawn from (seed, epoch); the permutations of successive epochs form one stream, and step s takes
stream positions [s*B*R, (s+1)*B*R) (B = batch_size, R = world_size), rank r the slice [r*B, (r+1)*B) of it.
So every window is seen exactly once per epoch, the ranks of a step read disjoint windows, and the only state is
the stream position.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from augury.data.config import DataError

_STATE_VERSION = 1


def _dtype_for(path: Path, dtype) -> np.dtype:
    """The token dtype: given, or read from the manifest.json that prepare_data writes beside the .bin."""
    if dtype is not None:
        return np.dtype(dtype)
    manifest = path.parent / "manifest.json"
    try:
        return np.dtype(json.loads(manifest.read_text(encoding="utf-8"))["dtype"])
    except (OSError, ValueError, KeyError) as err:
        raise DataError(f"cannot tell the token dtype of {str(path)!r}: no readable {manifest.name} "
                        f"beside it ({err}); pass dtype=") from None


class _TokenFile:
    """A read-only token memmap opened on first use (cheap to construct, safe to pass to forked workers)."""

    def __init__(self, path: str | os.PathLike, dtype=None):
        self.path = Path(path)
        if not self.path.is_file():
            raise DataError(f"token file {str(self.path)!r} does not exist")
        self.dtype = _dtype_for(self.path, dtype)
        size = self.path.stat().st_size
        if size % self.dtype.itemsize:
            raise DataError(f"{str(self.path)!r} has {size} bytes, "
                            f"not a whole number of {self.dtype.name} tokens")
        self.num_tokens = size // self.dtype.itemsize
        self._tokens: np.memmap | None = None

    @property
    def tokens(self) -> np.ndarray:
        if self._tokens is None:
            self._tokens = np.memmap(self.path, dtype=self.dtype, mode="r")
        return self._tokens

    def windows(self, starts: np.ndarray, length: int) -> torch.Tensor:
        """int64 [len(starts), length]: tokens[s : s + length] for each start."""
        rows = np.stack([np.asarray(self.tokens[s:s + length]) for s in starts.tolist()])
        return torch.from_numpy(rows.astype(np.int64))

    def __getstate__(self):  # never pickle an open memmap; the copy reopens lazily
        return {**self.__dict__, "_tokens": None}


class TokenLoader:
    """Shuffled (x, y) training batches from a token memmap; resumable to the exact batch."""

    def __init__(self, path, batch_size: int, seq_len: int, seed: int = 0, rank: int = 0, world_size: int = 1,
                 *, dtype=None):
        if batch_size < 1 or seq_len < 1:
            raise ValueError(f"batch_size and seq_len must be >= 1, got {batch_size} and {seq_len}")
        if world_size < 1 or not (0 <= rank < world_size):
            raise ValueError(f"need 0 <= rank < world_size, got rank={rank}, world_size={world_size}")
        self._file = _TokenFile(path, dtype)
        self.batch_size, self.seq_len, self.seed = batch_size, seq_len, seed
        self.rank, self.world_size = rank, world_size
        self.num_windows = (self._file.num_tokens - 1) // seq_len
        if self.num_windows < 1:
            raise DataError(f"{str(self._file.path)!r} has {self._file.num_tokens} tokens, fewer than one "
                            f"window of seq_len + 1 = {seq_len + 1}; use a larger corpus or a shorter "
                            f"seq_len")
        self.tokens_per_epoch = self.num_windows * seq_len  # target tokens per pass over the data
        self._position = 0  # global stream position (in windows) of the next step's first window
        self._perm_epoch = -1
        self._perm: np.ndarray | None = None

    @property
    def epoch(self) -> int:
        """The epoch the next batch starts in (0-based)."""
        return self._position // self.num_windows

    @property
    def path(self) -> Path:
        return self._file.path

    def _permutation(self, epoch: int) -> np.ndarray:
        if epoch != self._perm_epoch:
            self._perm = np.random.default_rng([self.seed, epoch]).permutation(self.num_windows)
            self._perm_epoch = epoch
        return self._perm

    def _window_ids(self, start: int, count: int) -> np.ndarray:
        """Window ids at stream positions [start, start + count), which may span epochs."""
        positions = np.arange(start, start + count, dtype=np.int64)
        epochs, index = np.divmod(positions, self.num_windows)
        out = np.empty(count, dtype=np.int64)
        for epoch in np.unique(epochs).tolist():
            sel = epochs == epoch
            out[sel] = self._permutation(epoch)[index[sel]]
        return out

    def next_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(x, y), int64 [batch_size, seq_len], y[:, t] = x[:, t + 1] continued one token past x."""
        step = self.batch_size * self.world_size
        first = self._position + self.rank * self.batch_size
        ids = self._window_ids(first, self.batch_size)
        self._position += step
        rows = self._file.windows(ids * self.seq_len, self.seq_len + 1)
        return rows[:, :-1].contiguous(), rows[:, 1:].contiguous()

    def state_dict(self) -> dict:
        """JSON-able ints; load_state_dict(state) on a loader over the same data continues identically."""
        return {"version": _STATE_VERSION, "position": self._position, "seed": self.seed,
                "seq_len": self.seq_len, "num_windows": self.num_windows, "batch_size": self.batch_size,
                "world_size": self.world_size}

    def load_state_dict(self, d: dict) -> None:
        """Restore the stream position. The data, seq_len and seed must match (else DataError, a ValueError,
        naming them); a different batch_size or world_size is allowed and continues from the same window of the
        stream."""
        if d.get("version") != _STATE_VERSION:
            raise DataError(f"loader state version {d.get('version')!r} is not {_STATE_VERSION}")
        mismatched = [f"{k}: saved {d.get(k)!r}, now {getattr(self, k)!r}"
                      for k in ("seed", "seq_len", "num_windows") if d.get(k) != getattr(self, k)]
        if mismatched:
            raise DataError(f"loader state does not match {str(self.path)!r} (" + "; ".join(mismatched)
                            + "): the checkpoint was saved over other data or settings")
        position = d.get("position")
        if not isinstance(position, int) or position < 0:
            raise DataError(f"loader state position must be a non-negative int, got {position!r}")
        self._position = position


def iter_val_batches(path, batch_size: int, seq_len: int, max_batches: int | None = None, *,
                     dtype=None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The same non-overlapping (x, y) batches every call, in order.

    The split is cut into (N - 1) // seq_len windows (as for training) and grouped into full batches of
    batch_size windows. With max_batches below the number available, the windows used are spread evenly over
    the whole split (not just its first documents), still non-overlapping and always the same.
    """
    if batch_size < 1 or seq_len < 1:  # as TokenLoader: a clear error, not a ZeroDivisionError below
        raise ValueError(f"batch_size and seq_len must be >= 1, got {batch_size} and {seq_len}")
    if max_batches is not None and max_batches < 0:  # else silently no batch: a mean loss over nothing
        raise ValueError(f"max_batches must be >= 1 (or 0 for none, None for all), got {max_batches}")
    file = _TokenFile(path, dtype)
    num_windows = (file.num_tokens - 1) // seq_len
    available = num_windows // batch_size
    if available < 1:
        raise DataError(f"{str(file.path)!r} has {file.num_tokens} tokens, too few for one validation batch "
                        f"of batch_size x seq_len + 1 = {batch_size} x {seq_len} + 1 = "
                        f"{batch_size * seq_len + 1} tokens; use a larger corpus or val_fraction, or a "
                        f"smaller batch_size or seq_len")
    n_batches = available if max_batches is None else min(max_batches, available)
    n_used = n_batches * batch_size
    # Evenly spaced over the split and strictly increasing, so non-overlapping.
    window_ids = (np.arange(n_used, dtype=np.int64) * num_windows) // n_used
    for b in range(n_batches):
        rows = file.windows(window_ids[b * batch_size:(b + 1) * batch_size] * seq_len, seq_len + 1)
        yield rows[:, :-1].contiguous(), rows[:, 1:].contiguous()


def bits_per_byte(nats_per_token: float, tokens: int, bytes_: int) -> float:
    """Convert a mean loss in nats/token over `tokens` tokens of text that is `bytes_` UTF-8 bytes long into
    bits/byte: nats/token * tokens/bytes / ln 2. Comparable across tokenizers."""
    if tokens <= 0 or bytes_ <= 0:
        raise ValueError(f"tokens and bytes must be positive, got {tokens} and {bytes_}")
    return nats_per_token * tokens / bytes_ / math.log(2)
