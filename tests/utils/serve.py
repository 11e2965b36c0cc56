"""The one launcher of real `arena` processes, for the tests and the benchmarks (bench/ imports it, as it imports
tests.utils' competitions and ONNX models): start `arena serve` with an environment, wait for /healthz, stop it;
and the one way the browser tests start Chromium (Playwright is imported only there)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"  # Debian's package (.ci/chromium), never `playwright install`
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_arena(env: Mapping[str, str], log: Path, *args: str) -> subprocess.Popen:
    """`arena ARGS` (python -m server.cli, run from this checkout) as its own process, its output in `log`."""
    with log.open("w") as out:
        return subprocess.Popen([sys.executable, "-m", "server.cli", *args], cwd=REPO, env=dict(env), stdout=out,
                                stderr=subprocess.STDOUT)


def check_alive(process: subprocess.Popen, log: Path) -> None:
    """A process that exited raises, with the end of its log."""
    if process.poll() is not None:
        raise RuntimeError(f"`arena {' '.join(process.args[3:])}` exited with {process.returncode}; the end of "
                           f"{log}:\n{log.read_text()[-4000:]}")


def wait_healthy(url: str, process: subprocess.Popen, log: Path, timeout: float = 180.0) -> None:
    """Until /healthz answers 200; the server's log in the error when it exits or never answers."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        check_alive(process, log)
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"arena serve did not answer within {timeout:.0f} s:\n{log.read_text()[-4000:]}")


def start_server(env: Mapping[str, str], log: Path, *args: str, port: int | None = None, host: str = "127.0.0.1",
                 timeout: float = 180.0) -> tuple[subprocess.Popen, str]:
    """`arena serve ARGS` on `host` (a free port unless given), its output in `log`; (process, url) once healthy."""
    port = port or free_port()
    process = start_arena(env, log, "serve", "--host", host, "--port", str(port), *args)
    url = f"http://{host}:{port}"
    try:
        wait_healthy(url, process, log, timeout)
    except BaseException:
        stop_server(process)
        raise
    return process, url


def stop_server(process: subprocess.Popen) -> None:
    """SIGTERM (the worker finishes or requeues its job), SIGKILL after 30 s."""
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextmanager
def running_server(env: Mapping[str, str], log: Path, *args: str, port: int | None = None) -> Iterator[str]:
    """`arena serve ARGS` for the block; yields its URL."""
    process, url = start_server(env, log, *args, port=port)
    try:
        yield url
    finally:
        stop_server(process)


@contextmanager
def running_arena(env: Mapping[str, str], log: Path, *args: str) -> Iterator[subprocess.Popen]:
    """`arena ARGS` (a worker, say) for the block; stopped as stop_server stops a server."""
    process = start_arena(env, log, *args)
    try:
        yield process
    finally:
        stop_server(process)


@contextmanager
def chromium() -> Iterator[object]:
    """Headless Debian Chromium through Playwright."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()
