"""A fast lane for the few hot JSON endpoints (ingest an event, decide on SCA, record a consent).

FastAPI's request machinery (dependency resolution, body parsing with the standard json module,
response validation, the exception middleware stack) costs more per request than the work these
endpoints do. This pure ASGI middleware serves their success path alone: a cached API key whose
role may call the route, a JSON body that the route's handler parses and validates in one pass
with pydantic-core. Anything else — a missing or unknown key, a forbidden role, a body the handler
declines — is replayed, body included, into the regular FastAPI route, so errors, the OpenAPI
description and the access checks keep one implementation.

A handler declines (returns None) only before it changes anything; once it has started work it
answers or raises a Problem, which is rendered here as problem+json.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gardien.core.errors import Problem, problem_response
from gardien.core.roles import Role
from gardien.core.runtime import Runtime
from gardien.core.service import Principal, Unauthorized, authenticate

# The answer of a handler: the status and the JSON body, or None to hand the request to FastAPI.
Answer = tuple[int, bytes] | None
# A handler gets the caller, the body and the ASGI scope (for the client's address and headers).
Handler = Callable[[Principal, bytes, Scope], Awaitable[Answer]]

# pydantic's JSON parser and the standard json module may disagree about lone surrogates; such a
# body takes the regular route, which has the checks for them.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89abcdefABCDEF]")
_JSON_HEADERS = [(b"content-type", b"application/json")]


@dataclass
class FastRoute:
    """One POST endpoint served by the lane."""

    path: str
    roles: frozenset[Role]
    handle: Handler
    # How many requests the lane answered itself and how many it replayed into FastAPI.
    counters: dict[str, int] = field(default_factory=lambda: {"served": 0, "replayed": 0})


In = TypeVar("In", bound=BaseModel)


def model_route(
    path: str,
    roles: frozenset[Role],
    model: type[In],
    status: int,
    run: Callable[[Principal, In, Scope], Awaitable[BaseModel]],
) -> FastRoute:
    """A route whose body is `model` and whose answer is the model `run` returns, with `status`.

    A body that does not validate is declined, so that the regular route renders its 422.
    """

    async def handle(principal: Principal, body: bytes, scope: Scope) -> Answer:
        try:
            parsed = model.model_validate_json(body)
        except ValidationError:
            return None
        out = await run(principal, parsed, scope)
        return status, out.model_dump_json().encode()

    return FastRoute(path, roles, handle)


class FastLane:
    """Serves its routes' success path; hands everything else to `app` (the regular application).

    `limit` is the application's body-size limit: a larger body is handed over unread, so that
    the regular application refuses it with its 413.
    """

    def __init__(self, app: ASGIApp, runtime: Runtime, routes: Iterable[FastRoute], limit: int) -> None:
        self.app = app
        self.runtime = runtime
        self.routes = {route.path: route for route in routes}
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = self.routes.get(scope.get("path", "")) if scope["type"] == "http" else None
        if route is None or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        token = None
        json_body = False
        for name, value in scope["headers"]:
            if name == b"authorization":
                scheme, _, credentials = value.decode("latin-1").partition(" ")
                token = credentials.strip() if scheme.lower() == "bearer" else None
            elif name == b"content-type":
                json_body = value.split(b";")[0].strip().lower() == b"application/json"
            elif name == b"content-length" and value.isdigit() and int(value) > self.limit:
                route.counters["replayed"] += 1
                await self.app(scope, receive, send)
                return
        read = await _read_body(receive, self.limit)
        if read is None:
            return  # the client went away
        body, complete = read
        principal = self._admit(route, token, json_body, body) if complete else None
        answer: Answer = None
        if principal is not None:
            try:
                answer = await route.handle(principal, body, scope)
            except Problem as problem:
                route.counters["served"] += 1
                await problem_response(Request(scope), problem)(scope, receive, send)
                return
        if answer is None:
            route.counters["replayed"] += 1
            await self.app(scope, _replay(body, complete, receive), send)
            return
        route.counters["served"] += 1
        status, payload = answer
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [*_JSON_HEADERS, (b"content-length", b"%d" % len(payload))],
            }
        )
        await send({"type": "http.response.body", "body": payload})

    def _admit(self, route: FastRoute, token: str | None, json_body: bool, body: bytes) -> Principal | None:
        """The caller when the lane may serve this request, else None."""
        if not token or not json_body or _SURROGATE_ESCAPE.search(body):
            return None
        try:
            principal = authenticate(self.runtime, token)
        except Unauthorized:
            return None
        return principal if principal.role in route.roles else None


async def _read_body(receive: Receive, limit: int) -> tuple[bytes, bool] | None:
    """The body and True; or, past `limit` bytes, what was read so far and False; None on disconnect."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), True
        if size > limit:
            return b"".join(chunks), False


def _replay(body: bytes, complete: bool, receive: Receive) -> Receive:
    """A receive that hands over what the lane read, then the rest of the request."""
    delivered = False

    async def replay() -> Message:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": not complete}
        return await receive()

    return replay
