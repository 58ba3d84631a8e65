"""The FastAPI application: wires the capabilities' routers onto one runtime."""

from __future__ import annotations

import gc
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.telemetry import TelemetryConfig
from fastapi_offline import FastAPIOffline
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gardien import __version__
from gardien.audit.api import router as audit_router
from gardien.audit.fastpath import ingest_route
from gardien.audit.service import Ledger
from gardien.consent.api import record_route
from gardien.consent.api import router as consent_router
from gardien.consent.banner import router as banner_router
from gardien.consent.service import ConsentService
from gardien.core.api import router as core_router
from gardien.core.errors import PROBLEM_BASE, PROBLEM_JSON, install_error_handlers
from gardien.core.fastlane import FastLane
from gardien.core.runtime import Runtime
from gardien.core.settings import Settings
from gardien.datamap.api import router as datamap_router
from gardien.datamap.service import DatamapService
from gardien.privacy.api import router as privacy_router
from gardien.privacy.service import PrivacyService
from gardien.psd2.api import decide_route
from gardien.psd2.api import router as psd2_router
from gardien.psd2.service import ScaAdvisor
from gardien.registers.api import public_router as registers_public_router
from gardien.registers.api import router as registers_router
from gardien.registers.evidence import Evidence
from gardien.registers.notices import NoticeService
from gardien.registers.service import RegistersService
from gardien.registers.sources import RetentionReader, find_retention
from gardien.retention.api import router as retention_router
from gardien.retention.quotas import QuotaService
from gardien.retention.service import RetentionService
from gardien.rights.api import router as rights_router
from gardien.rights.execution import DatamapExecutor
from gardien.rights.packages import PackageStore
from gardien.rights.service import RightsService
from gardien.web.console.app import create_console
from gardien.web.console.base import Services as ConsoleServices
from gardien.web.privacy_center import router as privacy_center_router

DESCRIPTION = """Self-hosted GDPR compliance engine.

Authenticate with an API key: `Authorization: Bearer gdn_…`. Errors are RFC 9457
`application/problem+json`. The ledger's formats are specified in `docs/ledger-format.md`.
"""


class BodySizeLimit:
    """Answer 413 before reading a body larger than the limit, declared or streamed."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > self.limit:
                    await self._refuse(scope, send)
                    return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise _BodyTooLarge(self.limit)
            return message

        try:
            await self.app(scope, counting_receive, send)
        except _BodyTooLarge:
            await self._refuse(scope, send)

    async def _refuse(self, scope: Scope, send: Send) -> None:
        body = (
            b'{"type":"' + PROBLEM_BASE.encode() + b'too-large","title":"Payload too large",'
            b'"status":413,"detail":"the request body exceeds '
            + str(self.limit).encode()
            + b' bytes","instance":"'
            + scope.get("path", "").encode("utf-8", "replace").replace(b'"', b"")
            + b'"}'
        )
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", PROBLEM_JSON.encode()),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class _BodyTooLarge(StarletteHTTPException):
    # An HTTPException, because FastAPI turns any other exception raised while it reads the body
    # into a 400; this one it re-raises, and the error handlers render it as a 413 problem.
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body exceeds {limit} bytes")


# FastAPI's native OpenTelemetry, switched off: every signal disabled, so `enabled()` is false at
# its first test and the request goes straight to the application.
NO_TELEMETRY: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False, "operation_spans": False}


def create_app(settings: Settings | None = None, runtime: Runtime | None = None, *, freeze_gc: bool = False) -> FastAPI:
    """Build the app. Pass a runtime to share one with tests or an embedding program.

    `freeze_gc` is for a server process that runs this one app until it exits (`gardien serve`):
    once started, everything allocated so far (modules, classes, compiled statements, the app)
    moves out of the garbage collector's sight. Otherwise each full collection walks those
    objects again, a pause of 15 to 170 ms seen under load that stalls every request in flight.
    Such a process also shortens the interpreter's switch interval (`gil_switch_ms`): the writer
    thread gives up the GIL at each database round trip, and while the event loop is busy parsing
    requests it would otherwise wait up to 5 ms for it after every one of them.
    """
    own_runtime = runtime is None
    runtime = runtime or Runtime.start(settings)
    ledger = Ledger(runtime)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        ledger.start()
        if freeze_gc:
            gc.collect()
            gc.freeze()
            sys.setswitchinterval(runtime.settings.gil_switch_ms / 1000)
        try:
            yield
        finally:
            executor.close()
            ledger.stop()
            datamaps.close()
            if own_runtime:
                runtime.close()

    # Swagger UI and ReDoc from the package's own copies, not a CDN: self-hosted installs are
    # often offline, and a compliance tool should not make its users' browsers call third parties.
    app = FastAPIOffline(
        title="Gardien",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        telemetry=None if runtime.settings.opentelemetry else NO_TELEMETRY,
    )
    app.state.runtime = runtime
    app.state.ledger = ledger
    sca = app.state.sca = ScaAdvisor(runtime, ledger)
    consent = app.state.consent = ConsentService(runtime, ledger)
    rights = app.state.rights = RightsService(runtime, ledger)
    datamaps = app.state.datamaps = DatamapService(runtime, ledger)
    packages = app.state.packages = PackageStore(runtime, ledger)
    # Requests of an organisation with a data map run over it once the identity is verified.
    executor = rights.executor = DatamapExecutor(rights, datamaps, packages)
    app.state.privacy = PrivacyService(runtime, ledger)
    registers = app.state.registers = RegistersService(runtime, ledger)
    retention = app.state.retention = RetentionService(runtime, ledger)
    app.state.quotas = QuotaService(runtime, ledger)
    install_error_handlers(app)
    app.include_router(core_router)
    app.include_router(audit_router)
    app.include_router(psd2_router)
    app.include_router(consent_router)
    app.include_router(banner_router)
    app.include_router(rights_router)
    app.include_router(datamap_router)
    app.include_router(privacy_router)
    app.include_router(registers_router)
    app.include_router(retention_router)
    app.include_router(registers_public_router)
    # The generated documents read every capability's figures: wired once all of them exist.
    app.state.retention_facts = RetentionReader(retention)
    notices = app.state.notices = NoticeService(registers, lambda site_key: consent.site_by_key(site_key).org_id)
    evidence = app.state.evidence = Evidence(
        registers,
        notices,
        consent,
        rights,
        retention=lambda: find_retention(getattr(app.state, "retention_facts", None)),
    )
    app.mount(
        "/console",
        create_console(ConsoleServices(runtime, ledger, rights, registers, consent, retention, notices, evidence)),
    )
    app.include_router(privacy_center_router)

    @app.get("/healthz", tags=["operations"], summary="Liveness and database reachability")
    def healthz() -> dict[str, Any]:
        with runtime.engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
        return {"status": "ok", "version": __version__}

    app.add_middleware(BodySizeLimit, limit=runtime.settings.max_body_bytes)
    fast_routes = [ingest_route(ledger), decide_route(sca), record_route(consent)]
    app.state.fast_routes = {route.path: route for route in fast_routes}
    _put_in_front(app, lambda stack: FastLane(stack, runtime, fast_routes, runtime.settings.max_body_bytes))
    return app


def create_served_app() -> FastAPI:
    """The app as `gardien serve` runs it in each worker process (uvicorn's factory)."""
    return create_app(freeze_gc=True)


def _put_in_front(app: FastAPI, wrap: Callable[[ASGIApp], ASGIApp]) -> None:
    """Wrap the application's whole middleware stack, error and telemetry middlewares included.

    The fast lane goes there, so that the hot endpoints' success path skips that stack; what the
    lane does not serve it hands to the stack, which renders errors as usual.
    """
    build = app.build_middleware_stack

    def build_with_front() -> ASGIApp:
        return wrap(build())

    app.build_middleware_stack = build_with_front  # type: ignore[method-assign]
