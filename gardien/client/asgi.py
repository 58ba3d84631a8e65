"""ASGI middleware that records HTTP requests of a host application in Gardien's audit ledger.

::

    app = GardienAuditMiddleware(
        app,
        client=AsyncGardienClient(url, api_key),
        routes=["POST /artists", "GET /artists/{id}", "PATCH /artists/{id}", "DELETE /artists/{id}"],
        actor_resolver=lambda scope: {"type": "user", "id": scope["state"]["user_id"]},
    )

Pure ASGI (no ``BaseHTTPMiddleware``); it also works with ``app.add_middleware(...)`` in Starlette
and FastAPI, but wrapping the app yourself keeps a handle on the instance (for :meth:`flush`,
:meth:`aclose` and :attr:`stats`).

What is recorded
    Each request whose method and path match one of ``routes`` (first match wins) becomes one
    event: ``action`` ``http.<method>.<static segments>`` (``POST /artists/{id}/contracts`` →
    ``http.post.artists.contracts``) unless the route names its own; ``crud`` from the method
    (GET/HEAD/OPTIONS read, POST create, PUT/PATCH update, DELETE delete, others execute);
    ``outcome`` success below 400, else failure with reason ``HTTP <status>`` (an exception in the
    app counts as 500); ``actor`` from ``actor_resolver(scope)``, called once the app is done so it
    sees what authentication put in the scope (``None`` or an error gives
    ``{"type": "anonymous", "id": "-"}``); ``target`` from the last path parameter, typed by the
    static segment before it (``/artists/{id}`` → ``{"type": "artists", "id": "7"}``); ``source``
    from the ASGI client address and ``User-Agent`` (behind a proxy, run the server with
    ``--proxy-headers`` so the client address is the real one); ``request_id`` from the
    ``X-Request-ID`` header or a fresh one; ``fields.http`` with the route pattern, the status and
    the duration. Query strings and bodies are never recorded. The request id is also available
    to the app, and to :func:`gardien.client.sqlalchemy.install_audit_hook`, through
    :data:`current_request_id`. Requests that match no route are not recorded.

Never delaying the response
    Recording only puts the event in a bounded in-memory queue; a background task sends it in
    batches (``append_batch``) every ``flush_interval`` seconds, or as soon as ``batch_size`` events
    are waiting. The queue is not durable: events still queued when the process dies are lost.

Overflow
    When ``queue_size`` events are already waiting (Gardien unreachable for long, or slower than
    the traffic), new events are **dropped**: :attr:`stats` counts them in ``dropped`` and a
    warning is logged (at most once per ``warn_every`` seconds, with the running count).

Failures
    The client retries connection errors and 503s itself. When a batch still fails with no
    answer or a 5xx, it goes back to the head of the queue and is retried at the next flush
    (events that no longer fit count as dropped); since an append that timed out may have been
    recorded, such retries can duplicate events (the ``request_id`` tells them apart). A batch
    refused as invalid (400/413/422) is resent one event at a time so that only the bad events are
    lost (counted in ``rejected``, logged); other refusals (401, 403…) drop the batch the same way.

Shutdown
    On the ASGI ``lifespan.shutdown`` message the middleware flushes the queue (for at most
    ``shutdown_timeout`` seconds) before passing the message on, so the app can still close the
    client afterwards. Without lifespan (some servers and test transports), call
    ``await middleware.aclose()`` yourself. Events that cannot be sent by then are counted in
    ``failed`` and logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import re
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from gardien.client.sdk import AsyncGardienClient, GardienError

__all__ = [
    "ActorResolver",
    "GardienAuditMiddleware",
    "MiddlewareStats",
    "RoutePattern",
    "current_request_id",
]

log = logging.getLogger("gardien.client.asgi")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
ActorResolver = Callable[[Scope], Mapping[str, Any] | None]
Crud = Literal["create", "read", "update", "delete", "execute"]

current_request_id: ContextVar[str | None] = ContextVar("gardien_request_id", default=None)
"""The request id of the HTTP request being recorded, set while the app handles it."""

ANONYMOUS = {"type": "anonymous", "id": "-"}
CRUD_BY_METHOD: dict[str, Crud] = {
    "GET": "read",
    "HEAD": "read",
    "OPTIONS": "read",
    "POST": "create",
    "PUT": "update",
    "PATCH": "update",
    "DELETE": "delete",
}
_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(:path)?\}")
_NOT_ACTION = re.compile(r"[^a-z0-9_-]+")
_NOT_TYPE = re.compile(r"[^A-Za-z0-9_.:-]+")
_MAX_ACTION = 128
_MAX_ID = 256
_MAX_REQUEST_ID = 128
_MAX_USER_AGENT = 512


def _action_part(text: str) -> str:
    return _NOT_ACTION.sub("_", text.lower()).strip("_")


def _type_name(text: str) -> str:
    return _NOT_TYPE.sub("_", text)[:64] or "resource"


@dataclass(frozen=True)
class RoutePattern:
    """A method and a path template: ``{name}`` matches one segment, ``{name:path}`` the rest.

    ``method`` ``"*"`` matches any method. ``action``, ``crud`` and ``target_type`` override what
    the middleware derives. :meth:`parse` reads ``"POST /artists/{id}"`` (or ``"/artists/{id}"``
    for any method).
    """

    method: str
    path: str
    action: str | None = None
    crud: Crud | None = None
    target_type: str | None = None
    _regex: re.Pattern[str] = field(init=False, repr=False, compare=False)
    _params: tuple[str, ...] = field(init=False, repr=False, compare=False)
    _target: tuple[str, str] | None = field(init=False, repr=False, compare=False)
    _segments: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        method = self.method.upper()
        object.__setattr__(self, "method", method)
        if not self.path.startswith("/"):
            raise ValueError(f"route path must start with '/': {self.path!r}")
        regex: list[str] = []
        params: list[str] = []
        segments: list[str] = []
        last_static: str | None = None
        target: tuple[str, str] | None = None
        position = 0
        for found in _PARAM.finditer(self.path):
            static = self.path[position : found.start()]
            regex.append(re.escape(static))
            statics = [s for s in static.split("/") if s]
            segments.extend(statics)
            if statics:
                last_static = statics[-1]
            name = found.group(1)
            if name in params:
                raise ValueError(f"route {self.path!r} names {{{name}}} twice")
            params.append(name)
            regex.append(f"(?P<{name}>.+)" if found.group(2) else f"(?P<{name}>[^/]+)")
            target = (name, last_static or name)
            position = found.end()
        tail = self.path[position:]
        regex.append(re.escape(tail.rstrip("/")))
        segments.extend(s for s in tail.split("/") if s)
        object.__setattr__(self, "_regex", re.compile("".join(regex) + "/?"))
        object.__setattr__(self, "_params", tuple(params))
        object.__setattr__(self, "_target", target)
        object.__setattr__(self, "_segments", tuple(segments))

    @classmethod
    def parse(cls, spec: str | RoutePattern) -> RoutePattern:
        if isinstance(spec, RoutePattern):
            return spec
        method, _, path = spec.strip().rpartition(" ")
        return cls(method.strip() or "*", path)

    def match(self, method: str, path: str) -> dict[str, str] | None:
        if self.method != "*" and self.method != method and not (self.method == "GET" and method == "HEAD"):
            return None
        found = self._regex.fullmatch(path)
        return found.groupdict() if found else None

    def action_for(self, method: str) -> str:
        if self.action:
            return self.action
        parts = ["http", _action_part(method)] + [p for p in map(_action_part, self._segments) if p]
        return ".".join(parts)[:_MAX_ACTION].rstrip(".")

    def crud_for(self, method: str) -> Crud:
        return self.crud or CRUD_BY_METHOD.get(method, "execute")

    def target_for(self, params: Mapping[str, str]) -> dict[str, str] | None:
        if self._target is None:
            return None
        name, kind = self._target
        value = params.get(name)
        if not value:
            return None
        return {"type": _type_name(self.target_type or kind), "id": value[:_MAX_ID]}

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


@dataclass
class MiddlewareStats:
    """Counters since the middleware was created."""

    recorded: int = 0
    """events put in the queue"""
    sent: int = 0
    """events the ledger acknowledged"""
    dropped: int = 0
    """events lost because the queue was full"""
    rejected: int = 0
    """events the ledger refused (invalid, or the key may not append)"""
    failed: int = 0
    """events still unsent at shutdown, or lost to an unexpected error"""


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers") or ():
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


def _client_ip(scope: Scope) -> str | None:
    client = scope.get("client")
    if not client:
        return None
    try:
        return str(ipaddress.ip_address(client[0]))
    except ValueError:
        return None  # e.g. "testclient", a unix socket path


def _rfc3339(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class GardienAuditMiddleware:
    """Records matching HTTP requests as audit events without delaying responses.

    See the module documentation for what is recorded, overflow, failures and shutdown."""

    def __init__(
        self,
        app: ASGIApp,
        client: AsyncGardienClient,
        routes: Iterable[RoutePattern | str],
        actor_resolver: ActorResolver | None = None,
        module: str = "http",
        *,
        queue_size: int = 10_000,
        batch_size: int = 200,
        flush_interval: float = 0.5,
        shutdown_timeout: float = 10.0,
        warn_every: float = 10.0,
    ) -> None:
        if queue_size < 1 or batch_size < 1:
            raise ValueError("queue_size and batch_size must be >= 1")
        self.app = app
        self.client = client
        self.routes = [RoutePattern.parse(r) for r in routes]
        self.actor_resolver = actor_resolver
        self.module = module
        self.queue_size = queue_size
        self.batch_size = min(batch_size, 1_000)
        self.flush_interval = flush_interval
        self.shutdown_timeout = shutdown_timeout
        self.warn_every = warn_every
        self.stats = MiddlewareStats()
        self._queue: deque[dict[str, Any]] = deque()
        self._task: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock: asyncio.Lock | None = None
        self._closed = False
        self._last_warning = float("-inf")
        self._dropped_at_warning = 0

    @property
    def pending(self) -> int:
        """Events waiting in the queue."""
        return len(self._queue)

    # --- ASGI ---------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, self._lifespan_receive(receive), send)
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method = str(scope["method"]).upper()
        path = str(scope.get("path", "/"))
        for route in self.routes:
            params = route.match(method, path)
            if params is not None:
                break
        else:
            await self.app(scope, receive, send)
            return

        header_id = (_header(scope, b"x-request-id") or "").strip()[:_MAX_REQUEST_ID]
        request_id = header_id or uuid.uuid4().hex
        token = current_request_id.set(request_id)
        occurred = datetime.now(UTC)
        started = time.monotonic()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            current_request_id.reset(token)
            # Everything below is in-memory and synchronous: the response has already been sent.
            try:
                self._record(scope, route, method, params, status, request_id, occurred, started)
            except Exception:
                log.exception("gardien: could not record %s %s", method, route.path)

    def _lifespan_receive(self, receive: Receive) -> Receive:
        async def wrapped() -> Message:
            message = await receive()
            if message["type"] == "lifespan.shutdown":
                await self.aclose()
            return message

        return wrapped

    # --- events -------------------------------------------------------------------------------

    def _actor(self, scope: Scope) -> dict[str, Any]:
        if self.actor_resolver is None:
            return dict(ANONYMOUS)
        try:
            actor = self.actor_resolver(scope)
        except Exception:
            log.exception("gardien: actor_resolver failed; recording the request as anonymous")
            return dict(ANONYMOUS)
        return dict(actor) if actor else dict(ANONYMOUS)

    def _record(
        self,
        scope: Scope,
        route: RoutePattern,
        method: str,
        params: dict[str, str],
        status: int,
        request_id: str,
        occurred: datetime,
        started: float,
    ) -> None:
        event: dict[str, Any] = {
            "occurred_at": _rfc3339(occurred),
            "module": self.module,
            "action": route.action_for(method),
            "crud": route.crud_for(method),
            "outcome": "success" if status < 400 else "failure",
            "actor": self._actor(scope),
            "request_id": request_id,
            "fields": {
                "http": {
                    "method": method,
                    "route": route.path,
                    "status": status,
                    "duration_ms": round((time.monotonic() - started) * 1000),
                }
            },
        }
        if status >= 400:
            event["reason"] = f"HTTP {status}"
        target = route.target_for(params)
        if target is not None:
            event["target"] = target
        if params:
            event["fields"]["path_params"] = params
        source: dict[str, str] = {}
        ip = _client_ip(scope)
        if ip:
            source["ip"] = ip
        agent = _header(scope, b"user-agent")
        if agent:
            source["user_agent"] = agent[:_MAX_USER_AGENT]
        if source:
            event["source"] = source
        self._enqueue(event)

    def _enqueue(self, event: dict[str, Any]) -> None:
        if len(self._queue) >= self.queue_size:
            self.stats.dropped += 1
            self._warn_dropped()
            return
        self._queue.append(event)
        self.stats.recorded += 1
        self._ensure_flusher()
        if len(self._queue) >= self.batch_size and self._wake is not None:
            self._wake.set()

    def _warn_dropped(self) -> None:
        now = time.monotonic()
        if now - self._last_warning >= self.warn_every:
            log.warning(
                "gardien: audit queue full (%d events); dropped %d events so far (%d since the last warning)",
                self.queue_size,
                self.stats.dropped,
                self.stats.dropped - self._dropped_at_warning,
            )
            self._last_warning = now
            self._dropped_at_warning = self.stats.dropped

    # --- sending ------------------------------------------------------------------------------

    def _ensure_flusher(self) -> None:
        if self._closed:
            return
        loop = self._bind_loop()
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._run(), name="gardien-audit-flusher")

    def _bind_loop(self) -> asyncio.AbstractEventLoop:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            # First use, or a new event loop (tests, reloads): the old primitives belong to the old one.
            self._loop = loop
            self._wake = asyncio.Event()
            self._lock = asyncio.Lock()
            self._task = None
        return loop

    async def _run(self) -> None:
        assert self._wake is not None
        while not self._closed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.flush_interval)
            self._wake.clear()
            try:
                await self.flush()
            except Exception:  # never let the flusher die
                log.exception("gardien: audit flush failed")

    async def flush(self) -> bool:
        """Send everything queued now. True when the queue was emptied; False when a batch could
        not be delivered (it stays queued for the next attempt)."""
        self._bind_loop()
        assert self._lock is not None
        async with self._lock:
            while self._queue:
                batch = [self._queue.popleft() for _ in range(min(self.batch_size, len(self._queue)))]
                try:
                    delivered = await self._deliver(batch)
                except BaseException:  # cancelled mid-send: keep the batch for whoever flushes next
                    self._requeue(batch)
                    raise
                if not delivered:
                    self._requeue(batch)
                    return False
        return True

    def _requeue(self, batch: list[dict[str, Any]]) -> None:
        room = self.queue_size - len(self._queue)
        keep = batch[:room] if room > 0 else []
        self._queue.extendleft(reversed(keep))
        lost = len(batch) - len(keep)
        if lost:
            self.stats.dropped += lost
            self._warn_dropped()

    async def _deliver(self, batch: list[dict[str, Any]]) -> bool:
        """True when the batch is settled (sent, or refused for good); False to retry later."""
        try:
            receipts = await self.client.append_batch(batch)
        except GardienError as exc:
            if exc.status is None or exc.status >= 500:
                log.warning("gardien: could not deliver %d audit events, will retry: %s", len(batch), exc)
                return False
            if exc.status in (400, 413, 422) and len(batch) > 1:
                for position, event in enumerate(batch):
                    if not await self._deliver([event]):
                        # Keep what is left; the ones already sent are not resent.
                        self._requeue(batch[position:])
                        return True
                return True
            self.stats.rejected += len(batch)
            log.error("gardien: the ledger refused %d audit events: %s %s", len(batch), exc, exc.errors)
            return True
        except Exception:
            self.stats.failed += len(batch)
            log.exception("gardien: unexpected error sending %d audit events; they are lost", len(batch))
            return True
        self.stats.sent += len(receipts)
        return True

    async def aclose(self) -> None:
        """Stop the background task and flush what is queued (bounded by ``shutdown_timeout``)."""
        if self._closed:
            return
        self._closed = True
        task, self._task = self._task, None
        if task is not None and task.get_loop() is not asyncio.get_running_loop():
            task = None
        if self._wake is not None:
            self._wake.set()

        async def drain() -> None:
            if task is not None and not task.done():
                await task  # it flushes once more, then stops since _closed is set
            await self.flush()

        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(drain(), self.shutdown_timeout)
        if self._queue:
            self.stats.failed += len(self._queue)
            log.error("gardien: %d audit events could not be sent before shutdown", len(self._queue))
            self._queue.clear()
