"""Template filters: what every score cell and date on the pages looks like."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from jinja2 import Undefined

from server.web.render import fid, filesize, utc

DASH = '<span class="muted">–</span>'


@pytest.mark.parametrize(("value", "shown"), [
    (12.345, "12.35"), (0, "0.00"), (3211194743.381, "3211194743.38"),
    (None, DASH), (Undefined(), DASH),  # not scored yet; a class missing from an older report
])
def test_fid_cells_show_two_decimals_or_a_dash(value, shown):
    assert str(fid(value)) == shown


def test_dates_are_shown_in_utc_and_sizes_in_readable_units():
    assert utc(datetime(2026, 11, 28, 1, 30, tzinfo=timezone(timedelta(hours=2)))) == "2026-11-27 23:30 UTC"
    assert utc(None) == ""
    assert [filesize(n) for n in (512, 4096, 5 * 1024 * 1024)] == ["512 bytes", "4.0 KB", "5.0 MB"]
    assert utc(datetime(2026, 1, 1, tzinfo=UTC)) == "2026-01-01 00:00 UTC"
