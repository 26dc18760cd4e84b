"""The dashboard's login sessions: random ids kept in the gateway's memory.

A browser cannot send ``Authorization: Bearer`` with an ``EventSource`` or a
page load, so the dashboard's login form trades the token for a session: a
random id in a cookie (``sz_session``, HttpOnly, SameSite=Strict). Only the
ids' SHA-256 digests are kept, so a lookup reveals nothing through its timing
that could help guess an id. Sessions end on logout, after ``SESSION_LIFETIME``,
and when the gateway stops (nothing is written to disk).
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections import OrderedDict

from aiohttp import web

__all__ = ["COOKIE", "MAX_SESSIONS", "SESSIONS", "SESSION_LIFETIME", "Sessions"]

#: The cookie that carries a session id.
COOKIE = "sz_session"

#: How long a session lasts after login, in seconds: 12 hours.
SESSION_LIFETIME = 12 * 3600.0

#: The most sessions kept at once; a login past it ends the oldest.
MAX_SESSIONS = 1000


def _digest(session_id: str) -> bytes:
    return hashlib.sha256(session_id.encode()).digest()


class Sessions:
    """The live sessions of one gateway, by the digest of their id.

    Args:
        lifetime: Seconds a session lasts after login, ``SESSION_LIFETIME``
            (12 hours) by default.
        limit: The most sessions kept, ``MAX_SESSIONS`` (1000) by default.
    """

    def __init__(
        self, lifetime: float = SESSION_LIFETIME, limit: int = MAX_SESSIONS
    ) -> None:
        self._lifetime = lifetime
        self._limit = limit
        #: Digest -> when the session ends (monotonic seconds), oldest first.
        self._ends: OrderedDict[bytes, float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._ends)

    def open(self) -> str:
        """Start a session; its id, for the cookie."""
        session_id = secrets.token_urlsafe(32)
        self._ends[_digest(session_id)] = time.monotonic() + self._lifetime
        while len(self._ends) > self._limit:
            self._ends.popitem(last=False)
        return session_id

    def valid(self, session_id: str | None) -> bool:
        """Whether ``session_id`` names a live session (an expired one is ended)."""
        if not session_id:
            return False
        digest = _digest(session_id)
        ends = self._ends.get(digest)
        if ends is None:
            return False
        if ends <= time.monotonic():
            del self._ends[digest]
            return False
        return True

    def close(self, session_id: str | None) -> None:
        """End the session ``session_id``, if there is one."""
        if session_id:
            self._ends.pop(_digest(session_id), None)


#: The application's sessions (``web.dashboard`` sets it).
SESSIONS: web.AppKey[Sessions] = web.AppKey("sessions", Sessions)
