"""The shared writer: deterministic PNG bytes, the hash-ranked split, staged install."""

import numpy as np

from server.competition_dir import CompetitionConfig
from server.data.writer import CompetitionWriter, encode_png, public_test_names


def test_png_bytes_depend_only_on_pixels():
    pixels = np.arange(64 * 64, dtype=np.uint32).reshape(64, 64).astype(np.uint8)
    assert encode_png(pixels) == encode_png(pixels.copy())
    assert encode_png(pixels) != encode_png(255 - pixels)


def test_split_is_exact_and_order_independent():
    names = [f"{i:04d}.png" for i in range(101)]
    public = public_test_names(names, seed=0, fraction=0.5)
    assert len(public) == 51 and public <= set(names)
    assert public_test_names(list(reversed(names)), seed=0, fraction=0.5) == public
    assert public_test_names(names, seed=1, fraction=0.5) != public
    # Both parts keep at least one image, whatever the fraction.
    assert len(public_test_names(names[:2], seed=0, fraction=0.99)) == 1
    assert len(public_test_names(names[:2], seed=0, fraction=0.01)) == 1


def test_two_writers_racing_for_one_directory(tmp_path):
    config = CompetitionConfig(slug="race", title="Race", classes=["a"])
    writers = [CompetitionWriter(tmp_path / "out", config) for _ in range(2)]
    for index, writer in enumerate(writers):
        writer.staging = writer.staging.with_name(f"{writer.staging.name}-{index}")  # two processes: two pids
    for writer in writers:
        writer.__enter__()
        writer.add("train", "a", "x.png", "train", encode_png(np.zeros((64, 64), np.uint8)))
        writer.add("test", "a", "y.png", "public", encode_png(np.ones((64, 64), np.uint8)))
    first, second = (writer.finish() for writer in writers)
    assert first.manifest.dataset_hash == second.manifest.dataset_hash
    assert (writers[0].unchanged, writers[1].unchanged) == (False, True)
    for writer in writers:
        writer.__exit__(None, None, None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
