"""Keys kept outside the database: HMAC chain keys, Ed25519 signing keys, encryption keys.

The keyring is one JSON file (mode 0600) under ``GARDIEN_KEYS_DIR``. Each key has an id and is
never deleted: rotation retires the active key and adds a new one, so that everything sealed
under an old key still verifies. The keyring hands out raw key material; the formats built on
it (signed notes, MAC chains) belong to the capabilities that use them.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import json
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gardien.core.clock import rfc3339, utcnow

KeyKind = Literal["hmac", "signing", "encryption"]
KEY_KINDS: tuple[KeyKind, ...] = ("hmac", "signing", "encryption")
KEYRING_FILE = "keyring.json"


class KeyringError(RuntimeError):
    pass


class HmacKey:
    """HMAC-SHA256 with the padded key states computed once; about twice as fast per message."""

    __slots__ = ("_inner", "_outer", "kid", "secret")

    def __init__(self, kid: str, secret: bytes) -> None:
        self.kid = kid
        self.secret = secret
        block = secret.ljust(64, b"\0") if len(secret) <= 64 else hashlib.sha256(secret).digest()
        block = block.ljust(64, b"\0")
        # The padded states' bound copy methods: a fresh state per message, one lookup fewer.
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in block)).copy
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in block)).copy

    def digest(self, message: bytes) -> bytes:
        inner = self._inner()
        inner.update(message)
        outer = self._outer()
        outer.update(inner.digest())
        return outer.digest()


@dataclass(frozen=True)
class SigningPublicKey:
    kid: str
    public_key: bytes
    created_at: str
    retired_at: str | None


@dataclass
class _Entry:
    kid: str
    created_at: str
    secret: str
    retired_at: str | None = None
    public: str | None = None

    def as_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "kid": self.kid,
            "created_at": self.created_at,
            "secret": self.secret,
        }
        if self.public is not None:
            data["public"] = self.public
        if self.retired_at is not None:
            data["retired_at"] = self.retired_at
        return data


@dataclass
class Keyring:
    directory: Path
    instance_name: str
    entries: dict[KeyKind, list[_Entry]] = field(default_factory=dict)
    created: bool = False  # True when this process generated the keyring, on first run
    _mtime: float = 0.0

    @classmethod
    def open(cls, directory: Path, instance_name: str) -> Keyring:
        """Load the keyring, creating it with one key of each kind on first run.

        Loading takes no lock and writes nothing, so a read-only keys directory (a mounted secret)
        works; the file is only ever replaced whole, by an atomic rename.
        """
        keyring = cls(directory=directory, instance_name=instance_name)
        if not keyring.path.exists():
            directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            with keyring._locked():
                if not keyring.path.exists():
                    for kind in KEY_KINDS:
                        keyring.entries.setdefault(kind, []).append(keyring._generate(kind))
                    keyring._save()
                    keyring.created = True
        keyring._load()
        return keyring

    @property
    def path(self) -> Path:
        return self.directory / KEYRING_FILE

    def reload_if_changed(self) -> None:
        """Pick up a rotation done by another process (``gardien keys rotate``)."""
        try:
            mtime = self.path.stat().st_mtime
        except FileNotFoundError as exc:
            raise KeyringError(f"keyring file {self.path} has disappeared") from exc
        if mtime != self._mtime:
            self._load()

    def rotate(self, kind: KeyKind) -> str:
        with self._locked():
            self._load()
            now = rfc3339(utcnow())
            for entry in self.entries.get(kind, []):
                if entry.retired_at is None:
                    entry.retired_at = now
            new = self._generate(kind)
            self.entries.setdefault(kind, []).append(new)
            self._save()
            self._load()
        return new.kid

    def active(self, kind: KeyKind) -> _Entry:
        for entry in reversed(self.entries.get(kind, [])):
            if entry.retired_at is None:
                return entry
        raise KeyringError(f"no active {kind} key in {self.path}")

    def hmac_key(self, kid: str | None = None) -> HmacKey:
        entry = self.active("hmac") if kid is None else self._find("hmac", kid)
        if entry is None:
            raise KeyringError(f"unknown HMAC key id {kid!r}")
        return HmacKey(entry.kid, base64.b64decode(entry.secret))

    def hmac_keys(self) -> dict[str, HmacKey]:
        return {e.kid: HmacKey(e.kid, base64.b64decode(e.secret)) for e in self.entries["hmac"]}

    def signing_key(self) -> tuple[str, Ed25519PrivateKey]:
        entry = self.active("signing")
        return entry.kid, Ed25519PrivateKey.from_private_bytes(base64.b64decode(entry.secret))

    def signing_public_keys(self) -> list[SigningPublicKey]:
        """Every signing key ever used, oldest first, retired ones included."""
        return [
            SigningPublicKey(
                kid=e.kid,
                public_key=base64.b64decode(e.public or ""),
                created_at=e.created_at,
                retired_at=e.retired_at,
            )
            for e in self.entries["signing"]
        ]

    def encryption_key(self, kid: str | None = None) -> tuple[str, bytes]:
        entry = self.active("encryption") if kid is None else self._find("encryption", kid)
        if entry is None:
            raise KeyringError(f"unknown encryption key id {kid!r}")
        return entry.kid, base64.b64decode(entry.secret)

    def _find(self, kind: KeyKind, kid: str) -> _Entry | None:
        return next((e for e in self.entries.get(kind, []) if e.kid == kid), None)

    def _generate(self, kind: KeyKind) -> _Entry:
        now = utcnow()
        created = rfc3339(now)
        if kind == "signing":
            private = Ed25519PrivateKey.generate()
            raw_private = private.private_bytes_raw()
            raw_public = private.public_key().public_bytes_raw()
            return _Entry(
                kid=f"sig-{now:%Y%m%d}-{secrets.token_hex(3)}",
                created_at=created,
                secret=base64.b64encode(raw_private).decode(),
                public=base64.b64encode(raw_public).decode(),
            )
        size = 32 if kind == "hmac" else 64  # 64 bytes: an AES-256-SIV key is two AES-256 keys
        kid = f"{kind[:3]}-{now:%Y%m%d}-{secrets.token_hex(3)}"
        return _Entry(kid=kid, created_at=created, secret=base64.b64encode(secrets.token_bytes(size)).decode())

    def _load(self) -> None:
        try:
            raw = json.loads(self.path.read_text())
            self._mtime = self.path.stat().st_mtime
        except (OSError, ValueError) as exc:
            raise KeyringError(f"cannot read keyring {self.path}: {exc}") from exc
        if raw.get("instance_name") not in (None, self.instance_name):
            raise KeyringError(
                f"keyring {self.path} belongs to instance {raw['instance_name']!r}, "
                f"not {self.instance_name!r}; signing keys are named after the instance"
            )
        self.entries = {kind: [_Entry(**e) for e in raw.get(kind, [])] for kind in KEY_KINDS}
        for kind in KEY_KINDS:
            self.active(kind)

    def _save(self) -> None:
        data: dict[str, Any] = {"version": 1, "instance_name": self.instance_name}
        for kind in KEY_KINDS:
            data[kind] = [e.as_json() for e in self.entries.get(kind, [])]
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(data, handle, indent=2)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.path)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        with (self.directory / ".lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
