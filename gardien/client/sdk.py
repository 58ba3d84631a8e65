"""Python SDK for Gardien's audit ledger: append events, read them back, and verify proofs locally.

Two clients with the same methods: :class:`GardienClient` (blocking, ``httpx.Client``) and
:class:`AsyncGardienClient` (``httpx.AsyncClient``, every method awaited, :meth:`events` an async
iterator). Both are context managers and thread/task safe as far as httpx is.

Trust
    The ``verify_*`` methods and :meth:`GardienClient.export` do not take the server's word: they
    recompute leaf hashes from the events' canonical bytes, check Merkle paths and check the
    Ed25519 signatures of checkpoint notes and export manifests against ``trusted_keys`` (C2SP
    verifier keys, ``name+keyid+base64key``, as printed by ``gardien keys public``). **Pin them.**
    When ``trusted_keys`` is not given, the client fetches ``GET /api/v1/audit/keys`` on first use
    and trusts whatever that returns (trust on first use): fine against accidental corruption,
    worthless against a compromised server or a man in the middle, which would simply serve its
    own key.

    A failed verification raises :class:`VerificationError`; a successful one returns a small
    record of what was checked. Verification never answers ``False``, so a forgotten ``if``
    cannot turn evidence of tampering into silence. :class:`VerificationError` is deliberately
    *not* a :class:`GardienError`: ``except GardienError`` around a flaky network call must not
    swallow tampering.

Roles
    Appending needs a writer key (``service``, ``operator``, ``dpo``, ``admin``). Reading events,
    :meth:`GardienClient.verify_inclusion` (it fetches the event) and exports need a reader key
    (``auditor``, ``dpo``, ``admin``). Proofs and checkpoints need a verifier key (readers and
    ``operator``). Note that Gardien records every read of the ledger in the ledger itself.

Errors and retries
    Any answer of 400 or more raises :class:`GardienError` with the RFC 9457 problem details
    (``status``, ``title``, ``detail``, ``errors`` with one ``{"field": "events.1.crud", …}`` per
    invalid member). A request that got no answer at all raises :class:`GardienError` with
    ``status`` ``None`` once the retries are spent.

    Every request is retried (``retries`` times, exponential backoff with jitter, ``Retry-After``
    honoured) on connection errors and timeouts, and on 503; reads are also retried on 502 and
    504. **Appends are not idempotent.** When a request times out after the server received it,
    the server may have recorded the events and the retry records them again: the ledger then
    holds duplicates (it never loses or alters anything). Pass ``request_id=`` to :meth:`append`
    / :meth:`append_batch` (or put a ``request_id`` in the event) with a value unique to the
    logical operation; a reader can then recognise duplicates as events with the same
    ``request_id`` and otherwise identical content (everything but ``id``, ``seq`` and
    ``recorded_at``). Set ``retries=0`` to never retry.

Data-subject requests
    :meth:`GardienClient.create_request` files a request for a person (a ``service`` key is
    enough), :meth:`GardienClient.get_request` follows it, :meth:`GardienClient.send_identity_code`
    and :meth:`GardienClient.verify_identity_code` relay the e-mailed code the person types,
    :meth:`GardienClient.package_link` fetches the signed link to their package, and
    :meth:`GardienClient.can_process` answers whether a purpose may run for a subject (restriction
    and objection blocks). Listing requests (:meth:`GardienClient.requests`) needs a reader key.

Imports
    This module imports only httpx, orjson and Gardien's pure format modules (canonical JSON,
    Merkle proofs, signed notes). :meth:`GardienClient.export` additionally imports
    :mod:`gardien.audit.offline` when it runs.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import email.utils
import random
import time
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Self

import httpx
import orjson

from gardien import __version__
from gardien.audit import merkle
from gardien.audit.canonical import CanonicalError, canonical_bytes
from gardien.audit.checkpoint import Checkpoint, Note, NoteError, NoteVerifier, check_note

if TYPE_CHECKING:
    from gardien.audit.offline import ExportCheck

__all__ = [
    "AsyncGardienClient",
    "ConsistencyVerified",
    "ExportFormat",
    "ExportResult",
    "FilterValue",
    "GardienClient",
    "GardienError",
    "InclusionVerified",
    "Receipt",
    "RequestKind",
    "VerificationError",
]

API = "/api/v1/audit"
V1 = "/api/v1"
RequestKind = Literal["access", "rectification", "erasure", "restriction", "portability", "objection"]
DEFAULT_TIMEOUT = 10.0
ExportFormat = Literal["json", "jsonl", "csv"]
FilterValue = str | datetime | None
"""A filter of the event list or of an export: ``since``/``until`` (aware datetimes or RFC 3339
text), ``module``, ``action``, ``actor`` (actor id), ``target`` (target id), ``target_type``,
``outcome``. Unknown names are refused by the server with a 422."""

_RETRY_ANY = frozenset({503})
_RETRY_READ = frozenset({502, 503, 504})
_MAX_BACKOFF = 10.0
_MAX_RETRY_AFTER = 30.0


# --- results and errors ---------------------------------------------------------------------------


class GardienError(Exception):
    """The server answered with an error (RFC 9457 problem details), or did not answer at all.

    ``status`` is the HTTP status, or ``None`` when no answer came (connection refused, timeout)
    after the retries. ``errors`` lists invalid members for 422s: ``{"field", "message", "type"}``
    with ``field`` a dotted path such as ``events.3.actor.id``.
    """

    def __init__(
        self,
        status: int | None,
        title: str,
        detail: str = "",
        *,
        errors: list[dict[str, Any]] | None = None,
        type: str | None = None,
        problem: dict[str, Any] | None = None,
    ) -> None:
        self.status = status
        self.title = title
        self.detail = detail
        self.errors: list[dict[str, Any]] = errors or []
        self.type = type
        self.problem: dict[str, Any] = problem or {}
        super().__init__(f"{status if status is not None else 'no answer'} {title}: {detail}".rstrip(": "))

    @property
    def fields(self) -> list[str]:
        """The field paths named by ``errors``."""
        return [str(e.get("field", "")) for e in self.errors]

    @classmethod
    def from_response(cls, response: httpx.Response) -> GardienError:
        try:
            body = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            body = None
        if not isinstance(body, dict):
            text = response.text[:500]
            return cls(response.status_code, response.reason_phrase or "HTTP error", text)
        errors = body.get("errors")
        return cls(
            response.status_code,
            str(body.get("title") or response.reason_phrase or "HTTP error"),
            str(body.get("detail") or ""),
            errors=[e for e in errors if isinstance(e, dict)] if isinstance(errors, list) else None,
            type=body.get("type") if isinstance(body.get("type"), str) else None,
            problem=body,
        )


class VerificationError(Exception):
    """Local verification failed: a proof, signature, checkpoint or export does not check out.

    Either the ledger (or something between it and you) is not telling the truth, or the trusted
    keys are not the ones that signed it. Not a subclass of :class:`GardienError` on purpose.
    """


@dataclass(frozen=True)
class Receipt:
    """Gardien's acknowledgement of one appended event. Keep it to prove the event later:
    :meth:`GardienClient.verify_inclusion` accepts it and also checks the event still hashes to
    ``leaf_hash``."""

    id: str
    seq: int
    recorded_at: datetime
    leaf_hash: str
    """hex SHA-256(0x00 ‖ canonical bytes of the event)"""

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Receipt:
        return cls(
            id=str(data["id"]),
            seq=int(data["seq"]),
            recorded_at=datetime.fromisoformat(str(data["recorded_at"])),
            leaf_hash=str(data["leaf_hash"]),
        )


@dataclass(frozen=True)
class InclusionVerified:
    """An event shown, locally, to be leaf ``seq`` of the signed tree of ``tree_size`` leaves."""

    event: dict[str, Any]
    seq: int
    leaf_hash: bytes
    tree_size: int
    root: bytes
    checkpoint: str
    """the signed checkpoint note; keep it to later ask for consistency with newer trees"""
    verified_by: tuple[str, ...]


@dataclass(frozen=True)
class ConsistencyVerified:
    """The signed tree of ``old_size`` shown, locally, to be a prefix of the one of ``new_size``."""

    old_size: int
    new_size: int
    old_root: bytes
    new_root: bytes
    old_checkpoint: str
    new_checkpoint: str


@dataclass(frozen=True)
class ExportResult:
    """A downloaded export whose payload and manifest passed offline verification."""

    export_id: str
    format: str
    payload_path: Path
    manifest_path: Path
    manifest: dict[str, Any]
    check: ExportCheck = field(repr=False)


# --- pure helpers shared by both clients ----------------------------------------------------------


def _parse_verifiers(vkeys: Iterable[str]) -> list[NoteVerifier]:
    verifiers = []
    for vkey in vkeys:
        try:
            verifiers.append(NoteVerifier.from_vkey(vkey))
        except NoteError as exc:
            raise ValueError(f"not a C2SP verifier key: {vkey[:80]!r}: {exc}") from exc
    return verifiers


def _filters(filters: Mapping[str, FilterValue]) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in filters.items():
        if value is None:
            continue
        if isinstance(value, datetime):
            if value.tzinfo is None:
                raise ValueError(f"filter {name}: naive datetimes are ambiguous; give a timezone")
            value = value.astimezone(UTC).isoformat()
        out[name] = value
    return out


def _with_request_id(event: Mapping[str, Any], request_id: str | None) -> dict[str, Any]:
    doc = dict(event)
    if request_id is not None and doc.get("request_id") is None:
        doc["request_id"] = request_id
    return doc


def _b64(text: Any, what: str) -> bytes:
    try:
        return base64.b64decode(str(text), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise VerificationError(f"{what} is not base64") from exc


def _signed_checkpoint(note_text: Any, verifiers: list[NoteVerifier], what: str) -> tuple[Checkpoint, Note]:
    """Parse a checkpoint note and check it is signed by a trusted key."""
    try:
        note = Note.parse(str(note_text))
        checkpoint = Checkpoint.parse(note.body)
    except NoteError as exc:
        raise VerificationError(f"{what} is not a valid signed checkpoint: {exc}") from exc
    verdict = check_note(note, verifiers)
    if not verdict.ok:
        raise VerificationError(f"{what}: {verdict.detail}")
    return checkpoint, note


def _check_inclusion(
    event: dict[str, Any],
    proof: Mapping[str, Any],
    verifiers: list[NoteVerifier],
    receipt: Receipt | None,
) -> InclusionVerified:
    try:
        data = canonical_bytes(event)
    except CanonicalError as exc:
        raise VerificationError(f"the event has no canonical form: {exc}") from exc
    leaf = merkle.leaf_hash(data)
    seq = event.get("seq")
    if type(seq) is not int:
        raise VerificationError("the event has no integer seq")
    if receipt is not None:
        if receipt.id != event.get("id") or receipt.seq != seq:
            raise VerificationError(f"the server returned event {event.get('id')}/{seq} for receipt {receipt.id}")
        if receipt.leaf_hash != leaf.hex():
            raise VerificationError(f"event {receipt.id} no longer hashes to its receipt's leaf hash: it was altered")
    if proof.get("seq") != seq:
        raise VerificationError(f"the proof is for seq {proof.get('seq')}, not {seq}")
    if _b64(proof.get("leaf_hash"), "leaf hash") != leaf:
        raise VerificationError(f"the server's leaf hash for seq {seq} differs from the event's canonical bytes")
    note_text = (proof.get("checkpoint") or {}).get("note")
    checkpoint, note = _signed_checkpoint(note_text, verifiers, "the proof's checkpoint")
    org = event.get("org")
    if not checkpoint.origin.endswith(f"/audit/{org}"):
        raise VerificationError(f"the checkpoint is for log {checkpoint.origin!r}, not organisation {org!r}")
    if checkpoint.size != proof.get("tree_size"):
        raise VerificationError(f"the checkpoint has size {checkpoint.size}, the proof {proof.get('tree_size')}")
    path = [_b64(h, "proof hash") for h in proof.get("hashes") or []]
    if not merkle.verify_inclusion(leaf, seq, checkpoint.size, path, checkpoint.root):
        raise VerificationError(f"the inclusion proof of seq {seq} in tree {checkpoint.size} does not verify")
    verified_by = check_note(note, verifiers).verified_by
    return InclusionVerified(
        event=event,
        seq=seq,
        leaf_hash=leaf,
        tree_size=checkpoint.size,
        root=checkpoint.root,
        checkpoint=note.text(),
        verified_by=verified_by,
    )


def _check_consistency(
    proof: Mapping[str, Any],
    verifiers: list[NoteVerifier],
    old_size: int,
    new_size: int,
    known_old_checkpoint: str | None,
) -> ConsistencyVerified:
    old, old_note = _signed_checkpoint((proof.get("old_checkpoint") or {}).get("note"), verifiers, "the old checkpoint")
    new, new_note = _signed_checkpoint((proof.get("new_checkpoint") or {}).get("note"), verifiers, "the new checkpoint")
    if (old.size, new.size) != (old_size, new_size):
        raise VerificationError(f"asked for sizes {old_size}→{new_size}, got checkpoints {old.size}→{new.size}")
    if old.origin != new.origin:
        raise VerificationError(f"the checkpoints belong to different logs: {old.origin!r}, {new.origin!r}")
    if known_old_checkpoint is not None:
        known, _ = _signed_checkpoint(known_old_checkpoint, verifiers, "the checkpoint you kept")
        if (known.origin, known.size, known.root) != (old.origin, old.size, old.root):
            raise VerificationError(
                "the server's old checkpoint differs from the one you kept: the log forked "
                "(two signed views of the same tree size)"
            )
    path = [_b64(h, "proof hash") for h in proof.get("hashes") or []]
    if not merkle.verify_consistency(old.size, new.size, old.root, new.root, path):
        raise VerificationError(f"the consistency proof {old.size}→{new.size} does not verify")
    return ConsistencyVerified(
        old_size=old.size,
        new_size=new.size,
        old_root=old.root,
        new_root=new.root,
        old_checkpoint=old_note.text(),
        new_checkpoint=new_note.text(),
    )


def _export_paths(dest_dir: Path | str, created: Mapping[str, Any], fmt: str) -> tuple[Path, Path]:
    directory = Path(dest_dir)
    directory.mkdir(parents=True, exist_ok=True)
    export_id = str(created["id"])
    if not export_id.replace("-", "").isalnum():
        raise GardienError(None, "Unexpected export id", repr(export_id))
    payload = directory / f"audit-{export_id}.{fmt}"
    return payload, Path(f"{payload}.manifest.json")


def _finish_export(
    created: Mapping[str, Any], fmt: str, payload: Path, manifest_path: Path, verifiers: list[NoteVerifier]
) -> ExportResult:
    from gardien.audit.offline import verify_export  # imported here: it is the heavier module

    check = verify_export(payload, manifest_path, verifiers)
    if not check.ok:
        raise VerificationError("the export does not verify: " + "; ".join(check.problems))
    manifest: dict[str, Any] = orjson.loads(manifest_path.read_bytes())
    return ExportResult(
        export_id=str(created["id"]),
        format=fmt,
        payload_path=payload,
        manifest_path=manifest_path,
        manifest=manifest,
        check=check,
    )


def _json_body(payload: Any) -> bytes:
    # orjson writes datetimes as RFC 3339, which the API accepts for occurred_at.
    return orjson.dumps(payload)


def _retry_after(response: httpx.Response | None) -> float | None:
    if response is None:
        return None
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return min(max(float(value), 0.0), _MAX_RETRY_AFTER)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return min(max((when - datetime.now(UTC)).total_seconds(), 0.0), _MAX_RETRY_AFTER)


class _Base:
    """Configuration and request logic that does not depend on sync or async I/O."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float,
        trusted_keys: list[str] | None,
        retries: int,
        backoff: float,
    ) -> None:
        if retries < 0:
            raise ValueError("retries must be >= 0")
        self.base_url = base_url.rstrip("/")
        self.retries = retries
        self.backoff = backoff
        self._timeout = timeout
        self._headers = {
            "Authorization": f"Bearer {api_key}",
            "Accept": "application/json",
            "User-Agent": f"gardien-python/{__version__}",
        }
        self._pinned = trusted_keys is not None
        self._verifiers: list[NoteVerifier] | None = (
            _parse_verifiers(trusted_keys) if trusted_keys is not None else None
        )

    @property
    def keys_pinned(self) -> bool:
        """True when the trusted keys were given, False when they came from the server (TOFU)."""
        return self._pinned

    def _delay(self, attempt: int, response: httpx.Response | None) -> float:
        after = _retry_after(response)
        if after is not None:
            return after
        return float(min(self.backoff * 2**attempt, _MAX_BACKOFF) * random.uniform(0.5, 1.0))

    @staticmethod
    def _retryable(method: str, response: httpx.Response) -> bool:
        statuses = _RETRY_READ if method == "GET" else _RETRY_ANY
        return response.status_code in statuses

    @staticmethod
    def _result(response: httpx.Response) -> Any:
        if response.status_code >= 400:
            raise GardienError.from_response(response)
        return orjson.loads(response.content) if response.content else None

    def _verifiers_from(self, keys: Any) -> list[NoteVerifier]:
        if not isinstance(keys, list):
            raise GardienError(None, "Unexpected answer", "GET /keys did not return a list")
        verifiers = _parse_verifiers(str(k["vkey"]) for k in keys if isinstance(k, dict) and "vkey" in k)
        if not verifiers:
            raise VerificationError("the server publishes no public key")
        return verifiers

    @staticmethod
    def _export_body(fmt: str, filters: Mapping[str, FilterValue]) -> dict[str, Any]:
        return {"format": fmt, "filter": _filters(filters)}

    @staticmethod
    def _request_body(kind: RequestKind, email: str, options: Mapping[str, Any]) -> dict[str, Any]:
        return {"type": kind, "email": email, **{k: v for k, v in options.items() if v is not None}}

    @staticmethod
    def _request_filters(page_size: int, filters: Mapping[str, Any]) -> dict[str, Any]:
        params = {k: (str(v).lower() if isinstance(v, bool) else v) for k, v in filters.items() if v is not None}
        return {**params, "limit": page_size}


# --- the blocking client ----------------------------------------------------------------------------


class GardienClient(_Base):
    """Blocking client for the audit ledger API. See the module documentation for trust,
    roles, errors and retries."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        trusted_keys: list[str] | None = None,
        retries: int = 3,
        backoff: float = 0.25,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(
            base_url, api_key, timeout=timeout, trusted_keys=trusted_keys, retries=retries, backoff=backoff
        )
        self._http = httpx.Client(base_url=self.base_url, headers=self._headers, timeout=timeout, transport=transport)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
    ) -> httpx.Response:
        content = _json_body(body) if body is not None else None
        headers = {"Content-Type": "application/json"} if content is not None else None
        attempt = 0
        while True:
            try:
                response = self._http.request(method, path, params=params, content=content, headers=headers)
            except httpx.TransportError as exc:
                if attempt >= self.retries:
                    raise GardienError(None, "No answer", f"{method} {path}: {exc!r}") from exc
                time.sleep(self._delay(attempt, None))
            else:
                if attempt >= self.retries or not self._retryable(method, response):
                    return response
                time.sleep(self._delay(attempt, response))
            attempt += 1

    def _call(self, method: str, path: str, *, params: Mapping[str, Any] | None = None, body: Any = None) -> Any:
        return self._result(self._request(method, path, params=params, body=body))

    # writing

    def append(self, event: Mapping[str, Any], *, request_id: str | None = None) -> Receipt:
        """Append one event (a dict in the v1 shape of docs/ledger-format.md §1).

        ``request_id`` fills the event's ``request_id`` when it has none (see "retries")."""
        return Receipt.from_json(self._call("POST", f"{API}/events", body=_with_request_id(event, request_id)))

    def append_batch(self, events: Iterable[Mapping[str, Any]], *, request_id: str | None = None) -> list[Receipt]:
        """Append events atomically (all or none), at most the server's batch limit (1,000)."""
        body = {"events": [_with_request_id(e, request_id) for e in events]}
        result = self._call("POST", f"{API}/events/batch", body=body)
        return [Receipt.from_json(r) for r in result["receipts"]]

    # reading

    def events(self, *, page_size: int = 500, **filters: FilterValue) -> Iterator[dict[str, Any]]:
        """Every event matching the filters, in ``seq`` order, following cursors page by page.

        Gardien records each page read in the ledger itself (``audit.events.read``); the listing
        ends where the ledger stood when its first page was read, so those reads never prolong it."""
        params: dict[str, Any] = {**_filters(filters), "limit": page_size}
        while True:
            page = self._call("GET", f"{API}/events", params=params)
            yield from page["events"]
            if not page.get("next_cursor"):
                return
            params["cursor"] = page["next_cursor"]

    def event(self, event_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", f"{API}/events/{event_id}")
        return result

    # data-subject requests

    def create_request(self, type: RequestKind, email: str, **options: Any) -> dict[str, Any]:
        """File a request (``POST /api/v1/requests``). ``options``: ``subject_id``, ``identities``,
        ``locale`` (fr, nl, en), ``received_at``, ``purposes``, ``direct_marketing``, ``ground``,
        ``changes`` (rectification: field -> value), ``note``. Answers the request as created."""
        result: dict[str, Any] = self._call("POST", f"{V1}/requests", body=self._request_body(type, email, options))
        return result

    def get_request(self, request_id: str) -> dict[str, Any]:
        """One request: status, deadline, ``execution`` and ``outcome`` (counts, holds, package)."""
        result: dict[str, Any] = self._call("GET", f"{V1}/requests/{request_id}")
        return result

    def requests(self, *, page_size: int = 50, **filters: Any) -> Iterator[dict[str, Any]]:
        """Every request matching ``status``, ``type``, ``extended``, ``overdue``, ``email``, newest first."""
        params = self._request_filters(page_size, filters)
        while True:
            page = self._call("GET", f"{V1}/requests", params=params)
            yield from page["requests"]
            if not page.get("next_cursor"):
                return
            params["cursor"] = page["next_cursor"]

    def send_identity_code(self, request_id: str) -> dict[str, Any]:
        """E-mail the person a one-time code: ``{expires_at, attempts_allowed, sent_to}``."""
        result: dict[str, Any] = self._call("POST", f"{V1}/requests/{request_id}/identity/code")
        return result

    def verify_identity_code(self, request_id: str, code: str) -> dict[str, Any]:
        """Check the code the person typed; a wrong one raises :class:`GardienError` (422, tries left)."""
        body = {"code": code}
        result: dict[str, Any] = self._call("POST", f"{V1}/requests/{request_id}/identity/verify", body=body)
        return result

    def cancel_request(self, request_id: str, reason: str) -> dict[str, Any]:
        body = {"to": "cancelled", "reason": reason}
        result: dict[str, Any] = self._call("POST", f"{V1}/requests/{request_id}/transitions", body=body)
        return result

    def package_link(self, request_id: str) -> dict[str, Any]:
        """``{token, path, expires_at, package}``: the signed link to the request's access or portability package."""
        result: dict[str, Any] = self._call("POST", f"{V1}/requests/{request_id}/package/link")
        return result

    def can_process(self, subject: str, purpose: str) -> bool:
        """False when a restriction or objection of the subject (host id or e-mail) blocks the purpose."""
        return bool(self._call("GET", f"{V1}/can-process", params={"subject": subject, "purpose": purpose})["allowed"])

    def latest_checkpoint(self) -> dict[str, Any]:
        """``{size, root, note, created_at}`` of the latest signed checkpoint (not verified)."""
        result: dict[str, Any] = self._call("GET", f"{API}/checkpoints/latest")
        return result

    def checkpoint(self, size: int) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", f"{API}/checkpoints/{int(size)}")
        return result

    def inclusion_proof(self, event: str | int, size: int | None = None) -> dict[str, Any]:
        """The raw inclusion proof of an event (by id) or of a sequence number (not verified)."""
        params = {"size": size} if size is not None else {}
        if isinstance(event, str):
            result: dict[str, Any] = self._call("GET", f"{API}/events/{event}/proof", params=params)
        else:
            result = self._call("GET", f"{API}/proofs/inclusion", params={"seq": int(event), **params})
        return result

    def consistency_proof(self, old_size: int, new_size: int) -> dict[str, Any]:
        result: dict[str, Any] = self._call(
            "GET", f"{API}/proofs/consistency", params={"old": old_size, "new": new_size}
        )
        return result

    def public_keys(self) -> list[dict[str, Any]]:
        """The server's published keys (``GET /keys``; no API key needed)."""
        result: list[dict[str, Any]] = self._call("GET", f"{API}/keys")
        return result

    def trusted_verifiers(self) -> list[NoteVerifier]:
        """The keys verification trusts: the pinned ones, else the server's, fetched once."""
        if self._verifiers is None:
            self._verifiers = self._verifiers_from(self.public_keys())
        return self._verifiers

    # verifying

    def _covering_size(self, seq: int, wait: float) -> int:
        """Size of the latest checkpoint once it covers ``seq``; checkpoints follow within ~1 s."""
        deadline = time.monotonic() + wait
        while True:
            try:
                size = int(self.latest_checkpoint()["size"])
            except GardienError as exc:
                if exc.status != 404:
                    raise
                size = 0
            if size > seq:
                return size
            if time.monotonic() >= deadline:
                raise GardienError(409, "Not checkpointed yet", f"no checkpoint covers seq {seq} after {wait}s")
            time.sleep(0.1)

    def verify_inclusion(
        self, event: str | Receipt, *, size: int | None = None, wait: float = 10.0
    ) -> InclusionVerified:
        """Fetch an event and its inclusion proof, and verify them locally.

        Checks that the event's canonical bytes hash to the proven leaf (and to the receipt's
        ``leaf_hash`` when given a :class:`Receipt`), that the Merkle path leads to the root of
        a checkpoint of this organisation signed by a trusted key. ``size`` picks the checkpoint
        (default: the latest, waiting up to ``wait`` seconds for one that covers the event).
        Raises :class:`VerificationError` when anything does not check out."""
        receipt = event if isinstance(event, Receipt) else None
        event_id = event.id if isinstance(event, Receipt) else event
        doc = self.event(event_id)
        verifiers = self.trusted_verifiers()
        tree_size = size if size is not None else self._covering_size(int(doc["seq"]), wait)
        proof = self.inclusion_proof(event_id, tree_size)
        return _check_inclusion(doc, proof, verifiers, receipt)

    def verify_consistency(
        self, old_size: int, new_size: int | None = None, *, known_old_checkpoint: str | None = None
    ) -> ConsistencyVerified:
        """Verify locally that the checkpointed tree of ``old_size`` is a prefix of the one of
        ``new_size`` (default: the latest checkpoint). Give ``known_old_checkpoint``, a note you
        verified earlier (e.g. :attr:`InclusionVerified.checkpoint`), to also detect a fork."""
        verifiers = self.trusted_verifiers()
        if new_size is None:
            new_size = int(self.latest_checkpoint()["size"])
        proof = self.consistency_proof(old_size, new_size)
        return _check_consistency(proof, verifiers, old_size, new_size, known_old_checkpoint)

    def verify(self, trusted_checkpoint: str | None = None) -> dict[str, Any]:
        """The server's own full verification report (``POST /verify``); not a local check."""
        body = {"trusted_checkpoint": trusted_checkpoint} if trusted_checkpoint else {}
        result: dict[str, Any] = self._call("POST", f"{API}/verify", body=body)
        return result

    def export(self, format: ExportFormat = "jsonl", *, dest_dir: Path | str, **filters: FilterValue) -> ExportResult:
        """Create an export, download payload and manifest into ``dest_dir`` and verify them
        offline (:func:`gardien.audit.offline.verify_export`) with the trusted keys."""
        verifiers = self.trusted_verifiers()
        created = self._call("POST", f"{API}/exports", body=self._export_body(format, filters))
        payload, manifest_path = _export_paths(dest_dir, created, format)
        self._download(str(created["payload_url"]), payload)
        manifest = self._request("GET", str(created["manifest_url"]))
        self._result(manifest)
        manifest_path.write_bytes(manifest.content)
        return _finish_export(created, format, payload, manifest_path, verifiers)

    def _download(self, url: str, dest: Path) -> None:
        partial = dest.with_name(dest.name + ".partial")
        with self._http.stream("GET", url) as response:
            if response.status_code >= 400:
                response.read()
                raise GardienError.from_response(response)
            with partial.open("wb") as handle:
                for chunk in response.iter_bytes():
                    handle.write(chunk)
        partial.replace(dest)


# --- the async client ---------------------------------------------------------------------------------


class AsyncGardienClient(_Base):
    """The same API as :class:`GardienClient` on ``httpx.AsyncClient``: await every method,
    iterate :meth:`events` with ``async for``, use ``async with``."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        trusted_keys: list[str] | None = None,
        retries: int = 3,
        backoff: float = 0.25,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(
            base_url, api_key, timeout=timeout, trusted_keys=trusted_keys, retries=retries, backoff=backoff
        )
        self._http = httpx.AsyncClient(
            base_url=self.base_url, headers=self._headers, timeout=timeout, transport=transport
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
    ) -> httpx.Response:
        content = _json_body(body) if body is not None else None
        headers = {"Content-Type": "application/json"} if content is not None else None
        attempt = 0
        while True:
            try:
                response = await self._http.request(method, path, params=params, content=content, headers=headers)
            except httpx.TransportError as exc:
                if attempt >= self.retries:
                    raise GardienError(None, "No answer", f"{method} {path}: {exc!r}") from exc
                await asyncio.sleep(self._delay(attempt, None))
            else:
                if attempt >= self.retries or not self._retryable(method, response):
                    return response
                await asyncio.sleep(self._delay(attempt, response))
            attempt += 1

    async def _call(self, method: str, path: str, *, params: Mapping[str, Any] | None = None, body: Any = None) -> Any:
        return self._result(await self._request(method, path, params=params, body=body))

    # writing

    async def append(self, event: Mapping[str, Any], *, request_id: str | None = None) -> Receipt:
        return Receipt.from_json(await self._call("POST", f"{API}/events", body=_with_request_id(event, request_id)))

    async def append_batch(
        self, events: Iterable[Mapping[str, Any]], *, request_id: str | None = None
    ) -> list[Receipt]:
        body = {"events": [_with_request_id(e, request_id) for e in events]}
        result = await self._call("POST", f"{API}/events/batch", body=body)
        return [Receipt.from_json(r) for r in result["receipts"]]

    # reading

    async def events(self, *, page_size: int = 500, **filters: FilterValue) -> AsyncIterator[dict[str, Any]]:
        params: dict[str, Any] = {**_filters(filters), "limit": page_size}
        while True:
            page = await self._call("GET", f"{API}/events", params=params)
            for event in page["events"]:
                yield event
            if not page.get("next_cursor"):
                return
            params["cursor"] = page["next_cursor"]

    async def event(self, event_id: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._call("GET", f"{API}/events/{event_id}")
        return result

    # data-subject requests

    async def create_request(self, type: RequestKind, email: str, **options: Any) -> dict[str, Any]:
        body = self._request_body(type, email, options)
        result: dict[str, Any] = await self._call("POST", f"{V1}/requests", body=body)
        return result

    async def get_request(self, request_id: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._call("GET", f"{V1}/requests/{request_id}")
        return result

    async def requests(self, *, page_size: int = 50, **filters: Any) -> AsyncIterator[dict[str, Any]]:
        params = self._request_filters(page_size, filters)
        while True:
            page = await self._call("GET", f"{V1}/requests", params=params)
            for request in page["requests"]:
                yield request
            if not page.get("next_cursor"):
                return
            params["cursor"] = page["next_cursor"]

    async def send_identity_code(self, request_id: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._call("POST", f"{V1}/requests/{request_id}/identity/code")
        return result

    async def verify_identity_code(self, request_id: str, code: str) -> dict[str, Any]:
        path = f"{V1}/requests/{request_id}/identity/verify"
        result: dict[str, Any] = await self._call("POST", path, body={"code": code})
        return result

    async def cancel_request(self, request_id: str, reason: str) -> dict[str, Any]:
        body = {"to": "cancelled", "reason": reason}
        result: dict[str, Any] = await self._call("POST", f"{V1}/requests/{request_id}/transitions", body=body)
        return result

    async def package_link(self, request_id: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._call("POST", f"{V1}/requests/{request_id}/package/link")
        return result

    async def can_process(self, subject: str, purpose: str) -> bool:
        params = {"subject": subject, "purpose": purpose}
        return bool((await self._call("GET", f"{V1}/can-process", params=params))["allowed"])

    async def latest_checkpoint(self) -> dict[str, Any]:
        result: dict[str, Any] = await self._call("GET", f"{API}/checkpoints/latest")
        return result

    async def checkpoint(self, size: int) -> dict[str, Any]:
        result: dict[str, Any] = await self._call("GET", f"{API}/checkpoints/{int(size)}")
        return result

    async def inclusion_proof(self, event: str | int, size: int | None = None) -> dict[str, Any]:
        params = {"size": size} if size is not None else {}
        if isinstance(event, str):
            result: dict[str, Any] = await self._call("GET", f"{API}/events/{event}/proof", params=params)
        else:
            result = await self._call("GET", f"{API}/proofs/inclusion", params={"seq": int(event), **params})
        return result

    async def consistency_proof(self, old_size: int, new_size: int) -> dict[str, Any]:
        result: dict[str, Any] = await self._call(
            "GET", f"{API}/proofs/consistency", params={"old": old_size, "new": new_size}
        )
        return result

    async def public_keys(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = await self._call("GET", f"{API}/keys")
        return result

    async def trusted_verifiers(self) -> list[NoteVerifier]:
        if self._verifiers is None:
            self._verifiers = self._verifiers_from(await self.public_keys())
        return self._verifiers

    # verifying

    async def _covering_size(self, seq: int, wait: float) -> int:
        deadline = time.monotonic() + wait
        while True:
            try:
                size = int((await self.latest_checkpoint())["size"])
            except GardienError as exc:
                if exc.status != 404:
                    raise
                size = 0
            if size > seq:
                return size
            if time.monotonic() >= deadline:
                raise GardienError(409, "Not checkpointed yet", f"no checkpoint covers seq {seq} after {wait}s")
            await asyncio.sleep(0.1)

    async def verify_inclusion(
        self, event: str | Receipt, *, size: int | None = None, wait: float = 10.0
    ) -> InclusionVerified:
        receipt = event if isinstance(event, Receipt) else None
        event_id = event.id if isinstance(event, Receipt) else event
        doc = await self.event(event_id)
        verifiers = await self.trusted_verifiers()
        tree_size = size if size is not None else await self._covering_size(int(doc["seq"]), wait)
        proof = await self.inclusion_proof(event_id, tree_size)
        return _check_inclusion(doc, proof, verifiers, receipt)

    async def verify_consistency(
        self, old_size: int, new_size: int | None = None, *, known_old_checkpoint: str | None = None
    ) -> ConsistencyVerified:
        verifiers = await self.trusted_verifiers()
        if new_size is None:
            new_size = int((await self.latest_checkpoint())["size"])
        proof = await self.consistency_proof(old_size, new_size)
        return _check_consistency(proof, verifiers, old_size, new_size, known_old_checkpoint)

    async def verify(self, trusted_checkpoint: str | None = None) -> dict[str, Any]:
        body = {"trusted_checkpoint": trusted_checkpoint} if trusted_checkpoint else {}
        result: dict[str, Any] = await self._call("POST", f"{API}/verify", body=body)
        return result

    async def export(
        self, format: ExportFormat = "jsonl", *, dest_dir: Path | str, **filters: FilterValue
    ) -> ExportResult:
        verifiers = await self.trusted_verifiers()
        created = await self._call("POST", f"{API}/exports", body=self._export_body(format, filters))
        payload, manifest_path = _export_paths(dest_dir, created, format)
        await self._download(str(created["payload_url"]), payload)
        manifest = await self._request("GET", str(created["manifest_url"]))
        self._result(manifest)
        manifest_path.write_bytes(manifest.content)
        # Hashing and parsing a large payload would block the event loop.
        return await asyncio.to_thread(_finish_export, created, format, payload, manifest_path, verifiers)

    async def _download(self, url: str, dest: Path) -> None:
        partial = dest.with_name(dest.name + ".partial")
        async with self._http.stream("GET", url) as response:
            if response.status_code >= 400:
                await response.aread()
                raise GardienError.from_response(response)
            with partial.open("wb") as handle:
                async for chunk in response.aiter_bytes():
                    handle.write(chunk)
        partial.replace(dest)
