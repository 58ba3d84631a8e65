"""The ledger: the one entry point other capabilities, the API and the CLI use."""

from __future__ import annotations

import base64
import binascii
import contextlib
import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from pydantic import ValidationError
from sqlalchemy import Text, bindparam, cast, delete, func, insert, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from gardien.audit import proofs
from gardien.audit.export import ExportResult, filtered, write_export
from gardien.audit.models import CHECKPOINTS, EVENTS, EXPORTS, HEADS
from gardien.audit.schemas import (
    CheckpointOut,
    ConsistencyProofOut,
    EventFilter,
    EventIn,
    EventPage,
    ExportFormat,
    InclusionProofOut,
    PublicKeyOut,
    VerifyReport,
    event_doc,
)
from gardien.audit.sealing import PreparedEvent, Sealed, Sealer, prepare, prepare_doc
from gardien.audit.signing import checkpoint_signer, trusted_verifiers
from gardien.audit.verify import verify_org
from gardien.audit.writer import LedgerWriter, Work
from gardien.core.clock import utcnow
from gardien.core.db import is_sqlite, write_transaction
from gardien.core.errors import InvalidInput, NotFound, TooLarge
from gardien.core.ids import new_id
from gardien.core.keyring import KeyringError
from gardien.core.process import COLLECTOR_PAUSED
from gardien.core.runtime import Runtime

log = logging.getLogger(__name__)

MAX_PAGE = 1_000
# Sequence numbers stay far below this; larger cursor values would overflow a 64-bit column.
MAX_SEQ = 2**62
SYSTEM_ACTOR = {"type": "system", "id": "gardien", "display": "Gardien"}
# How long a proof may use the latest checkpoint it read instead of reading it again (one round
# trip less): no longer than the sealer's default checkpoint interval.
LATEST_CHECKPOINT_SECONDS = 1.0


def capability_event(
    module: str, action: str, crud: str, actor: Mapping[str, Any], target: tuple[str, str], **extra: Any
) -> dict[str, Any]:
    """The audit event of a change a capability makes to one of its records, `target` = (type, id)."""
    return {
        "module": module,
        "action": action,
        "crud": crud,
        "actor": dict(actor),
        "target": {"type": target[0], "id": target[1]},
        **extra,
    }


def prepare_event(event: EventIn | Mapping[str, Any], max_bytes: int, *, field: str = "") -> PreparedEvent:
    """Validate an event given as a model or as a mapping and prepare it for sealing; 422 or 413
    with the member's path under `field` when it cannot be."""
    if isinstance(event, EventIn):
        return prepare(event, max_bytes, field=field)
    if type(event) is dict:
        # Validated into dicts: no model to build and dump again. What that refuses goes
        # through the model, for its error messages and for members that are models already.
        try:
            doc, occurred_at = event_doc(event)
        except ValidationError:
            pass
        else:
            return prepare_doc(doc, occurred_at, max_bytes, field=field)
    try:
        model = EventIn.model_validate(event)
    except ValidationError as exc:
        raise invalid_event(exc, field) from exc
    return prepare(model, max_bytes, field=field)


def invalid_event(exc: ValidationError, field: str = "") -> InvalidInput:
    """The 422 of an event that does not validate, each error named by its path under `field`."""
    errors = [
        {
            "field": ".".join(str(p) for p in (field, *e["loc"]) if p != ""),
            "message": e["msg"],
            "type": e["type"],
        }
        for e in exc.errors()
    ]
    return InvalidInput("; ".join(f"{e['field']}: {e['message']}" for e in errors[:5]), errors)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def encode_cursor(after: int, upto: int) -> str:
    return base64.urlsafe_b64encode(orjson.dumps({"after": after, "upto": upto})).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, int]:
    """(last sequence number returned, end of the listing fixed when its first page was read)."""
    try:
        raw = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        after, upto = raw["after"], raw["upto"]
        if type(after) is not int or type(upto) is not int or not -1 <= after < upto <= MAX_SEQ:
            raise ValueError
        return after, upto
    except (ValueError, KeyError, TypeError, binascii.Error, orjson.JSONDecodeError) as exc:
        raise InvalidInput(
            "cursor: not a cursor this API returned",
            [{"field": "cursor", "message": "invalid cursor", "type": "cursor"}],
        ) from exc


# Events validated and sealed between two writes of a streamed batch (see Ledger.append_batch).
STREAM_CHUNK = 200


class Ledger:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        settings = runtime.settings
        self.sealer = Sealer(
            runtime.keyring,
            checkpoint_every_events=settings.checkpoint_every_events,
            checkpoint_every_seconds=settings.checkpoint_every_seconds,
        )
        self.check_keyring()
        self.writer = LedgerWriter(
            runtime.engine,
            self.sealer,
            max_group=settings.group_commit_max,
            checkpoint_interval=settings.checkpoint_every_seconds,
        )
        self._latest_checkpoints: dict[str, tuple[float, proofs.Checkpoint]] = {}
        self._nodes = proofs.NodeCache()

    # --- writing -----------------------------------------------------------------------------

    def check_keyring(self) -> None:
        """Refuse a keyring generated just now beside a ledger that was sealed with another one.

        That happens when the keys directory was lost or not mounted: going on would sign new
        checkpoints with new keys and make every earlier one look forged.
        """
        keyring = self.runtime.keyring
        if not keyring.created:
            return
        try:
            with self.runtime.engine.connect() as conn:
                sealed = conn.execute(select(func.count()).select_from(CHECKPOINTS)).scalar_one()
        except DBAPIError:
            return  # not migrated yet: there is no ledger to contradict
        if not sealed:
            keyring.created = False  # adopted: the ledger will be sealed with this keyring from now on
            return
        raise KeyringError(
            f"a new keyring was just created in {keyring.directory}, but the ledger already holds {sealed} "
            "checkpoints signed with other keys: restore the keys directory from its backup "
            "(then delete the new keyring.json); see docs/operator.md"
        )

    def start(self) -> None:
        """Start group commit and the checkpoint timer (the server and the worker do)."""
        self.writer.start()
        self.runtime.audit_sink = self._sink

    def stop(self) -> None:
        self.writer.stop()

    def prepare(self, event: EventIn | Mapping[str, Any], *, field: str = "") -> PreparedEvent:
        return prepare_event(event, self.runtime.settings.audit_max_event_bytes, field=field)

    def _check_batch_size(self, events: Sequence[object]) -> None:
        limit = self.runtime.settings.audit_max_batch
        if len(events) > limit:
            raise TooLarge(f"a batch holds at most {limit} events; this one has {len(events)}")

    def prepare_batch(self, events: Sequence[EventIn | Mapping[str, Any]]) -> list[PreparedEvent]:
        self._check_batch_size(events)
        return [self.prepare(e, field=f"events.{i}") for i, e in enumerate(events)]

    def append(self, org_id: str, event: EventIn | Mapping[str, Any]) -> Sealed:
        return self.append_prepared(org_id, [self.prepare(event)])[0]

    def append_batch(self, org_id: str, events: Sequence[EventIn | Mapping[str, Any]]) -> list[Sealed]:
        """Validate and seal all events in one transaction: all are recorded, or none.

        Events are validated a chunk at a time inside the transaction, and each chunk's rows are
        written while the next is validated and sealed: the database works on one core while
        this process works on the other. The first invalid event rolls the whole batch back.
        """
        self._check_batch_size(events)
        if len(events) <= STREAM_CHUNK:
            return self.append_prepared(org_id, self.prepare_batch(events))
        chunks = (
            [self.prepare(events[i], field=f"events.{i}") for i in range(start, min(start + STREAM_CHUNK, len(events)))]
            for start in range(0, len(events), STREAM_CHUNK)
        )
        self.runtime.keyring.reload_if_changed()
        # Without the cyclic collector's passes over every live object, set off by the batch's
        # own dicts and tuples: about 5 % of a batch's time on SQLite, 6 % of its CPU on PostgreSQL.
        with COLLECTOR_PAUSED, write_transaction(self.runtime.engine) as conn:
            return self.sealer.seal_stream(conn, org_id, chunks, utcnow())

    def append_prepared(self, org_id: str, prepared: list[PreparedEvent]) -> list[Sealed]:
        self.runtime.keyring.reload_if_changed()
        with write_transaction(self.runtime.engine) as conn:
            return self.sealer.seal(conn, org_id, prepared, utcnow())

    async def append_async(self, org_id: str, prepared: list[PreparedEvent]) -> list[Sealed]:
        """Group-committed append; returns once the events are durable."""
        return await self.writer.submit_async(org_id, prepared)

    def transact(self, org_id: str, work: Work) -> tuple[Any, list[Sealed]]:
        """Run `work(connection)` and seal the events it returns in the same transaction.

        For capabilities whose state changes must be durable together with their audit events:
        `work` writes its own tables through the connection and returns (result, prepared events).
        Group-committed with the ledger's other writes when the writer runs.
        """
        if self.writer.running:
            outcome: tuple[Any, list[Sealed]] = self.writer.submit_work(org_id, work).result(timeout=60)
            return outcome
        self.runtime.keyring.reload_if_changed()
        with write_transaction(self.runtime.engine) as conn:
            result, events = work(conn)
            return result, self.sealer.seal(conn, org_id, events, utcnow()) if events else []

    async def transact_async(self, org_id: str, work: Work) -> tuple[Any, list[Sealed]]:
        """transact() for the event loop; needs the writer running (the server starts it)."""
        return await self.writer.submit_work_async(org_id, work)

    def changes_since(self, org_id: str, after: int | None, module: str) -> tuple[int, list[tuple[str, str]]]:
        """The ledger's size now, and the (type, id) targets of `module`'s writes sealed from `after` on.

        A change feed for caches in other replicas: sequence numbers follow commit order, so
        nothing sealed before the size returned is missed by the next call from it. With `after`
        None, only the size. Reads (crud ``read``) and events without a target are left out.
        """
        with self.runtime.engine.connect() as conn:
            size = conn.execute(SELECT_SIZE, {"org": org_id}).scalar() or 0
            if after is None or after >= size:
                return size, []
            rows = conn.execute(SELECT_TARGETS, {"org": org_id, "after": after, "size": size, "module": module})
            return size, [(row.target_type, row.target_id) for row in rows]

    def record(self, org_id: str, event: Mapping[str, Any]) -> Sealed:
        """Record something Gardien itself did; used by every capability."""
        fields = dict(event)
        fields.setdefault("actor", SYSTEM_ACTOR)
        prepared = [self.prepare(fields)]
        if self.writer.running:
            return self.writer.submit(org_id, prepared).result(timeout=60)[0]
        return self.append_prepared(org_id, prepared)[0]

    def _sink(self, org_id: str, event: dict[str, Any]) -> None:
        self.record(org_id, event)

    def checkpoint_now(self, org_id: str) -> int | None:
        self.runtime.keyring.reload_if_changed()
        with write_transaction(self.runtime.engine) as conn:
            return self.sealer.checkpoint(conn, org_id, utcnow())

    # --- reading -----------------------------------------------------------------------------

    def list_events(
        self,
        org_id: str,
        flt: EventFilter,
        *,
        cursor: str | None,
        limit: int,
        actor: Mapping[str, Any],
    ) -> EventPage:
        # A listing ends where the ledger stood at its first page: reading records events, and a
        # listing that chased its own reads would never end.
        after, upto = decode_cursor(cursor) if cursor else (-1, self.head_size(org_id))
        limit = max(1, min(limit, MAX_PAGE))
        stmt = (
            filtered(select(EVENTS.c.seq, EVENTS.c.canonical), org_id, flt)
            .where(EVENTS.c.seq > after, EVENTS.c.seq < upto)
            .order_by(EVENTS.c.seq)
            .limit(limit + 1)
        )
        with self.runtime.engine.connect() as conn:
            rows = conn.execute(stmt).all()
        more = len(rows) > limit
        rows = rows[:limit]
        self.record(
            org_id,
            {
                "module": "audit",
                "action": "audit.events.read",
                "crud": "read",
                "actor": dict(actor),
                "fields": {"filter": flt.as_manifest(), "after": after, "returned": len(rows)},
            },
        )
        return EventPage(
            events=[orjson.loads(r.canonical) for r in rows],
            next_cursor=encode_cursor(rows[-1].seq, upto) if more else None,
        )

    def get_event(self, org_id: str, event_id: str, *, actor: Mapping[str, Any]) -> dict[str, Any]:
        with self.runtime.engine.connect() as conn:
            data = conn.execute(
                select(EVENTS.c.canonical).where(EVENTS.c.org_id == org_id, EVENTS.c.id == event_id)
            ).scalar_one_or_none()
        if data is None:
            raise NotFound(f"event {event_id!r}")
        self.record(
            org_id,
            {
                "module": "audit",
                "action": "audit.event.read",
                "crud": "read",
                "actor": dict(actor),
                "target": {"type": "audit_event", "id": event_id},
            },
        )
        doc: dict[str, Any] = orjson.loads(data)
        return doc

    def tagged(self, org_id: str, member: str, since: datetime, until: datetime) -> Iterator[tuple[str, datetime]]:
        """(value of `fields.<member>`, occurred_at) of each event in [since, until) that carries that tag.

        Capabilities tag events for other readers (the DPIA log counts `fields.dpia_event`); this
        reads the tags without handing out the events, so it is not itself recorded as a read.
        """
        if not member.isidentifier():
            raise ValueError(f"not a field name: {member!r}")
        # A cheap prefilter in the database on the canonical bytes as text; the parsed event decides.
        with self.runtime.engine.connect() as conn:
            text = cast(EVENTS.c.canonical, Text) if is_sqlite(conn) else func.convert_from(EVENTS.c.canonical, "UTF8")
            stmt = select(EVENTS.c.occurred_at, EVENTS.c.canonical).where(
                EVENTS.c.org_id == org_id,
                EVENTS.c.occurred_at >= since,
                EVENTS.c.occurred_at < until,
                text.like(f'%"{member}":%'),
            )
            for row in conn.execution_options(yield_per=2_000).execute(stmt):
                fields = orjson.loads(row.canonical).get("fields")
                value = fields.get(member) if isinstance(fields, dict) else None
                if isinstance(value, str):
                    yield value, row.occurred_at

    def seq_of(self, org_id: str, event_id: str) -> int:
        with self.runtime.engine.connect() as conn:
            seq = conn.execute(
                select(EVENTS.c.seq).where(EVENTS.c.org_id == org_id, EVENTS.c.id == event_id)
            ).scalar_one_or_none()
        if seq is None:
            raise NotFound(f"event {event_id!r}")
        return int(seq)

    def checkpoint(self, org_id: str, size: int | None = None) -> CheckpointOut:
        with self.runtime.engine.connect() as conn:
            found, root, note, created = proofs.checkpoint_row(conn, org_id, size)
        return CheckpointOut(size=found, root=_b64(root), note=note, created_at=created)

    def inclusion_proof(self, org_id: str, seq: int, size: int | None = None) -> InclusionProofOut:
        known = None
        if size is None:
            cached = self._latest_checkpoints.get(org_id)
            if cached is not None and time.monotonic() - cached[0] < LATEST_CHECKPOINT_SECONDS:
                known = cached[1]
        with self._proof_connection() as conn:
            leaf, path, checkpoint = proofs.inclusion(conn, org_id, seq, size, known=known, cache=self._nodes)
        if size is None and checkpoint is not known:
            self._latest_checkpoints[org_id] = (time.monotonic(), checkpoint)
        tree_size, root, note, created = checkpoint
        return InclusionProofOut(
            seq=seq,
            leaf_hash=_b64(leaf),
            tree_size=tree_size,
            hashes=[_b64(h) for h in path],
            checkpoint=CheckpointOut(size=tree_size, root=_b64(root), note=note, created_at=created),
        )

    def _proof_connection(self) -> Connection:
        """On PostgreSQL, autocommit saves the BEGIN round trip: stored nodes never change and the
        checkpoint fixes the tree size, so a proof's reads need no common snapshot. From a pool
        kept in autocommit, so that no checkout or return switches it. Not on SQLite, where the
        pool's isolation reset would hand transactions back to the sqlite3 module."""
        return self.runtime.autocommit_engine.connect()

    def consistency_proof(self, org_id: str, old_size: int, new_size: int) -> ConsistencyProofOut:
        with self.runtime.engine.connect() as conn:
            path = proofs.consistency(conn, org_id, old_size, new_size, cache=self._nodes)
        return ConsistencyProofOut(
            old_size=old_size,
            new_size=new_size,
            hashes=[_b64(h) for h in path],
            old_checkpoint=self.checkpoint(org_id, old_size),
            new_checkpoint=self.checkpoint(org_id, new_size),
        )

    def public_keys(self) -> list[PublicKeyOut]:
        keyring = self.runtime.keyring
        keyring.reload_if_changed()
        verifiers = trusted_verifiers(keyring)
        return [
            PublicKeyOut(kid=k.kid, vkey=v.vkey(), created_at=k.created_at, retired_at=k.retired_at)
            for k, v in zip(keyring.signing_public_keys(), verifiers, strict=True)
        ]

    # --- integrity ---------------------------------------------------------------------------

    def verify(
        self,
        org_id: str,
        *,
        trusted_checkpoint: str | None = None,
        actor: Mapping[str, Any] | None = None,
    ) -> VerifyReport:
        keyring = self.runtime.keyring
        keyring.reload_if_changed()
        with self.runtime.engine.connect() as conn:
            report = verify_org(
                conn,
                org_id,
                instance_name=keyring.instance_name,
                hmac_keys=keyring.hmac_keys(),
                verifiers=trusted_verifiers(keyring),
                trusted_checkpoint=trusted_checkpoint,
                keyring_complete=True,
            )
        event = {
            "module": "audit",
            "action": "audit.verified",
            "crud": "execute",
            "outcome": "success" if report.status == "ok" else "failure",
            "reason": None if report.status == "ok" else f"{report.status}; first broken seq {report.first_broken_seq}",
            "actor": dict(actor or SYSTEM_ACTOR),
            "fields": {
                "status": report.status,
                "size": report.size,
                "events_checked": report.events_checked,
            },
        }
        try:
            self.record(org_id, event)
        except Exception:
            # A ledger that fails verification may also refuse appends (a row forged past the
            # head collides with the next sequence number); the verdict must still be returned.
            if report.status == "ok":
                raise
            log.exception("could not record the verification of a %s ledger", report.status)
        return report

    def last_verification(self, org_id: str) -> dict[str, Any] | None:
        """The verdict of the newest recorded verification: status, size, events checked, when.

        Only the verdict is handed out (no personal data), so this read is not itself recorded.
        """
        with self.runtime.engine.connect() as conn:
            row = conn.execute(
                select(EVENTS.c.occurred_at, EVENTS.c.canonical)
                .where(EVENTS.c.org_id == org_id, EVENTS.c.module == "audit", EVENTS.c.action == "audit.verified")
                .order_by(EVENTS.c.seq.desc())
                .limit(1)
            ).first()
        if row is None:
            return None
        fields = orjson.loads(row.canonical).get("fields") or {}
        return {
            "status": fields.get("status"),
            "size": fields.get("size"),
            "events_checked": fields.get("events_checked"),
            "at": row.occurred_at,
        }

    def export(self, org_id: str, fmt: ExportFormat, flt: EventFilter, *, actor: Mapping[str, Any]) -> ExportResult:
        self.checkpoint_now(org_id)
        export_id = new_id()
        keyring = self.runtime.keyring
        keyring.reload_if_changed()
        # Absolute, so that a server started from another directory still finds the file.
        directory = Path(self.runtime.settings.exports_dir).resolve() / org_id
        with self.runtime.engine.connect() as conn:
            upto, _root, note, _created = proofs.checkpoint_row(conn, org_id)
            result = write_export(
                conn,
                org_id=org_id,
                export_id=export_id,
                fmt=fmt,
                flt=flt,
                upto=upto,
                checkpoint_note=note,
                directory=directory,
                hmac_key=keyring.hmac_key(),
                signer=checkpoint_signer(keyring),
            )
        with write_transaction(self.runtime.engine) as conn:
            conn.execute(
                insert(EXPORTS).values(
                    id=export_id,
                    org_id=org_id,
                    format=fmt,
                    count=result.manifest["count"],
                    manifest=orjson.dumps(result.manifest).decode(),
                    payload_path=str(result.payload_path),
                    created_at=utcnow(),
                    created_by=str(actor.get("id", "")),
                )
            )
        self.record(
            org_id,
            {
                "module": "audit",
                "action": "audit.export.created",
                "crud": "read",
                "actor": dict(actor),
                "target": {"type": "audit_export", "id": export_id},
                "fields": {
                    "format": fmt,
                    "filter": flt.as_manifest(),
                    "count": result.manifest["count"],
                    "payload_sha256": result.manifest["payload_sha256"],
                },
            },
        )
        return result

    def exports_before(self, org_id: str, cutoff: datetime) -> list[str]:
        """Ids of the organisation's exports made before `cutoff`, oldest first."""
        with self.runtime.engine.connect() as conn:
            rows = conn.execute(
                select(EXPORTS.c.id)
                .where(EXPORTS.c.org_id == org_id, EXPORTS.c.created_at < cutoff)
                .order_by(EXPORTS.c.created_at, EXPORTS.c.id)
            )
            return list(rows.scalars())

    def remove_exports(self, org_id: str, export_ids: Sequence[str], events: list[PreparedEvent]) -> int:
        """Delete exports' files, then their rows with `events` sealed in the same transaction.

        Files first: a crash in between leaves rows whose files are gone, which the next call
        deletes; never a file that no row names any more.
        """
        with self.runtime.engine.connect() as conn:
            paths = (
                conn.execute(
                    select(EXPORTS.c.payload_path).where(EXPORTS.c.org_id == org_id, EXPORTS.c.id.in_(export_ids))
                )
                .scalars()
                .all()
            )
        for path in paths:
            for file in (Path(path), Path(path + ".manifest.json")):
                file.unlink(missing_ok=True)

        def work(conn: Connection) -> tuple[int, list[PreparedEvent]]:
            deleted = conn.execute(
                delete(EXPORTS).where(EXPORTS.c.org_id == org_id, EXPORTS.c.id.in_(export_ids))
            ).rowcount
            return int(deleted), events

        deleted, _ = self.transact(org_id, work)
        return int(deleted)

    def get_export(self, org_id: str, export_id: str) -> tuple[dict[str, Any], Path]:
        with self.runtime.engine.connect() as conn:
            row = conn.execute(
                select(EXPORTS.c.manifest, EXPORTS.c.payload_path).where(
                    EXPORTS.c.org_id == org_id, EXPORTS.c.id == export_id
                )
            ).one_or_none()
        if row is None:
            raise NotFound(f"export {export_id!r}")
        return orjson.loads(row.manifest), Path(row.payload_path)

    def record_download(self, org_id: str, export_id: str, actor: Mapping[str, Any]) -> None:
        self.record(
            org_id,
            {
                "module": "audit",
                "action": "audit.export.downloaded",
                "crud": "read",
                "actor": dict(actor),
                "target": {"type": "audit_export", "id": export_id},
            },
        )

    def storage(self, org_id: str) -> dict[str, int]:
        """What the organisation's ledger keeps: events and their canonical bytes, export files' bytes."""
        with self.runtime.engine.connect() as conn:
            events, size = conn.execute(
                select(func.count(), func.coalesce(func.sum(func.length(EVENTS.c.canonical)), 0)).where(
                    EVENTS.c.org_id == org_id
                )
            ).one()
            paths = conn.execute(select(EXPORTS.c.payload_path).where(EXPORTS.c.org_id == org_id)).scalars().all()
        exports = 0
        for path in paths:
            for file in (Path(path), Path(path + ".manifest.json")):
                with contextlib.suppress(OSError):
                    exports += file.stat().st_size
        return {"ledger_events": int(events), "ledger_bytes": int(size), "export_bytes": exports}

    def head_size(self, org_id: str) -> int:
        with self.runtime.engine.connect() as conn:
            size = conn.execute(select(HEADS.c.size).where(HEADS.c.org_id == org_id)).scalar_one_or_none()
        return int(size or 0)


SELECT_SIZE = select(HEADS.c.size).where(HEADS.c.org_id == bindparam("org"))
SELECT_TARGETS = select(EVENTS.c.target_type, EVENTS.c.target_id).where(
    EVENTS.c.org_id == bindparam("org"),
    EVENTS.c.seq >= bindparam("after"),
    EVENTS.c.seq < bindparam("size"),
    EVENTS.c.module == bindparam("module"),
    EVENTS.c.crud != "read",
    EVENTS.c.target_id.is_not(None),
)
