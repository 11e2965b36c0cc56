"""Every image kind a real download holds becomes the right 64x64 grayscale picture."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from server.data import prepare_competition
from server.data.prepare import load_competition_image
from tests.server.data.trees import make_tree, write_smooth_image


def gradient(width: int = 96, height: int = 80) -> Image.Image:
    """Dark on the left, bright on the right: rotations and flips are visible."""
    return Image.fromarray(np.tile(np.linspace(0, 255, width).astype(np.uint8), (height, 1)))


def expected(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("L").resize((64, 64), Image.Resampling.BICUBIC, reducing_gap=None))


def test_jpeg_exif_orientation_is_applied(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    gradient().save(tmp_path / "phone.jpg", exif=exif, quality=95)
    pixels = load_competition_image(tmp_path / "phone.jpg", 64)
    upright = Image.open(tmp_path / "phone.jpg").transpose(Image.Transpose.ROTATE_270)
    np.testing.assert_array_equal(pixels, expected(upright))
    assert pixels[0].mean() + 100 < pixels[-1].mean()  # the bright side is now at the bottom


def test_palette_png_with_a_transparent_entry(tmp_path):
    palette = gradient().convert("RGB").quantize(16)
    darkest = palette.getpixel((0, 0))  # the left edge's palette entry is see-through
    palette.save(tmp_path / "palette.png", transparency=darkest)
    assert Image.open(tmp_path / "palette.png").mode == "P"
    pixels = load_competition_image(tmp_path / "palette.png", 64)
    assert pixels[:, :2].min() == 255  # the transparent left edge became white
    assert pixels[:, 30].max() < 200


def test_cmyk_jpeg_becomes_luma(tmp_path):
    rgb = Image.fromarray(np.random.default_rng(0).integers(0, 256, (8, 8, 3), np.uint8)).resize((96, 96))
    rgb.convert("CMYK").save(tmp_path / "print.jpg", quality=95)
    assert Image.open(tmp_path / "print.jpg").mode == "CMYK"
    pixels = load_competition_image(tmp_path / "print.jpg", 64).astype(int)
    assert np.abs(pixels - expected(rgb).astype(int)).mean() < 4


@pytest.mark.parametrize("kind", ["webp", "bmp", "tiff"])
def test_lossless_formats_match_the_png(tmp_path, kind):
    image = gradient().convert("RGB")
    image.save(tmp_path / f"a.{kind}", **({"lossless": True} if kind == "webp" else {}))
    np.testing.assert_array_equal(load_competition_image(tmp_path / f"a.{kind}", 64), expected(image))


def test_animated_gif_uses_the_first_frame(tmp_path):
    frames = [Image.new("L", (80, 80), 0), Image.new("L", (80, 80), 255)]
    frames[0].save(tmp_path / "blink.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)
    assert getattr(Image.open(tmp_path / "blink.gif"), "n_frames", 1) == 2
    assert (load_competition_image(tmp_path / "blink.gif", 64) == 0).all()


@pytest.mark.parametrize(("policy", "kept"), [("skip", 4), ("upscale", 5)])
def test_small_images_follow_the_policy(tmp_path, policy, kept):
    source = make_tree(tmp_path / "src")
    small = write_smooth_image(source / "train" / "with_mask" / "small.png", 34, seed=5)
    result = prepare_competition(source, tmp_path / "out", small=policy, progress=False, workers=1)
    assert len(result.competition.train_files("with_mask")) == kept
    assert result.report.small == [str(small)]
    assert result.competition.manifest.audit["small_images"] == {"policy": policy, "files": [str(small)]}
    if policy == "upscale":
        with Image.open(tmp_path / "out" / "train" / "with_mask" / "small.png") as image:
            assert image.size == (64, 64)
            np.testing.assert_array_equal(np.asarray(image), expected(Image.open(small)))


def test_worker_processes_give_what_one_process_gives(tmp_path):
    from server.data.layout import SourceImage
    from server.data.prepare import PROCESS_POOL_MIN_IMAGES, _convert_all

    sources = [write_smooth_image(tmp_path / f"{i}.png", 48 + 20 * i, seed=i) for i in range(4)]
    (tmp_path / "bad.png").write_bytes(b"not a png")
    sources.append(tmp_path / "bad.png")
    images = [SourceImage(path, "train", "a", path.name, str(path)) for path in sources]
    images *= PROCESS_POOL_MIN_IMAGES // len(images) + 1  # enough to start the pool
    pooled = _convert_all(images, 64, False, progress=False, workers=2)
    in_process = _convert_all(images, 64, False, progress=False, workers=1)
    assert pooled == in_process
    assert [c.small for c in pooled[:5]] == [True, False, False, False, False]
    assert pooled[4].png is None and "not a readable image" in pooled[4].problem
