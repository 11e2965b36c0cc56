"""SIGTERM/SIGINT for every worker (server.jobs.signals.ShutdownSignals): the first signal lets the job finish, a second
one or the end of the grace period gives it back to the queue without using an attempt, the handlers are restored
afterwards. `arena serve` forwarding the signals to its worker process: tests/server/cli/test_serve_worker.py."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from server.db.crud import get_submission
from server.jobs.queue import claim_next_submission
from server.jobs.signals import ShutdownSignals
from server.jobs.worker import Held, Worker
from tests.utils.server_factories import submission_zip


def worker_holding_a_job(arena) -> tuple[Worker, int]:
    """A worker that has claimed a submission and is scoring it in another thread (the signals reach this one)."""
    _, token = arena.create_team("a")
    submission_id = arena.upload(token, submission_zip(arena.competition, seed=1)).json()["id"]
    worker = Worker(database=arena.database, settings=arena.settings, worker_id="w")
    with arena.database.sessionmaker() as session:
        claimed = claim_next_submission(session=session, worker_id="w")
        assert claimed.id == submission_id
    worker.current = Held(submission_id, claimed.lease_id)
    return worker, submission_id


def history(arena, submission_id: int) -> tuple[list[tuple[str | None, str]], str, int]:
    with arena.database.sessionmaker() as session:
        submission = get_submission(session=session, submission_id=submission_id)
        return [(e.from_status, e.to_status) for e in submission.events], submission.events[-1].reason, \
            submission.attempts


def scoring_thread(seconds: float) -> tuple[threading.Thread, threading.Event]:
    """Stands in for the job running in the worker's thread: it ends after `seconds` or when released."""
    done = threading.Event()
    thread = threading.Thread(target=done.wait, args=(seconds,), daemon=True)
    thread.start()
    return thread, done


REQUEUED = [(None, "queued"), ("queued", "scoring"), ("scoring", "queued")]


@pytest.mark.parametrize("grace", [0.3, 0.0])
def test_the_end_of_the_grace_period_requeues_the_job_without_using_an_attempt(make_app, grace):
    arena = make_app(worker_shutdown_grace_seconds=grace)
    worker, submission_id = worker_holding_a_job(arena)
    thread, done = scoring_thread(60)
    alarm_handler = signal.getsignal(signal.SIGALRM)
    started = time.monotonic()
    with ShutdownSignals(worker) as shutdown:
        shutdown.stop("test")
        thread.join()
    done.set()
    assert grace <= time.monotonic() - started < 30
    assert worker.stop.is_set()
    events, reason, attempts = history(arena, submission_id)
    assert events == REQUEUED and "w stopped before finishing; back in the queue" in reason and attempts == 0
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0) and signal.getsignal(signal.SIGALRM) == alarm_handler


def test_the_first_signal_lets_the_job_finish_a_second_one_requeues_it_now(make_app):
    arena = make_app(worker_shutdown_grace_seconds=60)
    worker, submission_id = worker_holding_a_job(arena)
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    thread, done = scoring_thread(60)
    with ShutdownSignals(worker):
        os.kill(os.getpid(), signal.SIGTERM)
        deadline = time.monotonic() + 10
        while not worker.stop.is_set() and time.monotonic() < deadline:
            time.sleep(0.01)  # the handler runs in this (the main) thread between two steps
        assert worker.stop.is_set() and history(arena, submission_id)[0][-1] == ("queued", "scoring")
        os.kill(os.getpid(), signal.SIGINT)
        thread.join()
        pytest.fail("the second signal did not interrupt the wait for the job")
    done.set()
    events, reason, attempts = history(arena, submission_id)
    assert events == REQUEUED and "stopped before finishing" in reason and attempts == 0
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


def test_a_job_that_finishes_within_the_grace_period_is_not_requeued(make_app):
    arena = make_app(worker_shutdown_grace_seconds=30)
    worker, submission_id = worker_holding_a_job(arena)
    thread, _ = scoring_thread(0.3)
    with ShutdownSignals(worker) as shutdown:
        shutdown.stop("test")
        shutdown.stop("again")  # a repeated stop() is not a second signal
        thread.join()
    assert history(arena, submission_id)[0] == [(None, "queued"), ("queued", "scoring")]
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
