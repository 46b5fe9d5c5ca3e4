"""Image-question data: deterministic by seed, train and held-out disjoint, image files checked with one clear error."""

import numpy as np
import pytest
from PIL import Image

from augury.data.images import HELDOUT_PALETTE, TRAIN_PALETTE, ImageError, load_image, make_examples


@pytest.mark.parametrize("task", ["digits", "charts", "words"])
def test_examples_are_deterministic_and_splits_differ(task):
    a = make_examples(task, "train", 12, seed=3)
    b = make_examples(task, "train", 12, seed=3)
    held = make_examples(task, "heldout", 12, seed=3)
    assert [e.question + e.answer for e in a] == [e.question + e.answer for e in b]
    assert all(np.array_equal(x.image, y.image) for x, y in zip(a, b))
    assert all(e.image.shape == (32, 32, 3) and e.image.dtype == np.uint8 for e in a + held)
    train_images = {x.image.tobytes() for x in a}
    assert not any(h.image.tobytes() in train_images for h in held)
    assert [e.question for e in make_examples(task, "train", 12, seed=4)] != [e.question for e in a] or \
        not all(np.array_equal(x.image, y.image) for x, y in zip(a, make_examples(task, "train", 12, seed=4)))


def test_digit_splits_use_disjoint_images_and_chart_answers_match_templates():
    train = {e.image.tobytes() for e in make_examples("digits", "train", 400, seed=0)}
    held = {e.image.tobytes() for e in make_examples("digits", "heldout", 200, seed=0)}
    assert not train & held
    charts = make_examples("charts", "train", 300, seed=0)
    yes_no = [e.answer for e in charts if e.template in ("is_max", "greater")]
    assert set(yes_no) == {"yes", "no"} and 0.35 < yes_no.count("yes") / len(yes_no) < 0.65
    assert {e.answer for e in charts if e.template == "largest"} == set("ABCD")
    assert not set(TRAIN_PALETTE) & set(HELDOUT_PALETTE)


@pytest.mark.parametrize("size", [16, 32])
def test_a_digit_image_holds_the_whole_digit(size):
    from sklearn.datasets import load_digits

    digits = load_digits()
    sources = {(str(t), (im / 16.0 * 255).astype(np.uint8).tobytes()) for im, t in zip(digits.images, digits.target)}
    step = size // 8
    for example in make_examples("digits", "train", 40, seed=1, image_size=size):
        # every 8×8 cell is one block: sampling a pixel per block gives back the source digit, edges included
        assert (example.answer, example.image[::step, ::step, 0].tobytes()) in sources


def test_a_charts_label_is_the_bars_order_that_every_answer_follows_from():
    """The label head learns the bars' order, largest first: every chart question's answer is read off it."""
    for e in make_examples("charts", "heldout", 60, seed=1):
        assert sorted(e.label) == list("ABCD")
        letters = [c for c in e.question if c in "ABCD"]
        if e.template == "largest":
            assert e.answer == e.label[0]
        elif e.template == "is_max":
            assert e.answer == ("yes" if letters[0] == e.label[0] else "no")
        else:
            assert e.answer == ("yes" if e.label.index(letters[0]) < e.label.index(letters[1]) else "no")


def test_load_image_reads_and_resizes_rgb(tmp_path):
    path = tmp_path / "a.png"
    Image.fromarray(np.full((40, 60, 3), 255, dtype=np.uint8)).save(path)
    pixels = load_image(path, 16)
    assert pixels.shape == (3, 16, 16) and pixels.dtype == np.float32 and np.allclose(pixels, 1.0)


def test_bad_image_files_are_one_clear_error(tmp_path):
    missing = tmp_path / "nope.png"
    text = tmp_path / "text.png"
    text.write_text("not an image")
    full = tmp_path / "full.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(full)
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(full.read_bytes()[: len(full.read_bytes()) // 2])
    huge = tmp_path / "huge.png"
    Image.new("1", (5000, 5000)).save(huge)  # 1-bit: a small file that decodes to 25M pixels
    for path, message in [(missing, "does not exist"), (text, "cannot be read"), (truncated, "truncated"),
                          (huge, "5000x5000")]:
        with pytest.raises(ImageError, match=message):
            load_image(path, 16)


def test_images_in_other_modes_are_converted_to_rgb(tmp_path):
    """A greyscale, palette, 16-bit or CMYK file is read as the RGB image it shows; one with transparency is
    shown over white (a transparent pixel is white, not the colour stored under it)."""
    grey = np.full((8, 8), 100, dtype=np.uint8)
    Image.fromarray(grey).save(tmp_path / "grey.png")  # mode L
    np.testing.assert_allclose(load_image(tmp_path / "grey.png", 4), np.full((3, 4, 4), 100 / 255), atol=1e-6)
    rgba = np.zeros((8, 8, 4), dtype=np.uint8)
    rgba[..., 0] = 255  # red ...
    rgba[:, :4, 3] = 255  # ... opaque on the left half, fully transparent on the right
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    pixels = load_image(tmp_path / "rgba.png", 8)
    np.testing.assert_allclose(pixels[:, :, :4], np.stack([np.ones((8, 4)), np.zeros((8, 4)), np.zeros((8, 4))]))
    np.testing.assert_allclose(pixels[:, :, 4:], 1.0)  # transparent: white, not the red stored under it
    Image.fromarray(np.stack([grey, np.full((8, 8), 0, np.uint8)], -1)).save(tmp_path / "la.png")  # LA, clear
    np.testing.assert_allclose(load_image(tmp_path / "la.png", 4), 1.0)
    palette = Image.new("P", (8, 8), 1)
    palette.putpalette([255, 255, 255, 0, 0, 255])
    palette.save(tmp_path / "palette.png", transparency=0)  # index 0 transparent, the pixels index 1: blue
    np.testing.assert_allclose(load_image(tmp_path / "palette.png", 4)[:, 0, 0], [0.0, 0.0, 1.0])
    Image.fromarray(np.full((8, 8), 32768, dtype=np.uint16)).save(tmp_path / "grey16.png")  # I;16: half-way grey
    np.testing.assert_allclose(load_image(tmp_path / "grey16.png", 4), 128 / 255, atol=1e-6)
    Image.new("CMYK", (8, 8), (0, 255, 255, 0)).save(tmp_path / "cmyk.jpg", quality=100)  # red in CMYK
    assert np.allclose(load_image(tmp_path / "cmyk.jpg", 4)[:, 0, 0], [1.0, 0.0, 0.0], atol=0.05)


def test_task_examples_override_the_per_task_count_and_are_checked():
    from augury.data.images import ImageDataConfig

    cfg = ImageDataConfig(tasks=["digits", "words"], train_examples=50, task_examples={"words": 900})
    cfg.validate()
    assert (cfg.examples_for("digits"), cfg.examples_for("words")) == (50, 900)
    for bad in ({"charts": 10}, {"words": 0}):
        with pytest.raises(ValueError, match="task_examples"):
            ImageDataConfig(tasks=["digits", "words"], task_examples=bad).validate()
    for bad in ({"digits": 1}, {"digits": 1, "words": 0}):
        with pytest.raises(ValueError, match="task_weights"):
            ImageDataConfig(tasks=["digits", "words"], task_weights=bad).validate()


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_load_image_turns_a_photo_upright_by_its_exif_orientation(tmp_path, suffix):
    pixels = np.zeros((8, 16, 3), dtype=np.uint8)
    pixels[:, :8] = 255  # white left half: wider than high, and not symmetric
    image = Image.fromarray(pixels)
    exif = image.getexif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    image.save(tmp_path / f"flagged{suffix}", exif=exif, **({"quality": 100} if suffix == ".jpg" else {}))
    upright = image.transpose(Image.Transpose.ROTATE_270)  # 8 wide, 16 high: white on top
    upright.save(tmp_path / f"upright{suffix}", **({"quality": 100} if suffix == ".jpg" else {}))
    flagged, expected = load_image(tmp_path / f"flagged{suffix}", 8), load_image(tmp_path / f"upright{suffix}", 8)
    np.testing.assert_allclose(flagged, expected, atol=0.05)
    assert flagged[:, :4].mean() > 0.9 and flagged[:, 4:].mean() < 0.1


def test_a_folder_or_an_oversized_header_is_one_error_without_pillows_warning(tmp_path):
    import struct
    import warnings
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    def header(side):  # a PNG of side x side RGB pixels with no real data
        return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)) + chunk(
            b"IEND", b"")

    (tmp_path / "big.png").write_bytes(header(10_000))  # Pillow warns above 89M pixels
    (tmp_path / "bomb.png").write_bytes(header(100_000))  # Pillow refuses above 179M pixels
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ImageError, match="10000x10000"):
            load_image(tmp_path / "big.png", 16)
        with pytest.raises(ImageError, match="pixels accepted; downscale it first"):
            load_image(tmp_path / "bomb.png", 16)
    with pytest.raises(ImageError, match="is a folder"):
        load_image(tmp_path, 16)


@pytest.mark.parametrize("suffix", [".jpg", ".png", ".webp"])
def test_damaged_exif_metadata_does_not_refuse_an_image_whose_pixels_read(tmp_path, suffix):
    """EXIF is metadata beside the pixels: a tag of the wrong type (Pillow cannot write it back when it drops the
    orientation) keeps the orientation it states, and EXIF that cannot be parsed at all leaves the image as
    stored; neither is a traceback nor a "damaged" refusal of pixels that decode."""
    pixels = np.zeros((8, 16, 3), dtype=np.uint8)
    pixels[:, :8] = 255  # white left half: wider than high, and not symmetric
    image = Image.fromarray(pixels)
    save = {"quality": 100} if suffix == ".jpg" else {"lossless": True} if suffix == ".webp" else {}
    exif = Image.Exif()
    exif[0x010F] = "Cam"  # Make (ASCII) ...
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    raw = exif.tobytes()
    wrong_type = raw.replace(b"\x01\x0f\x00\x02", b"\x01\x06\x00\x02")  # ... renumbered as a SHORT tag
    assert wrong_type != raw
    image.save(tmp_path / f"odd{suffix}", exif=wrong_type, **save)
    image.save(tmp_path / f"garbled{suffix}", exif=b"Exif\x00\x00not a tiff header", **save)
    image.transpose(Image.Transpose.ROTATE_270).save(tmp_path / f"upright{suffix}", **save)
    image.save(tmp_path / f"plain{suffix}", **save)
    np.testing.assert_allclose(load_image(tmp_path / f"odd{suffix}", 8), load_image(tmp_path / f"upright{suffix}", 8),
                               atol=0.05)
    np.testing.assert_allclose(load_image(tmp_path / f"garbled{suffix}", 8),
                               load_image(tmp_path / f"plain{suffix}", 8), atol=0.05)


def test_held_out_digits_show_each_held_out_image_at_most_once():
    """Asking for more held-out digits than the split holds gives each held-out image once: repeats would count
    one answer several times and narrow the reported interval (n=1000 from 338 images)."""
    held = make_examples("digits", "heldout", 1000, image_size=8)
    assert len(held) == 360 and len({e.image.tobytes() for e in held}) == 360  # 20% of scikit-learn's 1,797
    assert len(make_examples("digits", "train", 2000, image_size=8)) == 2000  # training draws repeat, as before
