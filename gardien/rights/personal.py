"""Requesters' personal data inside Gardien: encrypted at rest, found by keyed pseudonyms, masked on display.

The e-mail address, the host subject id, other identities and rectification values of a request are
sealed together with AES-SIV under the keyring's encryption key, bound to the organisation and the
request (associated data), with a random nonce so that two requests of one person do not look alike.
Lookups (a person's requests, `can_process`) use HMAC-SHA256 pseudonyms under the keyring's oldest
HMAC key, which rotation retires but never removes, so a person stays findable after a rotation.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import orjson
from cryptography.hazmat.primitives.ciphers.aead import AESSIV

from gardien.core.keyring import HmacKey, Keyring

NONCE_BYTES = 16


@dataclass(frozen=True)
class Identities:
    """What a request knows of the person; only ever held in memory in clear."""

    email: str
    subject_id: str | None = None
    others: dict[str, str] = field(default_factory=dict)
    changes: dict[str, str] = field(default_factory=dict)
    note: str | None = None

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "email": self.email,
                "subject_id": self.subject_id,
                "others": self.others,
                "changes": self.changes,
                "note": self.note,
            }
        )

    @classmethod
    def from_json(cls, raw: bytes) -> Identities:
        data: dict[str, Any] = orjson.loads(raw)
        return cls(data["email"], data["subject_id"], data["others"], data["changes"], data["note"])


def seal(keyring: Keyring, org_id: str, request_id: str, identities: Identities) -> tuple[bytes, str]:
    """(nonce + ciphertext, id of the encryption key)."""
    kid, key = keyring.encryption_key()
    nonce = os.urandom(NONCE_BYTES)
    sealed = AESSIV(key).encrypt(identities.to_json(), [org_id.encode(), request_id.encode(), nonce])
    return nonce + sealed, kid


def unseal(keyring: Keyring, org_id: str, request_id: str, sealed: bytes, kid: str) -> Identities:
    _, key = keyring.encryption_key(kid)
    nonce, body = sealed[:NONCE_BYTES], sealed[NONCE_BYTES:]
    return Identities.from_json(AESSIV(key).decrypt(body, [org_id.encode(), request_id.encode(), nonce]))


def normalise_email(email: str) -> str:
    # Mail providers treat the local part case-insensitively in practice; one person, one pseudonym.
    return email.strip().lower()


def email_ref(key: HmacKey, email: str) -> str:
    return key.digest(b"rights-subject\0email\0" + normalise_email(email).encode()).hex()


def subject_id_ref(key: HmacKey, subject_id: str) -> str:
    return key.digest(b"rights-subject\0id\0" + subject_id.encode()).hex()


def refs_of(key: HmacKey, subject: str) -> tuple[str, ...]:
    """The pseudonyms a `can_process` subject may have been recorded under: host id, or e-mail address."""
    refs = [subject_id_ref(key, subject)]
    if "@" in subject:
        refs.append(email_ref(key, subject))
    return tuple(refs)


def mask_email(email: str) -> str:
    """Enough for an operator to tell requests apart, not enough to write to the person."""
    local, _, domain = email.partition("@")
    return f"{local[:1]}***@{domain}"
