"""The organizer console: a new competition prepared in the background (server/organizer/competition_setup.py);
per competition its settings (with their history), announcements, lifecycle (reveal, final CSV, archive) and
reference entries. Every settings rule lives in server/organizer/settings.py, shared with `arena admin settings`."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Form, UploadFile
from fastapi.responses import FileResponse, HTMLResponse, Response

from server.competition_dir import competitions_dir, load_competition
from server.db import CompetitionRow, Team
from server.db.crud import (
    create_team,
    delete_team,
    get_competition,
    list_competitions,
    list_teams,
    register_competition,
)
from server.errors import ArenaError, Conflict, InvalidSettings, NotFound
from server.jobs.leases import list_workers
from server.jobs.reference_builds import latest_build, recent_builds, request_build, request_first_build
from server.organizer import competition_setup
from server.organizer.settings import (
    EDITABLE,
    SCORE_FIELDS,
    STATUSES,
    SUBMISSION_KINDS,
    announce,
    competition_announcements,
    count_entries,
    parse_deadline,
    save_warnings,
    setting_history,
    update_settings,
    withdraw_announcement,
)
from server.params import RowId
from server.storage import receive_upload
from server.uploads.flow import submit_upload
from server.web.deps import Page, PageDep, refused_form
from server.web.routing import PageRoute

router = APIRouter(prefix="/admin/c/{slug}", route_class=PageRoute, include_in_schema=False)

FormText = Annotated[str, Form()]
TEXT_FIELDS = ("title", "description", "team_rules", "status", "memorization_eps")
NUMBER_FIELDS = ("daily_limit", "final_selection_limit", "images_per_class")


def _actor(page: Page) -> str:
    client = page.request.client.host if page.request.client else "unknown address"
    return f"organizer page ({client})"


def _console(page: Page, row: CompetitionRow, *, status_code: int = 200, **extra: Any) -> Response:
    comp = load_competition(row)
    entries = count_entries(session=page.db, competition=row)
    context = {
        "comp": comp, "row": row, "entries": entries,
        "scored_entries": count_entries(session=page.db, competition=row, scored_only=True),
        "effects": EDITABLE, "score_fields": SCORE_FIELDS,
        "build": latest_build(session=page.db, competition=row),
        "statuses": STATUSES, "submission_kinds": SUBMISSION_KINDS,
        "history": setting_history(session=page.db, competition=row),
        "announcements": competition_announcements(session=page.db, slug=row.slug),
        "references": [t for t in list_teams(session=page.db, competition=row) if t.is_baseline],
        "form": {}, "errors": {}, **extra,
    }
    return page.render("admin/competition.html", context, status_code=status_code)


@router.get("/settings", name="web_admin_settings", response_class=HTMLResponse)
def settings_page(slug: str, page: PageDep) -> Response:
    """Settings with the effect of each, the change history, announcements, lifecycle and reference entries."""
    page.require_admin()
    return _console(page, get_competition(session=page.db, slug=slug))


def _form_changes(form: dict[str, str]) -> dict[str, Any]:
    """The submitted form as typed values; pydantic validates the rest (numbers, ranges, statuses)."""
    changes: dict[str, Any] = {field: form[field] for field in TEXT_FIELDS if field in form}
    changes |= {field: form[field].strip() for field in NUMBER_FIELDS if field in form}
    if "memorization_eps" in changes:
        changes["memorization_eps"] = changes["memorization_eps"].strip()
    changes["self_registration"] = form.get("self_registration") == "1"
    if form.get("submission_kinds"):  # a form without the choice (an older page) leaves it as it is
        changes["submission_kinds"] = form["submission_kinds"]
    if "deadline" in form:
        changes["deadline"] = parse_deadline(form["deadline"])
    return changes


@router.post("/settings", name="web_admin_settings_post", response_class=HTMLResponse)
def settings_post(
    slug: str, page: PageDep, csrf_token: FormText = "", title: FormText = "", description: FormText = "",
    team_rules: FormText = "", deadline: FormText = "", daily_limit: FormText = "",
    final_selection_limit: FormText = "", self_registration: FormText = "", status: FormText = "",
    images_per_class: FormText = "", memorization_eps: FormText = "", submission_kinds: FormText = "",
) -> Response:
    """Save the settings: refused as a whole, with a message per field, when anything is invalid or locked."""
    page.require_admin()
    page.session.check_csrf(csrf_token)
    form = {"title": title, "description": description, "team_rules": team_rules, "deadline": deadline,
            "daily_limit": daily_limit, "final_selection_limit": final_selection_limit,
            "self_registration": self_registration, "status": status, "images_per_class": images_per_class,
            "memorization_eps": memorization_eps, "submission_kinds": submission_kinds}
    return _save_settings(page, slug, form)


def _save_settings(page: Page, slug: str, form: dict[str, str]) -> Response:
    row = get_competition(session=page.db, slug=slug)
    try:
        changed = update_settings(session=page.db, competition=row, changes=_form_changes(form), actor=_actor(page),
                                  now=page.now)
    except ArenaError as exc:
        page.db.rollback()
        return _console(page, row, **refused_form(exc, form))
    summary = ", ".join(change.field for change in changed) or "nothing changed"
    warnings = save_warnings(changed, page.now)
    page.session.set_flash("warn" if warnings else "ok", " ".join([f"Settings of {slug} saved: {summary}.",
                                                                    *warnings]))
    return page.redirect(page.url_for("web_admin_settings", slug=slug))


@router.post("/announcements", name="web_admin_announce", response_class=HTMLResponse)
def announce_post(slug: str, page: PageDep, message: Annotated[str, Form()] = "",
                  csrf_token: Annotated[str, Form()] = "") -> Response:
    """Post a short message shown on every page of the competition."""
    page.require_admin()
    page.session.check_csrf(csrf_token)
    row = get_competition(session=page.db, slug=slug)
    try:
        announce(session=page.db, competition=row, message=message, actor=_actor(page), now=page.now)
    except ArenaError as exc:
        return _console(page, row, status_code=exc.status_code, announce_error=exc.message)
    page.session.set_flash("ok", "Announcement posted on the competition's pages.")
    return page.redirect(page.url_for("web_admin_settings", slug=slug))


@router.post("/announcements/{announcement_id}/delete", name="web_admin_announce_delete")
def announce_delete(slug: str, announcement_id: RowId, page: PageDep,
                    csrf_token: Annotated[str, Form()] = "") -> Response:
    page.require_admin()
    page.session.check_csrf(csrf_token)
    withdraw_announcement(session=page.db, competition=get_competition(session=page.db, slug=slug),
                          announcement_id=announcement_id)
    page.session.set_flash("ok", "Announcement withdrawn.")
    return page.redirect(page.url_for("web_admin_settings", slug=slug))


def _reference_team(page: Page, row: CompetitionRow, name: str) -> tuple[Team, bool]:
    """The reference (baseline) team of that name, created on its first upload; True when created now."""
    for team in list_teams(session=page.db, competition=row):
        if team.name == name.strip():
            if not team.is_baseline:
                raise InvalidSettings(f"'{name}' is a team of participants, not a reference entry; pick another name.",
                                      detail={"name": "taken by a participating team"})
            return team, False
    team, _token = create_team(session=page.db, competition=row, name=name[:100], is_baseline=True, now=page.now)
    return team, True


@router.post("/references", name="web_admin_reference", response_class=HTMLResponse)
def reference_post(
    slug: str, page: PageDep, file: UploadFile, name: Annotated[str, Form()] = "",
    message: Annotated[str, Form()] = "", csrf_token: Annotated[str, Form()] = "",
) -> Response:
    """Upload a submission zip as a reference entry (shown on the board, marked, not ranked)."""
    page.require_admin()
    page.session.check_csrf(csrf_token)
    row = get_competition(session=page.db, slug=slug)
    created: Team | None = None
    try:
        if not name.strip():
            raise InvalidSettings("A reference entry needs a name (e.g. 'baseline: conditional DCGAN').",
                                  detail={"name": "empty"})
        team, is_new = _reference_team(page, row, name)
        created = team if is_new else None
        submission, _ = submit_upload(session=page.db, settings=page.settings, competition=row, team=team,
                                      source=file.file, message=message[:500], now=page.now)
    except ArenaError as exc:
        page.db.rollback()
        if created is not None:  # a rejected first upload leaves no empty reference team behind
            delete_team(session=page.db, team=created)
        problems = exc.detail.get("problems", []) if isinstance(exc.detail, dict) else []
        return _console(page, row, status_code=exc.status_code, reference_error=exc.message,
                        reference_problems=problems)
    page.session.set_flash("ok", f"Reference entry '{team.name}' uploaded as submission {submission.id}; queued.")
    return page.redirect(page.url_for("web_admin_settings", slug=slug))


# -- scoring references (built by a worker: server/jobs/reference_builds.py) ---------------------------------------


@router.get("/scoring-references", name="web_admin_scoring_references", response_class=HTMLResponse)
def scoring_references_page(slug: str, page: PageDep) -> Response:
    """The latest reference build's progress per class (refreshing itself while it runs), outcome and history."""
    page.require_admin()
    row = get_competition(session=page.db, slug=slug)
    builds = recent_builds(session=page.db, competition=row, limit=10)
    silent_after = timedelta(seconds=page.settings.worker_timeout_seconds)
    live_workers = [w for w in list_workers(session=page.db)
                    if w.stopped_at is None and page.now - w.last_heartbeat < silent_after]
    context = {"comp": load_competition(row), "row": row, "build": builds[0] if builds else None, "builds": builds,
               "live_workers": live_workers, "now": page.now}
    return page.render("admin/scoring_references.html", context)


@router.post("/scoring-references/build", name="web_admin_build_references")
def build_references_post(slug: str, page: PageDep, csrf_token: FormText = "") -> Response:
    """Queue a build for a worker (a retry after a failure, or a check after new weights); never built here."""
    page.require_admin()
    page.session.check_csrf(csrf_token)
    row = get_competition(session=page.db, slug=slug)
    build = request_build(session=page.db, competition=row, reason=f"requested by the {_actor(page)}", now=page.now)
    page.session.set_flash("ok", f"Reference build {build.id} is {build.status}: a scoring worker builds it.")
    return page.redirect(page.url_for("web_admin_scoring_references", slug=slug))


# -- new competitions ----------------------------------------------------------------------------------------------

new_router = APIRouter(prefix="/admin/new", route_class=PageRoute, include_in_schema=False)


def _new_page(page: Page, *, status_code: int = 200, **extra: Any) -> Response:
    jobs = sorted(path.name for path in competition_setup.jobs_dir(page.settings.data_dir).glob("*") if path.is_dir())
    defaults = {"images_per_class": "1000", "public_fraction": "0.5", "image_size": "64", "seed": "0",
                **{name: getattr(competition_setup.PreparationRequest, name) for name in competition_setup.CHOICES}}
    context = {"jobs": jobs, "form": defaults, "errors": {}, "choices": competition_setup.CHOICES,
               "effects": {"submission_kinds": EDITABLE["submission_kinds"]},
               "min_test_images": competition_setup.MIN_TEST_IMAGES_PER_SPLIT, **extra}
    return page.render("admin/new.html", context, status_code=status_code)


@new_router.get("", name="web_admin_new", response_class=HTMLResponse)
def new_competition(page: PageDep) -> Response:
    """The new-competition form and the preparations under way."""
    page.require_admin()
    return _new_page(page)


@new_router.post("", name="web_admin_new_post", response_class=HTMLResponse)
def new_competition_post(
    page: PageDep, slug: FormText = "", title: FormText = "", images_per_class: FormText = "1000",
    public_fraction: FormText = "0.5", folder: FormText = "", archive: UploadFile | None = None,
    test_folder: FormText = "", class_map: FormText = "", validation: FormText = "", small: FormText = "",
    dedupe: FormText = "", skip_bad: FormText = "", image_size: FormText = "", seed: FormText = "",
    submission_kinds: FormText = "",
    test_fraction: FormText = "", csrf_token: FormText = "",
) -> Response:
    """Check everything that can be checked now, then start the preparation in the background."""
    page.require_admin()
    page.session.check_csrf(csrf_token)
    form = {"slug": slug, "title": title, "images_per_class": images_per_class, "public_fraction": public_fraction,
            "folder": folder, "test_folder": test_folder, "class_map": class_map, "validation": validation,
            "small": small, "dedupe": dedupe, "skip_bad": skip_bad, "image_size": image_size, "seed": seed,
            "submission_kinds": submission_kinds,
            "test_fraction": test_fraction}
    data_dir = page.settings.data_dir
    received: Path | None = None
    try:
        known = {row.slug for row in list_competitions(session=page.db)}
        slug, title, count, fraction = competition_setup.check_request(
            data_dir=data_dir, slug=slug, title=title, images_per_class=images_per_class,
            public_fraction=public_fraction, known_slugs=known)
        options = competition_setup.check_options(form)
        held_out = competition_setup.check_test_fraction(test_fraction)
        if archive is not None and archive.filename:
            received, _, _ = receive_upload(data_dir, archive.file, max_bytes=page.settings.max_upload_bytes)
            competition_setup.check_archive(received, archive.filename)
            source = archive.filename
        else:
            source = str(competition_setup.check_folder(folder))
        request = competition_setup.PreparationRequest(slug=slug, title=title, source=source, images_per_class=count,
                                                 public_fraction=fraction, **options, test_fraction=held_out)
        competition_setup.start(data_dir=data_dir, request=request, archive=received)
    except ArenaError as exc:
        if received is not None:
            received.unlink(missing_ok=True)
        return _new_page(page, **refused_form(exc, form))
    page.session.set_flash("ok", f"Preparing '{slug}' in the background.")
    return page.redirect(page.url_for("web_admin_new_job", slug=slug))


@new_router.get("/{slug}", name="web_admin_new_job", response_class=HTMLResponse)
def new_competition_job(slug: str, page: PageDep) -> Response:
    """Progress while preparing; then the preview grid per class, the audit summary and the open button."""
    page.require_admin()
    job = competition_setup.state(page.settings.data_dir, slug)
    if job["state"] == "missing":
        raise NotFound(f"No competition '{slug}' is being prepared.")
    build = None
    if job["state"] == "done":
        # Registered (closed) at once, so the organizer can configure it before opening it; a worker builds the
        # reference statistics meanwhile.
        row = register_competition(session=page.db, root=competitions_dir(page.settings.data_dir) / slug,
                                   now=page.now)
        build = request_first_build(session=page.db, competition=row, reason="prepared from the console",
                                    now=page.now)
    few = competition_setup.few_reference_images(job.get("counts", {}))
    return page.render("admin/new_job.html", {"slug": slug, "job": job, "build": build, "few_references": few,
                                              "min_test_images": competition_setup.MIN_TEST_IMAGES_PER_SPLIT})


@new_router.get("/{slug}/preview/{cls}.png", name="web_admin_new_preview")
def new_competition_preview(slug: str, cls: str, page: PageDep) -> Response:
    page.require_admin()
    path = competition_setup.job_dir(page.settings.data_dir, slug) / "preview" / f"{cls}.png"
    if not path.is_file() or ".." in cls:
        raise NotFound(f"No preview for class '{cls}'.")
    return page.finish(FileResponse(path, media_type="image/png"))


@new_router.post("/{slug}/open", name="web_admin_new_open")
def new_competition_open(slug: str, page: PageDep, csrf_token: FormText = "") -> Response:
    """Open the prepared competition to teams."""
    page.require_admin()
    page.session.check_csrf(csrf_token)
    row = get_competition(session=page.db, slug=slug)
    update_settings(session=page.db, competition=row, changes={"status": "open"}, actor=_actor(page), now=page.now)
    competition_setup.forget(page.settings.data_dir, slug)
    page.session.set_flash("ok", f"'{slug}' is open: teams can submit.")
    return page.redirect(page.url_for("web_admin_settings", slug=slug))


@new_router.post("/{slug}/dismiss", name="web_admin_new_dismiss")
def new_competition_dismiss(slug: str, page: PageDep, csrf_token: FormText = "") -> Response:
    """Forget a finished preparation (a failed one, or one the organizer will open later from its settings)."""
    page.require_admin()
    page.session.check_csrf(csrf_token)
    if competition_setup.state(page.settings.data_dir, slug)["state"] == "running":
        raise Conflict(f"'{slug}' is still being prepared; wait for it to finish.")
    competition_setup.forget(page.settings.data_dir, slug)
    return page.redirect(page.url_for("web_admin_new"))
