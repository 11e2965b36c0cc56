"""One PNG inside a submission: check its header before decoding, then decode it losslessly to 8-bit grayscale."""

from __future__ import annotations

import io
import struct
from typing import NamedTuple

import numpy as np
from PIL import Image

from submissions.report import Problem

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
HEADER_BYTES = 33  # signature (8) + IHDR chunk: length (4), type (4), data (13), CRC (4)

GRAY, RGB, PALETTE, GRAY_ALPHA, RGBA = 0, 2, 3, 4, 6
COLOR_TYPE_NAMES = {GRAY: "grayscale", RGB: "RGB", PALETTE: "palette", GRAY_ALPHA: "grayscale+alpha", RGBA: "RGBA"}


class PngHeader(NamedTuple):
    width: int
    height: int
    bit_depth: int
    color_type: int


class ImageSpec(NamedTuple):
    size: int
    max_pixels: int
    max_file_bytes: int


def parse_header(head: bytes) -> PngHeader | str:
    """The IHDR fields, or a description of why the first bytes are not a sound PNG header."""
    if len(head) < HEADER_BYTES:
        return f"only {len(head)} bytes, too short for a PNG header"
    length, chunk_type = struct.unpack(">I4s", head[8:16])
    if length != 13 or chunk_type != b"IHDR":
        return "the first chunk is not a 13-byte IHDR"
    width, height, bit_depth, color_type = struct.unpack(">IIBB", head[16:26])
    return PngHeader(width, height, bit_depth, color_type)


def _problem(rule: str, name: str, found: str, fix: str) -> Problem:
    return Problem(rule=rule, file=name, found=found, fix=fix)


def check_header(head: bytes, file_size: int, name: str, spec: ImageSpec) -> Problem | None:
    """Every rule that the first 33 bytes and the file size can settle, in rule order; decoding (and reading the
    rest of the entry) only starts when this passes."""
    save_as = "save it as an 8-bit grayscale PNG (PIL: Image.fromarray(uint8_array, mode='L').save(path))"
    if not head.startswith(PNG_SIGNATURE):
        found = f"not a PNG (first bytes {head[:8]!r})"
        return _problem("not_png", name, found, f"{save_as}; renaming a JPEG to .png is not enough")
    header = parse_header(head)
    if isinstance(header, str):
        return _problem("corrupt_image", name, header, "re-save the image; the file is damaged")
    width, height, bit_depth, color_type = header
    if width * height > spec.max_pixels:
        found = f"declares {width}x{height} pixels, more than the cap of {spec.max_pixels}"
        return _problem("image_too_large", name, found, f"resize it to {spec.size}x{spec.size}")
    if file_size > spec.max_file_bytes:
        found = f"{file_size} bytes, more than the {spec.max_file_bytes} a {spec.size}x{spec.size} PNG can need"
        return _problem("image_too_large", name, found, f"{save_as}, without large metadata chunks")
    if (width, height) != (spec.size, spec.size):
        found = f"{width}x{height} pixels, expected {spec.size}x{spec.size}"
        return _problem("wrong_size", name, found, f"generate or resize images to {spec.size}x{spec.size}")
    kind = COLOR_TYPE_NAMES.get(color_type)
    if kind is None:
        return _problem("corrupt_image", name, f"invalid PNG colour type {color_type}", "re-save the image")
    if color_type in (GRAY_ALPHA, RGBA):
        return _problem("wrong_mode", name, f"{kind} PNG (has an alpha channel)", f"drop the alpha channel; {save_as}")
    if color_type != PALETTE and bit_depth != 8:
        return _problem("wrong_mode", name, f"{bit_depth}-bit {kind} PNG, expected 8-bit", save_as)
    return None


def decode_gray(data: bytes, name: str) -> np.ndarray | Problem:
    """Decode a PNG whose header passed `check_header` into a uint8 (H, W) array, or say why it can't be."""
    try:
        with Image.open(io.BytesIO(data), formats=["PNG"]) as image:
            frames = getattr(image, "n_frames", 1)
            if frames > 1:  # APNG: the scorer would see the first frame only
                found = f"an animated PNG (APNG) with {frames} frames"
                return _problem("animated_png", name, found, "save one still frame per image file")
            image.load()
            return _to_gray(image, name)
    except Exception as exc:  # noqa: BLE001 - PIL reports damaged files with many exception types
        found = f"cannot be decoded ({type(exc).__name__}: {str(exc)[:120]})"
        return _problem("corrupt_image", name, found, "re-save the image; the file is truncated or damaged")


def _to_gray(image: Image.Image, name: str) -> np.ndarray | Problem:
    if "transparency" in image.info:
        found = f"{image.mode} PNG with transparency (tRNS chunk)"
        return _problem("wrong_mode", name, found, "save it without transparency")
    if image.mode == "L":
        return np.asarray(image)
    if image.mode == "RGB":
        return _equal_channels(np.asarray(image), name, "not_grayscale", "RGB")
    if image.mode == "P":
        # A palette of grays maps every index to one gray value: converting it to L loses nothing.
        palette = np.frombuffer(bytes(image.getpalette() or []), dtype=np.uint8).reshape(-1, 3)
        indices = np.asarray(image)
        if indices.max(initial=0) >= len(palette):
            return _problem("corrupt_image", name, "palette index beyond the palette", "re-save the image")
        return _equal_channels(palette[indices], name, "wrong_mode", "palette")
    return _problem("wrong_mode", name, f"PIL mode {image.mode}", "save it as an 8-bit grayscale PNG")


def _equal_channels(rgb: np.ndarray, name: str, rule: str, kind: str) -> np.ndarray | Problem:
    red = rgb[..., 0]
    spread = max(int(np.abs(red.astype(np.int16) - rgb[..., c]).max(initial=0)) for c in (1, 2))
    if spread:
        found = f"not grayscale: {kind} PNG with channel difference up to {spread}"
        return _problem(rule, name, found, "convert to grayscale before saving (PIL: image.convert('L'))")
    return np.ascontiguousarray(red)
