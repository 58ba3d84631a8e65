"""The ASGI middleware in front of a tiny Starlette host app, recording into a real Gardien server."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gardien.client import AsyncGardienClient, GardienClient
from gardien.client.asgi import GardienAuditMiddleware, RoutePattern, current_request_id
from gardien.core.roles import Role
from tests.conftest import _free_port

ROUTES: list[RoutePattern | str] = [
    "POST /artists",
    "GET /artists/{id}",
    "PATCH /artists/{id}",
    "DELETE /artists/{id}",
    RoutePattern("POST", "/artists/{id}/contracts/{contract_id}/sign", action="contract.sign"),
    "GET /boom",
]


def host_app() -> Starlette:
    """A host application with its own routes; it knows nothing of Gardien."""
    artists: dict[str, dict[str, Any]] = {}

    async def create(request: Request) -> Response:
        body = await request.json()
        artist_id = f"a{len(artists) + 1}"
        artists[artist_id] = {"id": artist_id, **body}
        return JSONResponse(artists[artist_id], status_code=201, headers={"x-seen-id": current_request_id.get() or ""})

    async def show(request: Request) -> Response:
        artist = artists.get(request.path_params["id"])
        return JSONResponse(artist) if artist else JSONResponse({"detail": "no such artist"}, status_code=404)

    async def patch(request: Request) -> Response:
        artists[request.path_params["id"]].update(await request.json())
        return JSONResponse(artists[request.path_params["id"]])

    async def delete(request: Request) -> Response:
        artists.pop(request.path_params["id"])
        return Response(status_code=204)

    async def sign(request: Request) -> Response:
        return JSONResponse({"signed": request.path_params["contract_id"]})

    async def health(request: Request) -> Response:
        return JSONResponse({"ok": True})

    async def boom(request: Request) -> Response:
        raise RuntimeError("the host app failed")

    return Starlette(
        routes=[
            Route("/artists", create, methods=["POST"]),
            Route("/artists/{id}", show, methods=["GET"]),
            Route("/artists/{id}", patch, methods=["PATCH"]),
            Route("/artists/{id}", delete, methods=["DELETE"]),
            Route("/artists/{id}/contracts/{contract_id}/sign", sign, methods=["POST"]),
            Route("/health", health),
            Route("/boom", boom),
        ]
    )


def user_from_header(scope: Any) -> dict[str, Any] | None:
    for name, value in scope["headers"]:
        if name == b"x-user":
            return {"type": "user", "id": value.decode(), "display": "Test user"}
    return None


def serve(app: Any) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False, client=("198.51.100.4", 4321))
    return httpx.AsyncClient(transport=transport, base_url="http://host.test")


def read_events(live_server: str, token: str, module: str) -> list[dict[str, Any]]:
    with GardienClient(live_server, token) as reader:
        return list(reader.events(module=module))


def test_requests_reach_the_ledger(live_server: str, tokens: dict[Role, str]) -> None:
    async def scenario() -> GardienAuditMiddleware:
        async with AsyncGardienClient(live_server, tokens[Role.SERVICE]) as gardien:
            app = GardienAuditMiddleware(host_app(), gardien, ROUTES, actor_resolver=user_from_header, module="hostapp")
            async with serve(app) as http:
                me = {"x-user": "u-7", "user-agent": "host-tests/1.0"}
                created = await http.post("/artists", json={"name": "Les Ogres"}, headers={**me, "x-request-id": "r-1"})
                assert created.status_code == 201
                assert created.headers["x-seen-id"] == "r-1"  # the app sees the request id
                assert (await http.get("/artists/a1", headers=me)).status_code == 200
                assert (await http.patch("/artists/a1", json={"fee": 1500}, headers=me)).status_code == 200
                assert (await http.get("/artists/zz")).status_code == 404
                assert (await http.delete("/artists/a1", headers=me)).status_code == 204
                assert (await http.post("/artists/a1/contracts/c-3/sign", headers=me)).status_code == 200
                assert (await http.get("/boom", headers=me)).status_code == 500
                # Not listed: never recorded.
                assert (await http.get("/health", headers=me)).status_code == 200
                assert (await http.put("/artists/a1", json={}, headers=me)).status_code == 405
            await app.aclose()
        return app

    app = asyncio.run(scenario())
    assert app.stats.sent == 7 and app.stats.dropped == 0 and app.pending == 0

    events = read_events(live_server, tokens[Role.AUDITOR], "hostapp")
    summary = [(e["action"], e["crud"], e["outcome"], e.get("reason"), e.get("target")) for e in events]
    artist = {"type": "artists", "id": "a1"}
    assert summary == [
        ("http.post.artists", "create", "success", None, None),
        ("http.get.artists", "read", "success", None, artist),
        ("http.patch.artists", "update", "success", None, artist),
        ("http.get.artists", "read", "failure", "HTTP 404", {"type": "artists", "id": "zz"}),
        ("http.delete.artists", "delete", "success", None, artist),
        ("contract.sign", "create", "success", None, {"type": "contracts", "id": "c-3"}),
        ("http.get.boom", "read", "failure", "HTTP 500", None),
    ]
    first = events[0]
    assert first["module"] == "hostapp"
    assert first["actor"] == {"type": "user", "id": "u-7", "display": "Test user"}
    assert first["request_id"] == "r-1"
    assert first["source"] == {"ip": "198.51.100.4", "user_agent": "host-tests/1.0"}
    assert first["fields"]["http"]["route"] == "/artists"
    assert first["fields"]["http"]["status"] == 201
    anonymous = events[3]
    assert anonymous["actor"] == {"type": "anonymous", "id": "-"}
    assert anonymous["fields"]["path_params"] == {"id": "zz"}
    assert len(anonymous["request_id"]) == 32  # generated
    assert events[5]["fields"]["path_params"] == {"id": "a1", "contract_id": "c-3"}
    assert len({e["request_id"] for e in events}) == len(events)


def test_overflow_drops_and_never_delays(caplog: pytest.LogCaptureFixture) -> None:
    unreachable = f"http://127.0.0.1:{_free_port()}"

    async def scenario() -> GardienAuditMiddleware:
        async with AsyncGardienClient(unreachable, "gdn_x", retries=0) as gardien:
            app = GardienAuditMiddleware(
                host_app(), gardien, ["GET /artists/{id}"], queue_size=2, flush_interval=60, shutdown_timeout=2
            )
            async with serve(app) as http:
                for _ in range(5):
                    assert (await http.get("/artists/a1")).status_code == 404
            assert app.pending == 2 and app.stats.dropped == 3
            await app.aclose()
        return app

    with caplog.at_level(logging.WARNING, logger="gardien.client.asgi"):
        app = asyncio.run(scenario())
    assert app.stats.recorded == 2 and app.stats.failed == 2 and app.stats.sent == 0
    assert app.pending == 0
    assert any("queue full" in r.getMessage() for r in caplog.records)
    assert any("could not be sent before shutdown" in r.getMessage() for r in caplog.records)


async def run_lifespan(app: Any, during: Callable[[], Awaitable[None]]) -> None:
    """Drive the ASGI lifespan protocol as a server does, around `during`."""
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    task = asyncio.create_task(
        app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, inbox.get, outbox.put)
    )
    await inbox.put({"type": "lifespan.startup"})
    assert (await outbox.get())["type"] == "lifespan.startup.complete"
    await during()
    await inbox.put({"type": "lifespan.shutdown"})
    assert (await outbox.get())["type"] == "lifespan.shutdown.complete"
    await task


def test_lifespan_shutdown_flushes(live_server: str, tokens: dict[Role, str]) -> None:
    async def scenario() -> GardienAuditMiddleware:
        async with AsyncGardienClient(live_server, tokens[Role.SERVICE]) as gardien:
            # A flush interval far beyond the test: only the shutdown can send the events.
            app = GardienAuditMiddleware(host_app(), gardien, ["POST /artists"], module="lifespan", flush_interval=600)

            async def traffic() -> None:
                async with serve(app) as http:
                    for name in ("A", "B", "C"):
                        await http.post("/artists", json={"name": name})
                assert app.pending == 3

            await run_lifespan(app, traffic)
        return app

    app = asyncio.run(scenario())
    assert app.stats.sent == 3 and app.pending == 0
    assert len(read_events(live_server, tokens[Role.AUDITOR], "lifespan")) == 3


def test_batches_flush_in_the_background(live_server: str, tokens: dict[Role, str]) -> None:
    async def scenario() -> GardienAuditMiddleware:
        async with AsyncGardienClient(live_server, tokens[Role.SERVICE]) as gardien:
            app = GardienAuditMiddleware(
                host_app(), gardien, ["GET /health"], module="background", batch_size=5, flush_interval=0.05
            )
            async with serve(app) as http:
                await asyncio.gather(*(http.get("/health") for _ in range(12)))
                for _ in range(200):
                    if app.stats.sent == 12:
                        break
                    await asyncio.sleep(0.05)
            assert app.stats.sent == 12  # without any explicit flush
            await app.aclose()
        return app

    asyncio.run(scenario())
    assert len(read_events(live_server, tokens[Role.AUDITOR], "background")) == 12


def test_invalid_events_do_not_sink_their_batch(live_server: str, tokens: dict[Role, str]) -> None:
    def actor(scope: Any) -> dict[str, Any]:
        # The host returns a bad actor for one request: that event alone is refused.
        bad = scope["path"].endswith("/bad")
        return {"type": "user with spaces" if bad else "user", "id": "u-1"}

    async def scenario() -> GardienAuditMiddleware:
        async with AsyncGardienClient(live_server, tokens[Role.SERVICE]) as gardien:
            app = GardienAuditMiddleware(
                host_app(), gardien, ["GET /artists/{id}"], actor, "batching", flush_interval=60
            )
            async with serve(app) as http:
                for artist in ("x", "bad", "y"):
                    await http.get(f"/artists/{artist}")
            await app.aclose()
        return app

    app = asyncio.run(scenario())
    assert (app.stats.sent, app.stats.rejected) == (2, 1)
    events = read_events(live_server, tokens[Role.AUDITOR], "batching")
    assert [e["target"]["id"] for e in events] == ["x", "y"]


def test_route_patterns() -> None:
    route = RoutePattern.parse("PATCH /orgs/{org}/artists/{id}")
    assert route.match("PATCH", "/orgs/o1/artists/7") == {"org": "o1", "id": "7"}
    assert route.match("PATCH", "/orgs/o1/artists/7/") == {"org": "o1", "id": "7"}
    assert route.match("GET", "/orgs/o1/artists/7") is None
    assert route.match("PATCH", "/orgs/o1/artists/7/extra") is None
    assert route.action_for("PATCH") == "http.patch.orgs.artists"
    assert route.target_for({"org": "o1", "id": "7"}) == {"type": "artists", "id": "7"}
    assert route.crud_for("PATCH") == "update"

    anything = RoutePattern.parse("/files/{path:path}")
    assert anything.method == "*"
    assert anything.match("PUT", "/files/a/b.txt") == {"path": "a/b.txt"}
    assert anything.action_for("PUT") == "http.put.files"
    assert anything.crud_for("PURGE") == "execute"
    assert RoutePattern.parse("GET /").action_for("GET") == "http.get"
    assert RoutePattern.parse("GET /items").match("HEAD", "/items") == {}
    with pytest.raises(ValueError):
        RoutePattern.parse("GET items")
