"""The fast-lane handler of ``POST /api/v1/audit/events`` (see gardien.core.fastlane)."""

from __future__ import annotations

import orjson
from pydantic import ValidationError
from starlette.types import Scope

from gardien.audit.schemas import EventIn
from gardien.audit.service import Ledger
from gardien.core.clock import rfc3339
from gardien.core.errors import Problem
from gardien.core.fastlane import Answer, FastRoute
from gardien.core.roles import LEDGER_WRITERS
from gardien.core.service import Principal

PATH = "/api/v1/audit/events"


def ingest_route(ledger: Ledger) -> FastRoute:
    async def ingest(principal: Principal, body: bytes, _scope: Scope) -> Answer:
        try:
            prepared = ledger.prepare(EventIn.model_validate_json(body))
        except (ValidationError, Problem, ValueError):
            return None  # the regular route renders the error
        sealed = (await ledger.append_async(principal.org_id, [prepared]))[0]
        payload = {
            "id": sealed.id,
            "seq": sealed.seq,
            "recorded_at": rfc3339(sealed.recorded_at),
            "leaf_hash": sealed.leaf_hash.hex(),
        }
        return 201, orjson.dumps(payload)

    return FastRoute(PATH, LEDGER_WRITERS, ingest)
