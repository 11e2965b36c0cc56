"""A procedural stand-in for the face-mask dataset: 64x64 8-bit grayscale "faces" with and without masks.

Every face varies in head shape, size, position, tilt, skin brightness and lighting, ears, hair (style, shade,
strands), eyes, eyebrows, nose and mouth; in `with_mask` a mask covers nose and mouth, varying in shape (surgical,
cup, cloth), shade and texture (pleats, weave noise, dots, plain). Images are rendered at twice the size with soft
edges and averaged down 2x2, so edges are anti-aliased. All arithmetic is float32 numpy on whole batches: about
a hundred images per second on one core.

Determinism: parameters come from numpy's PCG64 generator seeded by (seed, class, part), and the rendering uses only
elementwise IEEE arithmetic (no vectorized sin/exp, no reductions, which can differ in the last bit between SIMD code
paths), so the same seed gives the same PNG bytes and dataset hash; tests check it on one machine.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from server.competition_dir import Competition, Split
from server.data.writer import CompetitionWriter, competition_config, encode_png, public_test_names

DEMO_CLASSES = ("with_mask", "without_mask")
DEMO_TITLE = "Demo: synthetic faces with and without masks"
DEMO_DESCRIPTION = (
    "Procedurally generated 64x64 grayscale faces (`arena data demo`), a quick stand-in for the "
    "Face-Mask-Classification-20000-Dataset. Generate 'with_mask' and 'without_mask' faces; lower summed FID wins."
)
# Small enough that data plus reference statistics (InceptionV3 features of all 1,000 train and test images, at
# 7-9 images/s on 2 idle CPU cores) are ready in about 2-2.5 minutes; measured by bench/demo_data.py.
DEFAULT_TRAIN_PER_CLASS = 300
DEFAULT_TEST_PER_CLASS = 200
DEFAULT_IMAGES_PER_CLASS = 200
IMAGE_SIZE = 64
SUPERSAMPLE = 2
BATCH = 64
PARTS = ("train", "test")


@dataclass(frozen=True)
class Canvas:
    """Pixel-centre coordinates in [-1, 1] (x right, y down) of the supersampled canvas, and one pixel's width."""

    x: np.ndarray
    y: np.ndarray
    pixel: float

    @classmethod
    def square(cls, size: int) -> Canvas:
        centres = ((np.arange(size) + 0.5) / size * 2.0 - 1.0).astype(np.float32)
        return cls(x=centres[None, None, :], y=centres[None, :, None], pixel=2.0 / size)


def coverage(distance: np.ndarray, softness: float | np.ndarray) -> np.ndarray:
    """Soft inside-ness of a signed distance (negative inside): 1 inside, 0 outside, a linear ramp `softness` wide."""
    return np.clip(0.5 - distance / softness, 0.0, 1.0)


def ellipse_distance(x: np.ndarray, y: np.ndarray, rx: np.ndarray | float, ry: np.ndarray | float) -> np.ndarray:
    """Approximate signed distance to an axis-aligned ellipse at the origin (exact for circles, fine for AA)."""
    radius = np.sqrt((x / rx) ** 2 + (y / ry) ** 2)
    return (radius - 1.0) * np.minimum(rx, ry, dtype=np.float32)


def triangle_wave(t: np.ndarray) -> np.ndarray:
    """Periodic ramp in [-1, 1] with period 1: a sine stand-in made of exact arithmetic only."""
    return 4.0 * np.abs(t - np.floor(t + 0.5)) - 1.0


def blend(canvas: np.ndarray, value: np.ndarray | float, alpha: np.ndarray) -> np.ndarray:
    return canvas + (value - canvas) * alpha


class FaceParams:
    """Random parameters of a batch of faces, each an (n, 1, 1) array so they broadcast over the canvas."""

    def __init__(self, rng: np.random.Generator, n: int, with_mask: bool) -> None:
        def u(low: float, high: float) -> np.ndarray:
            return rng.uniform(low, high, size=(n, 1, 1)).astype(np.float32)

        def choice(options: int, p: list[float]) -> np.ndarray:
            return rng.choice(options, size=(n, 1, 1), p=p)

        self.n = n
        self.background = u(25, 235)
        self.background_tilt = u(-35, 35)
        self.background_angle = u(0, 2 * math.pi)
        self.clothes = u(20, 230)
        self.head_x, self.head_y = u(-0.12, 0.12), u(-0.16, 0.02)
        self.head_rx = u(0.46, 0.62)
        self.head_ry = self.head_rx * u(1.12, 1.38)
        self.tilt = u(-0.18, 0.18)
        self.jaw = u(0.0, 0.35)  # narrows the lower face: round (0) to oval/pointed chin
        self.skin = u(85, 215)
        self.light = u(-0.25, 0.25)
        self.hair_style = choice(4, [0.12, 0.38, 0.32, 0.18])  # bald, short, long, fringe
        self.hair = u(10, 200)
        self.hair_strands = u(6, 24)
        self.hairline = u(-0.62, -0.40)
        self.eye_spacing, self.eye_y = u(0.30, 0.42), u(-0.20, -0.06)
        self.eye_size, self.eye_open = u(0.10, 0.15), u(0.45, 0.8)
        self.iris = u(15, 90)
        self.brow_lift, self.brow_weight = u(0.13, 0.22), u(0.025, 0.05)
        self.nose_length, self.nose_width = u(0.20, 0.34), u(0.05, 0.10)
        self.mouth_y, self.mouth_width = u(0.46, 0.60), u(0.16, 0.30)
        self.mouth_open, self.smile = u(0.025, 0.09), u(-0.4, 1.2)
        self.lips = u(35, 80)  # how much darker than skin
        self.grain = u(1.0, 5.0)
        self.with_mask = with_mask
        self.mask_style = choice(3, [0.45, 0.25, 0.30])  # surgical, cup, cloth
        shade_kind = choice(3, [0.65, 0.20, 0.15])  # light (surgical white or blue), mid, dark
        self.mask_shade = np.choose(shade_kind, [u(185, 248), u(110, 175), u(18, 75)])
        self.mask_texture = choice(4, [0.35, 0.25, 0.15, 0.25])  # pleats, weave noise, dots, plain
        self.mask_top = u(-0.08, 0.06)
        self.mask_bottom = u(0.88, 1.05)
        self.pleat_period = u(0.12, 0.2)
        self.noise_seed = rng.integers(0, 2**63, size=n)

    def batch(self, start: int, stop: int) -> FaceParams:
        """The parameters of faces start..stop-1 (rendering in batches bounds memory)."""
        part = copy.copy(self)
        for name, value in vars(self).items():
            if isinstance(value, np.ndarray):
                setattr(part, name, value[start:stop])
        part.n = stop - start
        return part


def render_faces(params: FaceParams, size: int = IMAGE_SIZE) -> np.ndarray:
    """Render a batch of faces: uint8 (n, size, size)."""
    p = params
    big = size * SUPERSAMPLE
    c = Canvas.square(big)

    # Face-local coordinates: head centre at the origin, tilted, scaled so the head is the unit circle.
    cos_t, sin_t = _per_image(math.cos, p.tilt), _per_image(math.sin, p.tilt)
    dx, dy = c.x - p.head_x, c.y - p.head_y
    lx = (cos_t * dx + sin_t * dy) / p.head_rx
    ly = (-sin_t * dx + cos_t * dy) / p.head_ry
    soft = c.pixel / p.head_rx  # one canvas pixel, in face-local units
    noise = _noise(p.noise_seed, big)

    canvas = _background(p, c)
    canvas = _clothes(canvas, p, lx, ly, soft)
    canvas = _ears(canvas, p, lx, ly, soft)
    canvas = _head(canvas, p, lx, ly, soft)
    canvas = _hair(canvas, p, lx, ly, soft, noise)
    canvas = _eyes(canvas, p, lx, ly, soft)
    canvas = _nose(canvas, p, lx, ly, soft)
    canvas = _mouth(canvas, p, lx, ly, soft)
    if p.with_mask:
        canvas = _mask(canvas, p, lx, ly, soft, noise)
    canvas = canvas + noise[1] * p.grain
    return np.clip(np.rint(_downsample(canvas)), 0, 255).astype(np.uint8)


def _downsample(canvas: np.ndarray) -> np.ndarray:
    # Average each 2x2 block with elementwise adds in a fixed order: a reduction (mean) may sum in a different
    # order under other SIMD widths, and a last-bit difference can flip a rounded pixel.
    blocks = [canvas[:, dy::SUPERSAMPLE, dx::SUPERSAMPLE] for dy in range(SUPERSAMPLE) for dx in range(SUPERSAMPLE)]
    total = blocks[0]
    for block in blocks[1:]:
        total = total + block
    return total / len(blocks)


def _per_image(function: Callable[[float], float], values: np.ndarray) -> np.ndarray:
    # Python's math on each scalar: the same bits on every machine, unlike numpy's vectorized sin/cos.
    return np.array([function(float(v)) for v in values.ravel()], dtype=np.float32).reshape(values.shape)


def _noise(seeds: np.ndarray, big: int) -> np.ndarray:
    """Two unit-normal noise fields per image, (2, n, big, big): one for textures, one for sensor grain."""
    fields = [np.random.default_rng(int(s)).standard_normal((2, big, big), dtype=np.float32) for s in seeds]
    return np.stack(fields, axis=1)


def _background(p: FaceParams, c: Canvas) -> np.ndarray:
    gx, gy = _per_image(math.cos, p.background_angle), _per_image(math.sin, p.background_angle)
    return p.background + p.background_tilt * (gx * c.x + gy * c.y)


def _clothes(canvas: np.ndarray, p: FaceParams, lx: np.ndarray, ly: np.ndarray, soft: np.ndarray) -> np.ndarray:
    neck = coverage(np.maximum(np.abs(lx) - 0.42, 0.55 - ly), soft)
    canvas = blend(canvas, p.skin * 0.8, neck)
    shoulders = coverage(ellipse_distance(lx, ly - 2.05, 2.1, 0.75), soft)
    return blend(canvas, p.clothes, shoulders)


def _ears(canvas: np.ndarray, p: FaceParams, lx: np.ndarray, ly: np.ndarray, soft: np.ndarray) -> np.ndarray:
    for side in (-1.0, 1.0):
        ear = coverage(ellipse_distance(lx - side * 0.97, ly - 0.02, 0.15, 0.24), soft)
        canvas = blend(canvas, p.skin * 0.85, ear)
    return canvas


def _head_distance(p: FaceParams, lx: np.ndarray, ly: np.ndarray) -> np.ndarray:
    # The jaw narrows the lower half: widen x there so the unit circle becomes an oval with a softer chin.
    narrowing = 1.0 + p.jaw * np.clip(ly, 0.0, None) ** 2
    return ellipse_distance(lx * narrowing, ly, 1.0, 1.0)


def _head(canvas: np.ndarray, p: FaceParams, lx: np.ndarray, ly: np.ndarray, soft: np.ndarray) -> np.ndarray:
    # Side light plus darker rim: enough shading that the head reads as round.
    shade = p.skin * (1.0 + p.light * lx) * (1.0 - 0.22 * np.clip(lx**2 + ly**2, 0.0, 1.0) ** 2)
    return blend(canvas, shade, coverage(_head_distance(p, lx, ly), soft))


def _hair(
    canvas: np.ndarray, p: FaceParams, lx: np.ndarray, ly: np.ndarray, soft: np.ndarray, noise: np.ndarray
) -> np.ndarray:
    style = p.hair_style
    # Outer outline of the hair: a cap a little larger than the head, long hair reaching the shoulders.
    outer = ellipse_distance(lx, ly + 0.08, 1.16, 1.12)
    long_sides = np.maximum(np.abs(lx) - 1.22, ly - 1.25)
    outer = np.where(style == 2, np.minimum(outer, np.maximum(long_sides, -ly)), outer)
    # Hairline across the forehead: a bit lower at the temples; a fringe comes down to the brows.
    hairline = np.where(style == 3, p.eye_y - 0.2, p.hairline) + 0.28 * lx**2
    face_below_hairline = np.maximum(_head_distance(p, lx, ly), hairline - ly)
    region = np.maximum(outer, -face_below_hairline)
    strands = p.hair_strands * triangle_wave(lx * 9.0 + 0.6 * ly) + 6.0 * noise[0]
    alpha = np.where(style == 0, 0.0, coverage(region, soft))
    return blend(canvas, np.clip(p.hair + strands, 0, 255), alpha)


def _eyes(canvas: np.ndarray, p: FaceParams, lx: np.ndarray, ly: np.ndarray, soft: np.ndarray) -> np.ndarray:
    brow = p.hair * 0.6
    for side in (-1.0, 1.0):
        ex, ey = lx - side * p.eye_spacing, ly - p.eye_y
        sclera = coverage(ellipse_distance(ex, ey, p.eye_size, p.eye_size * p.eye_open), soft)
        canvas = blend(canvas, np.minimum(p.skin + 55, 245), sclera)
        iris = coverage(ellipse_distance(ex, ey, p.eye_size * 0.45, p.eye_size * 0.45), soft) * sclera
        canvas = blend(canvas, p.iris, iris)
        lid = coverage(np.abs(ellipse_distance(ex, ey, p.eye_size, p.eye_size * p.eye_open)) - 0.012, soft)
        canvas = blend(canvas, p.skin * 0.45, lid)
        arch = ey + p.brow_lift + 0.9 * ex**2  # eyebrows curve down at both ends
        brow_band = np.maximum(np.abs(arch) - p.brow_weight, np.abs(ex) - p.eye_size * 1.25)
        canvas = blend(canvas, brow, coverage(brow_band, soft))
    return canvas


def _nose(canvas: np.ndarray, p: FaceParams, lx: np.ndarray, ly: np.ndarray, soft: np.ndarray) -> np.ndarray:
    top, bottom = p.eye_y + 0.08, p.eye_y + 0.08 + p.nose_length
    ridge = np.maximum(np.abs(lx - 0.35 * p.nose_width - 0.15 * p.light) - 0.012, np.maximum(top - ly, ly - bottom))
    canvas = blend(canvas, p.skin * 0.75, coverage(ridge, soft * 2.5))
    for side in (-1.0, 1.0):
        nostril = ellipse_distance(lx - side * p.nose_width, ly - bottom, 0.045, 0.025)
        canvas = blend(canvas, p.skin * 0.45, coverage(nostril, soft))
    return canvas


def _mouth(canvas: np.ndarray, p: FaceParams, lx: np.ndarray, ly: np.ndarray, soft: np.ndarray) -> np.ndarray:
    # Smile: raise the mouth corners by bending y with x^2.
    my = ly - p.mouth_y + p.smile * 0.6 * lx**2
    lips = coverage(ellipse_distance(lx, my, p.mouth_width, p.mouth_open + 0.03), soft)
    canvas = blend(canvas, p.skin - p.lips, lips)
    opening = coverage(ellipse_distance(lx, my, p.mouth_width * 0.85, p.mouth_open * 0.5), soft)
    return blend(canvas, p.skin * 0.2, opening)


def _mask(
    canvas: np.ndarray, p: FaceParams, lx: np.ndarray, ly: np.ndarray, soft: np.ndarray, noise: np.ndarray
) -> np.ndarray:
    style = p.mask_style
    # Top edge over the nose bridge: straight (surgical), peaked (cup), gently arched (cloth).
    top = p.mask_top + np.choose(style, [0.05 * lx**2, 0.35 * np.abs(lx), 0.2 * lx**2])
    width = np.array([1.06, 0.9, 1.02], dtype=np.float32)[style]
    body = np.maximum(top - ly, np.abs(lx) - width)
    # Lower outline: follows the jaw (surgical, cloth) or a rounded cup.
    jaw = _head_distance(p, lx * 0.96, (ly - 0.02) / p.mask_bottom)
    cup = ellipse_distance(lx, ly - 0.42, 0.9, 0.62 * p.mask_bottom)
    outline = np.maximum(body, np.where(style == 1, cup, jaw))
    alpha = coverage(outline, soft)

    pleats = 14.0 * triangle_wave((ly - top) / p.pleat_period)
    weave = 10.0 * noise[0]
    dots = np.where(triangle_wave(lx * 6.0) + triangle_wave(ly * 6.0) > 1.2, np.float32(25.0), np.float32(0.0))
    texture = np.choose(p.mask_texture, [pleats, weave, dots, np.float32(0.0)])
    # Cloth masks have a centre seam.
    seam = np.where(style == 2, -30.0 * coverage(np.abs(lx) - 0.012, soft), np.float32(0.0))
    shaded = p.mask_shade * (1.0 + 0.5 * p.light * lx) * (1.0 - 0.12 * ly**2) + texture + seam
    canvas = blend(canvas, np.clip(shaded, 0, 255), alpha)
    return _ear_loops(canvas, p, lx, ly, soft, top)


def _ear_loops(
    canvas: np.ndarray, p: FaceParams, lx: np.ndarray, ly: np.ndarray, soft: np.ndarray, top: np.ndarray
) -> np.ndarray:
    # A strap from the upper corner of the mask back towards the ear, visible beside the cheek.
    for side in (-1.0, 1.0):
        run = side * lx - 0.9
        strap = np.abs(ly - (top + 0.1) + 0.25 * run) - 0.018
        strap = np.maximum(strap, np.maximum(-run, run - 0.15))
        canvas = blend(canvas, p.mask_shade * 0.9, coverage(strap, soft))
    return canvas


def generate_faces(n: int, *, seed: int, with_mask: bool, stream: int = 0) -> np.ndarray:
    """n faces (uint8, n x 64 x 64), the same for the same (seed, with_mask, stream)."""
    batches = list(iter_face_batches(n, seed=seed, with_mask=with_mask, stream=stream))
    return np.concatenate(batches) if batches else np.zeros((0, IMAGE_SIZE, IMAGE_SIZE), np.uint8)


def iter_face_batches(n: int, *, seed: int, with_mask: bool, stream: int = 0) -> Iterator[np.ndarray]:
    """generate_faces in batches of up to BATCH images (bounded memory, smooth progress)."""
    params = FaceParams(np.random.default_rng([seed, int(with_mask), stream]), n, with_mask)
    for start in range(0, n, BATCH):
        yield render_faces(params.batch(start, min(start + BATCH, n)))


def make_demo_competition(
    out: str | Path,
    *,
    seed: int = 0,
    train_per_class: int = DEFAULT_TRAIN_PER_CLASS,
    test_per_class: int = DEFAULT_TEST_PER_CLASS,
    images_per_class: int = DEFAULT_IMAGES_PER_CLASS,
    slug: str = "demo",
    title: str = DEMO_TITLE,
    public_fraction: float = 0.5,
    progress: bool = True,
) -> Competition:
    """Write a complete demo competition directory at `out` (or keep an identical one) and load it."""
    config = competition_config(
        slug=slug,
        title=title,
        description=DEMO_DESCRIPTION,
        classes=list(DEMO_CLASSES),
        images_per_class=images_per_class,
        image_size=IMAGE_SIZE,
        public_fraction=public_fraction,
    )
    counts = {"train": train_per_class, "test": test_per_class}
    total = len(DEMO_CLASSES) * sum(counts.values())
    with CompetitionWriter(Path(out), config) as writer, tqdm(
        total=total, desc="Generating demo faces", unit="img", disable=not progress
    ) as bar:
        for cls in DEMO_CLASSES:
            for stream, part in enumerate(PARTS):
                _write_part(writer, cls, part, counts[part], seed, stream, public_fraction, bar.update)
        return writer.finish()


def _write_part(
    writer: CompetitionWriter,
    cls: str,
    part: str,
    count: int,
    seed: int,
    stream: int,
    public_fraction: float,
    advance: Callable[[int], object],
) -> None:
    names = [f"{cls}-{part}-{index:05d}.png" for index in range(count)]
    public = public_test_names(names, seed=seed, fraction=public_fraction) if part == "test" else set()
    batches = iter_face_batches(count, seed=seed, with_mask=cls == "with_mask", stream=stream)
    faces = (face for batch in batches for face in batch)
    for name, face in zip(names, faces, strict=True):
        split: Split = "train" if part == "train" else ("public" if name in public else "private")
        writer.add(part, cls, name, split, encode_png(face))
        advance(1)
