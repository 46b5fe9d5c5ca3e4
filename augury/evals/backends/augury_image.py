"""An augury image-text run as an `answer_fn(questions, images) -> answers` for the image tasks (greedy).

    answer_fn, image_size = load_image_answerer("runs/vision-cpu-s0")
"""

from __future__ import annotations

import numpy as np
import torch

from augury.data.images import to_pixels


def load_image_answerer(run_dir: str, device: str = "cpu", max_tokens: int = 8):
    """(answer_fn, image_size) for a run folder; TypeError for a text-only run, ValueError for a bad folder."""
    from augury.model.device import checked_device
    from augury.model.image_prompt import answer
    from augury.model.run import load_run
    from augury.model.vision import ImageTextModel

    device = checked_device(device)
    model, tokenizer, _ = load_run(run_dir, device=device)
    if not isinstance(model, ImageTextModel):
        raise TypeError(f"{run_dir} is a text-only run (it has no image encoder); image tasks need an image-text run")

    def answer_fn(questions: list[str], images: list[np.ndarray]) -> list[str]:
        pixels = torch.from_numpy(np.stack([to_pixels(im) for im in images])).to(device)
        return answer(model, tokenizer, questions, pixels, max_tokens=max_tokens)

    return answer_fn, model.vision_cfg.image_size
