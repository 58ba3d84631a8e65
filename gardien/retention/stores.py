"""Policies over Gardien's own `consents` and `requests` stores: count, then act in keyset batches.

The rows live in Gardien's own database, so each batch, the run's checkpoint (last key done, counts)
and the batch's audit event commit in one transaction: a run killed at any point resumes after the
last batch that committed, and no row is counted or changed twice. Which rows are due, and what is
done to them, belongs to the store's capability (`gardien.consent.purge`, `gardien.rights.anonymise`);
this module chooses, batches, records and respects the holds.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import ColumnElement, and_, func, or_, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from gardien.audit.service import capability_event
from gardien.consent import purge
from gardien.consent.models import EVENTS
from gardien.core.keyring import HmacKey
from gardien.retention import hostsql
from gardien.retention.models import RUNS
from gardien.retention.schemas import PolicyIn
from gardien.rights import anonymise
from gardien.rights.models import REQUESTS

if TYPE_CHECKING:
    from gardien.retention.jobs import Progress, RunContext, Runner

MODULE = "retention"


@dataclass(frozen=True)
class OwnStore:
    """One of Gardien's stores as retention sees it."""

    name: str
    verb: str  # the count a real run reports: deleted, anonymised
    action: str  # the audit event of each batch
    crud: str
    order: tuple[Any, ...]  # the keyset order; the last column is the row's id
    dated: tuple[bool, ...]  # which of them hold times (ISO 8601 in a checkpoint)
    due: Callable[[str, datetime], ColumnElement[bool]]
    not_held: Callable[[Sequence[str]], ColumnElement[bool] | None]
    held_refs: Callable[[Iterable[HmacKey], Iterable[str]], list[str]]
    apply: Callable[[Connection, str, Sequence[str]], int]

    def after(self, key: Sequence[Any] | None) -> ColumnElement[bool] | None:
        """Rows strictly after `key` in the keyset order."""
        if key is None:
            return None
        *first, last = self.order
        later: ColumnElement[bool] = last > key[-1]
        for column, value in zip(reversed(first), reversed(key[:-1]), strict=True):
            later = or_(column > value, and_(column == value, later))
        return later

    def decode(self, key: Sequence[Any] | None) -> list[Any] | None:
        """A checkpoint's key (JSON) back into column values."""
        if key is None:
            return None
        return [datetime.fromisoformat(v) if dated else v for dated, v in zip(self.dated, key, strict=True)]


STORES = {
    "consents": OwnStore(
        name="consents",
        verb="deleted",
        action="retention.consents.deleted",
        crud="delete",
        order=(EVENTS.c.occurred_at, EVENTS.c.id),
        dated=(True, False),
        due=purge.ended_before,
        not_held=purge.not_held,
        held_refs=purge.held_refs,
        apply=purge.remove,
    ),
    "requests": OwnStore(
        name="requests",
        verb="anonymised",
        action="retention.requests.anonymised",
        crud="update",
        order=(REQUESTS.c.id,),
        dated=(False,),
        due=anonymise.due,
        not_held=anonymise.not_held,
        held_refs=anonymise.held_refs,
        apply=anonymise.anonymise,
    ),
}


def _json_key(row: Sequence[Any]) -> list[Any]:
    return [v.isoformat() if isinstance(v, datetime) else v for v in row]


def run_own_store(
    runner: Runner,
    ctx: RunContext,
    policy_row: Mapping[str, Any],
    policy: PolicyIn,
    actor: Mapping[str, Any],
    store: OwnStore,
    progress: Progress | None = None,
) -> str:
    """Count (dry run) or act on the store's due rows, from the run's checkpoint on."""
    org_id = ctx.org_id
    identities = [h["identity_value"] for h in runner.active_holds(org_id) if h["scope"] == "subject"]
    refs = store.held_refs(runner.runtime.keyring.hmac_keys().values(), identities)
    due = store.due(org_id, ctx.cutoff)
    chosen = hostsql.all_of(due, store.not_held(refs))
    counts = ctx.counts.setdefault(store.name, {})
    engine = runner.runtime.engine
    try:
        if "matched" not in counts:
            with engine.connect() as conn:
                matched = conn.execute(select(func.count()).select_from(store.order[0].table).where(chosen))
                counts["matched"] = int(matched.scalar_one())
                if refs:
                    every = conn.execute(select(func.count()).select_from(store.order[0].table).where(due))
                    counts["held"] = int(every.scalar_one()) - counts["matched"]
                first = conn.execute(select(*store.order).where(chosen).order_by(*store.order).limit(5))
                ctx.samples[store.name] = [_json_key(row) for row in first]
        if ctx.dry_run:
            return runner.finish(ctx, policy_row, policy, [], actor, "completed")
        counts.setdefault(store.verb, 0)
        point = ctx.checkpoint.setdefault(store.name, {"after": None, "done": False})
        while not point["done"]:
            _batch(runner, ctx, store, chosen, point, policy.batch_size, actor)
            if progress is not None:
                progress(ctx.name, store.name, counts[store.verb], counts["matched"])
            if runner.throttle and not point["done"]:
                time.sleep(runner.throttle)
    except SQLAlchemyError as exc:  # the run stays resumable from its last committed batch
        ctx.errors.append(f"{store.name}: {str(exc).splitlines()[0][:300]}")
        return runner.finish(ctx, policy_row, policy, [], actor, "failed")
    return runner.finish(ctx, policy_row, policy, [], actor, "completed")


def _batch(
    runner: Runner,
    ctx: RunContext,
    store: OwnStore,
    chosen: ColumnElement[bool],
    point: dict[str, Any],
    size: int,
    actor: Mapping[str, Any],
) -> None:
    """One batch, its checkpoint and its audit event, in one transaction of Gardien's database."""
    after = store.decode(point["after"])
    counts = {k: dict(v) for k, v in ctx.counts.items()}
    checkpoint = {k: dict(v) for k, v in ctx.checkpoint.items()}

    def work(conn: Connection) -> tuple[int, list[Any]]:
        condition = hostsql.all_of(chosen, store.after(after))
        rows = conn.execute(select(*store.order).where(condition).order_by(*store.order).limit(size)).all()
        mine = checkpoint[store.name]
        if not rows:
            mine["done"] = True
            _save(conn, ctx.run_id, checkpoint, counts, ctx.batches)
            return 0, []
        ids = [row[-1] for row in rows]
        done = store.apply(conn, ctx.org_id, ids)
        mine["after"] = _json_key(rows[-1])
        counts[store.name][store.verb] += done
        _save(conn, ctx.run_id, checkpoint, counts, ctx.batches + 1)
        event = capability_event(
            MODULE,
            store.action,
            store.crud,
            actor,
            ("retention_run", ctx.run_id),
            fields={"policy_id": ctx.policy_id, "count": done, "first": ids[0], "last": ids[-1]},
        )
        return 1, [runner.ledger.prepare(event)]

    batches, _ = runner.ledger.transact(ctx.org_id, work)
    # Only what committed is taken into the run's memory.
    ctx.counts.update(counts)
    ctx.checkpoint.update(checkpoint)
    point.update(checkpoint[store.name])
    ctx.batches += batches


def _save(conn: Connection, run_id: str, checkpoint: Any, counts: Any, batches: int) -> None:
    conn.execute(
        update(RUNS)
        .where(RUNS.c.id == run_id)
        .values(checkpoint=orjson.dumps(checkpoint).decode(), counts=orjson.dumps(counts).decode(), batches=batches)
    )
