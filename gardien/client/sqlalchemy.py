"""SQLAlchemy ORM hook that records creates, updates and deletes of the host's models in Gardien.

::

    hook = install_audit_hook(
        SessionLocal,                      # a sessionmaker, a Session subclass, or Session itself
        GardienClient(url, api_key),
        actor_getter=lambda: {"type": "user", "id": current_user_id.get()},
        secret_fields={Artist: {"iban"}},  # or Column(..., info={"gardien_secret": True})
    )

What is recorded
    One event per mapped object inserted, updated or deleted by a flush: ``action``
    ``<table>.create|update|delete``, the matching ``crud``, ``target`` ``{type: table name, id:
    primary key}`` (a composite key is joined with ``,``), ``changes``:

    - create: ``{"after": {column: value, …}}`` with every column value the session knows after
      the INSERT: what the application set, client-side defaults and generated primary keys.
      Columns left unset (NULL, or a server-side default not fetched back) are left out rather
      than loaded with an extra query;
    - update: ``{"before": {…}, "after": {…}}`` with **only the columns that changed**, from the
      attribute history; a column changed without having been loaded first (e.g. after
      ``expire_on_commit``) has its old value read from the database just before the flush;
    - delete: ``{"before": {…}}`` with every column value.

    Secret columns (listed in ``secret_fields`` by class and attribute key, or marked with
    ``info={"gardien_secret": True}`` on the column) appear as ``"***"`` in both ``before`` and
    ``after``: the ledger learns that they changed, never their values. Values are converted to
    JSON (datetimes and dates as ISO 8601, decimals and UUIDs as strings, bytes as base64, enums by
    value); strings longer than ``max_value_chars`` are cut and end with ``…``, so that one large
    column cannot push an event over the ledger's 64 KiB limit. ``actor_getter()`` is called at
    flush time (default ``{"type": "anonymous", "id": "-"}``); ``request_id_getter()`` defaults to
    the request id of :class:`gardien.client.asgi.GardienAuditMiddleware`, so ORM events and the
    HTTP event of one request share it.

When it is sent
    Events wait in the session until the outermost transaction **commits**, then go to Gardien in
    ``append_batch`` calls, synchronously, inside ``Session.commit()`` (after the database commit,
    so the host's data is already durable). A rollback discards them; rolling back a SAVEPOINT
    (``begin_nested``) discards only the events flushed inside it. If sending fails (after the
    client's retries), the commit cannot be undone: by default the error is logged and counted in
    :attr:`AuditHook.stats`; with ``raise_errors=True`` it propagates out of ``commit()``.

Not recorded
    Bulk statements that bypass the unit of work (``session.execute(update(Artist)…)``,
    ``Query.update()``/``delete()``, Core), database-side cascades and triggers, and changes to
    relationship collections that do not change a column of the object itself.
"""

from __future__ import annotations

import base64
import enum
import logging
import math
import re
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any, Literal

from sqlalchemy import event as sa_event
from sqlalchemy import inspect, select, tuple_
from sqlalchemy.orm import InstanceState, Mapper, Session, SessionTransaction, UOWTransaction

from gardien.client.asgi import current_request_id
from gardien.client.sdk import GardienClient

__all__ = ["MASK", "AuditHook", "HookStats", "install_audit_hook"]

log = logging.getLogger("gardien.client.sqlalchemy")

MASK = "***"
SECRET_INFO_KEY = "gardien_secret"
ANONYMOUS = {"type": "anonymous", "id": "-"}
Crud = Literal["create", "update", "delete"]
_NOT_ACTION = re.compile(r"[^a-z0-9_-]+")
_NOT_TYPE = re.compile(r"[^A-Za-z0-9_.:-]+")


@dataclass
class HookStats:
    sent: int = 0
    """events the ledger acknowledged"""
    failed: int = 0
    """events that could not be sent after a commit"""
    discarded: int = 0
    """events dropped because their transaction rolled back"""


@dataclass
class _Pending:
    event: dict[str, Any]
    # The SAVEPOINTs open when the event was flushed; rolling back any of them discards it.
    savepoints: tuple[SessionTransaction, ...]


def _jsonable(value: Any, limit: int) -> Any:
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, str):
        return value if len(value) <= limit else value[: max(limit - 1, 0)] + "…"
    if isinstance(value, enum.Enum):
        return _jsonable(value.value, limit)
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat() if value.tzinfo else value.isoformat()
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, Decimal | uuid.UUID):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return _jsonable(base64.b64encode(bytes(value)).decode("ascii"), limit)
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v, limit) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v, limit) for v in value]
    return _jsonable(str(value), limit)


class AuditHook:
    """Session event listeners recording ORM changes; :func:`install_audit_hook` builds one."""

    def __init__(
        self,
        target: Any,
        client: GardienClient,
        *,
        module: str = "orm",
        actor_getter: Callable[[], Mapping[str, Any] | None] | None = None,
        request_id_getter: Callable[[], str | None] | None = None,
        secret_fields: Mapping[type, Iterable[str]] | None = None,
        models: Iterable[type] | None = None,
        raise_errors: bool = False,
        batch_size: int = 500,
        max_value_chars: int = 2_000,
    ) -> None:
        self.target = target
        self.client = client
        self.module = module
        self.actor_getter = actor_getter
        self.request_id_getter = request_id_getter or current_request_id.get
        self.secret_fields = {cls: frozenset(keys) for cls, keys in (secret_fields or {}).items()}
        self.models = tuple(models) if models is not None else None
        self.raise_errors = raise_errors
        self.batch_size = max(1, min(batch_size, 1_000))
        self.max_value_chars = max_value_chars
        self.stats = HookStats()
        self._info_key = f"gardien.audit.{id(self)}"
        self._listeners: list[tuple[str, Callable[..., None]]] = [
            ("before_flush", self._before_flush),
            ("after_flush", self._after_flush),
            ("after_commit", self._after_commit),
            ("after_soft_rollback", self._after_soft_rollback),
            ("after_transaction_end", self._after_transaction_end),
        ]
        self._installed = False

    def install(self) -> AuditHook:
        if not self._installed:
            for name, listener in self._listeners:
                sa_event.listen(self.target, name, listener)
            self._installed = True
        return self

    def remove(self) -> None:
        """Stop recording (events already waiting in open sessions are dropped at their end)."""
        if self._installed:
            for name, listener in self._listeners:
                sa_event.remove(self.target, name, listener)
            self._installed = False

    # --- per-session state ----------------------------------------------------------------------

    def _state(self, session: Session) -> dict[str, Any]:
        state: dict[str, Any] = session.info.setdefault(self._info_key, {"pending": [], "before": {}})
        return state

    def _audited(self, obj: object) -> bool:
        return self.models is None or isinstance(obj, self.models)

    def _secrets(self, mapper: Mapper[Any]) -> frozenset[str]:
        keys: set[str] = set()
        for cls, fields in self.secret_fields.items():
            if issubclass(mapper.class_, cls):
                keys |= fields
        for attr in mapper.column_attrs:
            if any(column.info.get(SECRET_INFO_KEY) for column in attr.columns):
                keys.add(attr.key)
        return frozenset(keys)

    def _value(self, key: str, value: Any, secrets: frozenset[str]) -> Any:
        if key in secrets:
            return MASK
        return _jsonable(value, self.max_value_chars)

    # --- listeners ------------------------------------------------------------------------------

    def _before_flush(self, session: Session, flush_context: UOWTransaction, instances: object) -> None:
        """Read what after_flush can no longer: deleted rows, and old values never loaded."""
        before: dict[int, dict[str, Any]] = self._state(session)["before"]
        with session.no_autoflush:
            for obj in session.deleted:
                if self._audited(obj):
                    state = inspect(obj)
                    # Loads expired attributes now, while the row still exists.
                    before[id(obj)] = {a.key: getattr(obj, a.key) for a in state.mapper.column_attrs}
            for obj in session.dirty:
                if self._audited(obj) and id(obj) not in before:
                    unknown = self._unknown_old_values(inspect(obj))
                    if unknown:
                        before[id(obj)] = self._load_old_values(session, inspect(obj), unknown)

    @staticmethod
    def _unknown_old_values(state: InstanceState[Any]) -> list[str]:
        if state.key is None:
            return []
        keys = []
        for attr in state.mapper.column_attrs:
            history = state.attrs[attr.key].history
            if history.added and not history.deleted and not history.unchanged:
                keys.append(attr.key)
        return keys

    @staticmethod
    def _load_old_values(session: Session, state: InstanceState[Any], keys: list[str]) -> dict[str, Any]:
        mapper = state.mapper
        identity = state.identity
        if identity is None:
            return {}
        columns = [mapper.column_attrs[k].columns[0] for k in keys]
        pk = mapper.primary_key
        where = pk[0] == identity[0] if len(pk) == 1 else tuple_(*pk) == tuple_(*identity)
        row = session.connection().execute(select(*columns).where(where)).first()
        return dict(zip(keys, row, strict=True)) if row is not None else {}

    def _after_flush(self, session: Session, flush_context: UOWTransaction) -> None:
        state_of_session = self._state(session)
        prefetched: dict[int, dict[str, Any]] = state_of_session["before"]
        try:
            savepoints = self._savepoints(session)
            pending: list[_Pending] = state_of_session["pending"]
            changed: list[tuple[object, Crud]] = [
                *((obj, "create") for obj in session.new),
                *((obj, "update") for obj in session.dirty),
                *((obj, "delete") for obj in session.deleted),
            ]
            for obj, crud in changed:
                if self._audited(obj):
                    made = self._event(obj, crud, prefetched.get(id(obj)))
                    if made is not None:
                        pending.append(_Pending(made, savepoints))
        finally:
            prefetched.clear()

    @staticmethod
    def _savepoints(session: Session) -> tuple[SessionTransaction, ...]:
        chain: list[SessionTransaction] = []
        transaction = session.get_nested_transaction()
        while transaction is not None:
            if transaction.nested:
                chain.append(transaction)
            transaction = transaction.parent
        return tuple(chain)

    def _after_commit(self, session: Session) -> None:
        root = session.get_transaction()
        if root is not None and root.is_active:
            return  # a SAVEPOINT was released; the outer transaction may still roll back
        state = session.info.pop(self._info_key, None)
        if not state or not state["pending"]:
            return
        self._send([p.event for p in state["pending"]])

    def _after_soft_rollback(self, session: Session, previous_transaction: SessionTransaction) -> None:
        state = session.info.get(self._info_key)
        if not state:
            return
        pending: list[_Pending] = state["pending"]
        if previous_transaction.nested:
            kept = [p for p in pending if not any(sp is previous_transaction for sp in p.savepoints)]
        else:
            kept = []  # the outermost transaction (or a failed flush, which dooms it) rolled back
        self.stats.discarded += len(pending) - len(kept)
        state["pending"] = kept
        state["before"].clear()

    def _after_transaction_end(self, session: Session, transaction: SessionTransaction) -> None:
        if transaction.parent is None:
            # Whatever is left did not commit (close() without commit, for one).
            state = session.info.pop(self._info_key, None)
            if state:
                self.stats.discarded += len(state["pending"])

    # --- events ---------------------------------------------------------------------------------

    def _event(self, obj: object, crud: Crud, prefetched: dict[str, Any] | None) -> dict[str, Any] | None:
        state = inspect(obj)
        mapper = state.mapper
        secrets = self._secrets(mapper)
        changes: dict[str, Any]
        if crud == "create":
            changes = {
                "after": {
                    a.key: self._value(a.key, state.dict[a.key], secrets)
                    for a in mapper.column_attrs
                    if a.key in state.dict
                }
            }
        elif crud == "delete":
            values = prefetched if prefetched is not None else state.dict
            changes = {
                "before": {
                    a.key: self._value(a.key, values[a.key], secrets) for a in mapper.column_attrs if a.key in values
                }
            }
        else:
            old: dict[str, Any] = {}
            new: dict[str, Any] = {}
            for attr in mapper.column_attrs:
                history = state.attrs[attr.key].history
                if not history.added and not history.deleted:
                    continue
                after = history.added[0] if history.added else None
                if history.deleted:
                    previous = history.deleted[0]
                elif prefetched is not None and attr.key in prefetched:
                    previous = prefetched[attr.key]
                else:
                    previous = history.unchanged[0] if history.unchanged else None
                if previous == after and type(previous) is type(after):
                    continue  # set to the value it had
                old[attr.key] = self._value(attr.key, previous, secrets)
                new[attr.key] = self._value(attr.key, after, secrets)
            if not new:
                return None
            changes = {"before": old, "after": new}

        table = mapper.persist_selectable
        table_name = str(getattr(table, "name", None) or mapper.class_.__name__)
        identity = state.identity if crud == "delete" else mapper.primary_key_from_instance(obj)
        event: dict[str, Any] = {
            "occurred_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "module": self.module,
            "action": f"{_NOT_ACTION.sub('_', table_name.lower()).strip('_') or 'row'}.{crud}",
            "crud": crud,
            "actor": self._actor(),
            "target": {
                "type": _NOT_TYPE.sub("_", table_name)[:64] or "row",
                "id": ",".join("" if v is None else str(v) for v in identity or ())[:256] or "-",
            },
            "changes": changes,
        }
        request_id = self._request_id()
        if request_id:
            event["request_id"] = request_id[:128]
        return event

    def _actor(self) -> dict[str, Any]:
        if self.actor_getter is None:
            return dict(ANONYMOUS)
        try:
            actor = self.actor_getter()
        except Exception:
            log.exception("gardien: actor_getter failed; recording the change as anonymous")
            return dict(ANONYMOUS)
        return dict(actor) if actor else dict(ANONYMOUS)

    def _request_id(self) -> str | None:
        try:
            return self.request_id_getter()
        except Exception:
            log.exception("gardien: request_id_getter failed")
            return None

    # --- sending --------------------------------------------------------------------------------

    def _send(self, events: list[dict[str, Any]]) -> None:
        for start in range(0, len(events), self.batch_size):
            batch = events[start : start + self.batch_size]
            try:
                receipts = self.client.append_batch(batch)
            except Exception:
                unsent = len(events) - start
                self.stats.failed += unsent
                if self.raise_errors:
                    raise
                log.exception("gardien: %d audit events of a committed transaction could not be sent", unsent)
                return
            self.stats.sent += len(receipts)


def install_audit_hook(
    session_factory_or_session_class: Any,
    client: GardienClient,
    *,
    module: str = "orm",
    actor_getter: Callable[[], Mapping[str, Any] | None] | None = None,
    secret_fields: Mapping[type, Iterable[str]] | None = None,
    request_id_getter: Callable[[], str | None] | None = None,
    models: Iterable[type] | None = None,
    raise_errors: bool = False,
    batch_size: int = 500,
    max_value_chars: int = 2_000,
) -> AuditHook:
    """Record ORM creates, updates and deletes made through sessions of this factory or class.

    ``session_factory_or_session_class`` is anything SQLAlchemy session events accept: a
    ``sessionmaker``, a ``scoped_session``, a ``Session`` subclass, or ``Session`` for every
    session of the process. ``models`` restricts recording to these classes (and subclasses).
    Returns the installed :class:`AuditHook`; call :meth:`AuditHook.remove` to uninstall.
    See the module documentation for what is recorded and when it is sent."""
    return AuditHook(
        session_factory_or_session_class,
        client,
        module=module,
        actor_getter=actor_getter,
        request_id_getter=request_id_getter,
        secret_fields=secret_fields,
        models=models,
        raise_errors=raise_errors,
        batch_size=batch_size,
        max_value_chars=max_value_chars,
    ).install()
