"""The SQLAlchemy hook on a host application's own models (SQLite in tmp_path), recording into a
real Gardien server."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextvars import ContextVar
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import ForeignKey, Numeric, String, create_engine, update
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gardien.client import AsyncGardienClient, GardienClient
from gardien.client.asgi import GardienAuditMiddleware
from gardien.client.sqlalchemy import AuditHook, install_audit_hook
from gardien.core.roles import Role
from tests.conftest import _free_port


class Base(DeclarativeBase):
    pass


class Artist(Base):
    __tablename__ = "artists"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    fee: Mapped[Decimal | None] = mapped_column(Numeric(10, 2), default=None)
    iban: Mapped[str | None] = mapped_column(String(34), info={"gardien_secret": True})


class Contract(Base):
    __tablename__ = "contracts"

    id: Mapped[int] = mapped_column(primary_key=True)
    artist_id: Mapped[int] = mapped_column(ForeignKey("artists.id"))
    account: Mapped[str] = mapped_column(String(34))
    status: Mapped[str] = mapped_column(String(20), default="draft")


class Venue(Base):
    """Not in the hook's ``models``: never recorded."""

    __tablename__ = "venues"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))


current_user: ContextVar[str] = ContextVar("current_user", default="system")


@pytest.fixture
def sessions(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    engine = create_engine(f"sqlite:///{tmp_path / 'host.db'}")
    Base.metadata.create_all(engine)
    yield sessionmaker(engine)
    engine.dispose()


@pytest.fixture
def gardien(live_server: str, tokens: dict[Role, str]) -> Iterator[GardienClient]:
    with GardienClient(live_server, tokens[Role.SERVICE]) as client:
        yield client


@pytest.fixture
def hook(sessions: sessionmaker[Session], gardien: GardienClient) -> Iterator[AuditHook]:
    installed = install_audit_hook(
        sessions,
        gardien,
        module="hostapp",
        actor_getter=lambda: {"type": "user", "id": current_user.get()},
        secret_fields={Contract: {"account"}},
        models=[Artist, Contract],
    )
    yield installed
    installed.remove()


@pytest.fixture
def ledger(live_server: str, tokens: dict[Role, str]) -> Iterator[GardienClient]:
    with GardienClient(live_server, tokens[Role.AUDITOR]) as reader:
        yield reader


def recorded(ledger: GardienClient) -> list[dict[str, Any]]:
    return list(ledger.events(module="hostapp"))


def test_create_update_delete(sessions: sessionmaker[Session], hook: AuditHook, ledger: GardienClient) -> None:
    current_user.set("u-1")
    with sessions.begin() as session:
        artist = Artist(name="Les Ogres", fee=Decimal("1200.00"), iban="FR7630006000011234567890189")
        session.add(artist)
    with sessions.begin() as session:
        artist = session.get_one(Artist, 1)
        artist.fee = Decimal("1500.00")
        artist.iban = "DE89370400440532013000"
        artist.name = "Les Ogres"  # the value it had: not a change
    with sessions.begin() as session:
        session.delete(session.get_one(Artist, 1))

    events = recorded(ledger)
    assert [(e["action"], e["crud"]) for e in events] == [
        ("artists.create", "create"),
        ("artists.update", "update"),
        ("artists.delete", "delete"),
    ]
    assert all(e["target"] == {"type": "artists", "id": "1"} for e in events)
    assert all(e["actor"] == {"type": "user", "id": "u-1"} for e in events)
    assert all(e["outcome"] == "success" and "request_id" not in e for e in events)
    create, change, delete = (e["changes"] for e in events)
    assert create == {"after": {"id": 1, "name": "Les Ogres", "fee": "1200.00", "iban": "***"}}
    assert change == {"before": {"fee": "1200.00", "iban": "***"}, "after": {"fee": "1500.00", "iban": "***"}}
    assert delete == {"before": {"id": 1, "name": "Les Ogres", "fee": "1500.00", "iban": "***"}}
    assert hook.stats.sent == 3 and hook.stats.failed == 0


def test_secret_fields_by_class_and_unloaded_old_values(
    sessions: sessionmaker[Session], hook: AuditHook, ledger: GardienClient
) -> None:
    with sessions() as session:
        artist = Artist(name="Bonobo", iban=None)
        session.add(artist)
        session.flush()
        contract = Contract(artist_id=artist.id, account="GB29NWBK60161331926819")
        session.add(contract)
        session.commit()  # expires everything
        # Changed without being loaded first: the old value comes from the database.
        contract.status = "signed"
        contract.account = "GB94BARC10201530093459"
        session.commit()

    events = recorded(ledger)
    assert [e["action"] for e in events] == ["artists.create", "contracts.create", "contracts.update"]
    # fee was never given and has no default: the INSERT left it NULL without SQLAlchemy knowing it.
    assert events[0]["changes"]["after"] == {"id": 1, "name": "Bonobo", "iban": "***"}
    assert events[1]["changes"]["after"] == {"id": 1, "artist_id": 1, "account": "***", "status": "draft"}
    assert events[2]["target"] == {"type": "contracts", "id": "1"}
    assert events[2]["changes"] == {
        "before": {"account": "***", "status": "draft"},
        "after": {"account": "***", "status": "signed"},
    }


def test_rollback_records_nothing(sessions: sessionmaker[Session], hook: AuditHook, ledger: GardienClient) -> None:
    with sessions() as session:
        session.add(Artist(name="Never"))
        session.flush()  # the INSERT ran, but the transaction will not commit
        session.rollback()
    with pytest.raises(RuntimeError), sessions.begin() as session:
        session.add(Artist(name="Never either"))
        session.flush()
        raise RuntimeError("the host's business logic fails")
    with sessions() as session:
        session.add(Artist(name="Closed without commit"))
        session.flush()
    assert recorded(ledger) == []
    assert hook.stats.discarded == 3 and hook.stats.sent == 0

    # The hook still works afterwards, and only for what committed.
    with sessions.begin() as session:
        session.add(Artist(name="Committed"))
    assert [e["changes"]["after"]["name"] for e in recorded(ledger)] == ["Committed"]


def test_savepoint_rollback_discards_only_its_events(
    sessions: sessionmaker[Session], hook: AuditHook, ledger: GardienClient
) -> None:
    with sessions.begin() as session:
        session.add(Artist(name="Outer"))
        with session.begin_nested():
            session.add(Artist(name="Kept savepoint"))
        savepoint = session.begin_nested()
        session.add(Artist(name="Rolled back savepoint"))
        session.flush()
        savepoint.rollback()
        session.add(Artist(name="After"))
    names = [e["changes"]["after"]["name"] for e in recorded(ledger)]
    assert names == ["Outer", "Kept savepoint", "After"]
    assert hook.stats.discarded == 1


def test_unaudited_models_and_bulk_statements_are_not_recorded(
    sessions: sessionmaker[Session], hook: AuditHook, ledger: GardienClient
) -> None:
    with sessions.begin() as session:
        session.add(Venue(name="Olympia"))
        session.add(Artist(name="Listed"))
    with sessions.begin() as session:
        session.execute(update(Artist).values(fee=1))  # documented: bypasses the unit of work
    assert [e["action"] for e in recorded(ledger)] == ["artists.create"]


def test_send_failure_after_commit(sessions: sessionmaker[Session], caplog: pytest.LogCaptureFixture) -> None:
    with GardienClient(f"http://127.0.0.1:{_free_port()}", "gdn_x", retries=0) as unreachable:
        logged = install_audit_hook(sessions, unreachable, models=[Artist])
        strict = None
        try:
            with sessions.begin() as session:
                session.add(Artist(name="Saved anyway"))
            assert logged.stats.failed == 1
            assert any("could not be sent" in r.getMessage() for r in caplog.records)
            logged.remove()

            strict = install_audit_hook(sessions, unreachable, models=[Artist], raise_errors=True)
            with pytest.raises(Exception, match="No answer"), sessions.begin() as session:
                session.add(Artist(name="Also saved"))
        finally:
            logged.remove()
            if strict is not None:
                strict.remove()
    with sessions() as session:
        assert session.query(Artist).count() == 2  # the host's commits are never undone


def test_request_id_shared_with_the_middleware(
    sessions: sessionmaker[Session], hook: AuditHook, live_server: str, tokens: dict[Role, str], ledger: GardienClient
) -> None:
    def create(request: Request) -> Response:  # sync: Starlette runs it in a thread, context copied
        with sessions.begin() as session:
            session.add(Artist(name=request.query_params["name"]))
        return JSONResponse({}, status_code=201)

    host = Starlette(routes=[Route("/artists", create, methods=["POST"])])

    async def scenario() -> None:
        async with AsyncGardienClient(live_server, tokens[Role.SERVICE]) as client:
            app = GardienAuditMiddleware(host, client, ["POST /artists"], module="hostapp")
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://host.test") as http:
                response = await http.post("/artists?name=Moon", headers={"x-request-id": "req-moon"})
                assert response.status_code == 201
            await app.aclose()

    asyncio.run(scenario())
    events = recorded(ledger)
    assert sorted(e["action"] for e in events) == ["artists.create", "http.post.artists"]
    assert {e["request_id"] for e in events} == {"req-moon"}
