"""The model: a Llama-style decoder-only Transformer, its size dial, µP, exact counts, export and sampling.

    from augury.model import ModelConfig, Transformer, param_counts
    cfg = ModelConfig(vocab_size=2048, depth=4).resolved()     # the size dial fills in the rest
    model, counts = Transformer(cfg), param_counts(cfg)

A trained run is loaded with `augury.model.run.load_run(RUN)`; `augury sample` and `augury export` drive it from
the command line.
"""

from augury.model.config import ModelConfig, ModelConfigError
from augury.model.counts import ParamCounts, flops_per_token, forward_flops_per_token, param_counts
from augury.model.transformer import KVCache, Transformer

__all__ = ["ModelConfig", "ModelConfigError", "Transformer", "KVCache", "ParamCounts", "param_counts",
           "flops_per_token", "forward_flops_per_token"]
