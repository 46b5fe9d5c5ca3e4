"""Hugging Face causal language models from a local folder (`--model hf:PATH`).

Loads `transformers.AutoModelForCausalLM` and `AutoTokenizer` from PATH with no network access. A folder that
holds no causal LM (no config.json, or an encoder-only architecture) is refused with one clear error before any
work. Scoring, rolling windows and decoding come from `TokenizedLM` (prefix reuse for multiple choice).

    augury eval --model hf:/models/llama-tiny --tasks mmlu --data_dir data/ --out results/
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from augury.evals.backends.tokenized import TokenizedLM
from augury.model.device import checked_device


def cache_argument(model) -> str:
    """The name under which `model.forward` takes its KV cache: transformers 5.x renamed it `cache`
    (`past_key_values` is deprecated there); older releases take only `past_key_values`."""
    import inspect

    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def returned_cache(out) -> Any:
    """The KV cache a forward pass returned, under whichever name the installed transformers gives it."""
    cache = getattr(out, "cache", None)
    return cache if cache is not None else out.past_key_values


def generation_stop_ids(model, tokenizer) -> list[int]:
    """The ids that end a reply: the tokenizer's eos and every eos id of the model's generation_config, as
    transformers' `generate` stops (a chat model often ends its turn with an id other than the tokenizer's eos:
    augury's export with <|end|>, Llama 3 with <|eot_id|>)."""
    ids = [tokenizer.eos_token_id]
    eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids += eos if isinstance(eos, (list, tuple)) else [eos]
    return sorted({int(i) for i in ids if i is not None})


class ModelLoadError(ValueError):
    """The model spec does not point at a usable model."""


def load_hf_causal_lm(folder: str | Path, dtype: torch.dtype | None = None, trust_remote_code: bool = False):
    """(config, tokenizer, model) of the causal LM in a local Hugging Face folder, with no network access;
    ModelLoadError naming the folder or file at fault when it holds none. `dtype` None keeps transformers'
    default."""
    folder = Path(folder)
    cfg_file = folder / "config.json"
    if not folder.is_dir():
        raise ModelLoadError(f"hf model folder {str(folder)!r} does not exist")
    if not cfg_file.is_file():
        raise ModelLoadError(f"{str(folder)!r} is not a Hugging Face model folder: no config.json")
    try:
        import transformers
    except ImportError:
        raise ModelLoadError("hf models need transformers: pip install 'augury[hf]'") from None

    try:
        config = transformers.AutoConfig.from_pretrained(folder, trust_remote_code=trust_remote_code,
                                                         local_files_only=True)
    except (ValueError, KeyError, OSError, json.JSONDecodeError) as err:
        raise ModelLoadError(f"{cfg_file}: not a loadable model config ({err})") from None
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES as causal

    archs = list(getattr(config, "architectures", None) or [])
    # The saved architecture decides (a BertModel folder is an encoder even though BERT has an LM head
    # class); without one, the model type must have a causal-LM class.
    is_causal = (any(a in set(causal.values()) or a.endswith("ForCausalLM") for a in archs) if archs
                 else config.model_type in causal)
    if not is_causal and not trust_remote_code:
        archs = ", ".join(archs) or config.model_type
        raise ModelLoadError(f"{cfg_file}: model type {config.model_type!r} ({archs}) is not a causal "
                             "language model; a decoder (AutoModelForCausalLM) is needed")
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(folder, local_files_only=True,
                                                               trust_remote_code=trust_remote_code)
    except (ValueError, OSError) as err:
        raise ModelLoadError(f"{folder}: no usable tokenizer ({err})") from None
    major, minor = (int(x) for x in transformers.__version__.split(".")[:2])
    dtype_kw = "dtype" if (major, minor) >= (4, 56) else "torch_dtype"  # renamed in 4.56
    try:
        model = transformers.AutoModelForCausalLM.from_pretrained(
            folder, local_files_only=True, trust_remote_code=trust_remote_code,
            **({dtype_kw: dtype} if dtype is not None else {}))
    except (OSError, ValueError) as err:
        raise ModelLoadError(f"{folder}: cannot load the model weights ({err})") from None
    return config, tokenizer, model


class HFCausalLM(TokenizedLM):
    """A local Hugging Face causal LM, tokenized the way lm-evaluation-harness 0.4 tokenizes for `hf`."""

    name = "hf"

    def __init__(self, path: str, device: str = "cpu", dtype: str = "float32", batch_size: int = 16,
                 max_length: int | None = None, add_bos_token: bool | None = None, trust_remote_code: bool = False):
        """Load the model and tokenizer in `path`.

        Args:
            path: a local folder with config.json, weights and tokenizer files
            device: torch device ("cpu", "cuda", "cuda:1", "mps")
            dtype: weight dtype: float32, bfloat16 or float16
            batch_size: suffixes per forward pass when scoring
            max_length: context length; default from the model config
            add_bos_token: True/False force adding special tokens (a BOS); None keeps the tokenizer's default
            trust_remote_code: allow custom model code shipped in the folder
        """
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ModelLoadError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        if max_length is not None and (not isinstance(max_length, int) or max_length < 1):
            raise ModelLoadError(f"max_length must be an integer >= 1, got {max_length!r}")
        dtypes = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
        if dtype not in dtypes:
            raise ModelLoadError(f"dtype {dtype!r} is not one of {', '.join(dtypes)}")
        try:
            self.device = checked_device(device)
        except ValueError as err:
            raise ModelLoadError(str(err)) from None
        folder = Path(path)
        config, self.tokenizer, self.model = load_hf_causal_lm(folder, dtypes[dtype], trust_remote_code)
        self.model.to(self.device).eval()
        self.path = str(folder)
        self.batch_size = batch_size
        self.add_bos_token = add_bos_token
        self.dtype = dtype
        self.max_length = max_length or self._config_max_length(config)
        # Long texts are windowed here, not truncated by the tokenizer: silence its length warning.
        self.tokenizer.model_max_length = int(1e12)
        import inspect

        self._cache_arg = cache_argument(self.model)
        self._can_keep_logits = "logits_to_keep" in inspect.signature(self.model.forward).parameters

    def _config_max_length(self, config) -> int:
        for attr in ("n_positions", "max_position_embeddings", "n_ctx"):
            if getattr(config, attr, None):
                return int(getattr(config, attr))
        limit = getattr(self.tokenizer, "model_max_length", None)
        return int(limit) if limit and limit < 1_000_000 else 2048

    def tok_encode(self, text: str, special_tokens: bool | None = None) -> list[int]:
        # lm-evaluation-harness 0.4.x (HFLM.tok_encode): a text that already starts with the prefix token's text
        # (a chat template that writes the BOS) gets no second one; otherwise add_bos_token, when set, decides,
        # and else the tokenizer's default.
        if special_tokens is None:
            if text.startswith(self.tokenizer.decode(self.prefix_token_id)):
                special_tokens = False
            else:
                special_tokens = self.add_bos_token
        kwargs = {} if special_tokens is None else {"add_special_tokens": special_tokens}
        return self.tokenizer.encode(text, **kwargs)

    def prompt_encode(self, text: str) -> list[int]:
        # lm-evaluation-harness 0.4.x (HFLM.tok_batch_encode, its generation path) tests for the BOS token's own
        # text, not the prefix token's: the two differ for a tokenizer without a BOS.
        bos = self.tokenizer.bos_token
        special_tokens = False if bos is not None and text.startswith(bos) else self.add_bos_token
        kwargs = {} if special_tokens is None else {"add_special_tokens": special_tokens}
        return self.tokenizer.encode(text, **kwargs)

    def tok_decode(self, ids) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=True)

    @property
    def eot_token_id(self) -> int:
        eos = self.tokenizer.eos_token_id
        return eos if eos is not None else 0

    @property
    def stop_token_ids(self) -> set[int]:
        return {self.eot_token_id, *generation_stop_ids(self.model, self.tokenizer)}

    @property
    def prefix_token_id(self) -> int:
        bos = self.tokenizer.bos_token_id
        return bos if bos is not None else self.eot_token_id

    def forward(self, ids: torch.Tensor, past: Any = None, logits_to_keep: int | None = None):
        kwargs = {self._cache_arg: past}
        if logits_to_keep and self._can_keep_logits:
            kwargs["logits_to_keep"] = logits_to_keep
        out = self.model(input_ids=ids, use_cache=True, **kwargs)
        logits = out.logits if not logits_to_keep else out.logits[:, -logits_to_keep:]
        return logits, returned_cache(out)

    def repeat_past(self, past: Any, n: int) -> Any:
        import copy

        if isinstance(past, tuple):  # the legacy per-layer (key, value) tuples of older transformers
            return tuple(tuple(t.repeat_interleave(n, dim=0) for t in layer) for layer in past)
        clone = copy.deepcopy(past)
        if n > 1:
            clone.batch_repeat_interleave(n)
        return clone

    def apply_chat_template(self, messages: list[dict]) -> str:
        if not getattr(self.tokenizer, "chat_template", None):
            raise ValueError(f"{self.path}: the tokenizer has no chat template; run without --chat")
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def config(self) -> dict[str, Any]:
        return {"model": "hf", "model_args": f"pretrained={self.path},dtype={self.dtype}",
                "batch_size": self.batch_size, "device": str(self.device), "max_length": self.max_length}

    def identity(self) -> dict[str, Any]:
        from augury.io import files_signature

        # the folder's files, not only its path: weights re-exported into the same folder are another model
        # (as for an hf: judge, augury.safety.evaluation.resume_key)
        return {"model": "hf", "path": self.path, "dtype": self.dtype, "max_length": self.max_length,
                "add_bos_token": self.add_bos_token, "files": files_signature(self.path)}
