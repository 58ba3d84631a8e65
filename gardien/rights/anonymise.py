"""Anonymising closed requests once their retention period is over (for retention policies).

What goes: everything that says who asked or what they wrote. The sealed identities (e-mail
address, host subject id, other identities, rectification values, note) are emptied; the keyed
pseudonyms (`subject_ref`, `host_ref`) are replaced by a marker no HMAC can equal; free text is
cleared (the extension reason, the reasons in the history and the outcome, an execution's error);
the pending e-mail code is deleted; lifted blocks lose their pseudonym and their reason.

What stays: the request's skeleton, which the period reports and the Art. 12 statistics count:
type, status, dates of receipt, closing and deadlines, extension and pause, identity method,
scope (purposes, ground), outcome codes and per-table counts, and the history's steps (who acted,
when, from which status to which).

A request is due when it is closed (completed, rejected, cancelled) before the cutoff, is not
anonymised yet, has no block still in force (a restriction or objection it produced still needs the
person's pseudonym) and no access package still downloadable.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import ColumnElement, and_, bindparam, delete, exists, or_, select, update
from sqlalchemy.engine import Connection

from gardien.core.keyring import HmacKey
from gardien.rights.models import BLOCKS, CODES, EXECUTIONS, HISTORY, PACKAGES, REQUESTS
from gardien.rights.personal import email_ref, subject_id_ref
from gardien.rights.schemas import Status

# Stands where a pseudonym was; an HMAC-SHA256 in hex is 64 characters, so none can be equal to it.
ANONYMISED = "anonymised"
CLOSED = (Status.COMPLETED.value, Status.REJECTED.value, Status.CANCELLED.value)


def held_refs(keys: Iterable[HmacKey], values: Iterable[str]) -> list[str]:
    """The pseudonyms, under every key, that requests of the people a legal hold keeps carry."""
    found: set[str] = set()
    for key in keys:
        for value in values:
            found.add(subject_id_ref(key, value))
            if "@" in value:
                found.add(email_ref(key, value))
    return sorted(found)


def due(org_id: str, cutoff: datetime) -> ColumnElement[bool]:
    """Requests of the organisation whose retention period after closing is over at `cutoff`."""
    in_force = exists().where(BLOCKS.c.request_id == REQUESTS.c.id, BLOCKS.c.active.is_(True))
    downloadable = exists().where(PACKAGES.c.request_id == REQUESTS.c.id, PACKAGES.c.deleted_at.is_(None))
    return and_(
        REQUESTS.c.org_id == org_id,
        REQUESTS.c.status.in_(CLOSED),
        REQUESTS.c.closed_at < cutoff,
        REQUESTS.c.subject_ref != ANONYMISED,
        ~in_force,
        ~downloadable,
    )


def not_held(refs: Sequence[str]) -> ColumnElement[bool] | None:
    if not refs:
        return None
    held = list(refs)
    host = or_(REQUESTS.c.host_ref.is_(None), REQUESTS.c.host_ref.not_in(held))
    return and_(REQUESTS.c.subject_ref.not_in(held), host)


def key_of(row: Any) -> tuple[Any, ...]:
    return (row.id,)


def select_keys(condition: ColumnElement[bool]) -> Any:
    return select(REQUESTS.c.id).where(condition).order_by(REQUESTS.c.id)


def is_anonymised(subject_ref: str) -> bool:
    return subject_ref == ANONYMISED


def scrub_outcome(raw: str | None) -> str | None:
    """The outcome without its free text: codes, counts, holds and recipients stay."""
    if raw is None:
        return None
    outcome: dict[str, Any] = orjson.loads(raw)
    if outcome.get("reason") is not None:
        outcome["reason"] = None
    if outcome.get("art12_4"):
        outcome["art12_4"]["reasons"] = ""
    return orjson.dumps(outcome).decode()


def anonymise(conn: Connection, org_id: str, request_ids: Sequence[str]) -> int:
    """Anonymise the requests (already chosen as due) in one transaction; how many were."""
    ids = list(request_ids)
    if not ids:
        return 0
    outcomes = conn.execute(select(REQUESTS.c.id, REQUESTS.c.outcome).where(REQUESTS.c.id.in_(ids))).all()
    changed = [{"rid": row.id, "scrubbed": scrub_outcome(row.outcome)} for row in outcomes if row.outcome]
    if changed:
        conn.execute(
            update(REQUESTS).where(REQUESTS.c.id == bindparam("rid")).values(outcome=bindparam("scrubbed")),
            changed,
        )
    done = conn.execute(
        update(REQUESTS)
        .where(REQUESTS.c.org_id == org_id, REQUESTS.c.id.in_(ids))
        .values(subject_ref=ANONYMISED, host_ref=None, sealed=b"", extension_reason=None)
    ).rowcount
    conn.execute(update(HISTORY).where(HISTORY.c.request_id.in_(ids)).values(reason=None))
    conn.execute(delete(CODES).where(CODES.c.request_id.in_(ids)))
    conn.execute(update(EXECUTIONS).where(EXECUTIONS.c.request_id.in_(ids)).values(error=None))
    conn.execute(update(BLOCKS).where(BLOCKS.c.request_id.in_(ids)).values(subject_ref=ANONYMISED, lift_reason=None))
    return int(done)
