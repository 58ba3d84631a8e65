"""The consent rules as pure functions: how a method turns into per-purpose states, how long a
choice lasts, when it still counts, and what is kept of the network address.

No database code here: the service feeds these functions what it read and stores what they return.
Facts behind the numbers: CNIL recommendation 2020-092 (a choice kept six months) and the
repealed 2013-378 (thirteen months), see docs/consent.md.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from enum import StrEnum
from functools import lru_cache

from dateutil.relativedelta import relativedelta

from gardien.core.errors import InvalidInput

DEFAULT_VALIDITY_MONTHS = 6
MAX_VALIDITY_MONTHS = 13
ESSENTIAL_PURPOSE = "functional"
GRANTED, DENIED, NOT_PRESENTED = "granted", "denied", "not_presented"
# What a check answers for a purpose when the subject has no choice that still counts.
NOT_GIVEN = "not_given"
CONSENT_GRANTED, CONSENT_REVOKED = "CONSENT_GRANTED", "CONSENT_REVOKED"


class Method(StrEnum):
    ACCEPT_ALL = "accept_all"
    REJECT_ALL = "reject_all"
    CUSTOM = "custom"
    GPC = "gpc"
    WITHDRAW = "withdraw"
    EXPIRY = "expiry"
    API = "api"


class Surface(StrEnum):
    FIRST_LAYER = "first_layer"
    PREFERENCES = "preferences"
    API = "api"


class Status(StrEnum):
    VALID = "valid"
    EXPIRED = "expired"
    OUTDATED = "outdated"


# The writer applies a group's choices at one instant: one calendar computation per group.
@lru_cache(maxsize=64)
def expiry_of(occurred_at: datetime, validity_months: int) -> datetime:
    """Calendar months: 31 August + 6 months is the last day of February."""
    return occurred_at + relativedelta(months=validity_months)


def status_of(method: str, notice_version: int, expires_at: datetime, current_version: int, now: datetime) -> Status:
    """Whether a recorded choice still counts: not expired (the instant of expiry no longer does),
    made under the current notice version, and not closed by an expiry event."""
    if method == Method.EXPIRY or now >= expires_at:
        return Status.EXPIRED
    if notice_version != current_version:
        return Status.OUTDATED
    return Status.VALID


def _invalid(field: str, message: str) -> InvalidInput:
    return InvalidInput(f"{field}: {message}", [{"field": field, "message": message, "type": "consent"}])


def _check_known(purposes: Collection[str], keys: Sequence[str], field: str) -> None:
    for key in keys:
        if key not in purposes:
            raise _invalid(f"{field}.{key}" if field == "states" else field, f"unknown purpose {key!r}")


def choose(
    method: Method,
    purposes: Sequence[str],
    essential: Collection[str],
    given: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The states a choice records, in the notice's purpose order.

    accept_all grants everything; reject_all and gpc deny every non-essential purpose; custom takes
    the states given and denies the others (their toggles are off by default); api takes the states
    given and leaves the others not_presented. Essential purposes are always granted.
    """
    given = given or {}
    if given and method not in (Method.CUSTOM, Method.API):
        raise _invalid("states", f"states are given only with the custom or api method, not {method.value}")
    _check_known(purposes, list(given), "states")
    for key, state in given.items():
        if key in essential and state != GRANTED:
            raise _invalid(f"states.{key}", f"{key!r} is essential: it cannot be {state}")
    if method is Method.ACCEPT_ALL:
        return {key: GRANTED for key in purposes}
    if method in (Method.REJECT_ALL, Method.GPC):
        return {key: GRANTED if key in essential else DENIED for key in purposes}
    if method in (Method.CUSTOM, Method.API):
        missing = DENIED if method is Method.CUSTOM else NOT_PRESENTED
        return {key: GRANTED if key in essential else given.get(key, missing) for key in purposes}
    raise _invalid("method", f"{method.value} is not a choice a person or a server makes")


def withdraw(
    purposes: Sequence[str],
    essential: Collection[str],
    previous: Mapping[str, str] | None,
    named: Sequence[str] | None,
) -> dict[str, str]:
    """Deny the purposes named (all non-essential ones when none are); keep the others as they were.

    `previous` is the subject's choice that still counts, or None: then nothing else is given and
    the purposes not withdrawn are not_presented.
    """
    if named is not None:
        _check_known(purposes, named, "purposes")
        for key in named:
            if key in essential:
                raise _invalid("purposes", f"{key!r} is essential: it cannot be withdrawn")
    withdrawn = set(named) if named is not None else {key for key in purposes if key not in essential}
    states: dict[str, str] = {}
    for key in purposes:
        if key in essential:
            states[key] = GRANTED
        elif key in withdrawn:
            states[key] = DENIED
        else:
            states[key] = (previous or {}).get(key, NOT_PRESENTED)
    return states


def granted_non_essential(states: Mapping[str, str], essential: Collection[str]) -> list[str]:
    return [key for key, state in states.items() if state == GRANTED and key not in essential]


def revoked(states: Mapping[str, str], previous: Mapping[str, str] | None) -> list[str]:
    """Purposes granted by the previous choice that still counted and denied now."""
    if not previous:
        return []
    return [key for key, state in states.items() if state == DENIED and previous.get(key) == GRANTED]


def dpia_event(granted: Sequence[str], withdrawn: Sequence[str]) -> str | None:
    """The DPIA log's tag of a choice; a revocation is the one to see when a choice does both."""
    if withdrawn:
        return CONSENT_REVOKED
    if granted:
        return CONSENT_GRANTED
    return None


# Visitors come back from the same addresses; parsing one costs more than the rest of the event.
@lru_cache(maxsize=4096)
def truncate_ip(address: str | None) -> str | None:
    """IPv4 to its /24, IPv6 to its /48 (an IPv4-mapped IPv6 address as IPv4); None if not an address."""
    if not address:
        return None
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    prefix = 24 if ip.version == 4 else 48
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))
