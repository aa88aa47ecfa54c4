"""Sessions: a random id in a signed, HttpOnly, SameSite=Lax cookie; what it stands for lives here, in
memory (the person's tokens, who they are, the CSRF token). Nothing of a session reaches the browser but
its id, and nothing of the platform's business state is kept at all.

Sign-in attempts in flight (state, nonce, PKCE verifier) are kept the same way, each for a few minutes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydantic import SecretStr

    from kumkm_shared.origin import Actor

SESSION_COOKIE = "kumkm_console"
SIGNIN_COOKIE = "kumkm_console_signin"
SIGNIN_TTL = 600.0


@dataclass
class Session:
    sid: str
    actor: Actor
    access_token: SecretStr
    expires_at: float
    refresh_token: SecretStr | None
    id_token: SecretStr | None
    regions: tuple[str, ...] = ()  # the token's region claim as written ("Jawa Barat/Kota Bekasi")
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    last_seen: float = field(default_factory=time.monotonic)

    def expires_within(self, seconds: float) -> bool:
        return time.time() + seconds >= self.expires_at


@dataclass(frozen=True)
class PendingSignIn:
    state: str
    nonce: str
    verifier: str
    next_path: str
    started: float = field(default_factory=time.monotonic)

    @property
    def challenge(self) -> str:
        digest = hashlib.sha256(self.verifier.encode()).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


class Signer:
    """``value.signature`` with HMAC-SHA256: a cookie the browser cannot forge or alter."""

    def __init__(self, secret: str) -> None:
        self._key = hashlib.sha256(b"kumkm-console-cookie:" + secret.encode()).digest()

    def _mac(self, value: str) -> str:
        mac = hmac.new(self._key, value.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()

    def sign(self, value: str) -> str:
        return f"{value}.{self._mac(value)}"

    def unsign(self, signed: str | None) -> str | None:
        if not signed or "." not in signed:
            return None
        value, mac = signed.rsplit(".", 1)
        return value if hmac.compare_digest(mac, self._mac(value)) else None


class SessionStore:
    def __init__(self, idle_seconds: float) -> None:
        self.idle_seconds = idle_seconds
        self._sessions: dict[str, Session] = {}
        self._pending: dict[str, PendingSignIn] = {}

    def create(
        self,
        actor: Actor,
        access_token: SecretStr,
        expires_at: float,
        refresh_token: SecretStr | None,
        id_token: SecretStr | None,
        regions: tuple[str, ...] = (),
    ) -> Session:
        self._expire()
        session = Session(
            secrets.token_urlsafe(32), actor, access_token, expires_at, refresh_token, id_token, regions
        )
        self._sessions[session.sid] = session
        return session

    def get(self, sid: str | None) -> Session | None:
        if sid is None:
            return None
        session = self._sessions.get(sid)
        if session is None:
            return None
        now = time.monotonic()
        if now - session.last_seen > self.idle_seconds:
            self._sessions.pop(sid, None)
            return None
        session.last_seen = now
        return session

    def drop(self, sid: str) -> Session | None:
        return self._sessions.pop(sid, None)

    def begin_signin(self, next_path: str) -> PendingSignIn:
        self._expire()
        pending = PendingSignIn(
            state=secrets.token_urlsafe(24),
            nonce=secrets.token_urlsafe(24),
            verifier=secrets.token_urlsafe(48),
            next_path=next_path,
        )
        self._pending[pending.state] = pending
        return pending

    def finish_signin(self, state: str) -> PendingSignIn | None:
        pending = self._pending.pop(state, None)
        if pending is None or time.monotonic() - pending.started > SIGNIN_TTL:
            return None
        return pending

    def _expire(self) -> None:
        now = time.monotonic()
        for sid in [s for s, v in self._sessions.items() if now - v.last_seen > self.idle_seconds]:
            self._sessions.pop(sid, None)
        for state in [s for s, v in self._pending.items() if now - v.started > SIGNIN_TTL]:
            self._pending.pop(state, None)
