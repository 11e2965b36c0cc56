"""Docs that cannot drift: every setting is documented, and the README shows the two set-up commands."""

from pathlib import Path

import pytest

from server.config import Settings

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("field", sorted(Settings.model_fields))
def test_every_setting_is_in_operations_doc(field):
    assert f"`ARENA_{field.upper()}`" in (ROOT / "docs" / "OPERATIONS.md").read_text()


def test_readme_starts_with_the_two_commands():
    readme = (ROOT / "README.md").read_text()
    assert readme.index("make run") < readme.index("## Organizer workflow")
    assert readme.index("make test") < readme.index("## Organizer workflow")


def test_makefile_targets_exist():
    makefile = (ROOT / "Makefile").read_text()
    for target in ("run:", "test:", "lint:", "bench:"):
        assert f"\n{target}" in makefile
