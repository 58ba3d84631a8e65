"""Which consent proofs have served their time, and removing them (for retention policies).

A consent event proves one choice. It is in force until it is replaced by the next event of the same
consent id (a new choice, a withdrawal, an expiry) or until its own `expires_at`, whichever comes
first; its proof is kept while it is in force and for the policy's period after that. So an event
may go when, for the run's cutoff (now − period):

- its `expires_at` is before the cutoff, or
- it is not the consent id's current event and a later event of the same consent id occurred
  before the cutoff (it was replaced then).

"Later" is the order (occurred_at, id), the order the purge walks in: removing an event never
changes whether an event still ahead of it may go, so a count made before the run is exact. The
current state (`consent_states`) goes with its last event; it has then expired, so `is_allowed`
already answered "not given" for it and still does. The daily counters hold no personal data and
stay.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, delete, exists, or_, select
from sqlalchemy.engine import Connection

from gardien.consent.models import EVENTS, STATES
from gardien.core.keyring import HmacKey

ORDER = (EVENTS.c.occurred_at, EVENTS.c.id)


def user_ref(key: HmacKey, user_id: str) -> str:
    """The keyed pseudonym under which consent events name an application's user id."""
    return key.digest(b"consent-user\0" + user_id.encode()).hex()


def held_refs(keys: Iterable[HmacKey], user_ids: Iterable[str]) -> list[str]:
    """The pseudonyms, under every key, of the people a legal hold keeps."""
    ids = list(user_ids)
    return sorted({user_ref(key, value) for key in keys for value in ids})


def ended_before(org_id: str, cutoff: datetime) -> ColumnElement[bool]:
    """Events of the organisation whose proof period, counted from their end, is over at `cutoff`."""
    later = EVENTS.alias("later")
    replaced = exists().where(
        later.c.org_id == EVENTS.c.org_id,
        later.c.consent_id == EVENTS.c.consent_id,
        later.c.occurred_at < cutoff,
        or_(
            later.c.occurred_at > EVENTS.c.occurred_at,
            and_(later.c.occurred_at == EVENTS.c.occurred_at, later.c.id > EVENTS.c.id),
        ),
    )
    current = exists().where(
        STATES.c.org_id == EVENTS.c.org_id,
        STATES.c.consent_id == EVENTS.c.consent_id,
        STATES.c.last_event_id == EVENTS.c.id,
    )
    return and_(EVENTS.c.org_id == org_id, or_(EVENTS.c.expires_at < cutoff, and_(~current, replaced)))


def not_held(refs: Sequence[str]) -> ColumnElement[bool] | None:
    if not refs:
        return None
    return or_(EVENTS.c.user_ref.is_(None), EVENTS.c.user_ref.not_in(list(refs)))


def key_of(row: Any) -> tuple[Any, ...]:
    return (row.occurred_at, row.id)


def remove(conn: Connection, org_id: str, event_ids: Sequence[str]) -> int:
    """Delete the events, and the current states whose last event is among them."""
    ids = list(event_ids)
    conn.execute(delete(STATES).where(STATES.c.org_id == org_id, STATES.c.last_event_id.in_(ids)))
    return int(conn.execute(delete(EVENTS).where(EVENTS.c.org_id == org_id, EVENTS.c.id.in_(ids))).rowcount)


def select_keys(condition: ColumnElement[bool]) -> Any:
    return select(EVENTS.c.occurred_at, EVENTS.c.id).where(condition).order_by(*ORDER)
