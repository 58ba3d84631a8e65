"""The seam between the request workflow and the engine that acts on the host application's data.

The workflow decides *when* (identity verified, deadline kept, every step audited); an executor
decides *how* (find, export, correct, erase across the data map). `RightsService` calls
`Executor.started` after the commit that moves a request to `in_progress`, with the identities in
clear; the executor reports back with `RightsService.complete(org_id, request_id, summary, actor)`
— per-table counts, never values — which closes the request and records the counts in the ledger.

`DatamapExecutor` is the executor Gardien runs: it takes the organisation's data map and, by type
of request, builds the access or portability package (encrypted, see `packages`), erases after
listing the legal holds, rectifies, or closes a restriction already recorded as a block. An attempt
that fails leaves the request in progress with the error on it (`RightsService.execution_failed`);
`RightsService.execute` retries it, resuming a partial erasure where it stopped.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Protocol

from gardien.core.errors import InvalidInput, NotFound, Problem
from gardien.datamap.mapfile import DataMap
from gardien.datamap.schemas import HoldOut
from gardien.datamap.service import DatamapService
from gardien.rights.packages import PackageStore
from gardien.rights.personal import Identities
from gardien.rights.schemas import HoldNotice, Recipient, RequestIn, RequestOut, RequestType

if TYPE_CHECKING:
    from gardien.rights.service import RightsService

log = logging.getLogger(__name__)

ENGINE_ACTOR = {"type": "system", "id": "rights-engine", "display": "Gardien execution engine"}
# An attempt still marked running after this long died with its process: a retry may take it over.
STALE = timedelta(minutes=15)


class Executor(Protocol):
    def started(
        self, org_id: str, request: RequestOut, identities: Identities, *, actor: Mapping[str, Any] | None = None
    ) -> None:
        """Begin work on a request that has just entered `in_progress`. Must not block for long."""

    def check(self, org_id: str, body: RequestIn) -> None:
        """Refuse (422) at filing time what execution would refuse: unknown or invalid rectified fields."""


def map_identities(identities: Identities) -> dict[str, list[str]]:
    """What the data map is searched with: the e-mail as given and in lower case, the host id, the others."""
    out: dict[str, list[str]] = {"email": list(dict.fromkeys([identities.email, identities.email.lower()]))}
    if identities.subject_id:
        out["subject_id"] = [identities.subject_id]
    for kind, value in identities.others.items():
        out.setdefault(kind, [])
        if value not in out[kind]:
            out[kind].append(value)
    return out


def map_changes(datamap: DataMap, changes: Mapping[str, str]) -> dict[str, str]:
    """A request's `{field: value}` as the data map's `{dataset.table.field: value}`.

    A full path names one field; a bare name names every rectifiable field of that name (the same
    e-mail address kept in two tables is corrected in both). 422 with `changes.<key>` otherwise.
    """
    out: dict[str, str] = {}
    errors = []
    for key, value in changes.items():
        if key.count(".") == 2:
            out[key] = value
            continue
        paths = [
            f"{table}.{key}"
            for table, spec in datamap.tables.items()
            if key in spec.fields and spec.fields[key].rectify is not None
        ]
        if not paths:
            errors.append({"field": f"changes.{key}", "message": "no rectifiable field of this name", "type": "rights"})
        out.update(dict.fromkeys(paths, value))
    if errors:
        raise InvalidInput("; ".join(f"{e['field']}: {e['message']}" for e in errors), errors)
    return out


def _hold_notice(hold: HoldOut) -> HoldNotice:
    return HoldNotice(table=hold.table, reason=hold.reason, basis=hold.basis, rows=hold.rows, until=hold.until)


class DatamapExecutor:
    """Runs requests over the organisation's data map, in the background (default) or in the caller."""

    def __init__(
        self,
        rights: RightsService,
        maps: DatamapService,
        packages: PackageStore,
        *,
        background: bool = True,
        workers: int = 2,
    ) -> None:
        self.rights = rights
        self.maps = maps
        self.packages = packages
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="rights-exec") if background else None
        self._pending: set[Future[None]] = set()
        self._lock = threading.Lock()

    def map_key(self, org_id: str) -> str | None:
        """The map requests run over: the one the settings name, else the organisation's only map."""
        chosen = self.rights.settings(org_id).datamap_key
        if chosen is not None:
            return chosen
        keys = self.maps.keys(org_id)
        if len(keys) > 1:
            raise Problem(
                409,
                "several-maps",
                "Several data maps",
                f"the organisation has {len(keys)} data maps ({', '.join(keys)}): name the one requests run over "
                "in the request settings (datamap_key)",
            )
        return keys[0] if keys else None

    def rectifiable_fields(self, org_id: str) -> list[str]:
        """The names a person may ask to correct (the privacy center's choices); none without one map."""
        try:
            key = self.map_key(org_id)
        except Problem:
            return []
        if key is None:
            return []
        _, stores = self.maps.hosts(org_id, key)
        tables = stores.datamap.tables.values()
        return sorted({name for spec in tables for name, f in spec.fields.items() if f.rectify is not None})

    def check(self, org_id: str, body: RequestIn) -> None:
        if body.type is not RequestType.RECTIFICATION or not body.changes:
            return
        try:
            key = self.map_key(org_id)
        except Problem:
            return  # decided at execution, where the error is recorded on the request
        if key is None:
            return
        _, stores = self.maps.hosts(org_id, key)
        paths = map_changes(stores.datamap, body.changes)
        try:
            self.maps.check_changes(org_id, key, paths)
        except InvalidInput as exc:
            raise _renamed(exc, paths, body.changes) from exc

    def started(
        self, org_id: str, request: RequestOut, identities: Identities, *, actor: Mapping[str, Any] | None = None
    ) -> None:
        if request.type is RequestType.OBJECTION and not request.direct_marketing:
            return  # Art. 21(1): the block applies; the DPO weighs the grounds and completes or rejects
        try:
            key = self.map_key(org_id)
        except Problem as exc:
            self.rights.execution_failed(org_id, request.id, exc.detail, ENGINE_ACTOR)
            raise
        if key is None:
            return  # no map: the request is handled by hand, as before
        resume = self.rights.begin_execution(org_id, request.id, key, actor or ENGINE_ACTOR, stale=STALE)
        if self._pool is None:
            self._run(org_id, request, identities, key, resume)
            return
        future = self._pool.submit(self._run, org_id, request, identities, key, resume)
        with self._lock:
            self._pending.add(future)
        future.add_done_callback(self._forget)

    def _forget(self, future: Future[None]) -> None:
        with self._lock:
            self._pending.discard(future)

    def wait(self, timeout: float | None = None) -> None:
        """Wait for the requests being run in the background (tests, the command line, shutdown)."""
        with self._lock:
            pending = list(self._pending)
        for future in pending:
            future.result(timeout)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    def _run(self, org_id: str, request: RequestOut, identities: Identities, key: str, resume: str | None) -> None:
        erasure_run = resume
        try:
            if request.type is RequestType.ERASURE:
                self._erase(org_id, request, identities, key, resume)
            elif request.type in (RequestType.ACCESS, RequestType.PORTABILITY):
                self._package(org_id, request, identities, key)
            elif request.type is RequestType.RECTIFICATION:
                self._rectify(org_id, request, identities, key)
            else:
                self._close_block(org_id, request, key)
        except Exception as exc:
            if isinstance(exc, Problem):
                erasure_run = exc.extra.get("run_id", erasure_run)
                message = f"{exc.title}: {exc.detail}" if exc.detail else exc.title
                if exc.extra.get("errors"):
                    message = "; ".join(f"{e['field']}: {e['message']}" for e in exc.extra["errors"][:10])
            else:
                log.exception("request %s failed on an unexpected error", request.id)
                message = f"unexpected error ({type(exc).__name__}); see the server log"
            try:
                self.rights.execution_failed(org_id, request.id, message, ENGINE_ACTOR, erasure_run=erasure_run)
            except Exception:
                log.exception("could not record the failure of request %s", request.id)

    def _package(self, org_id: str, request: RequestOut, identities: Identities, key: str) -> None:
        seeds = map_identities(identities)
        portable = request.type is RequestType.PORTABILITY
        kind = "portability" if portable else "access"

        def write(out: Any) -> Any:
            return self.maps.access(
                org_id, key, seeds, out, actor=ENGINE_ACTOR, request_id=request.id, portable=portable
            )

        package, summary = self.packages.create(org_id, request.id, kind, write, ENGINE_ACTOR)
        reason = f"{kind} package built: {sum(summary.counts.values())} rows from {len(summary.counts)} tables"
        self.rights.complete(org_id, request.id, summary.counts, ENGINE_ACTOR, reason, package=package)

    def _erase(self, org_id: str, request: RequestOut, identities: Identities, key: str, resume: str | None) -> None:
        seeds = map_identities(identities)
        holds: list[HoldNotice] = []
        if resume is None:
            check = self.maps.can_erase(org_id, key, seeds)
            holds = [_hold_notice(h) for h in check.holds]
            result = self.maps.erase(org_id, key, seeds, actor=ENGINE_ACTOR, request_id=request.id)
        else:
            try:
                result = self.maps.erase(org_id, key, {}, actor=ENGINE_ACTOR, request_id=request.id, run_id=resume)
            except NotFound:
                result = self.maps.erase(org_id, key, seeds, actor=ENGINE_ACTOR, request_id=request.id)
            holds = [_hold_notice(h) for h in result.holds]
        counts = {table: c.get("deleted", 0) + c.get("updated", 0) for table, c in result.counts.items()}
        tables = sorted(t for t, n in counts.items() if n)
        recipients = self._recipients(org_id, key, tables) if tables else []
        kept = sum(h.rows for h in holds)
        reason = f"erased {sum(counts.values())} rows in {len(tables)} tables"
        if kept:
            reason += f"; {kept} rows kept under legal hold, their other personal fields anonymised"
        self.rights.complete(
            org_id,
            request.id,
            counts,
            ENGINE_ACTOR,
            reason,
            erased=result.counts,
            holds=holds,
            recipients=recipients,
        )

    def _rectify(self, org_id: str, request: RequestOut, identities: Identities, key: str) -> None:
        _, stores = self.maps.hosts(org_id, key)
        paths = map_changes(stores.datamap, identities.changes)
        try:
            result = self.maps.rectify(
                org_id, key, map_identities(identities), paths, actor=ENGINE_ACTOR, request_id=request.id
            )
        except InvalidInput as exc:
            raise _renamed(exc, paths, identities.changes) from exc
        counts = {table: int(seen["rows"]) for table, seen in result.tables.items()}
        tables = sorted(t for t, n in counts.items() if n)
        recipients = self._recipients(org_id, key, tables) if tables else []
        reason = f"rectified {sum(counts.values())} rows in {len(tables)} tables"
        self.rights.complete(org_id, request.id, counts, ENGINE_ACTOR, reason, recipients=recipients)

    def _close_block(self, org_id: str, request: RequestOut, key: str) -> None:
        recipients = self._recipients(org_id, key, None)
        what = "objection to direct marketing" if request.direct_marketing else "restriction"
        reason = f"{what} recorded for {', '.join(request.purposes)}; can_process answers false"
        self.rights.complete(org_id, request.id, {}, ENGINE_ACTOR, reason, recipients=recipients)

    def _recipients(self, org_id: str, key: str, tables: list[str] | None) -> list[Recipient]:
        return [
            Recipient(name=r.name, contact=r.contact, country=r.country)
            for r in self.maps.recipients(org_id, key, tables=tables)
        ]


def _renamed(exc: InvalidInput, paths: Mapping[str, str], changes: Mapping[str, str]) -> InvalidInput:
    """The data map's `changes.<dataset.table.field>` errors under the request's own keys."""
    key_of = {}
    for key in changes:
        for path in paths:
            if path == key or path.endswith(f".{key}"):
                key_of[f"changes.{path}"] = f"changes.{key}"
    errors = [{**e, "field": key_of.get(e["field"], e["field"])} for e in exc.extra.get("errors", [])]
    return InvalidInput("; ".join(f"{e['field']}: {e['message']}" for e in errors[:5]), errors)
