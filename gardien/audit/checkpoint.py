"""C2SP signed notes (Ed25519) and C2SP transparency-log checkpoints.

Specifications: https://c2sp.org/signed-note and https://c2sp.org/tlog-checkpoint. The ledger's
use of them is described in docs/ledger-format.md §4.

Parsing is strict on purpose: a checkpoint is evidence, and every byte of it is either covered by
a signature or structure around one, so anything a conforming writer would not have produced is
rejected rather than repaired. Base64 must be canonical too, which makes ``parse`` and ``text()`` /
``body()`` exact inverses: one note has exactly one spelling.

This module is pure (no I/O, no database) so that offline verifiers can use it on its own.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

__all__ = [
    "ED25519_SIGNATURE_TYPE",
    "MAX_SIGNATURES",
    "Checkpoint",
    "Note",
    "NoteCheck",
    "NoteError",
    "NoteSignature",
    "NoteSigner",
    "NoteVerifier",
    "check_note",
    "ed25519_key_id",
    "sign_note",
]

ED25519_SIGNATURE_TYPE = 0x01
# The spec requires accepting at least 16; the Go reference accepts 100. Past that a note is more
# likely an attempt to make verifiers burn CPU than a real cosigned checkpoint.
MAX_SIGNATURES = 100
KEY_ID_SIZE = 4
ED25519_PUBLIC_KEY_SIZE = 32
ED25519_SIGNATURE_SIZE = 64
ROOT_HASH_SIZE = 32
# Tree sizes are uint64 in the Go implementations; a larger value could not be
# consumed by them, and bounding it keeps int() away from attacker-sized digit strings.
MAX_TREE_SIZE = 2**64 - 1

_SIGNATURE_PREFIX = "\u2014 "  # em dash, space
_CONTROL_CHARS = re.compile(r"[\x00-\x09\x0b-\x1f]")
# ASCII only: str.isdigit and \d would also admit other scripts' digits.
_TREE_SIZE = re.compile(r"0|[1-9][0-9]{0,19}")
_HEX_KEY_ID = re.compile(r"[0-9a-fA-F]{8}")


class NoteError(ValueError):
    """A signed note, checkpoint or verifier key is malformed."""


def _check_text(text: str, what: str) -> None:
    if _CONTROL_CHARS.search(text):
        raise NoteError(f"{what} contains a control character other than newline")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        # Only lone surrogates get here; they have no UTF-8 encoding, so nothing could sign them.
        raise NoteError(f"{what} is not valid UTF-8") from exc


def _check_body(body: str) -> None:
    if not body.endswith("\n"):
        raise NoteError("note text must end with a newline")
    _check_text(body, "note text")


def _check_line(line: str, what: str) -> None:
    if not line:
        raise NoteError(f"{what} is empty")
    if "\n" in line:
        raise NoteError(f"{what} contains a newline")
    _check_text(line, what)


def _check_name(name: str) -> None:
    if not name:
        raise NoteError("key name is empty")
    # str.isspace covers every Unicode White_Space character (plus a few ASCII separators that
    # are control characters anyway).
    if "+" in name or any(ch.isspace() for ch in name):
        raise NoteError(f"key name {name!r} contains a space or '+'")
    _check_text(name, "key name")


def _b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _b64decode(text: str, what: str) -> bytes:
    try:
        data = base64.b64decode(text, validate=True)
    except ValueError as exc:
        raise NoteError(f"{what} is not valid base64") from exc
    # Non-canonical spellings (stray padding bits) decode fine but would give one note several
    # textual forms; a conforming encoder never produces them.
    if _b64encode(data) != text:
        raise NoteError(f"{what} is not canonical base64")
    return data


def _key_label(name: str, key_id: bytes) -> str:
    return f"{name}+{key_id.hex()}"


def ed25519_key_id(name: str, public_key: bytes) -> bytes:
    """The C2SP key id: ``SHA-256(name || 0x0A || 0x01 || public key)[:4]``."""
    _check_name(name)
    if len(public_key) != ED25519_PUBLIC_KEY_SIZE:
        raise NoteError(f"Ed25519 public key must be {ED25519_PUBLIC_KEY_SIZE} bytes")
    material = name.encode("utf-8") + b"\n" + bytes([ED25519_SIGNATURE_TYPE]) + public_key
    return hashlib.sha256(material).digest()[:KEY_ID_SIZE]


def _vkey(name: str, key_id: bytes, public_key: bytes) -> str:
    return f"{name}+{key_id.hex()}+{_b64encode(bytes([ED25519_SIGNATURE_TYPE]) + public_key)}"


@dataclass(frozen=True)
class Checkpoint:
    """A C2SP checkpoint body: origin, tree size, root hash and optional extension lines."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # Accept any iterable of lines but store a tuple, so instances stay hashable.
        object.__setattr__(self, "extensions", tuple(self.extensions))
        _check_line(self.origin, "origin")
        if isinstance(self.size, bool) or not isinstance(self.size, int):
            raise NoteError("tree size must be an int")
        if not 0 <= self.size <= MAX_TREE_SIZE:
            raise NoteError(f"tree size {self.size} is out of range")
        if len(self.root) != ROOT_HASH_SIZE:
            raise NoteError(f"root hash must be {ROOT_HASH_SIZE} bytes, not {len(self.root)}")
        for extension in self.extensions:
            _check_line(extension, "extension line")

    def body(self) -> str:
        lines = [self.origin, str(self.size), _b64encode(self.root), *self.extensions]
        return "".join(line + "\n" for line in lines)

    @classmethod
    def parse(cls, body: str) -> Checkpoint:
        _check_body(body)
        lines = body[:-1].split("\n")
        if len(lines) < 3:
            raise NoteError("checkpoint needs origin, tree size and root hash lines")
        origin, size_text, root_text, *extensions = lines
        if not origin:
            raise NoteError("checkpoint origin is empty")
        if not _TREE_SIZE.fullmatch(size_text):
            raise NoteError(f"tree size {size_text[:40]!r} is not a decimal without leading zeros")
        root = _b64decode(root_text, "root hash")
        if len(root) != ROOT_HASH_SIZE:
            raise NoteError(f"root hash must be {ROOT_HASH_SIZE} bytes, not {len(root)}")
        for extension in extensions:
            if not extension:
                raise NoteError("checkpoint has an empty extension line")
        return cls(origin=origin, size=int(size_text), root=root, extensions=tuple(extensions))


@dataclass(frozen=True)
class NoteSignature:
    """One signature line. The signature bytes are opaque here: only a verifier knows their type."""

    name: str
    key_id: bytes
    signature: bytes

    def __post_init__(self) -> None:
        _check_name(self.name)
        if len(self.key_id) != KEY_ID_SIZE:
            raise NoteError(f"key id must be {KEY_ID_SIZE} bytes")
        if not self.signature:
            raise NoteError("signature is empty")

    def _line(self) -> str:
        return f"{_SIGNATURE_PREFIX}{self.name} {_b64encode(self.key_id + self.signature)}\n"


@dataclass(frozen=True)
class Note:
    """A signed note: text ending in a newline, then one or more signature lines."""

    body: str
    signatures: tuple[NoteSignature, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "signatures", tuple(self.signatures))
        _check_body(self.body)
        if not self.signatures:
            # The encoding has no form for an unsigned note: text() would not parse back.
            raise NoteError("a signed note needs at least one signature")
        if len(self.signatures) > MAX_SIGNATURES:
            raise NoteError(f"more than {MAX_SIGNATURES} signatures")

    def text(self) -> str:
        return self.body + "\n" + "".join(sig._line() for sig in self.signatures)

    @classmethod
    def parse(cls, text: str | bytes) -> Note:
        """Parse a signed note without verifying it; signatures by any key are kept."""
        if isinstance(text, bytes):
            try:
                text = text.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise NoteError("signed note is not valid UTF-8") from exc
        _check_text(text, "signed note")
        # Signature lines are never empty, so the last blank line is the separator; earlier
        # blank lines belong to the text.
        split = text.rfind("\n\n")
        if split < 0:
            raise NoteError("no blank line separates the text from the signatures")
        body, block = text[: split + 1], text[split + 2 :]
        if not block:
            raise NoteError("signed note has no signature lines")
        if not block.endswith("\n"):
            raise NoteError("signed note must end with a newline")
        lines = block[:-1].split("\n")
        # Checked before any decoding so that an oversized note costs little to reject.
        if len(lines) > MAX_SIGNATURES:
            raise NoteError(f"more than {MAX_SIGNATURES} signatures")
        signatures = tuple(_parse_signature_line(line) for line in lines)
        return cls(body=body, signatures=signatures)


def _parse_signature_line(line: str) -> NoteSignature:
    if not line.startswith(_SIGNATURE_PREFIX):
        raise NoteError(f"not a signature line: {line[:80]!r}")
    name, space, encoded = line[len(_SIGNATURE_PREFIX) :].partition(" ")
    if not space:
        raise NoteError("signature line has no signature")
    if " " in encoded:
        raise NoteError("signature line has more than two fields (names cannot contain spaces)")
    _check_name(name)
    raw = _b64decode(encoded, "signature")
    # A key id followed by nothing cannot be a signature of any type.
    if len(raw) <= KEY_ID_SIZE:
        raise NoteError("signature is too short")
    return NoteSignature(name=name, key_id=raw[:KEY_ID_SIZE], signature=raw[KEY_ID_SIZE:])


class NoteSigner:
    """Signs note text with an Ed25519 key under a key name."""

    __slots__ = ("_key_id", "_name", "_private_key", "_public_key")

    def __init__(self, name: str, private_key: Ed25519PrivateKey) -> None:
        _check_name(name)
        self._name = name
        self._private_key = private_key
        self._public_key = private_key.public_key().public_bytes_raw()
        self._key_id = ed25519_key_id(name, self._public_key)

    # Read-only: changing the name after the key id was derived would sign under a wrong id.
    @property
    def name(self) -> str:
        return self._name

    @property
    def key_id(self) -> bytes:
        return self._key_id

    @property
    def public_key(self) -> bytes:
        return self._public_key

    def sign(self, body: str) -> NoteSignature:
        _check_body(body)
        signature = self._private_key.sign(body.encode("utf-8"))
        return NoteSignature(name=self._name, key_id=self._key_id, signature=signature)

    def sign_bytes(self, data: bytes) -> bytes:
        """A bare Ed25519 signature, for documents that are not notes (export manifests)."""
        return self._private_key.sign(data)

    def vkey(self) -> str:
        return _vkey(self._name, self._key_id, self._public_key)

    def verifier(self) -> NoteVerifier:
        return NoteVerifier.from_public_key(self._name, self._public_key)

    def __repr__(self) -> str:
        # Never show the private key, even in tracebacks.
        return f"NoteSigner({self.vkey()!r})"


@dataclass(frozen=True)
class NoteVerifier:
    """A trusted Ed25519 public key under a key name."""

    name: str
    key_id: bytes
    public_key: bytes
    _key: Ed25519PublicKey = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # The key id is derived, never trusted: a mismatched one would make the verifier
        # answer for signature lines that belong to some other key.
        if ed25519_key_id(self.name, self.public_key) != self.key_id:
            raise NoteError(f"key id {self.key_id.hex()} does not match the key")
        try:
            key = Ed25519PublicKey.from_public_bytes(self.public_key)
        except ValueError as exc:
            raise NoteError("not an Ed25519 public key") from exc
        object.__setattr__(self, "_key", key)

    @classmethod
    def from_public_key(cls, name: str, public_key: bytes) -> NoteVerifier:
        return cls(name=name, key_id=ed25519_key_id(name, public_key), public_key=public_key)

    @classmethod
    def from_vkey(cls, vkey: str) -> NoteVerifier:
        """Parse ``name+hexkeyid+base64(0x01 || public key)``."""
        # Split from the left: base64 may itself contain '+', names may not.
        name, plus1, rest = vkey.partition("+")
        hex_id, plus2, encoded = rest.partition("+")
        if not plus1 or not plus2:
            raise NoteError("verifier key must be name+keyid+key")
        _check_name(name)
        if not _HEX_KEY_ID.fullmatch(hex_id):
            raise NoteError("verifier key id must be 8 hexadecimal digits")
        material = _b64decode(encoded, "verifier key")
        if not material:
            raise NoteError("verifier key is empty")
        if material[0] != ED25519_SIGNATURE_TYPE:
            raise NoteError(f"unsupported signature type 0x{material[0]:02x}")
        public_key = material[1:]
        if len(public_key) != ED25519_PUBLIC_KEY_SIZE:
            raise NoteError(f"Ed25519 public key must be {ED25519_PUBLIC_KEY_SIZE} bytes")
        return cls(name=name, key_id=bytes.fromhex(hex_id), public_key=public_key)

    def vkey(self) -> str:
        return _vkey(self.name, self.key_id, self.public_key)

    def verify_bytes(self, data: bytes, signature: bytes) -> bool:
        try:
            self._key.verify(signature, data)
        except InvalidSignature:
            return False
        return True

    def verify(self, body: str, sig: NoteSignature) -> bool:
        if sig.name != self.name or sig.key_id != self.key_id:
            return False
        if len(sig.signature) != ED25519_SIGNATURE_SIZE:
            return False
        try:
            message = body.encode("utf-8")
        except UnicodeEncodeError:
            return False
        try:
            self._key.verify(sig.signature, message)
        except InvalidSignature:
            return False
        return True


def sign_note(body: str, signers: Sequence[NoteSigner]) -> Note:
    _check_body(body)
    if not signers:
        raise NoteError("a signed note needs at least one signer")
    seen: set[tuple[str, bytes]] = set()
    for signer in signers:
        ident = (signer.name, signer.key_id)
        if ident in seen:
            raise NoteError(f"signer {_key_label(*ident)} given twice")
        seen.add(ident)
    return Note(body=body, signatures=tuple(signer.sign(body) for signer in signers))


@dataclass(frozen=True)
class NoteCheck:
    status: Literal["verified", "invalid", "unknown_key"]
    verified_by: tuple[str, ...]
    detail: str

    @property
    def ok(self) -> bool:
        return self.status == "verified"


def check_note(note: Note, verifiers: Iterable[NoteVerifier]) -> NoteCheck:
    """Verify a note against trusted keys.

    Every signature line whose name and key id match a trusted key must verify: a failing one
    means the text or the signature was altered, and the note is "invalid" even if another trusted
    signature verifies. Lines from other keys are ignored, as the spec requires (they may be
    witnesses or keys this verifier was not given); if nothing else remains, the note is
    "unknown_key": unverifiable, but not shown to be tampered with.
    """
    trusted: dict[tuple[str, bytes], list[NoteVerifier]] = {}
    for verifier in verifiers:
        same_id = trusted.setdefault((verifier.name, verifier.key_id), [])
        if verifier not in same_id:
            same_id.append(verifier)

    verified: list[str] = []
    failed: list[str] = []
    unknown: list[str] = []
    for sig in note.signatures:
        label = _key_label(sig.name, sig.key_id)
        candidates = trusted.get((sig.name, sig.key_id))
        if candidates is None:
            bucket = unknown
        # Two trusted keys can collide on name and id; either of them vouching is enough,
        # since both are trusted.
        elif any(verifier.verify(note.body, sig) for verifier in candidates):
            bucket = verified
        else:
            bucket = failed
        if label not in bucket:
            bucket.append(label)

    if failed:
        detail = f"signature by trusted key {', '.join(failed)} does not verify"
        return NoteCheck(status="invalid", verified_by=tuple(verified), detail=detail)
    if verified:
        detail = f"verified by {', '.join(verified)}"
        if unknown:
            detail += f"; ignored signatures by unknown keys {', '.join(unknown)}"
        return NoteCheck(status="verified", verified_by=tuple(verified), detail=detail)
    detail = f"no signature by a trusted key; signed by {', '.join(unknown)}"
    return NoteCheck(status="unknown_key", verified_by=(), detail=detail)
