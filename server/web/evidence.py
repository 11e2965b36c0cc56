"""Memorization evidence and score diagnostics on the submission page.

The scorer names, per class, the generated images closest to a real one (`nearest_train`: training images only;
`nearest_any`: the held-out test images too). A team sees its own generated images next to their nearest training
images; the nearest test images never leave the organizer pages, since showing them would teach teams the secret
test set.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter
from fastapi.responses import FileResponse, Response

from server.competition import load_competition
from server.db import Submission
from server.db.crud import get_visible_submission
from server.errors import Forbidden, NotFound
from server.params import RowId
from server.storage import evidence_path
from server.web.deps import Page, PageDep
from server.web.routing import PageRoute

router = APIRouter(route_class=PageRoute, include_in_schema=False)
Neighbours = Literal["train", "any"]
IMAGE_HEADERS = {"Cache-Control": "private, max-age=60"}


def evidence_context(page: Page, submission: Submission, classes: list[str]) -> dict[str, Any]:
    """Per class, the evidence rows this viewer may see: (set, position, neighbour) for penalized classes, and for
    every class on an organizer's view."""
    evidence: dict[str, list[tuple[Neighbours, int, dict]]] = {}
    for cls in classes:
        values = (submission.class_scores or {}).get(cls, {})
        if not (values.get("penalized") or page.is_admin):
            continue
        sets: tuple[Neighbours, ...] = ("train", "any") if page.is_admin else ("train",)
        rows = [(which, i, n) for which in sets for i, n in enumerate(values.get(f"nearest_{which}") or [])]
        if rows:
            evidence[cls] = rows
    return {"evidence": evidence}


def _neighbour(page: Page, submission_id: int, cls: str, which: Neighbours, position: int) -> tuple[Submission, dict]:
    if which == "any" and not page.is_admin:
        raise Forbidden("Nearest held-out test images are shown to organizers only.")
    submission = get_visible_submission(session=page.db, submission_id=submission_id, team=page.team,
                                        is_admin=page.is_admin)
    listed = ((submission.class_scores or {}).get(cls) or {}).get(f"nearest_{which}") or []
    if not 0 <= position < len(listed):
        raise NotFound(f"No memorization evidence {which}/{position} for class '{cls}' of submission {submission_id}.")
    return submission, listed[position]


@router.get("/submissions/{submission_id}/evidence/{cls}/{which}/{position}/generated.png",
            name="web_evidence_generated")
def evidence_generated(submission_id: RowId, cls: str, which: Neighbours, position: int, page: PageDep) -> Response:
    """A generated image the scorer found closest to a real one."""
    submission, neighbour = _neighbour(page, submission_id, cls, which, position)
    path = evidence_path(page.settings.data_dir, submission.id, cls, int(neighbour["image"]))
    if not path.is_file():
        raise NotFound(f"The evidence image of submission {submission_id} is not stored; rescore it to keep it.")
    return FileResponse(path, media_type="image/png", headers=IMAGE_HEADERS)


@router.get("/submissions/{submission_id}/evidence/{cls}/{which}/{position}/real.png", name="web_evidence_real")
def evidence_real(submission_id: RowId, cls: str, which: Neighbours, position: int, page: PageDep) -> Response:
    """The real image nearest to that generated image: a training image, or (organizers only) a test image."""
    submission, neighbour = _neighbour(page, submission_id, cls, which, position)
    if neighbour["split"] != "train" and not page.is_admin:
        raise Forbidden("Held-out test images are shown to organizers only.")
    root = load_competition(submission.team.competition).root.resolve()
    path = (root / str(neighbour["file"])).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        raise NotFound(f"The real image {neighbour['file']} is not in the competition directory.")
    return FileResponse(path, media_type="image/png", headers=IMAGE_HEADERS)
