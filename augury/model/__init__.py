"""The model: a Llama-style decoder-only Transformer, its size dial, µP, exact counts, export and sampling."""

from augury.model.config import ModelConfig, ModelConfigError
from augury.model.counts import ParamCounts, flops_per_token, forward_flops_per_token, param_counts
from augury.model.transformer import KVCache, Transformer

__all__ = ["ModelConfig", "ModelConfigError", "Transformer", "KVCache", "ParamCounts", "param_counts",
           "flops_per_token", "forward_flops_per_token"]
