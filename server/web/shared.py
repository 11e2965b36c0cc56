"""Pages many viewers read at once (the boards, the overview, a team's page): rendered once, sent many times.

A shared page is rendered without a viewer: `base.html` gets a slot where `_viewer.html` (the signed-in header,
the sign-out form's CSRF token, a flash message) would be, and each response fills in the reader's own header,
a small template. What differs per team beyond the header is marked in the browser from the header's data
attribute (the team's own board row, by arena.js), so a cached page never holds one viewer's data for another.
What the organizer sees in addition (the private preview, the settings tabs) is a separate rendering
(`audience`), never the teams' one.

Both halves around the slot are kept as bytes and as raw deflate streams ended by a full flush, which resets the
compressor's window: a deflated header fits between them and the three make one valid gzip body. A gzipped
response then costs compressing the header (1 KB), not the page (100 KB). The ETag names the page and the
header, so a reader whose copy is current gets 304.
"""

from __future__ import annotations

import hashlib
import struct
import threading
import zlib
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI
from markupsafe import Markup
from starlette.datastructures import Headers
from starlette.responses import Response

from server.boards.cache import GZIP_MIN_BYTES, accepts_gzip, client_has
from server.db import Team
from server.web.browser_session import WebSession
from server.web.render import templates

SLOT = "<!--arena:viewer-->"  # autoescaping and the Markdown sanitizer keep user text from ever forming it
GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # magic, deflate, no flags, no mtime, unknown OS
HTML = "text/html; charset=utf-8"
VIEWERS_KEPT = 512  # per shared page and per app: gzipped bodies, viewer headers


def _deflate(data: bytes, *, last: bool) -> bytes:
    compressor = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush(zlib.Z_FINISH if last else zlib.Z_FULL_FLUSH)


def _digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=12).hexdigest()


@dataclass(frozen=True)
class SharedPage:
    """A page as every viewer of one audience gets it, split at the viewer slot. The gzipped bodies of the latest
    viewers are kept (a signed-in class is a few hundred headers), so a repeated read costs a lookup."""

    before: bytes
    after: bytes
    before_deflated: bytes
    after_deflated: bytes
    before_crc: int
    digest: str
    _gzipped: dict[bytes, bytes] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def of(cls, html: str, *, fragment: bool = False) -> SharedPage:
        """`html` split at its viewer slot; a `fragment` (no header, e.g. the polled status box) has none."""
        before, slot, after = html.partition(SLOT)
        if not slot and not fragment:
            raise ValueError("a shared page needs the viewer slot (base.html renders it when viewer_slot is set)")
        head, tail = before.encode(), after.encode()
        return cls(head, tail, _deflate(head, last=False), _deflate(tail, last=True), zlib.crc32(head),
                   _digest(html.encode()))

    def body(self, viewer: bytes) -> bytes:
        return b"".join((self.before, viewer, self.after))

    def gzipped(self, viewer: bytes) -> bytes:
        made = self._gzipped.get(viewer)
        if made is None:
            crc = zlib.crc32(self.after, zlib.crc32(viewer, self.before_crc))
            size = len(self.before) + len(viewer) + len(self.after)
            made = b"".join((GZIP_HEADER, self.before_deflated, _deflate(viewer, last=False), self.after_deflated,
                             struct.pack("<II", crc, size & 0xFFFFFFFF)))
            if len(self._gzipped) >= VIEWERS_KEPT:
                self._gzipped.clear()
            self._gzipped[viewer] = made
        return made

    def etag(self, viewer: bytes) -> str:
        return f'"{self.digest}-{_digest(viewer)}"'


@dataclass(frozen=True)
class Audience:
    """Who a shared page is rendered for, in place of a browser session: teams and everyone, or the organizer."""

    is_admin: bool

    @property
    def csrf_token(self) -> str:
        # A form token is one viewer's: a shared page must not contain one (forms live on per-viewer pages).
        raise RuntimeError("a shared page cannot hold a form's CSRF token")


def app_url_for(app: FastAPI) -> Callable[..., str]:
    """`url_for` for templates rendered outside a request: root-relative paths, as `render.path_for` gives,
    remembered per app (Starlette searches every route for each one: 0.3 ms, a header has four)."""
    paths: dict[tuple[object, ...], str] = app.state.shared_pages.paths

    def url_for(name: str, /, **params: Any) -> str:
        key = (name, *sorted((k, str(v)) for k, v in params.items()))
        path = paths.get(key)
        if path is None:
            path = paths[key] = str(app.url_path_for(name, **{k: str(v) for k, v in params.items()}))
        return path

    return url_for


def render_shared(app: FastAPI, name: str, context: dict[str, Any], *, is_admin: bool,
                  fragment: bool = False) -> SharedPage:
    """Render a page (or a `fragment` of one) once for an audience, with the viewer slot in place of the header."""
    html = templates.get_template(name).render({
        "url_for": app_url_for(app), "web_session": Audience(is_admin), "signed_in_team": None, "flash": None,
        "viewer_slot": Markup(SLOT), **context})
    return SharedPage.of(html, fragment=fragment)


@dataclass(frozen=True)
class SignedInTeam:
    """What the header shows of a signed-in team (a `Team` row does as well)."""

    id: int
    name: str


def render_viewer(app: FastAPI, session: WebSession, team: Team | SignedInTeam | None) -> bytes:
    """The reader's own header (and a waiting flash message, shown once), made once per viewer: the same bytes
    object each time, so its gzipped page is found again too."""
    flash = session.pop_flash()
    # The CSRF token shows in the sign-out form only: every anonymous reader gets the same header.
    signed_in = team is not None or session.is_admin
    key = (team.id if team else None, team.name if team else None, session.is_admin,
           session.csrf_token if signed_in else None)
    headers: dict[tuple[object, ...], bytes] = app.state.shared_pages.viewers
    made = None if flash else headers.get(key)
    if made is None:
        made = templates.get_template("_viewer.html").render(
            url_for=app_url_for(app), web_session=session, signed_in_team=team, flash=flash).encode()
        if not flash:  # shown once: never kept
            if len(headers) >= VIEWERS_KEPT:
                headers.clear()
            headers[key] = made
    return made


def shared_response(page: SharedPage, viewer: bytes, request_headers: Headers) -> Response:
    """200 with the page and the viewer's header (gzipped when accepted), or 304 when the reader's copy is current.
    Private: the header names who is signed in, and `Vary: Cookie` keeps other caches from mixing readers."""
    etag = page.etag(viewer)
    headers = {"ETag": etag, "Vary": "Accept-Encoding, Cookie", "Cache-Control": "private, no-cache"}
    if client_has(etag, request_headers.get("if-none-match", "")):
        return Response(status_code=304, headers=headers)
    worth_it = len(page.before) + len(page.after) >= GZIP_MIN_BYTES
    if worth_it and accepts_gzip(request_headers.get("accept-encoding", "")):
        headers["Content-Encoding"] = "gzip"
        return Response(page.gzipped(viewer), media_type=HTML, headers=headers)
    return Response(page.body(viewer), media_type=HTML, headers=headers)


class SharedPages:
    """An app's shared renderings: pages by key (the key names everything the page shows: its versions and its
    audience), the `capacity` most recently used ones, and the viewers' headers. Thread-safe; two threads missing
    the same key at once both render."""

    def __init__(self, capacity: int = 512) -> None:
        self.capacity = capacity
        self._pages: OrderedDict[Hashable, SharedPage] = OrderedDict()
        self._lock = threading.Lock()
        self.viewers: dict[tuple[object, ...], bytes] = {}  # `render_viewer`'s headers, by who they show
        self.paths: dict[tuple[object, ...], str] = {}  # `app_url_for`'s paths (a few dozen: routes x ids shown)

    def get(self, key: Hashable, render: Callable[[], SharedPage]) -> SharedPage:
        with self._lock:
            page = self._pages.get(key)
            if page is not None:
                self._pages.move_to_end(key)
                return page
        page = render()
        with self._lock:
            self._pages[key] = page
            while len(self._pages) > self.capacity:
                self._pages.popitem(last=False)
        return page
