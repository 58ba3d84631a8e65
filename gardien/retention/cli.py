"""`gardien retention …`: run policies (or count what they would do), list defaults and policies."""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from typing import Annotated, Any

import typer

retention = typer.Typer(help="Retention policies: run them, or see what they would do.", no_args_is_help=True)

OrgOption = Annotated[str | None, typer.Option("--org", help="organisation id or slug; default: every organisation")]


def _tools() -> tuple[Any, Any, Any]:
    from gardien import cli as main_cli
    from gardien.datamap.service import DatamapService
    from gardien.retention.jobs import Runner
    from gardien.retention.service import RetentionService

    runtime = main_cli._runtime()
    ledger = main_cli._ledger(runtime)
    return runtime, RetentionService(runtime, ledger), Runner(runtime, ledger, DatamapService(runtime, ledger))


class TerminalProgress:
    """One line per table, rewritten in place on a terminal, every ~2 % otherwise."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self.last: dict[str, int] = {}

    def __call__(self, policy: str, table: str, done: int, planned: int) -> None:
        share = int(100 * done / planned) if planned else 100
        if not self.tty and share - self.last.get(table, -100) < 2:
            return
        self.last[table] = share
        line = f"{policy} · {table}: {done:,}/{planned:,} rows ({share} %)"
        typer.echo(("\r" + line) if self.tty else line, err=True, nl=not self.tty)

    def end(self) -> None:
        if self.tty and self.last:
            typer.echo("", err=True)
        self.last.clear()


def print_run(run: Any, name: str) -> None:
    label = "DRY RUN" if run.dry_run else run.status.upper()
    colour = {"completed": typer.colors.GREEN, "failed": typer.colors.RED}.get(run.status, typer.colors.YELLOW)
    typer.secho(f"{name} [{label}] run {run.id}, cutoff {run.cutoff.isoformat()}", fg=colour, bold=True)
    for table, counts in sorted(run.counts.items()):
        figures = ", ".join(f"{k} {v:,}" for k, v in counts.items())
        typer.echo(f"  {table}: {figures}")
        samples = run.samples.get(table)
        if samples:
            typer.echo(f"    e.g. keys {', '.join(str(tuple(s)) if len(s) > 1 else str(s[0]) for s in samples)}")
    for error in run.errors:
        typer.echo(f"  ! {error}")


@retention.command("run")
def run(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="count and sample what would be done; change nothing")
    ] = False,
    org: OrgOption = None,
    policy: Annotated[
        str | None, typer.Option("--policy", help="one policy (id or name); default: every enabled one")
    ] = None,
    throttle_ms: Annotated[
        int, typer.Option(min=0, max=60_000, help="pause between batches, to leave the host database room")
    ] = 0,
) -> None:
    """Run retention policies now; an interrupted run of a policy resumes where it stopped."""
    from gardien import cli as main_cli
    from gardien.core.errors import Problem

    runtime, service, runner = _tools()
    runner.throttle = throttle_ms / 1000
    progress = TerminalProgress()
    failed = False
    ran = 0
    for org_id in main_cli._org_ids(runtime, org):
        rows: list[Mapping[str, Any]] = service.policy_rows(org_id)
        if policy is not None:
            rows = [r for r in rows if policy in (r["id"], r["name"])]
        else:
            rows = [r for r in rows if r["enabled"]]
        for row in rows:
            ran += 1
            try:
                run_id = runner.run_policy(
                    org_id, row, dry_run=dry_run, trigger="cli", actor=main_cli.CLI_ACTOR, progress=progress
                )
            except Problem as exc:
                progress.end()
                typer.secho(f"{row['name']}: {exc.detail}", fg=typer.colors.RED, err=True)
                failed = True
                continue
            progress.end()
            result = service.get_run(org_id, run_id)
            print_run(result, row["name"])
            failed = failed or result.status == "failed"
    runtime.close()
    if policy is not None and not ran:
        main_cli._fail(f"no policy {policy!r}", 2)
    raise typer.Exit(1 if failed else 0)


@retention.command("defaults")
def defaults() -> None:
    """The default retention periods, with their sources."""
    from gardien.retention.defaults import DEFAULTS

    for item in DEFAULTS:
        typer.secho(f"{item.key}: {item.title} — {item.period} from {item.reference}, {item.action}", bold=True)
        typer.echo(f"  [{KINDS[item.kind]}] {item.source}")


@retention.command("list")
def list_policies(org: OrgOption = None) -> None:
    """The policies of each organisation, with their next scheduled run."""
    from gardien import cli as main_cli

    runtime, service, _ = _tools()
    for org_id in main_cli._org_ids(runtime, org):
        for out in service.list_policies(org_id):
            p = out.policy
            when = out.next_run_at.isoformat() if out.next_run_at else "not scheduled"
            state = "" if p.enabled else " (disabled)"
            typer.echo(f"{org_id} {out.id} {p.name}{state}: {p.action} after {p.period}, next {when}")
    runtime.close()


KINDS = {"law": "legal obligation", "regulator": "regulator's good practice", "choice": "Gardien's choice"}
AGE = re.compile(r"^(\d{1,5})([dmy])$")


def age_period(text: str) -> str:
    """`90d`, `13m`, `2y` → the ISO 8601 period of a policy (`P90D`, `P13M`, `P2Y`)."""
    match = AGE.match(text.strip().lower())
    if match is None or not int(match.group(1)):
        raise typer.BadParameter("an age like 90d, 13m or 2y (days, months, years)", param_hint="--older-than")
    return f"P{int(match.group(1))}{match.group(2).upper()}"


def anonymize(
    older_than: Annotated[str, typer.Option("--older-than", help="rows older than this: 90d, 13m, 2y")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="count and sample; change nothing")] = False,
    org: OrgOption = None,
    map_key: Annotated[str | None, typer.Option("--map", help="one data map; default: every map")] = None,
    batch_size: Annotated[int, typer.Option(min=1, max=50_000, help="rows per host transaction")] = 5_000,
) -> None:
    """Anonymise, in every mapped store, the rows older than an age, with the map's per-field operators.

    Each table with `anonymize` rules and a `dated_by` column gets a policy of its own (created once,
    disabled, named `anonymize <table> after <age>`), so repeated runs never anonymise a row twice
    and every run is recorded like any retention run.
    """
    from gardien import cli as main_cli
    from gardien.core.errors import Problem
    from gardien.retention.schemas import PolicyIn

    period = age_period(older_than)
    runtime, service, runner = _tools()
    progress = TerminalProgress()
    failed = False
    found = 0
    for org_id in main_cli._org_ids(runtime, org):
        for key, qualified, dated_by in runner.anonymisable_tables(org_id, map_key):
            found += 1
            name = f"anonymize {qualified} after {older_than.strip().lower()}"
            existing = {r["name"]: r for r in service.policy_rows(org_id)}
            row = existing.get(name)
            if row is None:
                spec = PolicyIn.model_validate(
                    {
                        "name": name,
                        "target": {"kind": "table", "map": key, "table": qualified},
                        "period": period,
                        "reference": dated_by,
                        "action": "anonymise",
                        "note": "gardien anonymize --older-than " + older_than,
                        "enabled": False,
                        "batch_size": batch_size,
                    }
                )
                created = service.create_policy(org_id, spec, main_cli.CLI_ACTOR)
                row = service.policy_row(org_id, created.id)
            try:
                run_id = runner.run_policy(
                    org_id, row, dry_run=dry_run, trigger="cli", actor=main_cli.CLI_ACTOR, progress=progress
                )
            except Problem as exc:
                progress.end()
                typer.secho(f"{qualified}: {exc.detail}", fg=typer.colors.RED, err=True)
                failed = True
                continue
            progress.end()
            result = service.get_run(org_id, run_id)
            print_run(result, name)
            failed = failed or result.status == "failed"
    runtime.close()
    if not found:
        main_cli._fail("no mapped table declares `anonymize` rules and a `dated_by` column", 2)
    raise typer.Exit(1 if failed else 0)
