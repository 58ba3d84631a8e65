"""Retention: anonymise a million rows with nested JSON, against the row-by-row Python loop.

The host database (its own SQLite file or PostgreSQL database) has one table, `events`: an integer
key, a `created` time, an `ip` column and a JSON `context` column
(`{"ip", "ua", "card": {"user_id", "brand"}, "items": [{"sku", "qty"}]}`); one `ip` in ten is IPv6.
`--retention-rows` rows (default 1,000,000; quick 100,000) are older than 90 days, and a tenth as
many recent rows, which the run must leave alone, sit beside them.

`retention_anonymise_s`: `gardien anonymize --older-than 90d` as the CLI runs it (Runner.run_policy
on a policy made from the data map's rules: `ip` and `context.ip` truncated, `context.card.user_id`
replaced by its HMAC pseudonym), keyset batches of 5,000 rows, one UPDATE per batch. Target ≤ 60 s.
`retention_dry_run_s`: its dry run (COUNT with the same conditions, samples). Target ≤ 5 s.

Baseline, same run, same operators: the cron script a team writes today, a Python loop that
SELECTs the old rows, transforms each and issues one UPDATE per row, committing at the end. It runs
on a sample (`--retention-baseline-rows`, default 50,000) of identical rows in a second table and is
extrapolated linearly to the full row count; the figure's context says so.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

from benchmarks.common import (
    Baseline,
    Config,
    EngineEnv,
    Reporter,
    Target,
    guarded,
    log,
    new_org,
    open_runtime,
    rounded,
)

ANONYMISE = Target("<=", 60)
DRY_RUN = Target("<=", 5)
ACTOR = {"type": "service", "id": "bench"}
MAP = """
dataset:
  - fides_key: app
    collections:
      - name: events
        fields:
          - {name: id, data_categories: [user.unique_id], fides_meta: {primary_key: true, identity: event_id}}
          - {name: created, data_categories: [system.operations]}
          - {name: ip, data_categories: [user.device.ip_address]}
          - {name: context, data_categories: [user.device]}
gardien:
  stores:
    app: {url: "HOST_URL"}
  collections:
    app.events:
      dated_by: created
      fields:
        ip: {anonymize: {operator: truncate_ip}}
        context:
          anonymize_paths:
            ip: {operator: truncate_ip}
            card.user_id: {operator: hmac, params: {domain: card.user_id}}
"""
RULES: dict[str, dict[str, Any]] = {
    "ip": {"operator": "truncate_ip"},
    "context.ip": {"operator": "truncate_ip"},
    "context.card.user_id": {"operator": "hmac", "params": {"domain": "card.user_id"}},
}


def _table(metadata: Any, name: str) -> Any:
    from sqlalchemy import JSON, Column, DateTime, Integer, String, Table

    return Table(
        name,
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=False),
        Column("created", DateTime, nullable=False),
        Column("ip", String(45)),
        Column("context", JSON),
    )


def _rows(start: int, stop: int, now: datetime, due: int) -> list[dict[str, Any]]:
    rows = []
    for i in range(start, stop):
        days = 100 + i % 900 if i < due else i % 80  # the first `due` rows are older than 90 days
        rows.append(
            {
                "id": i,
                "created": now - timedelta(days=days, seconds=i % 86_400),
                "ip": f"198.51.{i % 256}.{(i * 7) % 256}" if i % 10 else f"2001:db8:{i % 65536:x}::{i % 97 + 1:x}",
                "context": {
                    "ip": f"203.0.{(i * 3) % 256}.{i % 256}",
                    "ua": "Mozilla/5.0 (X11; Linux x86_64)",
                    "card": {"user_id": f"u-{i}", "brand": "visa"},
                    "items": [{"sku": f"sku-{i % 1000}", "qty": 1 + i % 3}],
                },
            }
        )
    return rows


def generate(engine: Any, table: Any, due: int, now: datetime) -> None:
    """`due` rows older than 90 days, and a tenth as many recent ones that the run must leave alone."""
    from sqlalchemy import insert

    table.metadata.create_all(engine, tables=[table])
    block = 20_000
    count = due + due // 10
    for start in range(0, count, block):
        with engine.begin() as conn:
            conn.execute(insert(table), _rows(start, min(start + block, count), now, due))
        if start and start % 200_000 == 0:
            log(f"retention: {start:,} rows written")


def row_by_row(engine: Any, table: Any, cutoff: datetime, context: Any) -> tuple[int, float]:
    """The hand-written cron script: one UPDATE per row, in one transaction. (rows, seconds)"""
    from sqlalchemy import select, update

    from gardien.privacy.records import RecordPolicy

    policy = RecordPolicy(RULES)
    started = time.perf_counter()
    count = 0
    with engine.begin() as conn:
        rows = [dict(r._mapping) for r in conn.execute(select(table).where(table.c.created < cutoff))]
        for row in rows:
            new = policy.apply(row, context)
            conn.execute(
                update(table)
                .where(table.c.id == row["id"])
                .values(
                    ip=new["ip"],
                    context=new["context"],
                )
            )
            count += 1
    return count, time.perf_counter() - started


def run(env: EngineEnv, cfg: Config, reporter: Reporter, rows: int, baseline_rows: int) -> None:
    with guarded(reporter, "retention_anonymise_s", env.engine):
        _run(env, cfg, reporter, rows, baseline_rows)


def _run(env: EngineEnv, cfg: Config, reporter: Reporter, rows: int, baseline_rows: int) -> None:
    from sqlalchemy import MetaData

    from gardien.audit.service import Ledger
    from gardien.datamap.hosts import open_engine
    from gardien.datamap.service import DatamapService
    from gardien.privacy.operators import OperatorContext
    from gardien.retention.jobs import Runner
    from gardien.retention.schemas import PolicyIn
    from gardien.retention.service import RetentionService

    now = datetime.now(UTC).replace(tzinfo=None)
    with env.database("retention-host") as host, env.database("retention") as scratch:
        host_engine = open_engine(host.url)
        metadata = MetaData()
        events, sample = _table(metadata, "events"), _table(metadata, "events_sample")
        started = time.perf_counter()
        generate(host_engine, events, rows, now)
        generate(host_engine, sample, min(baseline_rows, rows), now)
        log(f"retention: host database of {rows:,} rows in {time.perf_counter() - started:.0f} s")
        runtime = open_runtime(scratch)
        ledger = Ledger(runtime)
        maps = DatamapService(runtime, ledger)
        service = RetentionService(runtime, ledger)
        runner = Runner(runtime, ledger, maps)
        try:
            org = new_org(runtime, "retention")
            maps.register(org, "app", MAP.replace("HOST_URL", host.url), ACTOR)
            policy = service.create_policy(
                org,
                PolicyIn.model_validate(
                    {
                        "name": "anonymize app.events after 90d",
                        "target": {"kind": "table", "map": "app", "table": "app.events"},
                        "period": "P90D",
                        "reference": "created",
                        "action": "anonymise",
                        "enabled": False,
                    }
                ),
                ACTOR,
            )
            row = service.policy_row(org, policy.id)
            t0 = time.perf_counter()
            dry = service.get_run(org, runner.run_policy(org, row, dry_run=True, trigger="cli", actor=ACTOR))
            dry_s = time.perf_counter() - t0
            matched = dry.counts["app.events"]["matched"]
            log(f"{env.engine}: retention dry run {dry_s:.2f} s, {matched:,} rows due")
            t0 = time.perf_counter()
            real = service.get_run(org, runner.run_policy(org, row, dry_run=False, trigger="cli", actor=ACTOR))
            real_s = time.perf_counter() - t0
            done = real.counts["app.events"].get("anonymised", 0)
            log(f"{env.engine}: retention run {real_s:.1f} s, {done:,} rows anonymised, {real.batches} batches")
            if real.status != "completed" or done != matched:
                raise RuntimeError(f"run {real.status}: {done} rows anonymised of {matched}; {real.errors[:3]}")
            context = OperatorContext(keys=runtime.keyring, scope=org)
            base_n, base_s = row_by_row(host_engine, sample, now - timedelta(days=90), context)
            per_row = base_s / max(base_n, 1)
            extrapolated = per_row * matched
            log(
                f"{env.engine}: row-by-row loop {base_n:,} rows in {base_s:.1f} s, {extrapolated:.0f} s for {matched:,}"
            )
            common = {
                "rows": rows + rows // 10,
                "rows_due": matched,
                "batch_size": 5_000,
                "operators": "ip, context.ip: truncate_ip; context.card.user_id: hmac",
                **cfg.as_context(),
            }
            baseline = Baseline(
                f"row-by-row Python loop, one UPDATE per row, measured on {base_n:,} rows and extrapolated "
                f"linearly to {matched:,}",
                extrapolated,
                "s",
            )
            reporter.emit(
                bench="retention_anonymise_s",
                engine=env.engine,
                value=real_s,
                unit="s",
                target=ANONYMISE,
                baseline=baseline,
                n=matched,
                rows_per_s=rounded(matched / real_s, 3),
                baseline_rows_per_s=rounded(base_n / base_s, 3),
                baseline_measured_rows=base_n,
                baseline_measured_s=rounded(base_s, 3),
                batches=real.batches,
                **common,
            )
            reporter.emit(
                bench="retention_dry_run_s",
                engine=env.engine,
                value=dry_s,
                unit="s",
                target=DRY_RUN,
                baseline=baseline,
                n=matched,
                **common,
            )
        finally:
            maps.close()
            host_engine.dispose()
            runtime.close()
