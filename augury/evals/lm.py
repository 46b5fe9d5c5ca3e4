"""The model interface every evaluation backend implements, with lm-evaluation-harness's semantics.

Three request kinds, exactly as lm-evaluation-harness defines them:

- `loglikelihood([(context, continuation)])` -> `[(logprob, is_greedy)]`: the summed log-probability of the
  continuation given the context, and whether greedy decoding would have produced it. The leading space belongs
  to the continuation (`("Answer:", " A")`); trailing whitespace of a context is moved onto the continuation.
- `loglikelihood_rolling([text])` -> `[logprob]`: the log-probability of a whole text, scored in disjoint
  windows of the model's context length (the first token is predicted from the end-of-text token).
- `generate_until([(context, gen_kwargs)])` -> `[text]`: a continuation, cut at the first stop string.

A backend that can fail per request (a remote endpoint) returns `None` for that request instead of a value;
the runner counts those as per-sample errors and retries them on the next run.

`augury.evals.backends.tokenized.TokenizedLM` implements all three for local models. This module needs no torch, so
a remote backend (an OpenAI-compatible endpoint) evaluates on a machine without it.
"""

from __future__ import annotations

import abc
import dataclasses
import math
from collections.abc import Sequence
from typing import Any


@dataclasses.dataclass
class GenRequest:
    """One generation request."""

    context: str  # the prompt text (already chat-formatted when the task asks for chat)
    until: list[str] = dataclasses.field(default_factory=list)  # stop strings; the output is cut at the first
    max_gen_toks: int = 256  # most new tokens
    do_sample: bool = False  # greedy when False
    temperature: float = 0.0  # sampling temperature when do_sample
    top_p: float = 1.0  # nucleus sampling mass
    seed: int | None = None  # seed for sampling, so repeated runs give the same samples
    messages: list[dict] | None = None  # chat messages, for backends with a native chat endpoint


class LM(abc.ABC):
    """The evaluation model interface (lm-evaluation-harness semantics, see the module docstring)."""

    #: a short description stored in results["config"]
    name: str = "lm"
    #: sends one request at a time (an HTTP endpoint): batching a chunk gains nothing, so the runner scores each
    #: sample on its own and a run stopped mid-chunk still saves the chunk's samples answered before
    sequential: bool = False

    @abc.abstractmethod
    def loglikelihood(self, requests: Sequence[tuple[str, str]]) -> list[tuple[float, bool] | None]: ...

    @abc.abstractmethod
    def loglikelihood_rolling(self, texts: Sequence[str]) -> list[float | None]: ...

    @abc.abstractmethod
    def generate_until(self, requests: Sequence[GenRequest]) -> list[str | None]: ...

    def apply_chat_template(self, messages: list[dict]) -> str:
        """Render chat messages as one prompt string; backends with a chat template override this."""
        raise NotImplementedError(f"{type(self).__name__} has no chat template; run without --chat")

    def config(self) -> dict[str, Any]:
        """What results["config"] records about the model."""
        return {"model": self.name}

    def identity(self) -> dict[str, Any]:
        """The options that change this model's outputs: resumed samples must match them (not a rate limit)."""
        return self.config()


def cut_at_stop(text: str, stop) -> str:
    """`text` up to (not including) the earliest stop string (empty stop strings are ignored)."""
    cut = min((i for i in (text.find(s) for s in stop if s) if i >= 0), default=len(text))
    return text[:cut]


def split_context(context: str, continuation: str) -> tuple[str, str]:
    """Move the context's trailing whitespace onto the continuation (lm-evaluation-harness does the same)."""
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces:
        return context[:-n_spaces], context[-n_spaces:] + continuation
    return context, continuation


def logsumexp(values: Sequence[float]) -> float:
    m = max(values)
    return m + math.log(sum(math.exp(v - m) for v in values))
