"""Console users: people who sign in to the console with an e-mail address and a password.

Each user belongs to one organisation and holds one of the roles API keys carry, less `service`
(applications, not people). Passwords are hashed with argon2id; a hash made with other
parameters than the configured ones is replaced at the next successful sign-in. Failed sign-ins
are counted per address (known or not): after `console_lock_failures` in a row the address is
locked for `console_lock_minutes`, correct password or not.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from email_validator import EmailNotValidError, validate_email
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from gardien.core.clock import utcnow
from gardien.core.errors import Conflict, InvalidInput
from gardien.core.ids import new_id
from gardien.core.models import ConsoleUser, SignInThrottle
from gardien.core.roles import Role
from gardien.core.runtime import Runtime
from gardien.core.service import Principal, Unauthorized, get_org
from gardien.core.settings import Settings

# Roles a person may hold in the console: the service role is for applications' keys.
USER_ROLES = frozenset({Role.ADMIN, Role.DPO, Role.AUDITOR, Role.OPERATOR})
# CNIL deliberation 2022-100 (passwords): 12 characters at the least when the password is the only
# factor. The upper bound keeps hashing a posted form cheap enough.
MIN_PASSWORD = 12
MAX_PASSWORD = 1024
MAX_EMAIL = 320
THROTTLE_DOMAIN = b"console-sign-in\0"


def hasher(settings: Settings) -> PasswordHasher:
    """argon2id with the configured cost (default: RFC 9106's second recommendation)."""
    return PasswordHasher(
        time_cost=settings.console_password_time_cost,
        memory_cost=settings.console_password_memory_kib,
        parallelism=settings.console_password_parallelism,
    )


def normal_email(email: str) -> str:
    return email.strip().lower()


def _invalid(detail: str, field: str) -> InvalidInput:
    return InvalidInput(detail, [{"field": field, "message": detail}])


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise _invalid(f"a password needs at least {MIN_PASSWORD} characters", "password")
    if len(password) > MAX_PASSWORD:
        raise _invalid(f"a password has at most {MAX_PASSWORD} characters", "password")


def create_user(
    session: Session, settings: Settings, *, org_ref: str, email: str, role: Role, password: str
) -> ConsoleUser:
    org = get_org(session, org_ref)
    if role not in USER_ROLES:
        raise _invalid(f"a console user may not hold the {role.value} role (it is for applications' keys)", "role")
    address = normal_email(email)
    try:
        validate_email(address, check_deliverability=False)
    except EmailNotValidError as exc:
        raise _invalid(f"{address!r} is not an e-mail address: {exc}", "email") from exc
    if len(address) > MAX_EMAIL:
        raise _invalid(f"an e-mail address has at most {MAX_EMAIL} characters", "email")
    check_password(password)
    if session.scalar(select(ConsoleUser.id).where(ConsoleUser.email == address)) is not None:
        raise Conflict(f"a console user {address!r} already exists")
    user = ConsoleUser(
        id=new_id(),
        org_id=org.id,
        email=address,
        role=role.value,
        password_hash=hasher(settings).hash(password),
        created_at=utcnow(),
    )
    session.add(user)
    session.flush()
    return user


def user_created_event(user: ConsoleUser, actor: dict[str, str]) -> dict[str, Any]:
    return {
        "module": "core",
        "action": "console_user.create",
        "crud": "create",
        "actor": actor,
        "target": {"type": "user", "id": user.id, "display": user.email},
        "fields": {"role": user.role},
    }


def principal_of(user: ConsoleUser) -> Principal:
    return Principal(user.org_id, user.id, user.email, Role(user.role), kind="user")


def principal_of_user(runtime: Runtime, user_id: str) -> Principal:
    """A session's user, re-read on every page: a deleted user's sessions end at once."""
    with runtime.sessions() as session:
        user = session.get(ConsoleUser, user_id)
        if user is None or user.role not in USER_ROLES:
            raise Unauthorized("unknown console user")
        return principal_of(user)


@dataclass(frozen=True)
class SignIn:
    """What a password sign-in came to.

    `principal` is set on success; `user` whenever the address is a user's (to record the attempt
    in its organisation's ledger); `locked_until` when the address is locked.
    """

    principal: Principal | None
    user: Principal | None
    locked_until: datetime | None = None
    rehashed: bool = False


class PasswordSignIn:
    """Checks e-mail and password against the users, with the per-address throttle."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.hasher = hasher(runtime.settings)

    @cached_property
    def _decoy(self) -> str:
        """Verified when the address is nobody's, so that an unknown address costs the same time;
        made at the first sign-in rather than with every application."""
        return self.hasher.hash(new_id())

    def _account(self, address: str) -> str:
        return self.runtime.keyring.hmac_key(None).digest(THROTTLE_DOMAIN + address.encode()).hex()

    def attempt(self, email: str, password: str, now: datetime) -> SignIn:
        address = normal_email(email)[:MAX_EMAIL]
        account = self._account(address)
        settings = self.runtime.settings
        with self.runtime.writes.begin() as session:
            throttle = session.get(SignInThrottle, account)
            user = session.scalar(select(ConsoleUser).where(ConsoleUser.email == address))
            known = principal_of(user) if user is not None and user.role in USER_ROLES else None
            if throttle is not None and throttle.locked_until is not None and throttle.locked_until > now:
                return SignIn(None, known, throttle.locked_until)
            stored = user.password_hash if known is not None and user is not None else self._decoy
            matched = self._verify(stored, password[:MAX_PASSWORD]) and known is not None
            if matched and user is not None:
                rehashed = self.hasher.check_needs_rehash(user.password_hash)
                if rehashed:
                    user.password_hash = self.hasher.hash(password)
                user.last_sign_in_at = now
                session.execute(delete(SignInThrottle).where(SignInThrottle.account == account))
                return SignIn(known, known, rehashed=rehashed)
            if throttle is None:
                throttle = SignInThrottle(account=account, failures=0, locked_until=None)
                session.add(throttle)
            throttle.failures += 1
            locked = None
            if throttle.failures >= settings.console_lock_failures:
                locked = throttle.locked_until = now + timedelta(minutes=settings.console_lock_minutes)
                throttle.failures = 0
            return SignIn(None, known, locked)

    def _verify(self, stored: str, password: str) -> bool:
        try:
            return self.hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return False
