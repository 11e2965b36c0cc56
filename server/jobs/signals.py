"""SIGTERM/SIGINT for every worker process, in one place: `ShutdownSignals` in the worker, `ForwardSignals` in
`arena serve` (which runs its worker as a child). A test checks that no other module installs signal handlers."""

from __future__ import annotations

import logging
import signal
import threading
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from collections.abc import Callable

    from server.config import Settings

log = logging.getLogger("arena.worker")


def ignore_shutdown_signals() -> None:
    """For a helper process its parent stops (the board recompute process): a Ctrl-C or SIGTERM sent to the whole
    process group must not kill it before the parent shuts it down."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


class WorkerInterrupted(BaseException):
    """Raised in the worker's thread to abandon the current job (second SIGTERM or grace period over)."""


class StoppableWorker(Protocol):
    """What the signals need of a worker (server/jobs/worker.py's Worker)."""

    worker_id: str
    settings: Settings
    stop: threading.Event

    def abandon_current(self, reason: str) -> None: ...


class ShutdownSignals:
    """The one SIGTERM/SIGINT rule of every worker process (`arena worker`, alone or started by `arena serve`).

    The first signal (or `stop()`) stops taking jobs and lets the current one finish within
    `worker_shutdown_grace_seconds`; a second signal, or the end of the grace period, raises WorkerInterrupted in
    the main thread and the job goes back to the queue without using an attempt: `run_once` releases it, and
    leaving this context gives back the job of a worker running in another thread (the tests run one so). Nothing is
    lost either way. Use it as a context manager in the main thread (signal handlers can only live there).
    """

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self, worker: StoppableWorker) -> None:
        self.worker = worker
        self.stopping = False
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> ShutdownSignals:
        self._previous = {sig: signal.signal(sig, self._on_signal) for sig in self.SIGNALS}
        return self

    def __exit__(self, kind: type[BaseException] | None, *_: Any) -> bool:
        signal.setitimer(signal.ITIMER_REAL, 0)  # a pending grace-period alarm must not fire during exit
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        if kind is None or not issubclass(kind, WorkerInterrupted):
            return False
        # a no-op when run_once, in this thread, has released the job already
        self.worker.abandon_current(f"worker {self.worker.worker_id} stopped before finishing; back in the queue")
        return True

    def stop(self, why: str) -> None:
        """Stop taking jobs and start the current job's grace period (the first call only)."""
        if self.stopping:
            return
        self.stopping = True
        self.worker.stop.set()
        grace = self.worker.settings.worker_shutdown_grace_seconds
        if grace <= 0:
            raise WorkerInterrupted()
        log.warning("%s: finishing the current job (up to %.0f s), then exiting; send it again to requeue now",
                    why, grace)
        self._previous.setdefault(signal.SIGALRM, signal.signal(signal.SIGALRM, self._on_grace_over))
        signal.setitimer(signal.ITIMER_REAL, grace)

    def _on_signal(self, signum: int, _frame: Any) -> None:
        if self.stopping:
            raise WorkerInterrupted()
        self.stop(signal.Signals(signum).name)

    @staticmethod
    def _on_grace_over(*_: Any) -> None:
        raise WorkerInterrupted()


class ForwardSignals:
    """`arena serve`'s side of the rule: it runs its worker as a child process and passes it every SIGTERM/SIGINT
    it receives as one SIGTERM (`forward`), so the worker's own ShutdownSignals decide: the first finishes the job
    within the grace period, a second requeues it now. uvicorn takes the signals while it serves and raises them
    again once it has shut down, which is when they reach this handler. Without a worker (`--no-worker`) the
    signals only end the server quietly."""

    def __init__(self, forward: Callable[[], None] | None) -> None:
        self.forward = forward
        self.received = 0
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> ForwardSignals:
        self._previous = {sig: signal.signal(sig, self._on_signal) for sig in ShutdownSignals.SIGNALS}
        return self

    def __exit__(self, *_: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _on_signal(self, _signum: int, _frame: Any) -> None:
        self.received += 1
        if self.forward is not None:
            self.forward()
