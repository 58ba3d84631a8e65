"""Signed-note signers and verifiers built from the keyring's Ed25519 keys."""

from __future__ import annotations

from gardien.audit.checkpoint import NoteSigner, NoteVerifier
from gardien.core.keyring import Keyring


def checkpoint_signer(keyring: Keyring) -> NoteSigner:
    _kid, private_key = keyring.signing_key()
    return NoteSigner(keyring.instance_name, private_key)


def trusted_verifiers(keyring: Keyring) -> list[NoteVerifier]:
    return [
        NoteVerifier.from_public_key(keyring.instance_name, key.public_key) for key in keyring.signing_public_keys()
    ]


def log_origin(instance_name: str, org_id: str) -> str:
    return f"{instance_name}/audit/{org_id}"
