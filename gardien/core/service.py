"""Organisations and API keys."""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from gardien.core.clock import utcnow
from gardien.core.errors import Conflict, NotFound, Problem
from gardien.core.ids import new_id
from gardien.core.models import ApiKey, Organisation
from gardien.core.roles import Role
from gardien.core.runtime import Runtime

KEY_PATTERN = re.compile(r"^gdn_([a-z2-7]{12})_([A-Za-z0-9_-]{32,64})$")
SLUG_PATTERN = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")
COUNTRIES = frozenset({"FR", "BE", "NL", "LU", "DE"})


@dataclass(frozen=True)
class Principal:
    org_id: str
    key_id: str
    key_name: str
    role: Role
    # "api_key", or "user" for a console user signed in with a password (key_id is then the
    # user's id and key_name their e-mail address).
    kind: str = "api_key"

    def as_actor(self) -> dict[str, str]:
        return {"type": self.kind, "id": self.key_id, "display": self.key_name}


class Unauthorized(Problem):
    def __init__(self, detail: str) -> None:
        super().__init__(401, "unauthorized", "Unauthorized", detail)


def _hash_secret(token: str) -> bytes:
    # API keys carry 190+ bits of randomness, so a fast hash is enough: there is nothing to brute-force.
    return hashlib.sha256(token.encode()).digest()


def create_org(session: Session, *, slug: str, name: str, country: str = "FR") -> Organisation:
    if not SLUG_PATTERN.match(slug):
        raise Problem(
            422,
            "validation",
            "Invalid input",
            f"slug {slug!r} must be lower-case letters, digits and dashes",
        )
    country = country.upper()
    if country not in COUNTRIES:
        raise Problem(422, "validation", "Invalid input", f"country must be one of {sorted(COUNTRIES)}")
    if session.scalar(select(Organisation).where(Organisation.slug == slug)) is not None:
        raise Conflict(f"an organisation with slug {slug!r} already exists")
    org = Organisation(id=new_id(), slug=slug, name=name, country=country, created_at=utcnow())
    session.add(org)
    session.flush()
    return org


def org_created_event(org: Organisation, actor: dict[str, str]) -> dict[str, Any]:
    """The audit event recording `org`'s creation, whoever created it (API, CLI, demo)."""
    return {
        "module": "core",
        "action": "organisation.create",
        "crud": "create",
        "actor": actor,
        "target": {"type": "organisation", "id": org.id, "display": org.slug},
        "fields": {"country": org.country},
    }


def key_created_event(key: ApiKey, actor: dict[str, str]) -> dict[str, Any]:
    return {
        "module": "core",
        "action": "api_key.create",
        "crud": "create",
        "actor": actor,
        "target": {"type": "api_key", "id": key.id, "display": key.name},
        "fields": {"role": key.role},
    }


def get_org(session: Session, org_ref: str) -> Organisation:
    org = session.get(Organisation, org_ref) or session.scalar(select(Organisation).where(Organisation.slug == org_ref))
    if org is None:
        raise NotFound(f"organisation {org_ref!r}")
    return org


def list_orgs(session: Session) -> list[Organisation]:
    return list(session.scalars(select(Organisation).order_by(Organisation.created_at)))


def create_key(session: Session, *, org_id: str, name: str, role: Role) -> tuple[ApiKey, str]:
    """Create a key and return it with its token; the token is never stored nor shown again."""
    key_id = "".join(secrets.choice("abcdefghijklmnopqrstuvwxyz234567") for _ in range(12))
    token = f"gdn_{key_id}_{secrets.token_urlsafe(32)}"
    key = ApiKey(
        id=key_id,
        org_id=org_id,
        name=name,
        role=role.value,
        secret_hash=_hash_secret(token),
        created_at=utcnow(),
    )
    session.add(key)
    session.flush()
    return key, token


def list_keys(session: Session, org_id: str) -> list[ApiKey]:
    return list(session.scalars(select(ApiKey).where(ApiKey.org_id == org_id).order_by(ApiKey.created_at)))


def revoke_key(session: Session, runtime: Runtime, *, org_id: str, key_id: str) -> ApiKey:
    key = session.get(ApiKey, key_id)
    if key is None or key.org_id != org_id:
        raise NotFound(f"API key {key_id!r}")
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        session.flush()
    runtime.principal_cache.clear()
    return key


def principal_of_key(runtime: Runtime, key_id: str) -> Principal:
    """The principal of a key known by its id alone, as long as it exists and is not revoked.

    The console's session carries a key id, never the key: each page asks again, so that a
    revoked key ends its console sessions at their next request.
    """
    with runtime.sessions() as session:
        key = session.get(ApiKey, key_id)
        if key is None or key.revoked_at is not None:
            raise Unauthorized("unknown or revoked API key")
        return Principal(key.org_id, key.id, key.name, Role(key.role))


def authenticate(runtime: Runtime, token: str | None) -> Principal:
    """Resolve a bearer token to its principal; cached briefly so hot ingest paths skip the database."""
    if not token:
        raise Unauthorized("an API key is required: Authorization: Bearer gdn_…")
    # Keyed by the token itself: only tokens that authenticated are ever stored, and hashing each
    # request's token just to look it up costs more than the lookup.
    cached = runtime.principal_cache.get(token)
    now = time.monotonic()
    if cached is not None and cached[1] > now:
        principal: Principal = cached[0]
        return principal
    match = KEY_PATTERN.match(token)
    if match is None:
        raise Unauthorized("malformed API key")
    digest = _hash_secret(token)
    with runtime.sessions() as session:
        key = session.get(ApiKey, match.group(1))
        if key is None or not secrets.compare_digest(key.secret_hash, digest) or key.revoked_at is not None:
            raise Unauthorized("unknown or revoked API key")
        principal = Principal(key.org_id, key.id, key.name, Role(key.role))
    if len(runtime.principal_cache) > 10_000:
        runtime.principal_cache.clear()
    runtime.principal_cache[token] = (principal, now + runtime.settings.api_key_cache_seconds)
    return principal
