"""Images in /v1/chat/completions: an image-text run answers a question whose image parts hold data: URLs.

    question = await image_question(backend, req, cfg, ticket)   # prompt ids, None, or a 400/413 naming the part
    prompt = await chat_prompt(backend, req, question)   # its ids, or the messages through the chat template
    check_prompts(backend, [prompt], question)   # a 400 for a prompt the model cannot read
    pixels = await decoded(question, ticket)   # once the request is admitted (its costly part)

The question is what `augury sample --image` makes of the same text and images (`augury.model.image_prompt`): one
user turn; a single image goes before the text (as training places it) whichever part comes first, several each
stand where a `<|image|>` marker would; so the same image, text and seed give the same answer. Only `data:` URLs
are read (base64 of a PNG, JPEG, GIF or WebP file, as OpenAI's API takes): a server that fetched an http(s) URL
would make requests from inside its network on any client's say (SSRF). An image over `--max_image_bytes` (from
the base64's length, before decoding) or over `augury.data.images.MAX_PIXELS` pixels (from its header) is a 413;
one that cannot be read is a 400. The images decode through `augury.data.images.decode_image`, as image files do
for training and sampling. A model that reads no images (a text-only run, a Hugging Face folder, an upstream in
gateway mode) answers each image part with a 400 saying why.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import re
from dataclasses import dataclass, field

from augury.serve.gate import Refused, Ticket
from augury.serve.schema import ChatRequest, ImagePart, RequestInvalid

# what Pillow may read a client's file as: the formats OpenAI's API takes. Pillow reads dozens more, and some run
# other programs on the file's content (an EPS file is PostScript that Ghostscript interprets), which no client's
# upload should reach
FORMATS = ("PNG", "JPEG", "GIF", "WEBP")

_DATA_URL = re.compile(r"data:(?P<media>[^,;]*)(?P<params>(?:;[^,;]*)*?);base64,", re.IGNORECASE)


@dataclass
class ImageQuestion:
    """The prompt of a question about images, and the images' file bytes (decoded to pixels by `pixels`)."""

    ids: list[int]
    files: list[tuple[str, bytes]]  # (where, the image file's bytes)
    image_size: int
    sizes: list[int] = field(default_factory=list)

    def pixels(self):
        """float32 (n, 3, S, S) in [0, 1]; RequestInvalid (400) or Refused (413) naming the image at fault."""
        import numpy as np

        from augury.data.images import ImageError, ImageTooLarge, decode_image

        out = []
        for where, data in self.files:
            try:
                out.append(decode_image(data, self.image_size, name="data", formats=FORMATS))
            except ImageTooLarge as err:
                raise Refused(413, f"{where}: {err}") from None
            except ImageError as err:
                raise RequestInvalid(f"{where}: {err}") from None
        return np.stack(out)


def image_bytes(url: str) -> int:
    """The size in bytes of the file a data: URL holds (from the base64's length without its whitespace, nothing
    decoded); 0 for any other URL. What the request log records of an image."""
    url = url.strip()
    head = _DATA_URL.match(url)
    if head is None:
        return 0
    data = url[head.end():]
    # whitespace is not data (base64 wrapped in lines, as the base64 command writes it, decodes the same)
    chars = len(data) - sum(data.count(c) for c in " \t\r\n\f\v")
    return max(0, chars * 3 // 4 - (len(data) - len(data.rstrip("="))))


def unreadable_reason(backend) -> str | None:
    """Why the served model reads no images, or None when it does."""
    kind = getattr(backend, "kind", "")
    if kind == "upstream":
        return ("images are not forwarded in gateway mode: its moderation reads text only, and an upstream could "
                "fetch an image URL")
    if kind == "hf":
        return "this server's model (a Hugging Face folder, served as text) reads no images"
    if backend.image_size is None:
        return ("this run has no image encoder (a text-only run) and reads no images; an image-text run does "
                "(docs/vision.md)")
    return None


async def image_question(backend, req: ChatRequest, cfg, ticket: Ticket) -> ImageQuestion | None:
    """The prompt of a chat request with image parts, None for one without (checked in order: the model, the
    conversation, each URL and its size, each file's header, the context), no image decoded yet. The ticket (the
    log's row) records how many image parts the request holds and their files' size, whatever the outcome."""
    from augury.model.image_prompt import ImagePromptError, question_ids

    found = req.images()
    ticket.images, ticket.image_bytes = len(found), sum(image_bytes(part.url) for _, part in found)
    if not found:
        return None
    why = unreadable_reason(backend)
    if why is not None:
        raise RequestInvalid(f"{found[0][0]}: {why}")
    if [m.role for m in req.messages] != ["user"]:
        raise RequestInvalid("messages: a question about images is one user message, with no system message or "
                             "earlier turns (image-text runs learn from one user turn, as augury sample --image "
                             "asks; docs/vision.md)")
    files = [(where, _file_bytes(where, part, cfg.max_image_bytes)) for where, part in found]
    # data in no image format, or a header over MAX_PIXELS, is refused here, before the request is admitted, as
    # any other bad input is: only a file damaged past its header is found once admitted (see `decoded`)
    await asyncio.to_thread(_check_headers, files)
    if len(files) == 1:
        # one image goes before the text wherever its part stands, as training and augury sample (one image, no
        # marker) place it: OpenAI's own examples send the text part first, an order the model never learnt
        pieces = ["", req.messages[0].text()]
    else:  # several images keep their places, as <|image|> markers do
        pieces = [""]  # the texts around the images
        for piece in req.messages[0].pieces():
            if isinstance(piece, ImagePart):
                pieces.append("")
            else:
                pieces[-1] += piece
    model, tok = backend.model.model, backend.tokenizer.tok
    try:
        # in the tokenizing thread: encoding switches a flag on the shared tokenizer
        ids = await backend.off_loop(question_ids, model, tok, pieces, len(files))
    except ImagePromptError as err:
        raise RequestInvalid(f"messages.0: {err}") from None
    return ImageQuestion(ids, files, backend.image_size, [len(data) for _, data in files])


async def chat_prompt(backend, req: ChatRequest, question: ImageQuestion | None) -> list[int]:
    """A chat request's prompt ids for a local model: its question about images, or else its messages through the
    model's chat template (a 400 for a model that has none)."""
    if question is not None:
        return question.ids
    try:
        return await backend.off_loop(backend.chat_prompt, [m.as_dict() for m in req.messages])
    except (ValueError, ImportError) as err:
        raise RequestInvalid(str(err)) from None


def check_prompts(backend, prompts: list[list[int]], images: ImageQuestion | None) -> None:
    """RequestInvalid (400) for a prompt the model cannot read: one that leaves its context no room for a new
    token, or one whose `<|image|>` ids the request's images do not fill (only image parts place them)."""
    longest = max(len(p) for p in prompts)
    if longest >= backend.max_context:
        raise RequestInvalid(f"prompt: {longest} tokens, and this model's context is {backend.max_context} (the "
                             f"prompt and at least one new token must fit)")
    try:
        for p in prompts:
            backend.check_prompt(p, len(images.files) if images is not None else 0)
    except ValueError as err:
        raise RequestInvalid(f"prompt: {err}") from None


async def decoded(question: ImageQuestion | None, ticket: Ticket):
    """The question's images as pixels, decoded once the request is admitted (its costly part). An image that does
    not decode is bad input found late: the request is given back to its key's limits and uses no tokens, as a
    request refused before admission (`Ticket.bad_input`)."""
    if question is None:
        return None
    try:
        return await asyncio.to_thread(question.pixels)
    except (RequestInvalid, Refused):
        ticket.bad_input, ticket.prompt_tokens = True, 0
        raise


def _check_headers(files: list[tuple[str, bytes]]) -> None:
    from augury.data.images import ImageError, ImageTooLarge, image_dimensions

    for where, data in files:
        try:
            image_dimensions(data, name="data", formats=FORMATS)
        except ImageTooLarge as err:
            raise Refused(413, f"{where}: {err}") from None
        except ImageError as err:
            raise RequestInvalid(f"{where}: {err}") from None


def _file_bytes(where: str, part: ImagePart, limit: int) -> bytes:
    url = part.url.strip()
    if url.lower().startswith(("http://", "https://")):
        raise RequestInvalid(f"{where}: this server does not fetch image URLs (it would make requests on a "
                             "client's say); send the image itself as a data: URL, data:image/png;base64,...")
    head = _DATA_URL.match(url)
    if head is None:
        raise RequestInvalid(f"{where}: an image URL must be a data: URL holding the image in base64, "
                             "data:image/png;base64,...")
    size = image_bytes(url)
    if size > limit:
        raise Refused(413, f"{where}: the image is {size:,} bytes, over this server's limit of {limit} "
                           "(--max_image_bytes)")
    try:
        data = base64.b64decode("".join(url[head.end():].split()), validate=True)
    except (binascii.Error, ValueError):
        raise RequestInvalid(f"{where}: the data: URL's image is not valid base64") from None
    if not data:
        raise RequestInvalid(f"{where}: the data: URL holds no image")
    return data
