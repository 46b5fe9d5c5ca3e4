"""An augury image-text run as an `answer_fn(questions, images) -> answers` for the image tasks (greedy).

    answer_fn, image_size, check, split_seed = load_image_answerer("runs/vision-cpu-s0")
    check("Which digit is shown?")   # ValueError when the question cannot be asked (markers, context)

`split_seed` is the run's `images.split_seed`: which digit images it trained on and which it held out.
"""

from __future__ import annotations

import numpy as np
import torch

from augury.data.images import to_pixels


def load_image_answerer(run_dir: str, device: str = "cpu", max_tokens: int = 8):
    """(answer_fn, image_size, check, split_seed) for a run folder, where check(question) raises ValueError for a
    question the model cannot be asked about one image and split_seed is the run's `images.split_seed` (0 when
    its config has none); TypeError for a text-only run, ValueError for a bad folder or option."""
    from augury.model.device import checked_device
    from augury.model.image_prompt import answer, question_ids
    from augury.model.run import load_run, run_config_section
    from augury.model.vision import ImageTextModel

    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise ValueError(f"--model_args max_tokens must be a whole number >= 1, got {max_tokens!r}")
    device = checked_device(device)
    model, tokenizer, _ = load_run(run_dir, device=device)
    if not isinstance(model, ImageTextModel):
        raise TypeError(f"{run_dir} is a text-only run (it has no image encoder); image tasks need an image-text run")

    def answer_fn(questions: list[str], images: list[np.ndarray]) -> list[str]:
        pixels = torch.from_numpy(np.stack([to_pixels(im) for im in images])).to(device)
        return answer(model, tokenizer, questions, pixels, max_tokens=max_tokens)

    def check(question: str) -> None:
        question_ids(model, tokenizer, question, 1)

    # the digits a run held out depend on its split; another split's "held-out" digits are mostly training images
    split_seed = (run_config_section(run_dir, "images") or {}).get("split_seed", 0)
    return answer_fn, model.vision_cfg.image_size, check, split_seed
