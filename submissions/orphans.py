"""What a SIGKILLed sampler leaves behind, found and ended: sampling processes and `arena-sample-*` work folders.

`sample_model` names each work folder after the process that owns it (`arena-sample-<pid>-*`) and starts the model
in a child that dies with its owner (submissions/sampling.py). When an owner is SIGKILLed its folder stays in the
temp directory; `reap_orphans`, run at worker start, kills any sampling process still working in such a folder (the
kernel should have already: this is the second line) and removes the folder. A folder whose owner is alive, or that
names no owner (an older version's) and is in use or under an hour old, is left alone. `stop_copies` ends the other
copies of one job on this host, so a requeued job never samples beside a copy its old, silent worker left running.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from submissions.sampling import WORKDIR_PREFIX

log = logging.getLogger("arena.sampling")
SAMPLING_MODULE = "submissions.sampling"
# An unnamed folder (made by an older version) may be in use before its child starts: only old ones are removed.
UNNAMED_GRACE_S = 3600


@dataclass(frozen=True)
class SamplingProcess:
    """A live `python -m submissions.sampling` on this host: its pid, parent, job tag and output file."""

    pid: int
    parent: int
    tag: str
    out: str


def sampling_processes() -> list[SamplingProcess]:
    """Every live sampling child this user can see, from /proc (Linux)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile, or not ours to read
        if SAMPLING_MODULE in argv and len(argv) >= argv.index(SAMPLING_MODULE) + 3:
            job, out = argv[argv.index(SAMPLING_MODULE) + 1: argv.index(SAMPLING_MODULE) + 3]
            found.append(SamplingProcess(pid=int(entry.name), parent=parent, tag=_tag(job), out=out))
    return found


def _tag(job: str) -> str:
    try:
        return str(json.loads(job).get("tag", ""))
    except (ValueError, AttributeError):
        return ""


def is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive, and not ours to judge
        return True
    return True


def owner_of(folder: Path) -> int | None:
    """The pid named in an `arena-sample-<pid>-*` folder; None for folders of the older, unnamed kind."""
    head = folder.name.removeprefix(WORKDIR_PREFIX).split("-", 1)[0]
    return int(head) if head.isdigit() and "-" in folder.name.removeprefix(WORKDIR_PREFIX) else None


def reap_orphans(temp_dir: Path | None = None) -> tuple[list[int], list[Path]]:
    """Kill sampling processes whose owner is dead and remove the work folders no live process owns.

    Returns (killed pids, removed folders)."""
    temp_dir = Path(temp_dir or tempfile.gettempdir())
    processes = sampling_processes()
    killed, removed = [], []
    for folder in sorted(temp_dir.glob(f"{WORKDIR_PREFIX}*")):
        owner = owner_of(folder)
        if owner is not None and is_alive(owner):
            continue
        users = [p for p in processes if Path(p.out).parent == folder]
        if owner is None and (users or _age_s(folder) < UNNAMED_GRACE_S):
            continue  # an unnamed folder in use, or maybe about to be: its owner cannot be judged
        for process in users:
            _kill_group(process.pid)
            killed.append(process.pid)
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
    if killed or removed:
        log.warning("cleaned up after dead samplers: killed %s, removed %d work folder(s)", killed, len(removed))
    return killed, removed


def _age_s(folder: Path) -> float:
    try:
        return time.time() - folder.stat().st_mtime
    except OSError:
        return 0.0


def stop_copies(tag: str) -> list[int]:
    """Kill every live sampling process of the job `tag` on this host (an old copy of a requeued job)."""
    copies = [p.pid for p in sampling_processes() if tag and p.tag == tag]
    for pid in copies:
        _kill_group(pid)
    if copies:
        log.warning("%s: stopped %d copy(ies) still sampling it: %s", tag, len(copies), copies)
    return copies


def _kill_group(pid: int) -> None:
    """SIGKILL a sampler's process group (it leads its own); only the process itself when it does not."""
    try:
        os.killpg(pid, signal.SIGKILL) if os.getpgid(pid) == pid else os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
