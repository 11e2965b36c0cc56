"""Benchmark of the submission validator: a valid 2 x 1,000 zip and three kinds of bombs.

    python -m bench.submissions            # prints a table, writes bench/results/submissions.json

Targets (issue 4): validation + decoding of a valid 2 x 1,000 64x64 zip <= 1.0 s on 2 CPU cores; a zip bomb
declaring 1 GB rejected in <= 0.5 s with memory growth <= 50 MB. Wall time depends on what else runs on the
machine, so CPU time of the process is reported beside it. Each bomb runs in a fresh child process so its peak
RSS (VmHWM) is not masked by the parent's earlier work.
"""

from __future__ import annotations

import io
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import PIL
from PIL import Image

from submissions import SubmissionInvalid, SubmissionSpec, pack, validate_zip

ROOT = Path(__file__).resolve().parent.parent
CLASSES = ["with_mask", "without_mask"]
SPEC = SubmissionSpec(classes=CLASSES, images_per_class=1000, image_size=64)
GIB = 1024**3
TARGET_VALID_S, TARGET_BOMB_S, TARGET_BOMB_MB = 1.0, 0.5, 50.0


def generator_like_images(n: int, seed: int) -> np.ndarray:
    """Smooth faces-sized blobs plus pixel noise: compresses like GAN output, not like pure noise."""
    rng = np.random.default_rng(seed)
    coarse = rng.normal(128, 40, size=(n, 16, 16)).clip(0, 255).astype(np.uint8)
    smooth = np.stack([np.asarray(Image.fromarray(c).resize((64, 64), Image.BICUBIC)) for c in coarse])
    return (smooth + rng.normal(0, 8, smooth.shape)).clip(0, 255).astype(np.uint8)


def write_valid(path: Path) -> None:
    pack({cls: generator_like_images(1000, seed) for seed, cls in enumerate(CLASSES)}, path, SPEC)


def png_header(width: int, height: int) -> bytes:
    import struct
    import zlib

    body = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + body
            + struct.pack(">I", zlib.crc32(b"IHDR" + body)))


def write_declared_bomb(path: Path) -> None:
    """A real deflate bomb: a 64x64 PNG header followed by 1 GiB of zeros (about 1 MB on disk)."""
    zero_chunk = bytes(16 * 1024 * 1024)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        with archive.open("with_mask/00000.png", "w", force_zip64=True) as entry:
            entry.write(png_header(64, 64))
            for _ in range(GIB // len(zero_chunk)):
                entry.write(zero_chunk)


def lie_about_size(bomb: Path, path: Path) -> None:
    """The same stream, but the central directory claims 1 KiB: only bounded inflation stops it."""
    data = bytearray(bomb.read_bytes())
    at = data.rfind(b"PK\x01\x02")
    data[at + 24: at + 28] = (1024).to_bytes(4, "little")  # uncompressed size (1 GiB fits in 32 bits)
    path.write_bytes(bytes(data))


def write_pixel_bomb(path: Path) -> None:
    """A valid-looking zip whose first PNG declares 100,000 x 100,000 pixels."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    bomb_png = png_header(100_000, 100_000) + chunk(b"IDAT", zlib.compress(bytes(10**6)))
    buffer = io.BytesIO()
    pack({cls: generator_like_images(1000, seed) for seed, cls in enumerate(CLASSES)}, buffer, SPEC)
    with zipfile.ZipFile(buffer) as source, zipfile.ZipFile(path, "w") as target:
        for info in source.infolist():
            target.writestr(info, bomb_png if info.filename == "with_mask/00000.png" else source.read(info))


def rss_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def rejected_rules(path: Path) -> list[str]:
    try:
        validate_zip(path, SPEC)
    except SubmissionInvalid as exc:
        return sorted({p.rule for p in exc.report.problems})
    return ["ACCEPTED"]


def measure_rejection(path: Path) -> dict:
    """Runs in a child: time and peak RSS growth of one rejected validation, then a tracemalloc peak in a second
    run (tracemalloc slows Python down several times, so it is kept out of the timed run)."""
    before = rss_mb("VmRSS")
    wall, cpu = time.perf_counter(), time.process_time()
    rules = rejected_rules(path)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    rss_growth = rss_mb("VmHWM") - before
    tracemalloc.start()
    rejected_rules(path)
    traced_peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return {"wall_s": wall, "cpu_s": cpu, "rss_growth_mb": rss_growth, "tracemalloc_peak_mb": traced_peak,
            "rules": rules}


def in_child(path: Path) -> dict:
    output = subprocess.run([sys.executable, "-m", "bench.submissions", "--child", str(path)], cwd=ROOT, check=True,
                            capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def measure_valid(path: Path, repeats: int = 5) -> dict:
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        decoded = validate_zip(path, SPEC)
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    assert {cls: a.shape for cls, a in decoded.images.items()} == dict.fromkeys(CLASSES, (1000, 64, 64))
    return {"wall_s": statistics.median(walls), "wall_min_s": min(walls), "cpu_s": statistics.median(cpus),
            "size_mb": path.stat().st_size / 2**20, "rules": ["valid"]}


def main() -> None:
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        valid, bomb, liar, pixels = (tmp_path / f"{n}.zip" for n in ("valid", "bomb", "liar", "pixels"))
        write_valid(valid)
        write_declared_bomb(bomb)
        lie_about_size(bomb, liar)
        write_pixel_bomb(pixels)
        results["valid 2x1000 64x64"] = measure_valid(valid)
        results["deflate bomb, declares 1 GiB"] = in_child(bomb)
        results["lying header, inflates 1 GiB"] = in_child(liar)
        results["PNG declaring 100k x 100k"] = in_child(pixels)
        for result, path in zip(results.values(), (valid, bomb, liar, pixels), strict=True):
            result["size_mb"] = path.stat().st_size / 2**20
    report = {
        "machine": {"cpus": os.cpu_count(), "loadavg_1min": os.getloadavg()[0], "python": platform.python_version(),
                    "pillow": PIL.__version__, "platform": platform.platform()},
        "targets": {"valid_s": TARGET_VALID_S, "bomb_s": TARGET_BOMB_S, "bomb_rss_mb": TARGET_BOMB_MB},
        "results": results,
    }
    print(f"{'case':32} {'zip MB':>7} {'wall s':>7} {'cpu s':>7} {'RSS +MB':>8} {'traced MB':>9}  outcome")
    for name, r in results.items():
        memory = [f"{r[k]:.1f}" if k in r else "-" for k in ("rss_growth_mb", "tracemalloc_peak_mb")]
        print(f"{name:32} {r['size_mb']:7.2f} {r['wall_s']:7.3f} {r['cpu_s']:7.3f} {memory[0]:>8} {memory[1]:>9}  "
              f"{', '.join(r['rules'])}")
    print(f"machine: {os.cpu_count()} CPUs, 1-min load average {report['machine']['loadavg_1min']:.1f}")
    out = ROOT / "bench" / "results" / "submissions.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        print(json.dumps(measure_rejection(Path(sys.argv[2]))))
    else:
        main()
