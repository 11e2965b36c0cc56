"""Jinja2 environment (autoescaping on) and the filters the templates use; every page goes through `render`."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import nh3
from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader
from markdown_it import MarkdownIt
from markupsafe import Markup

from server.db.models import ACTIVE_STATUSES
from server.web.browser_session import WebSession
from submissions.report import group_problems
from submissions.results import ClassResult, interval_95, plus_minus

TEMPLATES_DIR = Path(__file__).parent / "templates"
STATIC_DIR = Path(__file__).parent / "static"


def fid(value: object) -> Markup:
    """A score with two decimals, or a muted dash where there is none (a filter: 1,000 cells cost 1 ms, not 10)."""
    if isinstance(value, int | float):
        return Markup(f"{value:.2f}")
    return Markup('<span class="muted">–</span>')  # None, or a class missing from an older report


def fid_pm(value: object, se: object, sets: int | None = None) -> Markup:
    """`123.4 ± 2.1`: a score with the half-width of its 95% interval (half-sampling, or over `sets` sample sets of a
    model, said in the title); the plain score without one."""
    if not isinstance(value, int | float) or not isinstance(se, int | float):
        return fid(value)
    interval = interval_95(value, se)
    assert interval is not None  # both are numbers
    over = f" over {sets} sample sets" if sets else ""
    score, half_width = plus_minus(value, se, decimals=1).split(" ± ")
    return Markup(f'{score} <span class="pm" title="95% interval{over} [{interval[0]:.1f}, {interval[1]:.1f}]">'
                  f'± {half_width}</span>')


_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def _times(factor: float) -> str:
    """A penalty factor as people read it: ×25, or ×10⁷ once it is beyond a thousand."""
    if factor < 1000:
        return f"×{factor:.3g}"
    return "×10" + str(round(math.log10(factor))).translate(_SUPERSCRIPT)


def distance(value: object) -> str:
    """A memorization distance: 4 decimals, or scientific below 0.001 (copies sit at 1e-7, not at 0.0000)."""
    if not isinstance(value, int | float):
        return "–"
    return f"{value:.4f}" if value >= 1e-3 else f"{value:.1e}"


def penalty_reason(scores: ClassResult) -> str:
    """Why a class was penalized, in one line: `memorized: mean distance 1.0e-07 < ε 0.05, score ×10⁷`."""
    mean, eps = scores.memorization_distance, scores.memorization_eps
    # The factor as applied (the scorer divides by max(d, 1e-15)); from d alone only when the raw FID is 0.
    raw = scores.raw_fid("public")
    factor = scores.fid("public") / raw if raw > 0 else 1 / max(mean, 1e-15)
    return f"memorized: mean distance {distance(mean)} < ε {eps:.4g}, score {_times(factor)}"


def penalized_cell(raw: object, exact: object) -> Markup:
    """A penalized score's cell: the word, then the raw FID; the exact penalized value only in the tooltip (the API
    and the CSV keep it), since ten digits read as a score and hide what happened."""
    title = f"Score after the memorization penalty: {exact:,.1f}" if isinstance(exact, int | float) else ""
    raw_part = Markup(" <span class=\"muted small\">raw {}</span>").format(fid(raw)) if raw is not None else ""
    return Markup('<span class="penalized-score" title="{}">penalized</span>').format(title) + raw_part


def utc(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if value else ""


def _span(seconds: float) -> str:
    seconds = int(abs(seconds))
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds} second{'s' if seconds != 1 else ''}"


def remaining(deadline: datetime | None) -> str:
    """Time left until a deadline, for pages read without JavaScript (the script keeps it ticking)."""
    if deadline is None:
        return ""
    seconds = (deadline - datetime.now(UTC)).total_seconds()
    return f"{_span(seconds)} left" if seconds > 0 else "closed"


def ago(value: datetime | None) -> str:
    return f"{_span((datetime.now(UTC) - value).total_seconds())} ago" if value else ""


def filesize(size: int | None) -> str:
    if size is None:
        return ""
    for unit in ("bytes", "KB", "MB"):
        if size < 1024 or unit == "MB":
            return f"{size:,.0f} {unit}" if unit == "bytes" else f"{size:,.1f} {unit}"
        size /= 1024  # type: ignore[assignment]
    return ""


# Organizer Markdown: raw HTML is not parsed (shown as text), and the output is sanitized anyway, so a pasted
# <script> or javascript: link never reaches a team's browser.
_markdown = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table")


def markdown(text: str | None) -> Markup:
    return Markup(nh3.clean(_markdown.render(text or ""), link_rel="noopener noreferrer nofollow"))


def local_time(value: datetime | None) -> Markup:
    """UTC text, which the script turns into the viewer's own time zone next to it."""
    if value is None:
        return Markup("")
    iso = value.astimezone(UTC).isoformat()
    return Markup(f'<time datetime="{iso}" data-local-time>{utc(value)}</time>')


def path_for(request: Request):  # type: ignore[no-untyped-def]
    """`url_for` for templates that yields root-relative paths, so pages work behind any host or proxy."""

    def url_for(name: str, /, **params: Any) -> str:
        return str(request.app.url_path_for(name, **{k: str(v) for k, v in params.items()}))

    return url_for


# Autoescaping on for every template: team names and messages are user input.
templates = Jinja2Templates(env=Environment(loader=FileSystemLoader(TEMPLATES_DIR), autoescape=True))
templates.env.filters.update(fid=fid, fid_pm=fid_pm, penalty_reason=penalty_reason, penalized=penalized_cell,
                             distance=distance, group_problems=group_problems, utc=utc, remaining=remaining, ago=ago,
                             filesize=filesize, markdown=markdown, local_time=local_time)
templates.env.globals.update(active_statuses=ACTIVE_STATUSES)


def render(
    request: Request,
    name: str,
    context: dict[str, Any],
    *,
    web_session: WebSession,
    signed_in_team: Any = None,
    status_code: int = 200,
) -> HTMLResponse:
    """Render a page with what every page needs: the session (CSRF token), the signed-in team, one flash message."""
    page = {
        "request": request,
        "url_for": path_for(request),
        "web_session": web_session,
        "signed_in_team": signed_in_team,
        "flash": web_session.pop_flash(),
        **context,
    }
    return templates.TemplateResponse(request, name, page, status_code=status_code)
