"""The remote worker's client side alone (server/jobs/remote_worker.py), against small real HTTP servers: retries with
backoff on 5xx and on a refused connection, downloads kept only when their hash matches, a reference upload sent
whole again on each retry, and a lease given up when the server stays silent for as long as it said the lease
lasts."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from server.config import Settings
from server.jobs.remote_worker import ArenaServer, RemoteWorker
from tests.utils.serve import free_port

PAYLOAD = b"reference statistics " * 1000


@contextmanager
def flaky_server(failures: int, body: bytes = PAYLOAD) -> Iterator[tuple[str, list[str]]]:
    """Answers 503 `failures` times, then 200 with `body`; yields (url, the paths it was asked for)."""
    asked: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            asked.append(self.path)
            status = 503 if len(asked) <= failures else 200
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_POST = do_GET  # noqa: N815

        def log_message(self, *_: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", asked
    finally:
        server.shutdown()
        server.server_close()


def test_calls_are_retried_with_backoff_on_5xx():
    with flaky_server(failures=2) as (url, asked):
        response = ArenaServer(url, "arenaw_x", retry_seconds=30).call("POST", "/claim")
    assert response.status_code == 200 and len(asked) == 3


def test_a_server_that_keeps_failing_ends_the_retries_with_its_error():
    with flaky_server(failures=1000) as (url, asked), pytest.raises(httpx.HTTPStatusError):
        ArenaServer(url, "arenaw_x", retry_seconds=1.5).call("POST", "/claim")
    assert 2 <= len(asked) <= 5  # backoff 0.5 s doubling, within the 1.5 s given


def test_a_download_is_kept_only_with_the_announced_hash(tmp_path):
    good = hashlib.sha256(PAYLOAD).hexdigest()
    with flaky_server(failures=1) as (url, _):
        server = ArenaServer(url, "arenaw_x", retry_seconds=30)
        path = server.download(f"{url}/references", tmp_path / "refs.npz", good)
        assert path.read_bytes() == PAYLOAD
        with pytest.raises(httpx.ReadError, match="is not the announced"):
            ArenaServer(url, "arenaw_x", retry_seconds=1).download(f"{url}/x", tmp_path / "other.npz", "0" * 64)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["refs.npz"]  # no partial file left behind


def test_a_lease_is_given_up_when_the_server_is_silent_as_long_as_it_lasts(tmp_path):
    """Nobody listens on the port: the heartbeats fail, and after lease_seconds the job counts as lost (the server
    has requeued it by then, so the worker must not post a result for it)."""
    worker = RemoteWorker(server=ArenaServer(f"http://127.0.0.1:{free_port()}", "arenaw_x", retry_seconds=0.1),
                          settings=Settings(data_dir=tmp_path), cache_dir=tmp_path, scorer=object(),
                          heartbeat_seconds=0.05, lease_seconds=0.5)
    worker.lease, worker.last_answer = "ab" * 16, time.monotonic()
    stop = threading.Event()
    beating = threading.Thread(target=worker._heartbeat_loop, args=(stop,), daemon=True)
    beating.start()
    try:
        assert not worker.lost.wait(0.3)  # within the lease: kept
        assert worker.lost.wait(2.0)  # past it: given up
    finally:
        stop.set()
        beating.join(timeout=5)


def test_the_cache_dir_holds_the_reference_file_once_per_fingerprint(tmp_path):
    digest = hashlib.sha256(PAYLOAD).hexdigest()
    with flaky_server(failures=0) as (url, asked):
        server = ArenaServer(url, "arenaw_x", retry_seconds=5)
        for _ in range(3):
            server.download(f"{url}/references", tmp_path / "references" / f"{digest}.npz", digest)
    assert len(asked) == 1 and Path(tmp_path / "references" / f"{digest}.npz").stat().st_size == len(PAYLOAD)


@contextmanager
def receiving_server(failures: int) -> Iterator[tuple[str, list[bytes], list[str]]]:
    """Reads each POST's body (chunked or not), answers 503 `failures` times, then 200; yields (url, the bodies,
    the X-Content-Sha256 headers)."""
    bodies: list[bytes] = []
    hashes: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            chunked = self.headers.get("Transfer-Encoding") == "chunked"
            bodies.append(read_chunked(self.rfile) if chunked else self.rfile.read(int(self.headers["Content-Length"])))
            hashes.append(self.headers.get("X-Content-Sha256", ""))
            answer = b'{"outcome": "checked"}'
            self.send_response(503 if len(bodies) <= failures else 200)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *_: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", bodies, hashes
    finally:
        server.shutdown()
        server.server_close()


def read_chunked(stream) -> bytes:
    data = b""
    while size := int(stream.readline().split(b";")[0], 16):
        data += stream.read(size)
        stream.readline()
    stream.readline()
    return data


def test_a_reference_upload_is_retried_on_5xx_with_the_whole_file_each_time(tmp_path):
    """The file is read from disk in chunks for each try (a retried stream must start again from its first byte)."""
    path = tmp_path / "fid-references.npz"
    path.write_bytes(PAYLOAD * 150)  # ~3 MB: several chunks
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    with receiving_server(failures=2) as (url, bodies, hashes):
        response = ArenaServer(url, "arenaw_x", retry_seconds=30).upload(f"{url}/builds/1/{'ab' * 16}/references",
                                                                         path, digest)
    assert response.json() == {"outcome": "checked"}
    assert len(bodies) == 3 and all(body == path.read_bytes() for body in bodies)
    assert hashes == [digest] * 3


def test_a_cached_file_is_hashed_once_and_fetched_again_once_changed(tmp_path, monkeypatch):
    """The reference file (~400 MB) is checked before every job: hashing it each time cost about a second per job,
    so a file this process has checked is known by its size and modification time; one changed since is not."""
    import server.jobs.remote_worker as remote_worker

    hashed: list[Path] = []
    real_sha256 = remote_worker.file_sha256
    monkeypatch.setattr(remote_worker, "file_sha256", lambda path: hashed.append(path) or real_sha256(path))
    digest = hashlib.sha256(PAYLOAD).hexdigest()
    target = tmp_path / "references" / f"{digest}.npz"
    with flaky_server(failures=0) as (url, asked):
        server = ArenaServer(url, "arenaw_x", retry_seconds=5)
        for _ in range(3):
            server.download(f"{url}/references", target, digest)
        assert len(asked) == 1 and hashed == []  # downloaded and checked once, trusted after
        ArenaServer(url, "arenaw_x", retry_seconds=5).download(f"{url}/references", target, digest)
        assert len(asked) == 1 and hashed == [target]  # another process checks the cached file once
        target.write_bytes(b"changed on disk")
        server.download(f"{url}/references", target, digest)
    assert len(asked) == 2 and target.read_bytes() == PAYLOAD
