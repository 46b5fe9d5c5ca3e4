"""Image-question data made offline, deterministic by seed, and image files read with one clear error each.

Three tasks, each a list of `ImageExample` (an RGB image, a question, its answer, the question's template):

- `digits`: scikit-learn's bundled 8×8 handwritten digits, scaled up — "Which digit is shown?" (chance 1/10).
  Train and held-out are disjoint images (a permutation fixed by `split_seed`).
- `charts`: bar and line charts of four values drawn with matplotlib, bars/points A–D from left to right, with
  FigureQA-style questions: "Is A the maximum?" and "Is A greater than B?" (yes/no, balanced, chance 1/2) and
  "Which is largest?" (chance 1/4). Train and held-out charts use disjoint colour palettes.
- `words`: a short word drawn with Pillow in one of several fonts (matplotlib's DejaVu TTFs, Pillow's bundled
  default font), sizes, colours and positions — "What word is written?" (chance 1/len(WORDS)).

Train and held-out examples come from different random streams (`seed` for train, `seed + 1_000_003` for
held-out), so no held-out image is a training image.

    examples = make_examples("charts", "heldout", n=200, seed=0, image_size=32)
    pixels = load_image("photo.png", image_size=32)    # float32 (3, 32, 32) in [0, 1], or ImageError
    pixels = decode_image(png_bytes, image_size=32)    # the same from a file's bytes (augury serve's data: URLs)
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import io
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

TASKS = ("digits", "charts", "words")
WORDS = ("cat", "dog", "sun", "map", "red", "box", "cup", "hat", "pen", "key", "bus", "egg", "fox", "ice", "jam",
         "leg", "owl", "pig", "sky", "toy")
LETTERS = "ABCD"
TRAIN_PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#7f7f7f")
HELDOUT_PALETTE = ("#ff7f0e", "#8c564b", "#e377c2", "#17becf")
MAX_PIXELS = 4096 * 4096  # larger files are refused before they are decoded
HELDOUT_OFFSET = 1_000_003


class ImageError(ValueError):
    """An image file that cannot be used (unreadable, truncated, too large)."""


class ImageTooLarge(ImageError):
    """An image of more than MAX_PIXELS pixels (known from its header, before it is decoded)."""


@dataclass
class ImageDataConfig:
    """The image-question training mix of an image-text run.

    Args:
        tasks: which data sets to train on (any of digits, charts, words).
        train_examples: training examples made per task.
        task_examples: per-task overrides of train_examples, e.g. {words: 20000} (words are cheap to draw and
            need more variety than digits).
        task_weights: each task's share of the training batches, e.g. {digits: 1, charts: 1, words: 1} for
            equal shares whatever the example counts (normalised; every task named); empty: in proportion to
            the examples made.
        label_loss: weight of an auxiliary loss beside the answers' (0 = none): a linear head on the encoder's
            patch features, averaged over the image, predicts each training image's label (the digit, the word,
            the order of the bars, largest first), a direct signal to the encoder before the decoder has learnt
            to read it.
        heldout_examples: held-out examples per task, scored (real, blank and shuffled images) when the run ends
            (digits: at most the 360 held-out images, each once).
        seed: the random stream examples are drawn from (held-out examples use a different stream).
        split_seed: the permutation that splits scikit-learn's digit images into train and held-out.
        vocab_size: BPE vocabulary trained on the questions and answers when the decoder starts from scratch.
    """

    tasks: list[str] = field(default_factory=lambda: list(TASKS))
    train_examples: int = 4000
    task_examples: dict[str, int] = field(default_factory=dict)
    task_weights: dict[str, float] = field(default_factory=dict)
    label_loss: float = 0.0
    heldout_examples: int = 300
    seed: int = 0
    split_seed: int = 0
    vocab_size: int = 320

    def validate(self) -> None:
        unknown = [t for t in self.tasks if t not in TASKS]
        if not self.tasks or unknown:
            raise ValueError(f"images.tasks must be a non-empty subset of {list(TASKS)}, got {self.tasks}")
        if self.train_examples < 1 or self.heldout_examples < 1:
            raise ValueError("images.train_examples and images.heldout_examples must be >= 1")
        odd = {t: n for t, n in self.task_examples.items() if t not in self.tasks or n < 1}
        if odd:
            raise ValueError(f"images.task_examples must name tasks of images.tasks with counts >= 1, got {odd}")
        if self.label_loss < 0:
            raise ValueError(f"images.label_loss must be >= 0, got {self.label_loss}")
        if self.task_weights and (set(self.task_weights) != set(self.tasks)
                                  or not all(w > 0 for w in self.task_weights.values())):
            raise ValueError(f"images.task_weights must give every task of {self.tasks} a weight > 0, "
                             f"got {self.task_weights}")

    def examples_for(self, task: str) -> int:
        """Training examples made for `task`."""
        return self.task_examples.get(task, self.train_examples)


@dataclass
class ImageExample:
    """One image with a question about it; `image` is uint8 (S, S, 3)."""

    task: str
    template: str
    question: str
    answer: str
    image: np.ndarray = dataclasses.field(repr=False)
    chance: float = 0.0  # accuracy of guessing uniformly among this template's answers
    label: str = ""  # what the image shows whatever the question (the digit, the word, the bars' order)


# ---- reading image files -------------------------------------------------------------------------------------
def load_image(path: str | Path, image_size: int) -> np.ndarray:
    """An image file as float32 (3, image_size, image_size) in [0, 1] (turned upright by its EXIF orientation,
    converted to RGB, then resized), or one ImageError."""
    path = Path(path)
    if path.is_dir():
        raise ImageError(f"image {str(path)!r} is a folder, not an image file")
    if not path.is_file():
        raise ImageError(f"image {str(path)!r} does not exist")
    return _read(path, str(path), image_size)


def decode_image(data: bytes, image_size: int, name: str = "data",
                 formats: tuple[str, ...] | None = None) -> np.ndarray:
    """The bytes of an image file (PNG, JPEG, GIF, WebP, ...: what Pillow reads, or only Pillow's `formats` when
    given), read as `load_image` reads a file; errors name the image `name` and never quote its data."""
    return _read(io.BytesIO(data), name, image_size, formats)


def image_dimensions(data: bytes, name: str = "data", formats: tuple[str, ...] | None = None) -> tuple[int, int]:
    """(width, height) of an image file's bytes, from its header, nothing decoded: the errors `decode_image` gives
    for data in no image format and for a file over MAX_PIXELS, at the cost of reading a header (augury serve
    checks them before a request is admitted; a file damaged further on is found only by decoding it)."""
    with _opened(io.BytesIO(data), name, formats) as img:
        return img.size


def _read(source, name: str, image_size: int, formats: tuple[str, ...] | None = None) -> np.ndarray:
    from PIL import Image

    with _opened(source, name, formats) as img:
        img.load()
        rgb = _rgb(_upright(img)).resize((image_size, image_size), Image.Resampling.BILINEAR)
    return to_pixels(np.asarray(rgb, dtype=np.uint8))


@contextlib.contextmanager
def _opened(source, name: str, formats: tuple[str, ...] | None = None):
    """The image of `source`, opened (its header read; by one of Pillow's `formats` when given) and within
    MAX_PIXELS; any error inside, as one ImageError."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            # Pillow warns of a possible decompression bomb above 89M pixels on opening; MAX_PIXELS, far lower,
            # refuses such a file below with one error, so the warning would only print beside that error
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(source, formats=formats)
        with img:
            w, h = img.size
            if w * h > MAX_PIXELS:  # read from the header: nothing is decoded yet
                raise ImageTooLarge(f"image {name} is {w}x{h} pixels, more than the {MAX_PIXELS:,} accepted; "
                                    "downscale it first")
            yield img
    except ImageError:
        raise
    except Image.DecompressionBombError:  # Pillow refuses to open above 179M pixels, before our own check
        raise ImageTooLarge(f"image {name} has more than the {MAX_PIXELS:,} pixels accepted; "
                            "downscale it first") from None
    except UnidentifiedImageError:
        if formats:
            raise ImageError(f"image {name} cannot be read: it is not {', '.join(formats[:-1])} or {formats[-1]} "
                             "(the formats accepted)") from None
        raise ImageError(f"image {name} cannot be read: it is in no image format Pillow reads") from None
    except (OSError, SyntaxError, ValueError) as err:  # truncated or corrupt data
        raise ImageError(f"image {name} is damaged or truncated: {err}") from None


def _upright(img):
    """The pixels as the photo is shown: turned by its EXIF orientation flag, as transformers' load_image does
    (through ImageOps.exif_transpose, whose mapping this is). That function also writes the EXIF back without the
    flag, which raises (struct.error) for a tag stored with another type than the standard's; and EXIF that does
    not parse is metadata, not pixels. So the flag is read here, and an image whose EXIF cannot be read is used as
    stored rather than refused."""
    from PIL import ExifTags, Image

    try:
        orientation = img.getexif().get(ExifTags.Base.Orientation, 1)
    except Exception:  # noqa: BLE001 - Pillow's EXIF parser raises SyntaxError, struct.error, KeyError, ...
        orientation = 1
    turn = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
            5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
            8: Image.Transpose.ROTATE_90}.get(orientation)
    return img if turn is None else img.transpose(turn)


def _rgb(img):
    """The image as the RGB picture it shows. Transparency (RGBA, LA, PA, a palette's or a colour key's transparent
    entry) is shown over white, as a viewer on a white page shows it, not as the colour stored under a transparent
    pixel; 16-bit greyscale is scaled to 8 bits (Pillow's own conversion clips it, turning most of it white); any
    other mode (L, 1, P, CMYK, YCbCr, ...) through Pillow's conversion."""
    from PIL import Image

    if img.mode == "RGB" and "transparency" not in img.info:
        return img
    if img.mode.startswith("I;16"):
        wide = np.asarray(img).astype(np.uint32)
        img = Image.fromarray(((wide * 255 + 32767) // 65535).astype(np.uint8))  # round(v * 255 / 65535), mode L
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info:
        white = Image.new("RGBA", img.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, img.convert("RGBA")).convert("RGB")
    return img.convert("RGB")


def to_pixels(image: np.ndarray) -> np.ndarray:
    """uint8 (S, S, 3) -> float32 (3, S, S) in [0, 1], the encoder's input."""
    return np.ascontiguousarray(image.transpose(2, 0, 1), dtype=np.float32) / 255.0


# ---- digits ----------------------------------------------------------------------------------------------------
def _digits(split: str, n: int, rng: np.random.Generator, size: int, split_seed: int) -> list[ImageExample]:
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    order = np.random.default_rng(split_seed).permutation(len(digits.target))
    cut = int(0.8 * len(order))
    pool = order[:cut] if split == "train" else order[cut:]
    if split == "heldout":  # each held-out image once: a repeat would count one answer twice, narrowing the interval
        n = min(n, len(pool))
    out = []
    for i in rng.choice(pool, size=n, replace=n > len(pool)):
        ink = (digits.images[i] / 16.0 * 255).astype(np.uint8)
        # the whole 8×8 digit, each cell a block of pixels (blocks differ by one pixel when size is no multiple of 8)
        big = np.asarray(Image.fromarray(ink).resize((size, size), Image.NEAREST))
        out.append(ImageExample("digits", "which_digit", "Which digit is shown?", str(digits.target[i]),
                                np.repeat(big[:, :, None], 3, axis=2), chance=0.1, label=str(digits.target[i])))
    return out


# ---- charts ----------------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=2)
def _figure(size: int):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(1, 1), dpi=size)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0.02, 0.02, 0.96, 0.96))
    return fig, ax


def _render_chart(kind: str, values: np.ndarray, colour: str, size: int) -> np.ndarray:
    fig, ax = _figure(size)
    ax.clear()
    ax.set_axis_off()
    x = np.arange(len(values))
    if kind == "bar":
        ax.bar(x, values, width=0.75, color=colour)
    else:
        ax.plot(x, values, color=colour, linewidth=2, marker="o", markersize=3)
    ax.set_xlim(-0.6, len(values) - 0.4)
    ax.set_ylim(0, 10.5)
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[:, :, :3].copy()


def _charts(split: str, n: int, rng: np.random.Generator, size: int) -> list[ImageExample]:
    palette = TRAIN_PALETTE if split == "train" else HELDOUT_PALETTE
    out = []
    for i in range(n):
        # four values at least 1 apart, so every comparison is visible at a few pixels of height
        values = rng.choice(np.arange(1.0, 10.5, 0.5), size=4, replace=False)
        while np.min(np.diff(np.sort(values))) < 1.0:
            values = rng.choice(np.arange(1.0, 10.5, 0.5), size=4, replace=False)
        kind = "bar" if rng.random() < 0.5 else "line"
        image = _render_chart(kind, values, palette[rng.integers(len(palette))], size)
        best = int(np.argmax(values))
        template = ("is_max", "greater", "largest")[i % 3]
        if template == "is_max":
            pick = best if rng.random() < 0.5 else int(rng.choice([j for j in range(4) if j != best]))
            q, a, chance = f"Is {LETTERS[pick]} the maximum?", "yes" if pick == best else "no", 0.5
        elif template == "greater":
            a_idx, b_idx = rng.choice(4, size=2, replace=False)
            q, a, chance = (f"Is {LETTERS[a_idx]} greater than {LETTERS[b_idx]}?",
                            "yes" if values[a_idx] > values[b_idx] else "no", 0.5)
        else:
            q, a, chance = "Which is largest?", LETTERS[best], 0.25
        order = "".join(LETTERS[j] for j in np.argsort(-values))  # the bars from largest to smallest, e.g. "CADB"
        out.append(ImageExample("charts", template, q, a, image, chance=chance, label=order))
    return out


# ---- words -----------------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=64)
def _font(name: str, px: int):
    from PIL import ImageFont

    if name == "default":
        return ImageFont.load_default(px)
    import matplotlib

    return ImageFont.truetype(str(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / name), px)


FONTS = ("default", "DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSerif.ttf", "DejaVuSansMono.ttf")


def _words(n: int, rng: np.random.Generator, size: int) -> list[ImageExample]:
    from PIL import Image, ImageDraw

    out = []
    for _ in range(n):
        word = WORDS[rng.integers(len(WORDS))]
        font = _font(FONTS[rng.integers(len(FONTS))], int(rng.integers(size * 9 // 32, size * 13 // 32 + 1)))
        dark_on_light = rng.random() < 0.5
        light = tuple(int(v) for v in rng.integers(180, 256, 3))
        dark = tuple(int(v) for v in rng.integers(0, 70, 3))
        bg, fg = (light, dark) if dark_on_light else (dark, light)
        img = Image.new("RGB", (size, size), bg)
        draw = ImageDraw.Draw(img)
        left, top, right, bottom = draw.textbbox((0, 0), word, font=font)
        x = rng.integers(0, max(1, size - (right - left)) + 1) - left
        y = rng.integers(0, max(1, size - (bottom - top)) + 1) - top
        draw.text((int(x), int(y)), word, fill=fg, font=font)
        out.append(ImageExample("words", "which_word", "What word is written?", word, np.asarray(img),
                                chance=1 / len(WORDS), label=word))
    return out


def make_examples(task: str, split: Literal["train", "heldout"], n: int, seed: int = 0, image_size: int = 32,
                  split_seed: int = 0) -> list[ImageExample]:
    """`n` examples of one task; the same arguments always give the same examples."""
    if task not in TASKS:
        raise ValueError(f"unknown image task {task!r}; known: {', '.join(TASKS)}")
    if split not in ("train", "heldout"):
        raise ValueError(f"split must be train or heldout, got {split!r}")
    stream = seed + (HELDOUT_OFFSET if split == "heldout" else 0)
    rng = np.random.default_rng([stream, TASKS.index(task)])
    if task == "digits":
        return _digits(split, n, rng, image_size, split_seed)
    if task == "charts":
        return _charts(split, n, rng, image_size)
    return _words(n, rng, image_size)
