"""Pages for everyone and for teams: competitions, overview, leaderboard, sign-in, submit, submission, team."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Form, Query, Request, UploadFile
from fastapi.responses import FileResponse, HTMLResponse, Response

from server.boards.ranking import (
    PRIVATE_HIDDEN,
    Board,
    leaderboard,
    leaderboard_csv,
    private_board_visible,
    result_seen,
)
from server.competition_dir import Competition, config_problem, load_competition, memorization_eps
from server.db import CompetitionRow, ReferenceBuild, Submission, SubmissionStatus, Team, utc_day
from server.db.crud import (
    authenticate_team,
    finals_frozen,
    get_competition,
    get_team,
    get_visible_submission,
    list_competitions,
    list_submissions,
    list_teams,
    select_final,
    team_scores_over_time,
    team_submissions_stamp,
)
from server.db.models import FINAL_STATUSES
from server.errors import ArenaError, Forbidden, InvalidSubmission, NotFound
from server.jobs import queue
from server.jobs.reference_builds import active_build, percent_done
from server.params import RowId
from server.storage import grid_path, sample_grid_file
from server.uploads.flow import submit_upload
from server.uploads.rules import check_team_in_competition, model_failures, quota_status
from server.web.board_page import board_page_response
from server.web.browser_session import end_signed_in, start_signed_in
from server.web.deps import Page, PageDep, in_one_hop
from server.web.plots import ScorePoint, score_plot_svg
from server.web.render import STATIC_DIR
from server.web.routing import PageRoute
from server.web.signup import open_to_sign_up

router = APIRouter(route_class=PageRoute, include_in_schema=False)

HISTORY_PAGE = 50  # submissions on one page of a team's history


def _safe_next(url: str | None, default: str) -> str:
    # Only local paths: a crafted ?next=https://evil.example must not turn sign-in into an open redirect.
    return url if url and url.startswith("/") and not url.startswith("//") else default


@router.get("/static/web/{path:path}", name="web_static")
def static_file(path: str) -> FileResponse:
    """The stylesheet and script (no build step, no CDN)."""
    target = (STATIC_DIR / path).resolve()
    if not target.is_file() or STATIC_DIR.resolve() not in target.parents:
        raise NotFound(f"No static file {path}.")
    return FileResponse(target, headers={"Cache-Control": "public, max-age=300"})


@router.get("/favicon.ico", name="web_favicon")
def favicon() -> FileResponse:
    """Browsers ask for it on every site whatever the page links; without it every visit logs a 404."""
    return FileResponse(STATIC_DIR / "favicon.ico", media_type="image/x-icon",
                        headers={"Cache-Control": "public, max-age=86400"})


@router.get("/", name="web_index", response_class=HTMLResponse)
def index(page: PageDep) -> Response:
    """All competitions."""
    rows = list_competitions(session=page.db)
    # A competition whose config cannot be read is left out (organizers see it, with the reason, in the console).
    items = [
        {"comp": load_competition(row), "team_count": len(list_teams(session=page.db, competition=row))}
        for row in rows if config_problem(row) is None
    ]
    return page.render("index.html", {"competitions": items})


@router.get("/c/{slug}", name="web_overview", response_class=HTMLResponse)
def overview(slug: str, page: PageDep) -> Response:
    """Rules, data and how to submit; rendered once per board version (settings and announcements move it),
    memorization threshold (the worker calibrates it) and minute (time left and next quota reset are text)."""
    row = get_competition(session=page.db, slug=slug)
    comp = load_competition(row)
    eps = memorization_eps(comp)

    def context() -> dict[str, object]:
        data = {
            "train_per_class": {cls: len(comp.train_files(cls)) for cls in comp.classes},
            "train_total": sum(len(comp.train_files(cls)) for cls in comp.classes),
            "test_total": sum(len(comp.test_files(cls)) for cls in comp.classes),
            "dataset_hash": comp.manifest.dataset_hash,
        }
        url = page.settings.resolved_public_url
        cli = f"arena submit submission.zip --server {url} --competition {slug} --token YOUR_TEAM_TOKEN"
        return {"comp": comp, "data": data, "eps": eps,
                "eps_auto": comp.config.memorization_eps == "auto", "cli_command": cli,
                "next_reset": utc_day(page.now)[1]}

    minute = page.now.replace(second=0, microsecond=0)
    return page.render_shared((slug, row.board_version, tuple(eps.items()), minute), "overview.html", context)


def _board_choice(page: Page, row: CompetitionRow, board: str) -> Literal["public", "private"]:
    if board == "private" and not private_board_visible(row, is_admin=page.is_admin):
        raise Forbidden(PRIVATE_HIDDEN)
    return "private" if board == "private" else "public"


@router.get("/c/{slug}/leaderboard", name="web_leaderboard", response_class=HTMLResponse)
async def leaderboard_page(request: Request, slug: str, page: PageDep, board: str = "public") -> Response:
    """The public board, or the private one once revealed (organizers may preview it); the common reads never reach
    this function: `board_page.BoardPageFastPath` answers them first, with the same `board_page_response`."""
    chosen: Board = "private" if board == "private" else "public"
    return page.finish(await board_page_response(request, slug, chosen, page.session, page.team))


@router.get("/c/{slug}/leaderboard.csv", name="web_leaderboard_csv")
def leaderboard_csv_download(slug: str, page: PageDep, board: str = "public") -> Response:
    """The board as CSV (same rules as the page)."""
    row = get_competition(session=page.db, slug=slug)
    chosen = _board_choice(page, row, board)
    result = leaderboard(session=page.db, competition=row, board=chosen, is_admin=page.is_admin)
    filename = f"{slug}-{chosen}-leaderboard.csv"
    return page.finish(Response(leaderboard_csv(result), media_type="text/csv",
                                headers={"Content-Disposition": f'attachment; filename="{filename}"'}))


# -- sign-in -------------------------------------------------------------------------------------------------------

TEAM_SIGNIN = {
    "heading": "Team sign-in",
    "token_label": "Team token",
    "hint": "The token you got when your team was created (it starts with arena_). Lost it? Ask the organizer to "
            "rotate it.",
}


@router.get("/signin", name="web_signin", response_class=HTMLResponse)
def signin(page: PageDep, next: str = "") -> Response:
    """The team token form."""
    return page.render("signin.html", {**TEAM_SIGNIN, "action": page.url_for("web_signin_post"), "next_url": next,
                                       "sign_up": open_to_sign_up(page)})


@router.post("/signin", name="web_signin_post", response_class=HTMLResponse)
def signin_post(
    page: PageDep, token: Annotated[str, Form()] = "", csrf_token: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "",
) -> Response:
    """Check the token once; the session then remembers the team (the token itself is not stored in the cookie)."""
    page.session.check_csrf(csrf_token)
    team = authenticate_team(session=page.db, token=token.strip())
    if team is None:
        context = {**TEAM_SIGNIN, "action": page.url_for("web_signin_post"), "next_url": next,
                   "error": "That token is not valid. Check for missing characters, or ask the organizer for a new "
                            "one."}
        return page.render("signin.html", context, status_code=401)
    start_signed_in(page.db, page.session, team=team, now=page.now)
    page.session.set_flash("ok", f"Signed in as team {team.name}.")
    return page.redirect(_safe_next(next, page.url_for("web_overview", slug=team.competition.slug)))


@router.post("/signout", name="web_signout")
def signout(page: PageDep, csrf_token: Annotated[str, Form()] = "") -> Response:
    """Forget the team and organizer sign-in."""
    page.session.check_csrf(csrf_token)
    end_signed_in(page.db, page.session)
    page.session.set_flash("info", "Signed out.")
    return page.redirect(page.url_for("web_index"))


# -- submitting ----------------------------------------------------------------------------------------------------


def _submit_context(page: Page, row: CompetitionRow, comp: Competition) -> dict[str, object]:
    context: dict[str, object] = {"comp": comp, "team": page.team, "competition_id": row.id,
                                  "closed": comp.is_past_deadline(page.now)}
    if page.team is not None and page.team.competition_id == row.id:
        context["quota"] = quota_status(session=page.db, team=page.team, daily_limit=comp.config.daily_limit,
                                        now=page.now)
        if comp.config.submission_kinds in ("model", "both"):
            context["model_failures"] = model_failures(session=page.db, team=page.team, now=page.now,
                                                       budget=page.settings.model_failure_budget)
        context["recent"], _ = list_submissions(session=page.db, team=page.team, limit=5)
        context["private_visible"] = private_board_visible(row, is_admin=page.is_admin)
    return context


@router.get("/c/{slug}/submit", name="web_submit", response_class=HTMLResponse)
def submit(slug: str, page: PageDep) -> Response:
    """The upload form with the team's remaining daily quota."""
    row = get_competition(session=page.db, slug=slug)
    return page.render("submit.html", _submit_context(page, row, load_competition(row)))


@router.post("/c/{slug}/submit", name="web_submit_post", response_class=HTMLResponse)
def submit_post(
    slug: str, page: PageDep, file: UploadFile, message: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    """Validate and queue the upload (the same service as the API), then go to its live status page."""
    page.session.check_csrf(csrf_token)
    row = get_competition(session=page.db, slug=slug)
    comp = load_competition(row)
    if page.team is None:
        raise Forbidden("Sign in with your team token before submitting.")
    try:
        check_team_in_competition(team=page.team, competition=row)
        page.request.app.state.upload_limits.hit(team_id=page.team.id, client=page.request.client.host
                                                 if page.request.client else "unknown")
        submission, _ = submit_upload(session=page.db, settings=page.settings, competition=row, team=page.team,
                                      source=file.file, message=message, now=page.now, filename=file.filename)
    except ArenaError as exc:
        page.db.rollback()
        problems = exc.detail.get("problems", []) if isinstance(exc, InvalidSubmission) else []
        context = {**_submit_context(page, row, comp), "message": message, "error_title": exc.message,
                   "problems": problems}
        if problems:
            count = f"{len(problems)} problem" + ("s" if len(problems) != 1 else "")
            context["error_title"] = f"The upload is not a valid submission ({count})."
        response = page.render("submit.html", context, status_code=exc.status_code)
        response.headers.update(exc.headers)  # Retry-After of a 429
        return response
    # No flash: "queued" would outlive the status; the status box, polled, says "accepted and waiting" until then.
    return page.redirect(page.url_for("web_submission", submission_id=submission.id))


# -- one submission ------------------------------------------------------------------------------------------------


def _status_context(page: Page, submission: Submission) -> dict[str, object]:
    position, build = None, None
    if submission.status == SubmissionStatus.queued:
        position = queue.queue_position(session=page.db, submission=submission)
        # Submissions of a competition wait while its reference statistics are built: say so, and how far it is.
        build = active_build(session=page.db, competition=submission.team.competition)
    return {"sub": submission, "final": submission.status in FINAL_STATUSES, "queue_position": position,
            "reference_build": build, "build_percent": percent_done(build) if build else 0}


@router.get("/submissions/{submission_id}", name="web_submission", response_class=HTMLResponse)
def submission_page(submission_id: RowId, page: PageDep) -> Response:
    """Live status, scores, memorization distances and sample grids of one of the team's submissions."""
    submission = get_visible_submission(session=page.db, submission_id=submission_id, team=page.team,
                                        is_admin=page.is_admin)
    row = submission.team.competition
    comp = load_competition(row)
    grids = [(cls, page.url_for("web_grid", submission_id=submission.id, cls=cls)) for cls in comp.classes
             if grid_path(page.settings.data_dir, submission.id, cls).is_file()]
    own = page.team is not None and page.team.id == submission.team_id
    view = result_seen(submission, is_admin=page.is_admin)
    return page.render("submission.html", {
        **_status_context(page, submission), "comp": comp, "grids": grids,
        "result": view.result if view else None,
        "private_visible": private_board_visible(row, is_admin=page.is_admin),
        "interval_sets": view.result.interval_sets if view else None,
        "can_select": own and comp.config.final_selection_limit > 0 and submission.status == SubmissionStatus.scored,
        "finals_frozen": finals_frozen(competition=row, deadline=comp.config.deadline, now=page.now),
        "evidence": view.evidence(comp.classes) if view else {},
    })


@router.get("/submissions/{submission_id}/status", name="web_submission_status", response_class=HTMLResponse)
async def submission_status(request: Request, submission_id: RowId) -> Response:
    """The status box alone, polled by the page's script until the submission reaches a final state; rendered once
    per change (each status change sets `updated_at`), and a poll that finds it unchanged gets 304."""
    return await in_one_hop(request, lambda page: _status_fragment(page, submission_id))


def _status_fragment(page: Page, submission_id: int) -> Response:
    submission = get_visible_submission(session=page.db, submission_id=submission_id, team=page.team,
                                        is_admin=page.is_admin)
    context = _status_context(page, submission)
    build = context["reference_build"]
    assert build is None or isinstance(build, ReferenceBuild)
    # Everything the fragment shows that can change: the status, the model's sample set (`progress` moves without
    # `updated_at`), the queue position and the reference build it waits for.
    key = (submission.id, submission.status, submission.updated_at, submission.disqualified_at, submission.progress,
           context["queue_position"], (build.status, build.images_done) if build else None)
    return page.render_shared(key, "_status.html", lambda: context, fragment=True)


@router.get("/submissions/{submission_id}/grids/{cls}.png", name="web_grid")
def sample_grid(submission_id: RowId, cls: str, page: PageDep) -> Response:
    """A sample grid the worker rendered, only for the owning team and organizers."""
    submission = get_visible_submission(session=page.db, submission_id=submission_id, team=page.team,
                                        is_admin=page.is_admin)
    path = sample_grid_file(page.settings.data_dir, submission.id, cls,
                            load_competition(submission.team.competition).classes)
    return FileResponse(path, media_type="image/png", headers={"Cache-Control": "private, max-age=60"})


@router.post("/submissions/{submission_id}/final", name="web_submission_select")
def submission_select(
    submission_id: RowId, page: PageDep, selected: Annotated[str, Form()] = "1", csrf_token: Annotated[str, Form()] = ""
) -> Response:
    """Select (or unselect) a scored submission as one of the team's finals."""
    page.session.check_csrf(csrf_token)
    if page.team is None:
        raise Forbidden("Sign in with your team token to select finals.")
    config = load_competition(page.team.competition).config
    submission = select_final(session=page.db, submission_id=submission_id, team=page.team, selected=selected == "1",
                              limit=config.final_selection_limit, deadline=config.deadline, now=page.now)
    word = "selected as a final" if submission.selected_final else "no longer a final"
    page.session.set_flash("ok", f"Submission {submission.id} is {word}.")
    return page.redirect(page.url_for("web_submission", submission_id=submission.id))


# -- team ----------------------------------------------------------------------------------------------------------


def _visible_team(page: Page, team_id: int) -> Team:
    team = get_team(session=page.db, team_id=team_id)
    if not page.is_admin and (page.team is None or page.team.id != team.id):
        raise Forbidden("A team's submission history is visible to the team itself and the organizers only.")
    return team


@router.get("/teams/{team_id}", name="web_team", response_class=HTMLResponse)
def team_page(team_id: RowId, page: PageDep, page_number: Annotated[int, Query(alias="page", ge=1)] = 1) -> Response:
    """The team's submissions, newest first, `HISTORY_PAGE` a page, and its score over time (all of them).
    Rendered once per change of the team's submissions (and the board version, for finals and reveals)."""
    team = _visible_team(page, team_id)
    stamp = team_submissions_stamp(session=page.db, team=team)
    key = (team.id, team.name, tuple(team.members or ()), team.disqualified_at, team.competition.board_version,
           stamp, page_number)

    def context() -> dict[str, object]:
        history, total = list_submissions(session=page.db, team=team, limit=HISTORY_PAGE,
                                          offset=(page_number - 1) * HISTORY_PAGE)
        points = [ScorePoint(when, score, penalized, se)
                  for when, score, penalized, se in team_scores_over_time(session=page.db, team=team)]
        return {
            "team": team, "comp": load_competition(team.competition), "recent": history, "total": total,
            "page_number": page_number, "pages": max(1, -(-total // HISTORY_PAGE)),
            "plot": score_plot_svg(points), "private_visible": private_board_visible(team.competition,
                                                                                     is_admin=page.is_admin),
        }

    return page.render_shared(key, "team.html", context)
