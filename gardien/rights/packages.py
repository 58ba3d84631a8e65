"""Access and portability packages: encrypted at rest, served through expiring signed links, then deleted.

A package is the only copy of host data Gardien keeps, and only until it expires. The ZIP the data
map writes goes straight into an encrypting writer: its clear bytes never reach the disk.

File format, version 1 (specified in docs/rights.md, "Package file format"):

    b"GDNPKG1\\n" | u16 big-endian header length | header (JSON) | segments

The header names the package, the keyring's encryption key (`kid`), a random 16-byte `salt`, a
random 7-byte nonce `prefix` and the plaintext `segment` size. The file key is
HKDF-SHA256(the encryption key, salt, info = b"gardien package v1\\0" + package id), 32 bytes.
Each segment is AES-256-GCM with the nonce prefix || u32 segment number || 1 for the last segment
(else 0), and the header as associated data: a segment moved, dropped, or cut short fails its tag.

A download link is `<payload>.<mac>` (base64url, no padding): the payload is JSON
`{"p": package id, "o": organisation, "e": expiry (Unix seconds), "k": HMAC key id}`, the mac
HMAC-SHA256 under that HMAC key of b"gardien package link\\0" + the payload bytes.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import io
import os
import struct
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any, BinaryIO, TypeVar

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import Connection, insert, select, update

from gardien.audit.sealing import PreparedEvent
from gardien.audit.service import SYSTEM_ACTOR, Ledger, capability_event
from gardien.core.clock import utcnow
from gardien.core.errors import NotFound, Problem
from gardien.core.ids import new_id
from gardien.core.keyring import Keyring, KeyringError
from gardien.core.runtime import Runtime
from gardien.rights.models import PACKAGES
from gardien.rights.schemas import PackageLink, PackageOut

MAGIC = b"GDNPKG1\n"
SEGMENT = 1 << 20
TAG = 16
PREFIX = 7
SALT = 16
MAX_HEADER = 4096
KDF_INFO = b"gardien package v1\0"
LINK_DOMAIN = b"gardien package link\0"
TARGET = "rights_package"
T = TypeVar("T")


class LinkInvalid(Problem):
    """A link that Gardien did not sign, or that was altered: nothing to say about any package."""

    def __init__(self) -> None:
        super().__init__(403, "link-invalid", "Invalid link", "this download link is not valid")


class LinkExpired(Problem):
    def __init__(self, detail: str) -> None:
        super().__init__(410, "link-expired", "Link expired", detail)


class PackageCorrupt(Problem):
    def __init__(self) -> None:
        super().__init__(
            410, "package-corrupt", "Package unreadable", "the package file failed its integrity check; ask again"
        )


def _file_key(keyring: Keyring, kid: str, salt: bytes, package_id: str) -> AESGCM:
    _, secret = keyring.encryption_key(kid)
    key = HKDF(hashes.SHA256(), 32, salt, KDF_INFO + package_id.encode()).derive(secret)
    return AESGCM(key)


def _nonce(prefix: bytes, number: int, last: bool) -> bytes:
    return prefix + struct.pack(">IB", number, 1 if last else 0)


class EncryptingWriter(io.RawIOBase):
    """A write-only stream that encrypts segment by segment into `sink`; `close()` writes the last one."""

    def __init__(self, sink: BinaryIO, keyring: Keyring, package_id: str) -> None:
        super().__init__()
        kid, _ = keyring.encryption_key()
        self.kid = kid
        salt, self._prefix = os.urandom(SALT), os.urandom(PREFIX)
        header = {
            "v": 1,
            "pkg": package_id,
            "kid": kid,
            "salt": base64.b64encode(salt).decode(),
            "prefix": base64.b64encode(self._prefix).decode(),
            "segment": SEGMENT,
        }
        self._header = orjson.dumps(header)
        self._aead = _file_key(keyring, kid, salt, package_id)
        self._sink = sink
        self._buffer = bytearray()
        self._number = 0
        self.size = 0
        sink.write(MAGIC + struct.pack(">H", len(self._header)) + self._header)

    def writable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.size

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self._buffer += chunk
        self.size += len(chunk)
        # A segment leaves only once more bytes follow it: the last one is written by close().
        while len(self._buffer) > SEGMENT:
            self._seal(bytes(self._buffer[:SEGMENT]), last=False)
            del self._buffer[:SEGMENT]
        return len(chunk)

    def _seal(self, plain: bytes, *, last: bool) -> None:
        self._sink.write(self._aead.encrypt(_nonce(self._prefix, self._number, last), plain, self._header))
        self._number += 1

    def close(self) -> None:
        if not self.closed:
            self._seal(bytes(self._buffer), last=True)
            self._buffer.clear()
        super().close()


def decrypt(source: BinaryIO, keyring: Keyring, package_id: str) -> Iterator[bytes]:
    """The clear bytes of a package file, segment by segment; PackageCorrupt on any tampering."""
    try:
        if source.read(len(MAGIC)) != MAGIC:
            raise ValueError("not a package")
        (length,) = struct.unpack(">H", source.read(2))
        if length > MAX_HEADER:
            raise ValueError("header too long")
        header_bytes = source.read(length)
        header = orjson.loads(header_bytes)
        if header.get("v") != 1 or header.get("pkg") != package_id or header.get("segment") != SEGMENT:
            raise ValueError("not this package")
        aead = _file_key(keyring, header["kid"], base64.b64decode(header["salt"]), package_id)
        prefix = base64.b64decode(header["prefix"])
    except (ValueError, KeyError, TypeError, struct.error, binascii.Error, KeyringError) as exc:
        raise PackageCorrupt() from exc
    number = 0
    current = source.read(SEGMENT + TAG)
    while True:
        following = source.read(SEGMENT + TAG)
        last = not following
        try:
            yield aead.decrypt(_nonce(prefix, number, last), current, header_bytes)
        except InvalidTag as exc:
            raise PackageCorrupt() from exc
        if last:
            return
        current, number = following, number + 1


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign_link(keyring: Keyring, org_id: str, package_id: str, expires: datetime) -> str:
    key = keyring.hmac_key()
    payload = orjson.dumps({"p": package_id, "o": org_id, "e": int(expires.timestamp()), "k": key.kid})
    return f"{_b64(payload)}.{_b64(key.digest(LINK_DOMAIN + payload))}"


def open_link(keyring: Keyring, token: str, now: datetime) -> tuple[str, str]:
    """(organisation, package id) of a link Gardien signed; 403 when altered, 410 when expired."""
    try:
        encoded, mac = token.split(".")
        payload = _unb64(encoded)
        claims = orjson.loads(payload)
        key = keyring.hmac_key(str(claims["k"]))
        expected = key.digest(LINK_DOMAIN + payload)
        if not hmac.compare_digest(expected, _unb64(mac)):
            raise ValueError("bad mac")
        package_id, org_id, expiry = str(claims["p"]), str(claims["o"]), int(claims["e"])
    except (ValueError, KeyError, TypeError, binascii.Error, KeyringError, orjson.JSONDecodeError) as exc:
        raise LinkInvalid() from exc
    if expiry <= now.timestamp():
        raise LinkExpired("this download link has expired: ask for a new one on the request's page")
    return org_id, package_id


def _event(action: str, crud: str, actor: Mapping[str, Any], package_id: str, **fields: Any) -> dict[str, Any]:
    return capability_event("rights", action, crud, actor, (TARGET, package_id), fields=fields)


class PackageStore:
    """The packages of an installation: written encrypted, linked, downloaded, purged when they expire."""

    def __init__(self, runtime: Runtime, ledger: Ledger, clock: Callable[[], datetime] | None = None) -> None:
        self.runtime = runtime
        self.ledger = ledger
        self.clock = clock or utcnow

    @property
    def directory(self) -> Path:
        return self.runtime.settings.rights_packages_dir

    def _path(self, org_id: str, package_id: str) -> Path:
        return self.directory / org_id / f"{package_id}.gdnpkg"

    def create(
        self,
        org_id: str,
        request_id: str,
        kind: str,
        write: Callable[[IO[bytes]], T],
        actor: Mapping[str, Any] = SYSTEM_ACTOR,
    ) -> tuple[PackageOut, T]:
        """Run `write` into a new encrypted package; nothing is kept when it fails."""
        package_id = new_id()
        path = self._path(org_id, package_id)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        partial = path.with_suffix(".part")
        try:
            fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as sink:
                writer = EncryptingWriter(sink, self.runtime.keyring, package_id)
                result = write(writer)  # type: ignore[arg-type]
                writer.close()
                sink.flush()
                os.fsync(sink.fileno())
            os.replace(partial, path)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        now = self.clock()
        expires = now + timedelta(days=self.runtime.settings.rights_package_days)
        row = {
            "id": package_id,
            "org_id": org_id,
            "request_id": request_id,
            "kind": kind,
            "enc_kid": writer.kid,
            "size": writer.size,
            "downloads": 0,
            "created_at": now,
            "expires_at": expires,
            "deleted_at": None,
        }

        def work(conn: Connection) -> tuple[None, list[PreparedEvent]]:
            conn.execute(insert(PACKAGES).values(row))
            fields = {"request_id": request_id, "kind": kind, "size": writer.size, "enc_kid": writer.kid}
            fields["expires_at"] = expires.isoformat()
            return None, [self.ledger.prepare(_event("rights.package.created", "create", actor, package_id, **fields))]

        try:
            self.ledger.transact(org_id, work)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return PackageOut.model_validate(row), result

    def latest(self, org_id: str, request_id: str) -> PackageOut | None:
        with self.runtime.engine.connect() as conn:
            row = conn.execute(
                select(PACKAGES)
                .where(PACKAGES.c.org_id == org_id, PACKAGES.c.request_id == request_id)
                .order_by(PACKAGES.c.created_at.desc(), PACKAGES.c.id.desc())
                .limit(1)
            ).first()
        return PackageOut.model_validate(row, from_attributes=True) if row is not None else None

    def link(self, org_id: str, request_id: str, hours: int | None = None) -> PackageLink:
        """A signed link to the request's latest package, valid `hours` (the setting) or until the package expires."""
        package = self.latest(org_id, request_id)
        now = self.clock()
        if package is None:
            raise NotFound(f"package of request {request_id}")
        if package.deleted_at is not None or package.expires_at <= now:
            raise LinkExpired("the package has expired and was deleted")
        lifetime = timedelta(hours=hours or self.runtime.settings.rights_link_hours)
        expires = min(now + lifetime, package.expires_at)
        token = sign_link(self.runtime.keyring, org_id, package.id, expires)
        return PackageLink(package=package, token=token, path=f"/privacy/download/{token}", expires_at=expires)

    def open(self, token: str) -> tuple[PackageOut, Iterator[bytes]]:
        """Check a link and the whole file, record the download, and hand out the clear bytes to stream."""
        now = self.clock()
        org_id, package_id = open_link(self.runtime.keyring, token, now)
        with self.runtime.engine.connect() as conn:
            row = conn.execute(select(PACKAGES).where(PACKAGES.c.org_id == org_id, PACKAGES.c.id == package_id)).first()
        if row is None or row.deleted_at is not None or row.expires_at <= now:
            raise LinkExpired("the package has expired and was deleted")
        path = self._path(org_id, package_id)
        try:
            # A first pass checks every tag, so that a damaged file answers 410 and not a cut download.
            with path.open("rb") as source:
                for _ in decrypt(source, self.runtime.keyring, package_id):
                    pass
        except FileNotFoundError as exc:
            raise LinkExpired("the package has expired and was deleted") from exc
        package = PackageOut.model_validate(row, from_attributes=True)

        def work(conn: Connection) -> tuple[None, list[PreparedEvent]]:
            conn.execute(update(PACKAGES).where(PACKAGES.c.id == package_id).values(downloads=PACKAGES.c.downloads + 1))
            actor = {"type": "data_subject", "id": row.request_id, "display": "download link"}
            fields = {"request_id": row.request_id, "kind": row.kind, "size": row.size}
            return None, [self.ledger.prepare(_event("rights.package.downloaded", "read", actor, package_id, **fields))]

        self.ledger.transact(org_id, work)

        def stream() -> Iterator[bytes]:
            with path.open("rb") as source:
                yield from decrypt(source, self.runtime.keyring, package_id)

        return package, stream()

    def purge(self, org_id: str | None = None, actor: Mapping[str, Any] = SYSTEM_ACTOR) -> int:
        """Delete the files of expired packages and record each deletion; the number deleted."""
        now = self.clock()
        stmt = select(PACKAGES.c.id, PACKAGES.c.org_id, PACKAGES.c.request_id, PACKAGES.c.kind).where(
            PACKAGES.c.deleted_at.is_(None), PACKAGES.c.expires_at <= now
        )
        if org_id is not None:
            stmt = stmt.where(PACKAGES.c.org_id == org_id)
        with self.runtime.engine.connect() as conn:
            rows = conn.execute(stmt.limit(10_000)).all()
        for row in rows:
            self._path(row.org_id, row.id).unlink(missing_ok=True)

            def work(conn: Connection, row: Any = row) -> tuple[None, list[PreparedEvent]]:
                conn.execute(update(PACKAGES).where(PACKAGES.c.id == row.id).values(deleted_at=now))
                fields = {"request_id": row.request_id, "kind": row.kind, "reason": "expired"}
                return None, [self.ledger.prepare(_event("rights.package.deleted", "delete", actor, row.id, **fields))]

            self.ledger.transact(row.org_id, work)
        return len(rows)
