"""A fast lane for the one hot endpoint, ``POST /api/v1/audit/events``.

FastAPI's request machinery (dependency resolution, body parsing with the standard json module,
response validation) costs more per request than sealing the event. This pure ASGI middleware
serves the success path alone: a cached key allowed to write, a JSON body that pydantic parses and
validates in one pass. Anything else — a missing or unknown key, a forbidden role, invalid input,
an event too large — is replayed, body included, into the regular FastAPI route, so errors, the
OpenAPI description and the access checks have one implementation only.
"""

from __future__ import annotations

import re

import orjson
from pydantic import ValidationError
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gardien.audit.schemas import EventIn
from gardien.audit.sealing import PreparedEvent
from gardien.audit.service import Ledger
from gardien.core.clock import rfc3339
from gardien.core.errors import Problem, problem_response
from gardien.core.roles import LEDGER_WRITERS
from gardien.core.service import Unauthorized, authenticate

PATH = "/api/v1/audit/events"
# pydantic's JSON parser and the standard json module may disagree about lone surrogates; such a
# body takes the regular route, which has the checks for them.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89abcdefABCDEF]")


class FastIngest:
    def __init__(self, app: ASGIApp, ledger: Ledger, counters: dict[str, int]) -> None:
        self.app = app
        self.ledger = ledger
        # Shared with the application (app.state.ingest_counters): how many requests each lane took.
        self.counters = counters

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != PATH:
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
        body = await _read_body(receive)
        if body is None:
            return  # the client went away
        prepared = self._accept(token, json_body, body)
        if prepared is None:
            self.counters["replayed"] += 1
            await self.app(scope, _replay(body, receive), send)
            return
        org_id, event = prepared
        try:
            sealed = (await self.ledger.append_async(org_id, [event]))[0]
        except Problem as problem:
            await problem_response(Request(scope), problem)(scope, receive, send)
            return
        self.counters["served"] += 1
        payload = orjson.dumps(
            {
                "id": sealed.id,
                "seq": sealed.seq,
                "recorded_at": rfc3339(sealed.recorded_at),
                "leaf_hash": sealed.leaf_hash.hex(),
            }
        )
        await send(
            {
                "type": "http.response.start",
                "status": 201,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(payload))],
            }
        )
        await send({"type": "http.response.body", "body": payload})

    def _accept(self, token: str | None, json_body: bool, body: bytes) -> tuple[str, PreparedEvent] | None:
        """The organisation and prepared event when the fast lane may serve it, else None."""
        if not token or not json_body or _SURROGATE_ESCAPE.search(body):
            return None
        try:
            principal = authenticate(self.ledger.runtime, token)
        except Unauthorized:
            return None
        if principal.role not in LEDGER_WRITERS:
            return None
        try:
            event = EventIn.model_validate_json(body)
            return principal.org_id, self.ledger.prepare(event)
        except (ValidationError, Problem, ValueError):
            return None


async def _read_body(receive: Receive) -> bytes | None:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    delivered = False

    async def replay() -> Message:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
