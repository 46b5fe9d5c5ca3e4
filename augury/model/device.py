"""A device name from the user (`--device cuda:1`), checked against this machine before anything loads on it.

    dev = checked_device("cuda:0")   # torch.device, or ValueError naming what is wrong and what exists

torch accepts `cuda:9` on a machine with one GPU (and `cuda` on one with none) until the first tensor moves
there, deep inside a model load; checking first turns that into one clear error.
"""

from __future__ import annotations

import torch


def checked_device(name: str) -> torch.device:
    """The torch device `name` names; ValueError when it is malformed or this machine has no such device."""
    try:
        dev = torch.device(name)
    except (RuntimeError, TypeError):
        raise ValueError(f"device {name!r} is not a torch device name (e.g. cpu, cuda, cuda:1, mps)") from None
    if dev.type == "cpu":
        return dev
    backend = getattr(torch, dev.type, None)
    available = getattr(backend, "is_available", None)
    if available is None or not available():
        raise ValueError(f"device {name!r}: this machine has no {dev.type} device")
    count = getattr(backend, "device_count", lambda: 1)()
    if dev.index is not None and dev.index >= count:
        raise ValueError(f"device {name!r}: this machine has {count} {dev.type} device(s), numbered from 0")
    return dev
