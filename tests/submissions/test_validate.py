"""The validator: one bad zip per rule, several problems at once, accepted variants and every kind of source."""

from __future__ import annotations

import hashlib
import io
import json
import stat
import zipfile

import numpy as np
import pytest
from PIL import Image

from submissions import SubmissionError, SubmissionInvalid, SubmissionSpec, validate_zip
from submissions.report import RULES
from tests.submissions.zips import (
    CLASSES,
    PER_CLASS,
    SIZE,
    good_entries,
    good_zip,
    gray,
    make_zip,
    patch_central,
    png,
    png_header_only,
    small_spec,
    symlink,
    with_mode,
)

IMG = "with_mask/0.png"


def replace_image(name: str, data: bytes) -> bytes:
    return make_zip([(n, data if n == name else d) for n, d in good_entries()])


def flipped_byte_in_entry() -> bytes:
    data = bytearray(make_zip(good_entries(), compression=zipfile.ZIP_DEFLATED))
    at = data.find(b"with_mask/1.png") + len("with_mask/1.png") + 10  # inside the first entry's deflate stream
    data[at] ^= 0xFF
    return bytes(data)


def animated_png() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(gray(1)).save(buffer, format="PNG", save_all=True, append_images=[Image.fromarray(gray(2))])
    return buffer.getvalue()


def palette_png(colours: bool) -> bytes:
    image = Image.fromarray(gray()).convert("P")
    palette = [v for i in range(256) for v in ((i, i, i) if not colours else (i, 255 - i, i))]
    image.putpalette(palette)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


# (case id, zip bytes, spec overrides, the rule that must be named)
BAD_ZIPS = [
    ("text file", b"just some text", {}, "not_a_zip"),
    ("empty file", b"", {}, "not_a_zip"),
    ("truncated zip", good_zip()[:-30], {}, "not_a_zip"),
    ("encrypted", patch_central(good_zip(), IMG, flags=0x1), {}, "encrypted_entry"),
    ("too many entries", good_zip(), {"max_entries": 5}, "too_many_entries"),
    ("total size", good_zip(), {"max_uncompressed_bytes": 1000}, "total_size_over_cap"),
    ("zip bomb", make_zip([*good_entries(), ("with_mask/bomb.png", b"\0" * 2**22)], zipfile.ZIP_DEFLATED), {},
     "compression_ratio_over_cap"),
    ("dot-dot", make_zip([*good_entries(), ("with_mask/../../evil.png", png())]), {}, "unsafe_path"),
    ("absolute", make_zip([*good_entries(), ("/etc/evil.png", png())]), {}, "unsafe_path"),
    ("drive letter", make_zip([*good_entries(), ("C:/evil.png", png())]), {}, "unsafe_path"),
    ("backslash dot-dot", make_zip([*good_entries(), ("with_mask\\..\\..\\evil.png", png())]), {}, "unsafe_path"),
    ("symlink", make_zip([*good_entries(), (symlink("with_mask/link.png"), b"/etc/passwd")]), {}, "symlink"),
    ("char device", make_zip([*good_entries(), (with_mode("with_mask/dev", stat.S_IFCHR | 0o600), b"")]), {},
     "special_entry"),
    ("fifo", make_zip([*good_entries(), (with_mode("with_mask/fifo", stat.S_IFIFO | 0o600), b"")]), {},
     "special_entry"),
    ("bad crc", flipped_byte_in_entry(), {}, "corrupt_zip"),
    ("duplicate", make_zip([*good_entries(), (IMG, png())]), {}, "duplicate_name"),
    ("duplicate ignoring case", make_zip([*good_entries(), ("with_mask/0.PNG", png())]), {}, "duplicate_name"),
    ("unknown folder", make_zip([*good_entries(), ("extra/0.png", png())]), {}, "unknown_folder"),
    ("class in wrong case", make_zip([(n.replace("without_mask", "Without_Mask"), d) for n, d in good_entries()]),
     {}, "unknown_folder"),
    ("missing class", make_zip([(n, d) for n, d in good_entries() if n.startswith("with_mask/")]), {},
     "missing_class"),
    ("file beside classes", make_zip([*good_entries(), ("readme.txt", b"hi")]), {}, "unexpected_entry"),
    ("nested folder", make_zip([*good_entries(), ("with_mask/more/9.png", png())]), {}, "unexpected_entry"),
    ("too few", make_zip(good_entries()[1:]), {}, "wrong_count"),
    ("too many", make_zip([*good_entries(), ("without_mask/9.png", png())]), {}, "wrong_count"),
    ("jpeg named png", replace_image(IMG, b"\xff\xd8\xff\xe0" + b"\0" * 100), {}, "not_png"),
    ("pixel bomb header", replace_image(IMG, png_header_only(100_000, 100_000)), {}, "image_too_large"),
    ("oversized png file", replace_image(IMG, png() + b"\0" * 2**20), {}, "image_too_large"),
    ("wrong size", replace_image(IMG, png(gray(size=SIZE * 2))), {}, "wrong_size"),
    ("16-bit", replace_image(IMG, png(gray().astype(np.uint16) * 257)), {}, "wrong_mode"),
    ("1-bit", replace_image(IMG, png(mode="1")), {}, "wrong_mode"),
    ("gray+alpha", replace_image(IMG, png(mode="LA")), {}, "wrong_mode"),
    ("RGBA", replace_image(IMG, png(mode="RGBA")), {}, "wrong_mode"),
    ("coloured palette", replace_image(IMG, palette_png(colours=True)), {}, "wrong_mode"),
    ("transparency", replace_image(IMG, png(transparency=0)), {}, "wrong_mode"),
    ("colour RGB", replace_image(IMG, png(np.stack([gray(1), gray(2), gray(3)], axis=-1))), {}, "not_grayscale"),
    ("animated png", replace_image(IMG, animated_png()), {}, "animated_png"),
    ("truncated png", replace_image(IMG, png()[:60]), {}, "corrupt_image"),
    ("garbage after header", replace_image(IMG, png()[:33] + b"\x01" * 200), {}, "corrupt_image"),
]


@pytest.mark.parametrize(("data", "overrides", "rule"), [c[1:] for c in BAD_ZIPS], ids=[c[0] for c in BAD_ZIPS])
def test_each_rule_is_named(data, overrides, rule):
    with pytest.raises(SubmissionInvalid) as caught:
        validate_zip(data, small_spec(**overrides))
    report = caught.value.report
    assert rule in {p.rule for p in report.problems}, report.problems
    assert not report.valid
    problem = next(p for p in report.problems if p.rule == rule)
    assert problem.file and problem.found and problem.fix
    assert problem.file in problem.message and problem.fix in problem.message and rule in str(caught.value)


def test_every_rule_has_a_bad_zip():
    assert {c[3] for c in BAD_ZIPS} == set(RULES)


def test_rgb_with_different_channels_says_by_how_much():
    image = np.stack([gray(), gray(), gray()], axis=-1)
    image[3, 4, 2] = np.uint8((int(image[3, 4, 0]) + 17) % 256)
    with pytest.raises(SubmissionInvalid) as caught:
        validate_zip(replace_image(IMG, png(image)), small_spec())
    (problem,) = caught.value.report.problems
    assert problem.file == IMG
    assert "channel difference up to" in problem.found


def test_zip_bomb_is_rejected_before_any_image_is_decoded():
    # The bomb sits among images that are themselves broken: they must not be reported, because a hostile archive
    # is never inflated.
    bomb = make_zip([("with_mask/0.png", b"not a png"), ("with_mask/bomb.png", b"\0" * 2**22)], zipfile.ZIP_DEFLATED)
    with pytest.raises(SubmissionInvalid) as caught:
        validate_zip(bomb, small_spec())
    rules = {p.rule for p in caught.value.report.problems}
    assert "compression_ratio_over_cap" in rules and "not_png" not in rules


def test_header_that_understates_the_size_cannot_inflate_past_it():
    payload = png() + b"\0" * 2**22
    data = patch_central(make_zip([*good_entries()[1:], (IMG, payload)], zipfile.ZIP_DEFLATED), IMG,
                         file_size=len(png()) + 10)
    with pytest.raises(SubmissionInvalid) as caught:
        validate_zip(data, small_spec())
    assert [p.rule for p in caught.value.report.problems] == ["corrupt_zip"]


def test_several_problems_are_all_reported():
    entries = [(n, d) for n, d in good_entries() if n.startswith("with_mask/")]
    entries[0] = (entries[0][0], b"GIF89a not a png at all, just bytes")
    entries[1] = (entries[1][0], png(gray(size=SIZE + 1)))
    entries.append(("notes/todo.txt", b"x"))
    with pytest.raises(SubmissionInvalid) as caught:
        validate_zip(make_zip(entries), small_spec())
    report = caught.value.report
    assert [p.rule for p in report.problems] == ["unknown_folder", "missing_class", "not_png", "wrong_size"]
    assert not report.truncated
    assert report.counts == {"with_mask": PER_CLASS, "without_mask": 0}


def test_problems_stop_at_the_cap_and_say_so():
    entries = [(n, b"not a png") for n, _ in good_entries()]
    with pytest.raises(SubmissionInvalid) as caught:
        validate_zip(make_zip(entries), small_spec(max_problems=2))
    report = caught.value.report
    assert len(report.problems) == 2 and report.truncated
    assert "more not listed" in str(caught.value)


def test_report_is_json_for_the_api():
    with pytest.raises(SubmissionInvalid) as caught:
        validate_zip(b"nope", small_spec())
    body = json.loads(json.dumps(caught.value.report.model_dump(mode="json")))
    assert body["valid"] is False
    assert body["problems"][0]["rule"] == "not_a_zip"
    assert set(body["problems"][0]) == {"rule", "file", "found", "fix", "message"}
    assert isinstance(caught.value, SubmissionError)


def expect_valid(data: bytes, spec: SubmissionSpec | None = None):
    decoded = validate_zip(data, spec or small_spec())
    assert decoded.report.valid and not decoded.report.problems
    for cls in CLASSES:
        assert decoded.images[cls].shape == (PER_CLASS, SIZE, SIZE) and decoded.images[cls].dtype == np.uint8
        assert len(decoded.names[cls]) == PER_CLASS
    return decoded


def test_valid_zip_decodes_every_image_in_name_order():
    decoded = expect_valid(good_zip())
    for c, cls in enumerate(CLASSES):
        assert decoded.names[cls] == [f"{cls}/{i}.png" for i in range(PER_CLASS)]
        for i in range(PER_CLASS):
            np.testing.assert_array_equal(decoded.images[cls][i], gray(10 * c + i))


def test_save_image_rgb_is_converted_losslessly(tmp_path):
    torch = pytest.importorskip("torch")
    from torchvision.utils import save_image

    path = tmp_path / "sample.png"
    save_image(torch.rand(1, SIZE, SIZE), path)
    assert Image.open(path).mode == "RGB"  # the very output teams upload
    expected = np.asarray(Image.open(path))[..., 0]
    decoded = expect_valid(replace_image(IMG, path.read_bytes()))
    np.testing.assert_array_equal(decoded.images["with_mask"][0], expected)


def test_gray_palette_is_converted_losslessly():
    decoded = expect_valid(replace_image(IMG, palette_png(colours=False)))
    np.testing.assert_array_equal(decoded.images["with_mask"][0], gray())


@pytest.mark.parametrize("prefix", ["results/", "results/custom/", "a/b/c/"])
def test_wrapper_folders_are_accepted(prefix):
    decoded = expect_valid(make_zip([(prefix, b""), *good_entries(prefix=prefix)]))
    assert decoded.report.root == prefix


def test_macos_and_windows_metadata_is_ignored():
    metadata = [("__MACOSX/with_mask/._0.png", b"\0\5\26\7"), ("with_mask/.DS_Store", b"\0" * 6148),
                ("Thumbs.db", b"x"), ("without_mask/._1.png", b"junk"), (".DS_Store", b"")]
    expect_valid(make_zip([*good_entries(prefix="results/"), *((f"results/{n}", d) for n, d in metadata)]))


def test_directory_entries_and_windows_separators_are_accepted():
    entries = [("with_mask/", b""), ("without_mask/", b""), *((n.replace("/", "\\"), d) for n, d in good_entries())]
    expect_valid(make_zip(entries))


def test_empty_class_folder_is_a_wrong_count_not_a_missing_class():
    entries = [(n, d) for n, d in good_entries() if n.startswith("with_mask/")] + [("without_mask/", b"")]
    with pytest.raises(SubmissionInvalid) as caught:
        validate_zip(make_zip(entries), small_spec())
    assert [p.rule for p in caught.value.report.problems] == ["wrong_count"]


def test_ambiguous_wrapper_is_not_guessed():
    entries = [*good_entries(prefix="a/"), ("b/with_mask/0.png", png())]
    with pytest.raises(SubmissionInvalid) as caught:
        validate_zip(make_zip(entries), small_spec())
    assert {"unknown_folder", "missing_class"} <= {p.rule for p in caught.value.report.problems}


@pytest.mark.parametrize("kind", ["bytes", "path", "str", "file", "stream"])
def test_every_source_kind_gives_the_same_result(kind, tmp_path):
    data = good_zip()
    path = tmp_path / "sub.zip"
    path.write_bytes(data)

    class Unseekable(io.RawIOBase):
        def __init__(self):
            self.inner = io.BytesIO(data)

        def readable(self):
            return True

        def readinto(self, buffer):
            chunk = self.inner.read(len(buffer))
            buffer[: len(chunk)] = chunk
            return len(chunk)

    sources = {"bytes": lambda: data, "path": lambda: path, "str": lambda: str(path),
               "file": lambda: open(path, "rb"), "stream": Unseekable}
    source = sources[kind]()
    decoded = expect_valid(source)
    if hasattr(source, "close"):
        source.close()
    assert decoded.sha256 == hashlib.sha256(data).hexdigest() and decoded.size_bytes == len(data)


def test_missing_file_is_reported_not_raised(tmp_path):
    with pytest.raises(SubmissionInvalid) as caught:
        validate_zip(tmp_path / "nope.zip", small_spec())
    assert caught.value.report.problems[0].rule == "not_a_zip"
    assert caught.value.report.problems[0].file == "nope.zip"
