"""The backend registry: specs, lazy registration, options."""

from __future__ import annotations

import pytest

from augury.evals import backends
from augury.evals.lm import LM


class EchoLM(LM):
    def __init__(self, path: str, scale: float = 1.0):
        self.path, self.scale = path, scale

    def loglikelihood(self, requests):
        return [(-self.scale * len(c), True) for _, c in requests]

    def loglikelihood_rolling(self, texts):
        return [-self.scale * len(t) for t in texts]

    def generate_until(self, requests):
        return [r.context for r in requests]


def test_parse_model_args():
    assert backends.parse_model_args("batch_size=8,dtype=bfloat16,scale=0.5,add_bos_token=true") == {
        "batch_size": 8, "dtype": "bfloat16", "scale": 0.5, "add_bos_token": True}
    with pytest.raises(ValueError, match="not key=value"):
        backends.parse_model_args("oops")


def test_registering_a_backend_is_one_line(monkeypatch):
    monkeypatch.setitem(backends.BACKENDS, "echo", "")
    backends.register_backend("echo", f"{__name__}:EchoLM")
    lm = backends.load_model("echo:/some/run", scale=2.0)
    assert isinstance(lm, EchoLM) and lm.path == "/some/run" and lm.loglikelihood([("a", " bc")]) == [(-6.0, True)]
    with pytest.raises(ValueError, match=r"has no option\(s\) \['batch'\]; it takes \['scale'\]"):
        backends.load_model("echo:/x", batch=3)


def test_augury_backend_is_registered_lazily():
    assert backends.BACKENDS["augury"] == "augury.evals.backends.augury_lm:AuguryLM"
    assert backends.BACKENDS["hf"].endswith(":HFCausalLM")
    with pytest.raises(ValueError, match="is not one of hf:..., openai:..., augury:..."):
        backends.load_model("/just/a/path")
