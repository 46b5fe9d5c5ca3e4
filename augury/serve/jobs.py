"""What passes between the server and a local model's worker thread: a job to generate, the deltas it streams
back, and the failure of one job.

    job = GenerationJob(prompt_ids, max_tokens=64, temperature=0.7, stop=["\\n"])
    async for delta in backend.stream(job): ...    # Delta(text, ..., finish_reason on the last one)

A job the worker cannot serve ends its stream with `GenerationFailed`, whose `status` the request is answered with.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from augury.serve.responses import short_error


@dataclass
class GenerationJob:
    """One completion to generate (a request with n > 1 is n jobs)."""

    prompt_ids: list[int]
    max_tokens: int = 16
    temperature: float = 1.0
    top_p: float = 1.0
    stop: list[str] = field(default_factory=list)
    stop_token_ids: list[int] = field(default_factory=list)
    seed: int | None = None
    logprobs: bool = False
    prompt_logprobs: int | None = None  # score the prompt too, with this many top alternatives per position
    images: Any = None  # float32 numpy (n, 3, S, S): the pixels of the prompt's <|image|> runs (an image-text run)


@dataclass
class Delta:
    text: str = ""
    logprobs: list[float] = field(default_factory=list)
    token_ids: list[int] = field(default_factory=list)  # the tokens the log-probs belong to (when asked for)
    finish_reason: str | None = None  # "stop", "length" or "content_filter" on the last delta
    prompt_tokens: int = 0
    completion_tokens: int = 0  # tokens generated so far (on the last delta: in all), so an early end counts them
    # text generated but held back so far because it could still begin a stop string: a reply cut here (the time
    # limit) ends with it, as a finished one would (a delta comes for every token, so one whose text is all held
    # back is seen to have begun)
    held: str = ""
    # on the last delta of a job with prompt_logprobs: each prompt token's log-prob (None for the first) and the
    # top alternatives (token id -> log-prob) at each position
    prompt_logprobs: list[float | None] | None = None
    prompt_top: list[dict[int, float] | None] | None = None

    def then(self, later: Delta) -> Delta:
        """This delta followed by a later one, as one."""
        return Delta(self.text + later.text, self.logprobs + later.logprobs, self.token_ids + later.token_ids,
                     later.finish_reason, later.prompt_tokens, later.completion_tokens, later.held,
                     later.prompt_logprobs, later.prompt_top)


class GenerationFailed(Exception):
    """One job failed in the worker; the other requests go on. `status` is what its request is answered: 400 for a
    job the engine refuses (its input), 500 for a failure while generating. The message is one short line: a
    device error's C++ frames and other tracebacks stay in the server."""

    def __init__(self, message: str, status: int = 500):
        super().__init__(message)
        self.status = status

    @classmethod
    def of(cls, err: BaseException, status: int = 500) -> GenerationFailed:
        if isinstance(err, GenerationFailed):
            return err
        if status == 400:  # the engine's own check of the job: its message says what is wrong
            return cls(next((line for line in str(err).splitlines() if line.strip()), str(err))[:300], 400)
        return cls(f"generation failed: {short_error(err)}", 500)


def send_to(loop, fn, item) -> None:
    """Run fn(item) on the request's event loop; nothing when that loop has closed (no one is waiting), so the
    worker thread outlives any one caller."""
    try:
        loop.call_soon_threadsafe(fn, item)
    except RuntimeError:
        pass
