from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter
from sqlalchemy import func, select, text

from server.api.schemas import HealthPublic
from server.db import CompetitionRow, Submission, SubmissionStatus, WorkerRow
from server.request_deps import NowDep, SessionDep, SettingsDep

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=HealthPublic)
def healthz(session: SessionDep, settings: SettingsDep, now: NowDep) -> HealthPublic:
    """Liveness plus the numbers an operator checks first: queue length and live workers."""
    session.execute(text("SELECT 1"))
    alive_since = now - timedelta(seconds=settings.worker_timeout_seconds)
    return HealthPublic(
        status="ok",
        database=session.get_bind().dialect.name,
        competitions=session.scalar(select(func.count(CompetitionRow.id))) or 0,
        queued=session.scalar(select(func.count(Submission.id)).where(Submission.status == SubmissionStatus.queued))
        or 0,
        workers_alive=session.scalar(select(func.count(WorkerRow.id)).where(
            WorkerRow.last_heartbeat >= alive_since, WorkerRow.stopped_at.is_(None))) or 0,
    )
