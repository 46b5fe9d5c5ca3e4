"""Token sequences with images inside a chat turn, and answering image questions with an `ImageTextModel`.

A question about images is one user turn, then the assistant's answer:

    <|user|> [<|image|> × tokens_per_image per image] question <|end|> <|assistant|> answer <|end|>

In text, `<|image|>` marks where an image goes (any number, anywhere in the turn); with no marker, a single image
goes first. Whitespace touching a marker is dropped, so "<|image|> question" is the prompt training uses. Each
marker becomes `tokens_per_image` placeholder ids. Training puts the loss on the answer and its closing `<|end|>`
only.

    ids = chat_ids(tokenizer, "Which digit is shown?", n_images=1, tokens_per_image=64)
    texts = answer(model, tokenizer, ["Which digit is shown?"], pixels)   # greedy, one image per question
    question_ids(model, tokenizer, question, n_images)    # the prompt, or ImagePromptError: markers, context
    turn_ids(tokenizer, ["", "Which digit is shown?"], tokens_per_image=64)   # the texts around the images
"""

from __future__ import annotations

import torch

from augury.model.vision import IMAGE_TOKEN_ID, ImageTextModel

IMAGE_MARK = "<|image|>"
USER, ASSISTANT, END, PAD = "<|user|>", "<|assistant|>", "<|end|>", "<|pad|>"


class ImagePromptError(ValueError):
    """Images and placeholders that do not match, or an image given to a model that cannot read images."""


def _special(tokenizer, name: str) -> int:
    i = tokenizer.token_to_id(name)
    if i is None:
        raise ImagePromptError(f"the tokenizer has no {name} token")
    return i


def _text_ids(tokenizer, text: str) -> list[int]:
    if not text:
        return []
    previous = tokenizer.encode_special_tokens
    tokenizer.encode_special_tokens = True  # text never produces special ids; they are placed by id only
    try:
        return tokenizer.encode(text, add_special_tokens=False).ids
    finally:
        tokenizer.encode_special_tokens = previous


def chat_ids(tokenizer, question: str, n_images: int, tokens_per_image: int,
             answer: str | None = None) -> tuple[list[int], int]:
    """(ids, answer_start): the user turn with its images, the assistant tag, and the answer + <|end|> if given.

    Raises ImagePromptError when the question's `<|image|>` markers and `n_images` disagree.
    """
    pieces = question.split(IMAGE_MARK)
    marks = len(pieces) - 1
    if marks == 0 and n_images == 1:
        pieces, marks = ["", question], 1
    if marks != n_images:
        raise ImagePromptError(f"the prompt has {marks} {IMAGE_MARK} placeholder(s) but {n_images} image(s) were "
                               "given; use one placeholder per image (or none with a single image)")
    return turn_ids(tokenizer, pieces, tokens_per_image, answer)


def turn_ids(tokenizer, pieces: list[str], tokens_per_image: int,
             answer: str | None = None) -> tuple[list[int], int]:
    """`chat_ids` of a turn given as the texts around its images: `pieces[0]`, image 1, `pieces[1]`, ..., image n,
    `pieces[n]` (what a chat request's content parts give). A piece's text is text, `<|image|>` spelled in it too."""
    marks = len(pieces) - 1
    # whitespace touching a marker is layout, not text: "<|image|> Which digit?" is the prompt training used
    # ("Which digit?" after the image), not " Which" as another token
    pieces = [p.lstrip() if i else p for i, p in enumerate(pieces)]
    pieces = [p.rstrip() if i < marks else p for i, p in enumerate(pieces)]
    ids = [_special(tokenizer, USER)]
    for i, piece in enumerate(pieces):
        if i:
            ids += [IMAGE_TOKEN_ID] * tokens_per_image
        ids += _text_ids(tokenizer, piece)
    ids += [_special(tokenizer, END), _special(tokenizer, ASSISTANT)]
    start = len(ids)
    if answer is not None:
        ids += _text_ids(tokenizer, answer) + [_special(tokenizer, END)]
    return ids, start


def question_ids(model: ImageTextModel, tokenizer, question: str | list[str], n_images: int) -> list[int]:
    """The prompt ids of a question about `n_images` images (a text with `<|image|>` markers, or the texts around
    the images as `turn_ids` takes them); ImagePromptError when its markers and images disagree or when it leaves
    the model's context no room for an answer."""
    per = model.vision_cfg.tokens_per_image
    if isinstance(question, str):
        ids, _ = chat_ids(tokenizer, question, n_images, per)
    elif len(question) - 1 != n_images:
        raise ImagePromptError(f"{len(question)} text pieces cannot surround {n_images} image(s)")
    else:
        ids, _ = turn_ids(tokenizer, question, per)
    limit = model.cfg.max_seq_len
    if len(ids) > limit - 1:
        fit = max(0, (limit - 1 - (len(ids) - n_images * per)) // per)
        raise ImagePromptError(f"the question with its {n_images} image(s) is {len(ids)} tokens ({per} per image), "
                               f"and the model's context is {limit}: it leaves no room for an answer (with this "
                               f"text, at most {fit} image(s) fit); shorten it")
    return ids


def collate(rows: list[tuple[list[int], int]], pad_id: int, train: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Right-padded (B, T) inputs and next-token targets (answer tokens only, -1 elsewhere) for training, or
    left-padded prompts for decoding (every row's last position is its last prompt token)."""
    width = max(len(ids) for ids, _ in rows) - (1 if train else 0)
    x = torch.full((len(rows), width), pad_id, dtype=torch.long)
    if not train:
        for r, (ids, _) in enumerate(rows):
            x[r, width - len(ids):] = torch.tensor(ids)
        return x, None
    y = torch.full((len(rows), width), -1, dtype=torch.long)
    for r, (ids, start) in enumerate(rows):
        t = torch.tensor(ids)
        x[r, :len(ids) - 1] = t[:-1]
        y[r, start - 1:len(ids) - 1] = t[start:]
    return x, y


@torch.no_grad()
def answer(model: ImageTextModel, tokenizer, questions: list[str], pixels: torch.Tensor, images_per_question=1,
           max_tokens: int = 8, temperature: float = 0.0, top_p: float = 1.0, seed: int | None = None,
           stop: list[str] | None = None) -> list[str]:
    """Answer each question about its image(s) (pixels: images in question order); text up to <|end|> or the first
    of the `stop` strings.

    The questions are decoded together by the batched generation engine (augury.model.generate): each is
    left-padded with its own positions and a key mask, so an answer does not depend on the batch it is in.
    """
    from augury.model.generate import SamplingParams, generate

    if not isinstance(model, ImageTextModel):
        raise ImagePromptError("this model has no image encoder (a text-only run); train one with a `vision` "
                               "section (docs/vision.md)")
    prompts = [question_ids(model, tokenizer, q, images_per_question) for q in questions]
    if pixels.shape[0] != len(questions) * images_per_question:
        raise ImagePromptError(f"{pixels.shape[0]} images for {len(questions)} questions of "
                               f"{images_per_question} image(s) each")
    params = SamplingParams(max_tokens=max_tokens, temperature=temperature, top_p=top_p, seed=seed,
                            stop=[s for s in (stop or []) if s], stop_token_ids=[_special(tokenizer, END), 0])
    outs = generate(model, tokenizer, prompts, params, images=list(pixels.split(images_per_question)))
    return [g.text.strip() for g in outs]
