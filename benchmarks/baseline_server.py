"""The HTTP baseline: the same request as Gardien's single append, with one plain INSERT + COMMIT.

This is what a web application doing its audit trail the django-auditlog way pays per request:
the JSON body is parsed and validated (with Gardien's own EventIn model, so validation costs the
same), the bearer token is compared, then one INSERT of a django-auditlog-like row and a COMMIT,
nothing hashed, chained or signed. The handler is a plain `def`, run in the threadpool as a
blocking database call should be. It is served exactly like `gardien serve`: uvicorn, one process,
log level info (access log on), the same engine settings (SQLite WAL and synchronous, pool size).

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
from benchmarks.workload import baseline_insert_sql, baseline_row
from gardien.audit.schemas import EventIn
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
