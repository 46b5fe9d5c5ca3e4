"""`augury sample RUN --prompt TEXT`: generate from a trained run (KV cache, temperature, top-p, stop strings).

    augury sample runs/quickstart --prompt "def " --max_tokens 80 --temperature 0.7 --stop "\\n\\n"
    augury sample runs/sft --chat --prompt "What does os.path.join do?"     # one user turn, the assistant's reply
    augury sample runs/vision-cpu --image digit.png --prompt "Which digit is shown?" --temperature 0
    augury sample runs/vision-cpu --image a.png --image b.png --prompt "<|image|> or <|image|>: which is red?"

With `--image` the prompt is one user turn (`<|image|>` marks where each image goes; with one image and no
marker, the image comes first) and the output is the assistant's answer, cut at `--stop` strings; `--chat` is
implied, and `--system` is refused (image-text runs learn from one user turn).
"""

from __future__ import annotations

from augury.command import function_cli
from augury.errors import UsageError


def sample(run: str, prompt: str = "", max_tokens: int = 128, temperature: float = 0.8, top_p: float = 0.95,
           stop: list[str] | None = None, num_samples: int = 1, seed: int | None = 0,
           checkpoint: str | None = None, image: list[str] | None = None, chat: bool = False,
           system: str | None = None) -> list[str]:
    """Sample text from a trained run.

    Args:
        run: the run folder.
        prompt: text to continue.
        max_tokens: most new tokens per sample.
        temperature: softmax temperature; 0 is greedy.
        top_p: nucleus sampling mass in [0, 1] (0 keeps the most likely token alone, 1.0 disables it).
        stop: strings that end a sample (cut from the output); repeat the flag for several. Escapes such as
            \\n are understood.
        num_samples: samples to draw (in parallel).
        seed: random seed (None: nondeterministic).
        checkpoint: a specific checkpoint folder; default: the newest intact one.
        image: an image file (PNG, JPEG, ...) for an image-text run; repeat the flag for several images (the
            prompt is then a user turn: --chat is implied).
        chat: the prompt is a user turn in the chat format; print the assistant's reply (ends at <|end|>). The
            conversation must fit the context with room for one token (the reply then gets what room is left).
        system: with --chat, a system message before the user turn (not with --image).
    """
    from augury.model.generate import SamplingParams
    from augury.model.run import RunLoadError, load_run
    from augury.model.sample import generate

    if max_tokens < 1 or num_samples < 1:
        raise UsageError("max_tokens and num_samples must be >= 1")
    if image and system is not None:  # image-text runs are trained on one user turn, with no system message
        raise UsageError("--system cannot be used with --image: an image question is one user turn")
    if system is not None and not chat and not image:  # a plain continuation has no turns to put it in
        raise UsageError("--system needs --chat: a system message goes before the user turn of a chat prompt")
    try:
        SamplingParams(max_tokens=max_tokens, temperature=temperature, top_p=top_p).validate()
    except ValueError as err:
        raise UsageError(str(err)) from None
    stop = [_unescape(s) for s in (stop or [])]
    try:
        model, tokenizer, _ = load_run(run, checkpoint)
    except RunLoadError as err:
        raise UsageError(str(err)) from None
    if image:
        return _sample_with_images(run, model, tokenizer, prompt, image, max_tokens, temperature, top_p, stop,
                                   num_samples, seed)
    from augury.model.vision import IMAGE_TOKEN_ID, ImageTextModel

    if not chat and isinstance(model, ImageTextModel) and IMAGE_TOKEN_ID in tokenizer.encode(prompt).ids:
        raise UsageError("the prompt holds <|image|>, which stands for an image: give the image with --image FILE")
    if chat:
        return _sample_chat(model, tokenizer, prompt, system, max_tokens, temperature, top_p, stop, num_samples, seed)
    texts = generate(model, tokenizer, prompt, max_tokens=max_tokens, temperature=temperature, top_p=top_p,
                     stop=stop, num_samples=num_samples, seed=seed)
    for i, text in enumerate(texts):
        if num_samples > 1:
            print(f"----- sample {i + 1} -----")
        print(prompt + text)
    return texts


def _unescape(text: str) -> str:
    """A --stop string with its backslash escapes (\\n, \\t, \\u2713) read, and every other character kept as
    typed (the unicode_escape codec alone reads its input as Latin-1 bytes, which garbles non-ASCII text)."""
    try:
        return text.encode("latin-1", "backslashreplace").decode("unicode_escape")
    except UnicodeDecodeError as err:
        raise UsageError(f"--stop {text!r}: a broken backslash escape ({err.reason}); write a backslash as "
                         f"\\\\") from None


def _sample_chat(model, tokenizer, prompt, system, max_tokens, temperature, top_p, stop, num_samples, seed):
    """The assistant's replies to one user turn, sampled together by the batched engine."""
    from augury.data.chat import ChatFormatError, chat_token_ids, render_chat
    from augury.model.generate import SamplingParams, generate

    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
    try:
        ids = render_chat(tokenizer, messages, add_generation_prompt=True).ids
        special = chat_token_ids(tokenizer)
    except ChatFormatError as err:
        raise UsageError(str(err)) from None
    limit = model.cfg.max_seq_len
    if len(ids) > limit - 1:  # cut from the left, it would lose its opening and the user's role token
        raise UsageError(f"the chat prompt is {len(ids)} tokens and the run's context is {limit}: it leaves no room "
                         "for a reply; shorten --prompt" + (" or --system" if system else ""))
    params = [SamplingParams(max_tokens=max_tokens, temperature=temperature, top_p=top_p, stop=stop,
                             stop_token_ids=[special["end"], special["bos"]],
                             seed=None if seed is None else seed + i) for i in range(num_samples)]
    texts = [g.text for g in generate(model, tokenizer, [ids] * num_samples, params)]
    for i, text in enumerate(texts):
        if num_samples > 1:
            print(f"----- sample {i + 1} -----")
        print(text)
    return texts


def _sample_with_images(run, model, tokenizer, prompt, paths, max_tokens, temperature, top_p, stop, num_samples,
                        seed):
    """Answer `prompt` about the images (each image file and the placeholders checked before generating)."""
    import numpy as np
    import torch

    from augury.data.images import ImageError, load_image
    from augury.model.image_prompt import ImagePromptError, answer, question_ids
    from augury.model.vision import ImageTextModel

    if not isinstance(model, ImageTextModel):
        raise UsageError(f"--image given, but {run} is a text-only run (it has no image encoder)")
    size = model.vision_cfg.image_size
    try:
        pixels = torch.from_numpy(np.stack([load_image(p, size) for p in paths]))
        question_ids(model, tokenizer, prompt, len(paths))
    except (ImageError, ImagePromptError) as err:
        raise UsageError(str(err)) from None
    texts = [answer(model, tokenizer, [prompt], pixels, images_per_question=len(paths), max_tokens=max_tokens,
                    temperature=temperature, top_p=top_p, seed=None if seed is None else seed + i, stop=stop)[0]
             for i in range(num_samples)]
    for i, text in enumerate(texts):
        if num_samples > 1:
            print(f"----- sample {i + 1} -----")
        print(text)
    return texts


def main(argv: list[str]) -> int:
    from augury.model.generate import NonFiniteLogits

    try:
        function_cli(sample, argv, prog="augury sample")
    except NonFiniteLogits as err:  # a broken checkpoint: one line, not a traceback from the sampler
        raise UsageError(f"{err}; is the checkpoint broken?") from None
    return 0
