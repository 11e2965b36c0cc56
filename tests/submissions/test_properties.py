"""Property tests: whatever bytes or zip structure arrive, the validator answers with a report or SubmissionInvalid,
never another exception, and it never opens a file for writing nor leaves anything in the cwd or temp dir."""

from __future__ import annotations

import os
import stat
import sys
import tempfile
import zipfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from submissions import SubmissionInvalid, validate_zip
from tests.submissions.zips import CLASSES, gray, make_zip, png, png_header_only, small_spec, with_mode

_WRITES: list[tuple[str, str]] = []
_AUDITING = [False]


def _audit(event: str, args: tuple) -> None:
    # Audit hooks cannot be removed, so this one only records while a validation runs.
    if _AUDITING[0] and event == "open" and isinstance(args[1], str) and set(args[1]) & set("wax+"):
        _WRITES.append((str(args[0]), args[1]))


sys.addaudithook(_audit)


@pytest.fixture
def sandbox(tmp_path, monkeypatch):
    """Run in an empty cwd with an empty temp dir; both must still be empty afterwards."""
    cwd, temp = tmp_path / "cwd", tmp_path / "temp"
    cwd.mkdir()
    temp.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    monkeypatch.setenv("TMPDIR", str(temp))
    _WRITES.clear()
    yield
    assert os.listdir(cwd) == [] and os.listdir(temp) == []
    assert _WRITES == []


def run_validator(data: bytes) -> None:
    _AUDITING[0] = True
    try:
        decoded = validate_zip(data, small_spec(max_entries=40, max_problems=10))
        assert decoded.report.valid
    except SubmissionInvalid as exc:
        assert exc.report.problems and not exc.report.valid
    finally:
        _AUDITING[0] = False


PATH_PARTS = st.sampled_from([*CLASSES, "results", "With_Mask", "..", "", ".", "__MACOSX", ".DS_Store", "a.png",
                              "0.png", "/", "C:", "x\\..\\y", "é.png"])
NAMES = st.lists(PATH_PARTS, min_size=1, max_size=4).map("/".join).filter(bool)
CONTENTS = st.one_of(
    st.sampled_from([png(), png(gray(size=8)), png(mode="RGB"), png(mode="LA"), png_header_only(10**6, 10**6),
                     png()[:40], b"", b"\0" * 70_000]),
    st.binary(max_size=200),
)
MODES = st.sampled_from([0, stat.S_IFREG | 0o644, stat.S_IFLNK | 0o777, stat.S_IFCHR, stat.S_IFDIR | 0o755])


@st.composite
def random_zips(draw) -> bytes:
    entries = []
    for name, content, mode in draw(st.lists(st.tuples(NAMES, CONTENTS, MODES), max_size=12)):
        entries.append((with_mode(name, mode) if mode else name, content))
    compression = draw(st.sampled_from([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED]))
    data = bytearray(make_zip(entries, compression))
    for position, value in draw(st.lists(st.tuples(st.integers(0, max(0, len(data) - 1)), st.integers(0, 255)),
                                         max_size=3)):
        if data:
            data[position] = value  # corrupt a few bytes anywhere: headers, directory, image data
    return bytes(data)


FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FAST
@given(data=st.binary(max_size=2000))
def test_random_bytes(sandbox, data):
    run_validator(data)


@FAST
@given(data=random_zips())
def test_random_zip_structures(sandbox, data):
    run_validator(data)


@FAST
@given(head=st.binary(min_size=4, max_size=300))
def test_random_bytes_after_a_zip_signature(sandbox, head):
    run_validator(b"PK\x03\x04" + head)


def test_the_audit_hook_sees_writes(sandbox, tmp_path):
    # Guards the property tests above: a write during validation would be recorded.
    _AUDITING[0] = True
    try:
        with open(tmp_path / "probe", "wb"):
            pass
    finally:
        _AUDITING[0] = False
    assert _WRITES
    _WRITES.clear()
