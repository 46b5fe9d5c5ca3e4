"""MFU's denominator: the dense bf16 peak looked up by the name torch.cuda.get_device_name reports."""

from __future__ import annotations

import pytest
import torch

from augury.train import runtime
from augury.train.runtime import gpu_bf16_peak


@pytest.mark.parametrize("name, label, peak", [
    ("NVIDIA H100 80GB HBM3", "H100 SXM", 989.4e12),
    ("NVIDIA H100 PCIe", "H100 PCIe", 756.0e12),
    ("NVIDIA H100 NVL", "H100 NVL", 835.5e12),
    ("NVIDIA H200", "H200 SXM", 989.4e12),
    ("NVIDIA H200 NVL", "H200 NVL", 835.5e12),
    ("NVIDIA GH200 480GB", "GH200", 989.4e12),
    ("NVIDIA A100-SXM4-80GB", "A100 (SXM or PCIe)", 312e12),
    ("NVIDIA A100 80GB PCIe", "A100 (SXM or PCIe)", 312e12),
    ("NVIDIA A10", "A10", 125e12),
    ("NVIDIA L4", "L4", 121e12),
    ("NVIDIA L40S", "L40S", 362.05e12),
    ("NVIDIA GeForce RTX 4090", "GeForce RTX 4090", 165.2e12),
])
def test_known_gpus_get_their_datasheet_dense_bf16_peak(name, label, peak):
    assert gpu_bf16_peak(name) == (label, peak)


@pytest.mark.parametrize("name", ["NVIDIA A10G", "NVIDIA L40", "Tesla V100-SXM2-16GB", "NVIDIA GeForce RTX 3090",
                                  "AMD Instinct MI300X"])
def test_unlisted_gpus_are_not_guessed(name):
    # a GPU without a listed peak is measured (a big matmul), never matched to a look-alike name
    assert gpu_bf16_peak(name) is None


def test_trainer_peak_uses_the_table_and_halves_it_for_tf32(monkeypatch):
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA H100 PCIe")
    runtime._peak_flops.cache_clear()
    try:
        assert runtime._peak_flops(torch.device("cuda", 0), "bf16") == 756.0e12
        assert runtime._peak_flops(torch.device("cuda", 0), "fp32") == 378.0e12
    finally:
        runtime._peak_flops.cache_clear()
