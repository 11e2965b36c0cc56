"""How the small benchmarks end: their rows printed as a plain table, their result written to bench/results/."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def print_rows(columns: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> None:
    """A header of column names, then one line per row, cells separated by ' | '."""
    print(" | ".join(columns))
    for row in rows:
        print(" | ".join(str(row[column]) for column in columns))


def write_result(name: str, result: Any) -> Path:
    """bench/results/NAME as indented JSON; returns the path."""
    out = RESULTS / name
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    return out
