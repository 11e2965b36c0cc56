"""The memorization evidence images of the submission page (which pairs a viewer sees: `ResultView.evidence`).

The scorer names, per class, the generated images closest to a real one (`nearest_train`: training images only;
`nearest_any`: the held-out test images too). A team sees its own generated images next to their nearest training
images; the nearest test images never leave the organizer pages, since showing them would teach teams the secret
test set.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import FileResponse, Response

from server.boards.ranking import result_seen
from server.competition_dir import load_competition
from server.db import Submission
from server.db.crud import get_visible_submission
from server.errors import Forbidden, NotFound
from server.params import RowId
from server.storage import evidence_path
from server.web.deps import Page, PageDep
from server.web.routing import PageRoute
from submissions.results import Neighbour, Neighbours

router = APIRouter(route_class=PageRoute, include_in_schema=False)
IMAGE_HEADERS = {"Cache-Control": "private, max-age=60"}


def _neighbour(page: Page, submission_id: int, cls: str, which: Neighbours, position: int, *,
               real: bool = False) -> tuple[Submission, Neighbour]:
    """One evidence pair, through the result's visibility rule (the page lists the same ones); `real`: its real
    image is asked for, a test image only an organizer sees."""
    submission = get_visible_submission(session=page.db, submission_id=submission_id, team=page.team,
                                        is_admin=page.is_admin)
    view = result_seen(submission, is_admin=page.is_admin)
    try:
        neighbour = view.neighbour(cls, which, position) if view is not None else None
    except PermissionError as exc:
        raise Forbidden(str(exc)) from exc
    if neighbour is None:
        raise NotFound(f"No memorization evidence {which}/{position} for class '{cls}' of submission {submission_id}.")
    if real and view is not None and not view.viewer.sees_real_image(neighbour):
        raise Forbidden("Held-out test images are shown to organizers only.")
    return submission, neighbour


@router.get("/submissions/{submission_id}/evidence/{cls}/{which}/{position}/generated.png",
            name="web_evidence_generated")
def evidence_generated(submission_id: RowId, cls: str, which: Neighbours, position: int, page: PageDep) -> Response:
    """A generated image the scorer found closest to a real one."""
    submission, neighbour = _neighbour(page, submission_id, cls, which, position)
    path = evidence_path(page.settings.data_dir, submission.id, cls, neighbour.image)
    if not path.is_file():
        raise NotFound(f"The evidence image of submission {submission_id} is not stored; rescore it to keep it.")
    return FileResponse(path, media_type="image/png", headers=IMAGE_HEADERS)


@router.get("/submissions/{submission_id}/evidence/{cls}/{which}/{position}/real.png", name="web_evidence_real")
def evidence_real(submission_id: RowId, cls: str, which: Neighbours, position: int, page: PageDep) -> Response:
    """The real image nearest to that generated image: a training image, or (organizers only) a test image."""
    submission, neighbour = _neighbour(page, submission_id, cls, which, position, real=True)
    root = load_competition(submission.team.competition).root.resolve()
    path = (root / neighbour.file).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        raise NotFound(f"The real image {neighbour.file} is not in the competition directory.")
    return FileResponse(path, media_type="image/png", headers=IMAGE_HEADERS)
