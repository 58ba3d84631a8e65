"""The HTTP baselines: Gardien's requests served the way the seed applications do it.

`POST /api/v1/audit/events` is what a web application doing its audit trail the django-auditlog
way pays per request: the JSON body is parsed and validated (with Gardien's own EventIn model, so
validation costs the same), the bearer token is compared, then one INSERT of a django-auditlog-like
row and a COMMIT, nothing hashed, chained or signed.

`POST /api/v1/consent/records` is the seed applications' consent: the body validated with
Gardien's ChoiceIn, then four booleans and a date upserted for the consent id, one statement and a
COMMIT; no event history, no notice version, no proof, no audit trail.

The handlers are plain `def`s, run in the threadpool as blocking database calls should be. The
app is served exactly like `gardien serve`: uvicorn, one process, log level info (access log on),
the same engine settings (SQLite WAL and synchronous, pool size).

Run: GARDIEN_DATABASE_URL=… BENCH_TOKEN=… python -m benchmarks.baseline_server --port N
"""

from __future__ import annotations

import argparse
import hmac
import os
from datetime import UTC, datetime
from typing import Annotated

import orjson
import uvicorn
from fastapi import FastAPI, Header, HTTPException, Response

from benchmarks.baseline import create_table
from benchmarks.workload import CONSENT_PURPOSES, baseline_insert_sql, baseline_row
from gardien.audit.schemas import EventIn
from gardien.consent.schemas import ChoiceIn
from gardien.core.db import make_engine
from gardien.core.settings import Settings


def create_app(settings: Settings, token: str) -> FastAPI:
    engine = make_engine(settings.database_url, sqlite_synchronous=settings.sqlite_synchronous)
    create_table(engine)
    sqlite = engine.dialect.name == "sqlite"
    sql = baseline_insert_sql(engine.dialect.paramstyle) + " RETURNING id"
    expected = f"Bearer {token}".encode()
    app = FastAPI(title="django-auditlog-like baseline")

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
        return {"status": "ok"}

    @app.post("/api/v1/audit/events", status_code=201)
    def append(event: EventIn, authorization: Annotated[str | None, Header()] = None) -> Response:
        if authorization is None or not hmac.compare_digest(authorization.encode(), expected):
            raise HTTPException(401, "unknown API key")
        row = baseline_row(event.model_dump(mode="json", exclude_none=True), datetime.now(UTC), sqlite=sqlite)
        with engine.begin() as conn:  # one INSERT, one COMMIT
            new_id = conn.exec_driver_sql(sql, row).scalar_one()
        return Response(orjson.dumps({"id": new_id}), status_code=201, media_type="application/json")

    booleans = ", ".join(f"{purpose} BOOLEAN NOT NULL" for purpose in CONSENT_PURPOSES)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            f"CREATE TABLE IF NOT EXISTS seed_consents (consent_id VARCHAR(36) PRIMARY KEY, {booleans}, "
            "updated_at TIMESTAMP NOT NULL)"
        )
    mark = "?" if engine.dialect.paramstyle == "qmark" else "%s"
    upsert = (
        f"INSERT INTO seed_consents VALUES ({', '.join([mark] * (len(CONSENT_PURPOSES) + 2))}) "
        f"ON CONFLICT (consent_id) DO UPDATE SET "
        + ", ".join(f"{column} = excluded.{column}" for column in (*CONSENT_PURPOSES, "updated_at"))
    )

    @app.post("/api/v1/consent/records", status_code=201)
    def record(choice: ChoiceIn, authorization: Annotated[str | None, Header()] = None) -> Response:
        if authorization is None or not hmac.compare_digest(authorization.encode(), expected):
            raise HTTPException(401, "unknown API key")
        consent_id = str(choice.consent_id)
        flags = [
            purpose == "functional"
            or choice.method == "accept_all"
            or (choice.method != "reject_all" and choice.states.get(purpose) == "granted")
            for purpose in CONSENT_PURPOSES
        ]
        with engine.begin() as conn:  # one upsert, one COMMIT
            conn.exec_driver_sql(upsert, (consent_id, *flags, datetime.now(UTC).replace(tzinfo=None)))
        return Response(orjson.dumps({"consent_id": consent_id}), status_code=201, media_type="application/json")

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    app = create_app(Settings(), os.environ["BENCH_TOKEN"])
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")


if __name__ == "__main__":
    main()
