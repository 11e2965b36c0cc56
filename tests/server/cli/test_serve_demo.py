"""`arena serve --demo` (what `make run` starts), restarted as an organizer would the evening before class: the
organizer token and the session key are kept in the data dir (0600), so a restart prints the same token and an
organizer signed in before it is still signed in after it; the banner's commands run as printed."""

from __future__ import annotations

import os
import re
import shlex
import stat
import subprocess
from pathlib import Path

import httpx

from server.competition_dir import competitions_dir
from tests.utils.competition import make_competition
from tests.utils.serve import REPO, free_port, start_server, stop_server
from tests.utils.server_factories import csrf_of


def serve_demo(data_dir: Path, port: int, log: Path) -> tuple[subprocess.Popen, str]:
    """`arena serve --demo` without a worker, with an environment as bare as a fresh shell's: no ARENA_ADMIN_TOKEN,
    no ARENA_SECRET_KEY and the venv not on PATH."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("ARENA_")}
    env["PATH"] = "/usr/bin:/bin"
    return start_server(env, log, "--demo", "--no-worker", "--data-dir", str(data_dir), port=port)


def printed_token(log: Path) -> str:
    match = re.search(r"Organizer \(admin\) token: (\S+)", log.read_text())
    assert match, log.read_text()
    return match.group(1)


def test_a_demo_restart_keeps_the_organizer_token_and_everyones_sign_in(tmp_path):
    data_dir = tmp_path / "data"
    make_competition(competitions_dir(data_dir) / "demo", images_per_class=4, train_per_class=4, test_per_class=4,
                     slug="demo")  # an existing demo competition: no synthetic faces to draw
    port = free_port()
    process, url = serve_demo(data_dir, port, tmp_path / "first.log")
    try:
        token = printed_token(tmp_path / "first.log")
        organizer = httpx.Client(base_url=url)
        csrf = csrf_of(organizer.get("/admin/signin").text)
        signed_in = organizer.post("/admin/signin", data={"token": token, "csrf_token": csrf})
        assert signed_in.status_code == 303, signed_in.text
        assert organizer.get("/admin", follow_redirects=False).status_code == 200
    finally:
        stop_server(process)
    for name in ("admin-token", "session-key"):
        assert stat.S_IMODE((data_dir / "secrets" / name).stat().st_mode) == 0o600

    process, url = serve_demo(data_dir, port, tmp_path / "second.log")
    try:
        assert printed_token(tmp_path / "second.log") == token
        page = organizer.get("/admin", follow_redirects=False)
        assert page.status_code == 200, "the organizer was signed out by the restart"
        assert httpx.get(f"{url}/api/admin/submissions", headers={"Authorization": f"Bearer {token}"}).is_success
    finally:
        stop_server(process)


def test_the_banner_commands_run_from_a_shell_without_the_venv(tmp_path):
    data_dir = tmp_path / "data"
    make_competition(competitions_dir(data_dir) / "demo", images_per_class=4, train_per_class=4, test_per_class=4,
                     slug="demo")
    process, _ = serve_demo(data_dir, free_port(), tmp_path / "serve.log")
    stop_server(process)
    banner = (tmp_path / "serve.log").read_text()
    command = re.search(r"^  (\S+) submission sample --competition (\S+) --out sample.zip$", banner, re.M)
    assert command, banner
    assert command.group(1) != "arena"  # not on this PATH: the banner names the venv's
    assert "ARENA_PORT" in banner
    shell = {key: value for key, value in os.environ.items() if not key.startswith("ARENA_")}
    shell["PATH"] = "/usr/bin:/bin"
    ran = subprocess.run(f"{command.group(0).strip()}".replace("sample.zip", shlex.quote(str(tmp_path / "s.zip"))),
                         shell=True, cwd=REPO, env=shell, capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert (tmp_path / "s.zip").stat().st_size > 0
