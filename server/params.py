"""Path and query parameters bounded at the edge, so no number outside the database's range reaches a query.

Ids are INTEGER columns (32-bit on PostgreSQL): a larger id can't exist, so it is a 422 like any malformed value,
never a driver's overflow error (500). Paging is bounded too: `limit=-1` is an error, not "everything".
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query

MAX_ID = 2**31 - 1
MAX_PAGE = 1000

RowId = Annotated[int, Path(ge=1, le=MAX_ID, description="A row id (1 .. 2^31-1).")]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE, description=f"Rows per page (1 .. {MAX_PAGE}).")]
Offset = Annotated[int, Query(ge=0, le=MAX_ID, description="Rows to skip.")]


def id_from_text(text: str) -> int | None:
    """An id typed into a filter box, or None for anything that is not one (`²`, blanks, 10^20)."""
    if not (text.isascii() and text.isdigit()):
        return None
    value = int(text)
    return value if 1 <= value <= MAX_ID else None
