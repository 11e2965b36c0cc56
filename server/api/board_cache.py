"""The API's leaderboard read path: `server.boards.cache.BoardCache` answers from memory; this module renders its bytes.

- Each board is rendered once per format (JSON, CSV, each also gzipped) with an ETag, so a reader costs a lookup,
  and a client that already holds the board gets 304.
- `LeaderboardFastPath` answers the common read (the public board, or the private one once revealed) as plain
  ASGI, ahead of FastAPI's routing and dependency injection, which cost several times the send itself. Every
  other request (the private board before the reveal, bad parameters, an unknown competition) goes on to the
  route in `routes/leaderboard.py`, which uses this same cache.
"""

from __future__ import annotations

import gzip
import hashlib
import re
from dataclasses import dataclass
from typing import Literal, get_args
from urllib.parse import parse_qsl

from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.types import ASGIApp, Scope

from server.boards.cache import GZIP_MIN_BYTES, BoardCache, CachedBoard, FastPath, accepts_gzip, client_has
from server.boards.ranking import Board, Leaderboard, leaderboard_csv
from server.errors import ArenaError

__all__ = ["BoardCache", "CachedBoard", "LeaderboardFastPath", "accepts_gzip", "board_response", "prerender",
           "simple_query"]

Format = Literal["json", "csv"]
MEDIA_TYPES: dict[Format, str] = {"json": "application/json", "csv": "text/csv; charset=utf-8"}


@dataclass(frozen=True)
class Rendered:
    """One board in one format: the bytes, the same bytes gzipped, and their ETag."""

    body: bytes
    gzipped: bytes
    etag: str

    @classmethod
    def of(cls, body: bytes) -> Rendered:
        digest = hashlib.blake2b(body, digest_size=12).hexdigest()
        return cls(body, gzip.compress(body, compresslevel=6, mtime=0), f'"{digest}"')


def _render(fmt: Format, board: Leaderboard) -> Rendered:
    return Rendered.of((board.model_dump_json() if fmt == "json" else leaderboard_csv(board)).encode())


def rendered(board: Leaderboard, fmt: Format) -> Rendered:
    """The bytes in one format, kept with the board (ranking's one board cache: `Leaderboard.rendered`)."""
    return board.rendered(("api", fmt), lambda board: _render(fmt, board))


def prerender(board: Leaderboard) -> None:
    """`BoardCache`'s prerender: the JSON bytes, made before the first reader asks."""
    rendered(board, "json")


def board_response(cached: CachedBoard, fmt: Format, headers: Headers) -> Response:
    """200 with the board (gzipped when the client accepts it), or 304 when the client's copy is current."""
    board = cached.board
    made = rendered(board, fmt)
    response_headers = {"ETag": made.etag, "Vary": "Accept-Encoding",
                        "Cache-Control": "no-cache" if board.visible_to(is_admin=False) else "private, no-cache"}
    if fmt == "csv":
        response_headers["Content-Disposition"] = (
            f'attachment; filename="{board.competition}-{board.board}-leaderboard.csv"')
    if_none_match = headers.get("if-none-match", "")
    if client_has(made.etag, if_none_match):
        return Response(status_code=304, headers=response_headers)
    body = made.body
    if len(body) >= GZIP_MIN_BYTES and accepts_gzip(headers.get("accept-encoding", "")):
        body, response_headers["Content-Encoding"] = made.gzipped, "gzip"
    return Response(body, media_type=MEDIA_TYPES[fmt], headers=response_headers)


LEADERBOARD_PATH = re.compile(r"/api/competitions/([^/]+)/leaderboard")
BOARDS, FORMATS = frozenset(get_args(Board)), frozenset(get_args(Format))


def simple_query(query_string: bytes) -> tuple[Board, Format] | None:
    """(board, format) from a query string the route would accept unchanged; None for anything unusual."""
    params = {"board": "public", "format": "json"}
    seen: set[str] = set()
    for name, value in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True):
        if name in params:
            if name in seen:
                return None
            seen.add(name)
            params[name] = value
    if params["board"] not in BOARDS or params["format"] not in FORMATS:
        return None
    return params["board"], params["format"]  # type: ignore[return-value]


class LeaderboardFastPath(FastPath):
    """Serves publicly visible boards straight from `BoardCache`; everything else goes on to `app`."""

    def __init__(self, app: ASGIApp, boards: BoardCache) -> None:
        super().__init__(app)
        self.boards = boards

    async def respond(self, scope: Scope) -> Response | None:
        match = LEADERBOARD_PATH.fullmatch(scope["path"])
        query = simple_query(scope["query_string"]) if match else None
        if match is None or query is None:
            return None
        board, fmt = query
        try:
            cached = await self.boards.get(match.group(1), board)
        except ArenaError:
            return None  # the route answers it, in the API's error shape
        if not cached.board.visible_to(is_admin=False):
            return None  # only organizers may read it: the route checks the token
        return board_response(cached, fmt, Headers(scope=scope))
