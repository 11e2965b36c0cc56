"""Which perceptual hash the duplicate audit of `arena data prepare` uses: ours (numpy) vs imagehash's phash.

    pip install imagehash   # only for this measurement; the project does not depend on it
    python -m bench.perceptual_hash [--faces 1500] [--copies 300]

Distinct images: procedural demo faces (similar-looking faces are the hard case for false alarms). Copies: a face
rendered at 128x128 (a "source photo") and, from it, what datasets hold twice: a JPEG re-encoding, a rescaled
copy, a copy shifted by 3 px, a brighter copy, a noisy copy. Everything goes through prepare's own conversion to
64x64 first, then both hashes. Prints, per Hamming threshold, the share of copies found (by kind) and the false
pairs among distinct faces, with and without the audit's pixel-correlation check, and hashing speed; writes
bench/results/perceptual_hash.json.
"""

from __future__ import annotations

import argparse
import io
import time
from itertools import combinations

import numpy as np
from PIL import Image, ImageEnhance

from bench.report import print_rows, write_result
from server.data.audit import NEAR_MIN_CORRELATION, perceptual_hash, pixel_signature
from server.data.demo import FaceParams, render_faces
from server.data.prepare import to_square
from server.data.writer import encode_png

THRESHOLDS = (0, 2, 4, 6, 8, 10, 12)
COPY_KINDS = ("jpeg60", "rescaled", "shift3px", "brighter", "noisy")


def copies_of(photo: Image.Image) -> list[Image.Image]:
    rng = np.random.default_rng(0)
    jpeg = io.BytesIO()
    photo.save(jpeg, format="JPEG", quality=60)
    shifted = Image.new("L", photo.size, 128)
    shifted.paste(photo.crop((3, 3, photo.width, photo.height)), (0, 0))
    noisy = np.clip(np.asarray(photo, np.float64) + rng.normal(0, 6, (photo.height, photo.width)), 0, 255)
    return [
        Image.open(jpeg).convert("L"),
        photo.resize((97, 97), Image.Resampling.BICUBIC),
        shifted,
        ImageEnhance.Brightness(photo).enhance(1.15),
        Image.fromarray(noisy.astype(np.uint8)),
    ]


def imagehash_phash(pixels: np.ndarray) -> int:
    import imagehash

    bits = imagehash.phash(Image.fromarray(pixels)).hash.ravel()
    return int(np.packbits(bits).view(">u8")[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--faces", type=int, default=1500)
    parser.add_argument("--copies", type=int, default=300)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    faces = np.concatenate([render_faces(FaceParams(rng, args.faces // 2, mask)) for mask in (False, True)])
    photos = render_faces(FaceParams(np.random.default_rng(1), args.copies, True), size=128)
    originals, copies = [], []
    for photo in photos:
        source = Image.fromarray(photo)
        originals.append(to_square(source, 64))
        copies.append([to_square(copy, 64) for copy in copies_of(source)])
    pairs = np.array(list(combinations(range(len(faces)), 2)))
    signatures = np.array([pixel_signature(encode_png(face)) for face in faces])
    false_correlation = np.einsum("ij,ij->i", signatures[pairs[:, 0]], signatures[pairs[:, 1]])
    true_correlation = np.array([[pixel_signature(encode_png(o)) @ pixel_signature(encode_png(c)) for c in cs]
                                 for o, cs in zip(originals, copies, strict=True)])
    rows = []
    for name, hasher, min_correlation in (
        ("numpy dct (ours)", perceptual_hash, -1.0),
        ("imagehash.phash", imagehash_phash, -1.0),
        (f"ours + correlation >= {NEAR_MIN_CORRELATION}", perceptual_hash, NEAR_MIN_CORRELATION),
    ):
        start = time.perf_counter()
        face_hashes = np.array([hasher(face) for face in faces], np.uint64)
        per_image_us = (time.perf_counter() - start) / len(faces) * 1e6
        original_hashes = np.array([hasher(o) for o in originals], np.uint64)
        copy_hashes = np.array([[hasher(c) for c in cs] for cs in copies], np.uint64)
        true_d = np.bitwise_count(original_hashes[:, None] ^ copy_hashes)
        false_d = np.bitwise_count(face_hashes[pairs[:, 0]] ^ face_hashes[pairs[:, 1]])
        for t in THRESHOLDS:
            found = (true_d <= t) & (true_correlation >= min_correlation)
            row = {"hash": name, "threshold": t, "us_per_image": round(per_image_us, 1)}
            row |= {kind: round(float(found[:, k].mean()), 2) for k, kind in enumerate(COPY_KINDS)}
            row["false_pairs"] = int(np.sum((false_d <= t) & (false_correlation >= min_correlation)))
            row["distinct_pairs"] = len(false_d)
            rows.append(row)
    columns = list(rows[0])
    print("copies found (share) by kind; false pairs among distinct faces")
    print_rows(columns, rows)
    write_result("perceptual_hash.json", rows)


if __name__ == "__main__":
    main()
