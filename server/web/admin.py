"""Organizer pages: competitions with reveal and rescore, all submissions with actions, teams and tokens, workers."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Form
from fastapi.responses import HTMLResponse, Response

from server import inputs
from server.competition_dir import config_problem
from server.db import SubmissionStatus
from server.db.crud import (
    create_team,
    disqualify_submission,
    get_competition,
    get_team,
    list_competitions,
    list_submissions,
    list_teams,
    reveal_private_board,
    rotate_team_token,
)
from server.errors import ArenaError, NotFound
from server.jobs import queue, worker_tokens
from server.jobs.leases import list_workers
from server.jobs.reference_builds import builds_by_worker, percent_done
from server.organizer.settings import rescore_consequence, reveal_consequence
from server.params import RowId, id_from_text
from server.request_deps import is_admin_token
from server.uploads.rules import model_failures
from server.web.browser_session import start_signed_in
from server.web.deps import Page, PageDep, refused_form
from server.web.routing import PageRoute

router = APIRouter(prefix="/admin", route_class=PageRoute, include_in_schema=False)

ADMIN_SIGNIN = {
    "heading": "Organizer sign-in",
    "token_label": "Admin token",
    "hint": "ARENA_ADMIN_TOKEN of this server (`arena serve --demo` prints one at start).",
}
SUBMISSION_ACTIONS = ("rescore", "cancel", "disqualify")
PAGE_SIZE = 200


@router.get("/signin", name="web_admin_signin", response_class=HTMLResponse)
def admin_signin(page: PageDep) -> Response:
    """The admin token form."""
    return page.render("signin.html", {**ADMIN_SIGNIN, "action": page.url_for("web_admin_signin_post"),
                                       "next_url": ""})


@router.post("/signin", name="web_admin_signin_post", response_class=HTMLResponse)
def admin_signin_post(
    page: PageDep, token: Annotated[str, Form()] = "", csrf_token: Annotated[str, Form()] = ""
) -> Response:
    """Compare with the configured admin token in constant time."""
    page.session.check_csrf(csrf_token)
    if not is_admin_token(token.strip(), page.settings):
        context = {**ADMIN_SIGNIN, "action": page.url_for("web_admin_signin_post"), "next_url": "",
                   "error": "That is not this server's admin token."}
        return page.render("signin.html", context, status_code=401)
    start_signed_in(page.db, page.session, admin_token=page.settings.admin_token, now=page.now)
    page.session.set_flash("ok", "Signed in as organizer.")
    return page.redirect(page.url_for("web_admin"))


@router.get("", name="web_admin", response_class=HTMLResponse)
def admin_home(page: PageDep) -> Response:
    """Competitions with their queue counts and reveal state; workers with heartbeats."""
    page.require_admin()
    competitions = []
    for row in list_competitions(session=page.db):
        counts = {status.value: list_submissions(session=page.db, competition=row, status=status, limit=0)[1]
                  for status in SubmissionStatus}
        competitions.append({"slug": row.slug, "title": row.title, "revealed_at": row.private_revealed_at,
                             "counts": counts, "problem": config_problem(row)})
    silent_after = timedelta(seconds=page.settings.worker_timeout_seconds)
    now = page.now
    building = builds_shown(page)
    workers = [{"alive": now - w.last_heartbeat < silent_after, "build": building.get(w.id), **{
        k: getattr(w, k) for k in ("id", "host", "pid", "device", "started_at", "last_heartbeat", "stopped_at",
                                   "current_submission_id")}}
        for w in list_workers(session=page.db)]
    depth = list_submissions(session=page.db, status=SubmissionStatus.queued, limit=0)[1]
    return page.render("admin/index.html", {"competitions": competitions, "workers": workers, "queue_depth": depth})


def builds_shown(page: Page) -> dict[str, dict[str, object]]:
    """The reference build each worker (local or remote) runs now, by worker id: its competition and percent done."""
    slugs = {row.id: row.slug for row in list_competitions(session=page.db)}
    return {worker_id: {"slug": slugs.get(build.competition_id, "?"), "percent": percent_done(build)}
            for worker_id, build in builds_by_worker(session=page.db).items()}


FormText = Annotated[str, Form()]


def _confirmation(page: Page, *, heading: str, consequence: str, warning: str | None, action: str, button: str,
                  back: str, fields: dict[str, str]) -> Response:
    """The page that names what an irreversible-looking click does before it is done: its form posts the same
    action again with confirm=1."""
    return page.render("admin/confirm.html", {"heading": heading, "consequence": consequence, "warning": warning,
                                              "action": action, "button": button, "back": back,
                                              "fields": {**fields, "confirm": "1"}})


def _back(back: str, page: Page) -> str:
    return back if back.startswith("/admin") else page.url_for("web_admin")


@router.post("/c/{slug}/reveal", name="web_admin_reveal")
def admin_reveal(slug: str, page: PageDep, csrf_token: FormText = "", back: FormText = "", hide: FormText = "",
                 confirm: FormText = "") -> Response:
    """Show the private board to everyone, or hide it again (hide=1) after a reveal by mistake; confirmed first."""
    page.require_admin()
    page.session.check_csrf(csrf_token)
    row = get_competition(session=page.db, slug=slug)
    revealed = hide != "1"
    if confirm != "1":
        consequence, warning = reveal_consequence(competition=row, revealed=revealed, now=page.now)
        verb = "Reveal" if revealed else "Hide"
        return _confirmation(page, heading=f"{verb} the private leaderboard of {slug}?", consequence=consequence,
                             warning=warning, action=page.url_for("web_admin_reveal", slug=slug),
                             button=f"{verb} the private leaderboard", back=_back(back, page),
                             fields={"back": back, "hide": hide})
    client = page.request.client.host if page.request.client else "unknown address"
    row = reveal_private_board(session=page.db, competition=row, revealed=revealed, now=page.now,
                               actor=f"organizer page ({client})")
    page.request.app.state.boards.forget(row.slug)
    shown = "now visible to everyone" if revealed else "hidden from teams and visitors again"
    page.session.set_flash("ok", f"The private leaderboard of {row.slug} is {shown}.")
    return page.redirect(_back(back, page))


@router.post("/c/{slug}/rescore", name="web_admin_rescore_all")
def admin_rescore_all(slug: str, page: PageDep, csrf_token: FormText = "", confirm: FormText = "") -> Response:
    """Queue every scored or failed submission of a competition again (quotas untouched); confirmed first."""
    page.require_admin()
    page.session.check_csrf(csrf_token)
    row = get_competition(session=page.db, slug=slug)
    if confirm != "1":
        consequence, warning = rescore_consequence(session=page.db, competition=row, now=page.now)
        return _confirmation(page, heading=f"Rescore every entry of {slug}?", consequence=consequence,
                             warning=warning, action=page.url_for("web_admin_rescore_all", slug=slug),
                             button="Rescore all entries", back=page.url_for("web_admin"), fields={})
    ids = queue.rescore_competition(session=page.db, competition_id=row.id, reason="rescore all (organizer page)")
    page.session.set_flash("ok", f"Queued {len(ids)} submission(s) of {slug} for rescoring.")
    return page.redirect(page.url_for("web_admin"))


@router.get("/submissions", name="web_admin_submissions", response_class=HTMLResponse)
def admin_submissions(page: PageDep, competition: str = "", status: str = "", team: str = "") -> Response:
    """All submissions, newest first, filtered by competition, status and team."""
    page.require_admin()
    row = get_competition(session=page.db, slug=competition) if competition else None
    team_id = id_from_text(team)
    team_row = get_team(session=page.db, team_id=team_id) if team_id is not None else None
    chosen_status = status if status in SubmissionStatus.__members__ else None
    submissions, total = list_submissions(session=page.db, competition=row, team=team_row, status=chosen_status,
                                          limit=PAGE_SIZE)
    rows = list_competitions(session=page.db)
    teams = [t for r in rows for t in list_teams(session=page.db, competition=r)]
    return page.render("admin/submissions.html", {
        "submissions": submissions, "total": total, "competitions": rows, "teams": teams,
        "statuses": [s.value for s in SubmissionStatus],
        "filters": {"competition": competition, "status": chosen_status, "team": team},
    })


@router.post("/submissions/{submission_id}/{action}", name="web_admin_submission_action")
def admin_submission_action(
    submission_id: RowId, action: str, page: PageDep, reason: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "", back: Annotated[str, Form()] = "",
) -> Response:
    """Rescore, cancel or disqualify one submission; every change is recorded with its reason."""
    page.require_admin()
    page.session.check_csrf(csrf_token)
    if action not in SUBMISSION_ACTIONS:
        raise NotFound(f"No action '{action}'; use one of {', '.join(SUBMISSION_ACTIONS)}.")
    reason = inputs.reason_text(reason)
    if action == "rescore":
        queue.rescore(session=page.db, submission_id=submission_id, reason=reason)
    elif action == "cancel":
        queue.cancel(session=page.db, submission_id=submission_id, reason=reason)
    else:
        disqualify_submission(session=page.db, submission_id=submission_id, reason=reason or "by the organizer")
    page.session.set_flash("ok", f"Submission {submission_id}: {action} done.")
    target = back if back.startswith("/admin") else page.url_for("web_admin_submissions")
    return page.redirect(target)


def _teams_page(page: Page, *, status_code: int = 200, **extra: object) -> Response:
    rows = list_competitions(session=page.db)
    teams = [t for r in rows for t in list_teams(session=page.db, competition=r)]
    budget = page.settings.model_failure_budget
    failures = {t.id: model_failures(session=page.db, team=t, budget=budget, now=page.now) for t in teams}
    context = {"teams": teams, "competitions": rows, "form": {}, "errors": {}, "model_failures": failures, **extra}
    return page.render("admin/teams.html", context, status_code=status_code)


@router.get("/teams", name="web_admin_teams", response_class=HTMLResponse)
def admin_teams(page: PageDep) -> Response:
    """Teams of every competition, with token creation and rotation."""
    page.require_admin()
    return _teams_page(page)


@router.post("/teams", name="web_admin_teams_create", response_class=HTMLResponse)
def admin_teams_create(
    page: PageDep, competition: Annotated[str, Form()], name: Annotated[str, Form()],
    members: Annotated[str, Form()] = "", is_baseline: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    """Create a team (or a reference entry) and show its token once (rendered, never put into the cookie)."""
    page.require_admin()
    page.session.check_csrf(csrf_token)
    row = get_competition(session=page.db, slug=competition)
    try:
        team, token = create_team(session=page.db, competition=row, name=name,
                                  members=[m.strip() for m in members.split(",") if m.strip()],
                                  is_baseline=is_baseline == "1")
    except ArenaError as exc:
        form = {"competition": competition, "name": name, "members": members, "is_baseline": is_baseline}
        return _teams_page(page, **refused_form(exc, form))
    return _teams_page(page, new_token={"team": team.name, "token": token})


def _workers_page(page: Page, *, status_code: int = 200, **extra: object) -> Response:
    """Every worker (local and remote) with what it does and did, the queue's wait, and the remote workers' tokens."""
    silent_after = timedelta(seconds=page.settings.worker_timeout_seconds)
    records = worker_tokens.worker_records(session=page.db)
    tokens = worker_tokens.list_worker_tokens(session=page.db)
    names = {t.id: t.name for t in tokens}
    building = builds_shown(page)
    workers = [{"row": w, "alive": page.now - w.last_heartbeat < silent_after, "token": names.get(w.token_id or 0),
                "record": records.get(w.id, worker_tokens.WorkerRecord(done=0, mean_seconds=None)),
                "build": building.get(w.id)}
               for w in list_workers(session=page.db)]
    context = {"workers": workers, "tokens": tokens, "form": {}, "errors": {},
               "server_url": page.settings.resolved_public_url,
               "queued": list_submissions(session=page.db, status=SubmissionStatus.queued, limit=0)[1],
               "wait_seconds": worker_tokens.queue_wait_seconds(session=page.db, now=page.now), **extra}
    return page.render("admin/workers.html", context, status_code=status_code)


@router.get("/workers", name="web_admin_workers", response_class=HTMLResponse)
def admin_workers(page: PageDep) -> Response:
    """The Workers tab: every worker's job, heartbeat and record; the remote workers' tokens."""
    page.require_admin()
    return _workers_page(page)


@router.post("/workers", name="web_admin_workers_create", response_class=HTMLResponse)
def admin_workers_create(page: PageDep, name: Annotated[str, Form()], csrf_token: Annotated[str, Form()] = ""
                         ) -> Response:
    """A token for a remote worker, shown once."""
    page.require_admin()
    page.session.check_csrf(csrf_token)
    try:
        _, token = worker_tokens.create_worker_token(session=page.db, name=name)
    except ArenaError as exc:
        return _workers_page(page, **refused_form(exc, {"name": name}))
    return _workers_page(page, new_token={"name": name, "token": token})


@router.post("/workers/{name}/revoke", name="web_admin_workers_revoke", response_class=HTMLResponse)
def admin_workers_revoke(name: str, page: PageDep, csrf_token: Annotated[str, Form()] = "") -> Response:
    """Revoke a worker token: its workers stop, their jobs go back to the queue now."""
    page.require_admin()
    page.session.check_csrf(csrf_token)
    released = worker_tokens.revoke_worker_token(session=page.db, name=name)
    page.session.set_flash("ok", f"Revoked the worker token '{name}'; jobs back in the queue: "
                                 f"{', '.join(map(str, released)) or 'none'}.")
    return page.redirect(page.url_for("web_admin_workers"))


@router.post("/teams/{team_id}/rotate", name="web_admin_team_rotate", response_class=HTMLResponse)
def admin_team_rotate(team_id: RowId, page: PageDep, csrf_token: Annotated[str, Form()] = "") -> Response:
    """Replace a team's token; the old one stops working at once."""
    page.require_admin()
    page.session.check_csrf(csrf_token)
    team = get_team(session=page.db, team_id=team_id)
    token = rotate_team_token(session=page.db, team=team)
    return _teams_page(page, new_token={"team": team.name, "token": token})
