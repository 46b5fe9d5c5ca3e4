"""Request bodies of the OpenAI API that the server accepts, validated before any work starts.

Unknown fields are ignored (clients send many), an optional one sent as null has its default; known ones are
checked against their ranges and the server's limits, and a violation is one 400 answer naming the field.

    req = parse_request(ChatRequest, body, cfg)   # RequestInvalid("messages: ...") becomes the 400 answer

`augury serve` (augury/serve/app.py) parses every /v1/chat/completions and /v1/completions body with it, and a
/v1/moderations input with `moderation_texts`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator


class RequestInvalid(ValueError):
    pass


# OpenAI's API takes up to 4 stop strings and documents no length for one; a long one is bounded here because a
# reply that could still be turning into it is held back (streamed late) by up to its length, and no real use needs
# a stop string of more than a line or two
MAX_STOPS = 4
MAX_STOP_CHARS = 1000


IMAGE_PART_SHAPE = '{"type": "image_url", "image_url": {"url": "data:image/png;base64,..."}}'


@dataclass(frozen=True)
class ImagePart:
    """An image content part: its URL (a data: URL holds the image itself) and where it is (`content.J`)."""

    url: str
    where: str


class Message(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "developer", "user", "assistant"]  # developer: OpenAI's newer name for system
    content: str | list[dict]

    def pieces(self) -> list[str | ImagePart]:
        """The content in order: text parts as strings, image parts as ImagePart; RequestInvalid for any other
        part (its message never quotes the part, which may be an image's data)."""
        if isinstance(self.content, str):
            return [self.content]
        out: list[str | ImagePart] = []
        for j, part in enumerate(self.content):
            kind = part.get("type")
            if kind == "text" and isinstance(part.get("text"), str):
                out.append(part["text"])
            elif kind == "image_url":
                ref = part.get("image_url")
                url = ref.get("url") if isinstance(ref, dict) else None
                if not isinstance(url, str):
                    raise RequestInvalid(f"content.{j}: an image part is {IMAGE_PART_SHAPE}")
                out.append(ImagePart(url, f"content.{j}"))
            elif kind == "input_image":
                raise RequestInvalid(f"content.{j}: 'input_image' is the Responses API's image part; "
                                     f"/v1/chat/completions takes an image as {IMAGE_PART_SHAPE}")
            else:
                raise RequestInvalid(f"content.{j}: only text and image content parts are supported, each "
                                     f"{TEXT_PART_SHAPE} or {IMAGE_PART_SHAPE}")
        return out

    def text(self) -> str:
        """The text parts, joined (image parts are not text)."""
        return "".join(p for p in self.pieces() if isinstance(p, str))

    def as_dict(self) -> dict:
        return {"role": "system" if self.role == "developer" else self.role, "content": self.text()}


TEXT_PART_SHAPE = '{"type": "text", "text": "..."}'


def moderation_texts(value) -> list[str]:
    """The texts of a /v1/moderations `input`, a result each, in any of OpenAI's forms: a string, a list of strings,
    or a list of text and image parts (one input, so one text: its text parts read together, as a chat message's
    are). Images are not read (the policy's rules and grader read text), so an input of images only is refused."""
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not value:
        raise RequestInvalid("input: a string, a non-empty list of strings, or a non-empty list of text and image "
                             "parts")
    if all(isinstance(v, str) for v in value):
        return list(value)
    texts = []
    for j, part in enumerate(value):
        kind = part.get("type") if isinstance(part, dict) else None
        ref = part.get("image_url") if kind == "image_url" else None
        if kind == "text" and isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif not (isinstance(ref, dict) and isinstance(ref.get("url"), str)):
            raise RequestInvalid(f"input.{j}: in a list of parts each is {TEXT_PART_SHAPE} or {IMAGE_PART_SHAPE}")
    if not texts:
        raise RequestInvalid("input: this server's moderation reads text only, so images without text cannot be "
                             "moderated")
    return ["".join(texts)]


class _NullIsDefault(BaseModel):
    """A body whose optional fields may be null, meaning their default, as OpenAI's API documents them ("number or
    null"): clients that send every field send null for the ones not set."""

    model_config = ConfigDict(extra="ignore")

    @model_validator(mode="before")
    @classmethod
    def _drop_nulls(cls, data):
        if not isinstance(data, dict):
            return data
        optional = {name for name, f in cls.model_fields.items() if not f.is_required()}
        return {k: v for k, v in data.items() if not (v is None and k in optional)}


class StreamOptions(_NullIsDefault):
    include_usage: bool = False


class _Common(_NullIsDefault):
    model: str | None = None
    max_tokens: int | None = Field(default=None, ge=0)
    temperature: float = Field(default=1.0, ge=0.0, le=2.0)
    top_p: float = Field(default=1.0, ge=0.0, le=1.0)  # OpenAI's range; 0 keeps the most likely token alone
    n: int = Field(default=1, ge=1)
    stop: str | list[str] | None = None
    seed: int | None = Field(default=None, ge=0, lt=2**63)
    stream: bool = False
    stream_options: StreamOptions | None = None

    def stop_list(self) -> list[str]:
        if self.stop is None:
            return []
        return [self.stop] if isinstance(self.stop, str) else list(self.stop)

    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)


class ChatRequest(_Common):
    messages: list[Message] = Field(min_length=1)
    max_completion_tokens: int | None = Field(default=None, ge=0)
    logprobs: bool = False  # each generated token's log-prob (choices[].logprobs.content)
    top_logprobs: int | None = Field(default=None, ge=0, le=20)


    def images(self) -> list[tuple[str, ImagePart]]:
        """(where, part) of every image part, in order; where is `messages.I.content.J`."""
        return [(f"messages.{i}.{p.where}", p) for i, m in enumerate(self.messages) for p in m.pieces()
                if isinstance(p, ImagePart)]


class CompletionRequest(_Common):
    # a string, a list of strings, a list of token ids, or a list of token-id lists (as lm-eval sends)
    prompt: str | list[str] | list[int] | list[list[int]]
    echo: bool = False
    logprobs: int | None = Field(default=None, ge=0, le=20)
    best_of: int | None = Field(default=None, ge=1)  # completions made per prompt, of which the n best are returned

    def made(self) -> int:
        """Completions generated for each prompt (best_of, when given, else n)."""
        return self.best_of if self.best_of is not None else self.n

    def prompts(self) -> list[str | list[int]]:
        """Each prompt: text, or token ids."""
        p = self.prompt
        if isinstance(p, str):
            return [p]
        if p and all(isinstance(x, int) for x in p):
            return [list(p)]
        return list(p)


def parse_request(model: type[_Common], body: dict, cfg) -> _Common:
    try:
        req = model.model_validate(body)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise RequestInvalid(f"{where}: {first['msg']}") from None
    if isinstance(req, ChatRequest) and req.max_completion_tokens is not None:
        # both are limits on the reply (an upstream may read either): each must be within the server's limit, and
        # the smaller applies
        if req.max_completion_tokens > cfg.max_tokens_limit:
            raise RequestInvalid(f"max_completion_tokens: {req.max_completion_tokens} is over this server's limit "
                                 f"of {cfg.max_tokens_limit}")
        req.max_tokens = min(req.max_tokens if req.max_tokens is not None else req.max_completion_tokens,
                             req.max_completion_tokens)
    if req.max_tokens is None:  # OpenAI's defaults: 16 for a completion; a chat reply runs on (here to 256)
        req.max_tokens = min(16 if isinstance(req, CompletionRequest) else 256, cfg.max_tokens_limit)
    if req.max_tokens > cfg.max_tokens_limit:
        raise RequestInvalid(f"max_tokens: {req.max_tokens} is over this server's limit of {cfg.max_tokens_limit}")
    if req.n > cfg.max_n:
        raise RequestInvalid(f"n: {req.n} is over this server's limit of {cfg.max_n}")
    if len(req.stop_list()) > MAX_STOPS or any(not s for s in req.stop_list()):
        raise RequestInvalid(f"stop: at most {MAX_STOPS} non-empty strings")
    if any(len(s) > MAX_STOP_CHARS for s in req.stop_list()):
        longest = max(len(s) for s in req.stop_list())
        raise RequestInvalid(f"stop: a stop string of {longest} characters is over the limit of {MAX_STOP_CHARS} "
                             "characters")
    if req.max_tokens == 0 and not (isinstance(req, CompletionRequest) and req.echo):
        raise RequestInvalid("max_tokens: must be >= 1 (0 is allowed only with echo)")
    if isinstance(req, ChatRequest):
        for i, m in enumerate(req.messages):
            try:
                m.text()
            except RequestInvalid as err:
                raise RequestInvalid(f"messages.{i}.{err}") from None
    if isinstance(req, CompletionRequest):
        prompts = req.prompts()
        if not prompts:
            raise RequestInvalid("prompt: must not be an empty list")
        if req.best_of is not None and req.best_of < req.n:
            raise RequestInvalid(f"best_of: {req.best_of} is below n={req.n} (it is how many completions are made, "
                                 "of which n are returned)")
        if req.best_of is not None and req.best_of > cfg.max_n:
            raise RequestInvalid(f"best_of: {req.best_of} is over this server's limit of {cfg.max_n}")
        if len(prompts) * req.made() > cfg.max_n:
            made = f"best_of={req.best_of}" if req.best_of is not None else f"n={req.n}"
            raise RequestInvalid(f"prompt: {len(prompts)} prompts x {made} is over this server's limit of "
                                 f"{cfg.max_n} choices per request")
        if any(isinstance(q, list) and (not q or min(q) < 0) for q in prompts):
            raise RequestInvalid("prompt: a token-id prompt must be a non-empty list of ids >= 0")
    return req
