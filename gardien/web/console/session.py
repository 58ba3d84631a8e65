"""The console's session cookie and its CSRF tokens.

The cookie holds a key id (or a console user's id), never the key nor the password: payload
(JSON, base64url), the id of the HMAC key that signed it, and the signature, joined by dots. A
session ends after `console_idle_minutes` without a page and `console_session_hours` after
sign-in; every page re-reads the key or the user, so a revoked key or a removed user ends its
sessions at once.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import orjson

from gardien.core.keyring import Keyring, KeyringError

COOKIE = "gardien_console"
# Before sign-in: a random nonce the sign-in form's CSRF token is bound to.
PRE_COOKIE = "gardien_console_pre"
PATH = "/console"
SESSION_DOMAIN = b"console-session\0"
CSRF_DOMAIN = b"console-csrf\0"
MAX_COOKIE = 1024


@dataclass(frozen=True)
class Session:
    sid: str
    key_id: str
    org_id: str
    role: str
    signed_in: datetime
    seen: datetime
    # "key": key_id is an API key's id; "user": a console user's id (password sign-in).
    kind: str = "key"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SessionCodec:
    def __init__(self, keyring: Keyring, idle: timedelta, lifetime: timedelta) -> None:
        self.keyring = keyring
        self.idle = idle
        self.lifetime = lifetime

    def _mac(self, kid: str | None, domain: bytes, message: bytes) -> tuple[str, bytes]:
        key = self.keyring.hmac_key(kid)
        return key.kid, key.digest(domain + message)

    def new(self, key_id: str, org_id: str, role: str, now: datetime, kind: str = "key") -> Session:
        return Session(secrets.token_urlsafe(18), key_id, org_id, role, now, now, kind)

    def encode(self, session: Session) -> str:
        payload = orjson.dumps(
            {
                "sid": session.sid,
                "key": session.key_id,
                "org": session.org_id,
                "role": session.role,
                "in": int(session.signed_in.timestamp()),
                "seen": int(session.seen.timestamp()),
                "kind": session.kind,
            }
        )
        kid, mac = self._mac(None, SESSION_DOMAIN, payload)
        return f"{_b64(payload)}.{_b64(kid.encode())}.{_b64(mac)}"

    def decode(self, cookie: str | None, now: datetime) -> Session | None:
        """The session the cookie carries, or None when it is missing, forged, or expired."""
        if not cookie or len(cookie) > MAX_COOKIE or cookie.count(".") != 2:
            return None
        try:
            payload_b64, kid_b64, mac_b64 = cookie.split(".")
            payload, kid, mac = _unb64(payload_b64), _unb64(kid_b64).decode(), _unb64(mac_b64)
            _, expected = self._mac(kid, SESSION_DOMAIN, payload)
        except (ValueError, binascii.Error, KeyringError):
            return None
        if not hmac.compare_digest(mac, expected):
            return None
        data = orjson.loads(payload)
        tz = now.tzinfo
        signed_in = datetime.fromtimestamp(data["in"], tz)
        seen = datetime.fromtimestamp(data["seen"], tz)
        if now >= signed_in + self.lifetime or now >= seen + self.idle or seen > now + timedelta(minutes=5):
            return None
        kind = data.get("kind", "key")
        if kind not in ("key", "user"):
            return None
        return Session(data["sid"], data["key"], data["org"], data["role"], signed_in, seen, kind)

    def csrf_token(self, nonce: str) -> str:
        _, mac = self._mac(None, CSRF_DOMAIN, nonce.encode())
        return _b64(mac)

    def csrf_valid(self, nonce: str | None, token: str | None) -> bool:
        if not nonce or not token:
            return False
        return hmac.compare_digest(self.csrf_token(nonce).encode(), token.encode())
