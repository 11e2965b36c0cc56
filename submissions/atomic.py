"""One way to replace a file so that readers never see half of it: the packer's zips here, and above this layer the
server's config, caches, weights and exports and the baselines' checkpoints."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path


def write_atomically(path: Path, write: Callable[[Path], object]) -> None:
    """`write(temporary)` fills a temporary file beside `path`, which then replaces `path` in one rename.

    The temporary name is unique per process and thread, so concurrent writers (a server and a worker building the
    same cache) each install a complete file; a failed write leaves no temporary behind.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        write(temporary)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
