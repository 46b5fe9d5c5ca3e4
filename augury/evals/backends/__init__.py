"""Model backends and the spec registry: `load_model("hf:PATH")`, `"openai:MODEL@BASE_URL"`, `"augury:RUN_DIR"`.

A backend is a class implementing `augury.evals.lm.LM` whose constructor takes the part of the spec after the
prefix as its first argument plus keyword options (`--model_args key=value,...`). Backends are registered by
import path and imported only when used, so `hf` does not import an HTTP client and `openai` does not import
transformers. Adding a backend is one class plus one `register_backend` line:

    register_backend("augury", "augury.evals.backends.augury_lm:AuguryLM")
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

from augury.evals.lm import LM

# prefix -> "module:Class"
BACKENDS: dict[str, str] = {}


def register_backend(prefix: str, target: str) -> None:
    """Make `prefix:ARG` model specs load `target` ("package.module:ClassName")."""
    if ":" not in target:
        raise ValueError(f"backend target {target!r} must look like 'package.module:ClassName'")
    BACKENDS[prefix] = target


register_backend("hf", "augury.evals.backends.hf:HFCausalLM")
register_backend("openai", "augury.evals.backends.openai_api:OpenAICompatibleLM")
register_backend("augury", "augury.evals.backends.augury_lm:AuguryLM")


def parse_model_args(text: str | None) -> dict[str, Any]:
    """`"batch_size=8,dtype=bfloat16"` -> {"batch_size": 8, "dtype": "bfloat16"} (ints, floats, bools parsed)."""
    out: dict[str, Any] = {}
    for part in (text or "").split(","):
        if not part.strip():
            continue
        if "=" not in part:
            raise ValueError(f"model argument {part!r} is not key=value")
        key, value = (s.strip() for s in part.split("=", 1))
        low = value.lower()
        if low in ("true", "false"):
            out[key] = low == "true"
            continue
        for cast in (int, float):
            try:
                out[key] = cast(value)
                break
            except ValueError:
                pass
        else:
            out[key] = value
    return out


def load_model(spec: str, **kwargs: Any) -> LM:
    """Build the backend a model spec names, e.g. `load_model("hf:/models/tiny", batch_size=8)`."""
    prefix, sep, arg = spec.partition(":")
    if not sep or prefix not in BACKENDS:
        known = ", ".join(f"{p}:..." for p in BACKENDS)
        raise ValueError(f"model spec {spec!r} is not one of {known}")
    module_name, cls_name = BACKENDS[prefix].split(":")
    try:
        cls = getattr(importlib.import_module(module_name), cls_name)
    except (ImportError, AttributeError) as err:
        raise ValueError(f"model backend {prefix!r} ({BACKENDS[prefix]}) is not available: {err}") from None
    accepted = inspect.signature(cls.__init__).parameters
    unknown = [k for k in kwargs if k not in accepted]
    if unknown and not any(p.kind == p.VAR_KEYWORD for p in accepted.values()):
        raise ValueError(f"model backend {prefix!r} has no option(s) {unknown}; "
                         f"it takes {list(accepted)[2:] or 'none'}")
    _check_option_types(cls, prefix, kwargs)
    return cls(arg, **kwargs)


def _check_option_types(cls, prefix: str, kwargs: dict[str, Any]) -> None:
    """Refuse `batch_size=abc` here, with the option's name, rather than as a TypeError deep in scoring."""
    import typing

    try:
        hints = typing.get_type_hints(cls.__init__)
    except (NameError, TypeError):  # a backend whose annotations cannot be resolved is not checked
        return
    for key, value in kwargs.items():
        hint = hints.get(key)
        allowed = set(typing.get_args(hint) or (hint,))
        if bool in allowed or not allowed & {int, float}:
            continue
        whole = isinstance(value, int) and not isinstance(value, bool)
        if not (whole or (float in allowed and isinstance(value, float))):
            kind = "a number" if float in allowed else "an integer"
            raise ValueError(f"model option {key}={value!r} must be {kind} (backend {prefix!r})")
