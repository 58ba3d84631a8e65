"""The ``gardien`` command line."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any, cast

import typer

from gardien.core.roles import Role
from gardien.core.settings import Settings
from gardien.privacy.cli import redact as redact_command
from gardien.retention.cli import anonymize as anonymize_command
from gardien.retention.cli import retention

app = typer.Typer(help="Gardien, a self-hosted GDPR compliance engine.", no_args_is_help=True)
admin = typer.Typer(help="Organisations, API keys and console users.", no_args_is_help=True)
keys = typer.Typer(help="The keyring: HMAC, signing and encryption keys.", no_args_is_help=True)
audit = typer.Typer(help="The tamper-evident audit ledger.", no_args_is_help=True)
consent = typer.Typer(help="Consent records and notice versions.", no_args_is_help=True)
requests = typer.Typer(help="Data-subject requests and their deadlines.", no_args_is_help=True)
datamap = typer.Typer(help="The map of the host application's databases, and its engine.", no_args_is_help=True)
registers = typer.Typer(help="Registers: processing activities, processors, breaches, DPIAs.", no_args_is_help=True)
app.add_typer(admin, name="admin")
app.add_typer(keys, name="keys")
app.add_typer(audit, name="audit")
app.add_typer(consent, name="consent")
app.add_typer(requests, name="requests")
app.add_typer(datamap, name="datamap")
app.add_typer(registers, name="registers")
app.add_typer(retention, name="retention")

OrgOption = Annotated[
    str | None,
    typer.Option("--org", help="organisation id or slug; default: all (verify) or the only one"),
]


def _runtime() -> Any:
    from gardien.core.keyring import KeyringError
    from gardien.core.runtime import Runtime

    try:
        return Runtime.start(Settings())
    except KeyringError as exc:
        # A keyring of another instance, or one that cannot be read: say so, without a traceback.
        _fail(str(exc))


def _ledger(runtime: Any) -> Any:
    from gardien.audit.service import Ledger
    from gardien.core.keyring import KeyringError

    try:
        return Ledger(runtime)
    except KeyringError as exc:
        _fail(str(exc))


CLI_ACTOR = {"type": "cli", "id": "gardien-cli", "display": "gardien command line"}


def _fail(message: str, code: int = 1) -> None:
    typer.secho(message, fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def _migrate(runtime: Any) -> None:
    from gardien.migrations import upgrade

    upgrade(runtime.engine)


@app.command()
def migrate() -> None:
    """Create or upgrade the database schema."""
    runtime = _runtime()
    _migrate(runtime)
    typer.echo(f"database at {runtime.engine.url.render_as_string(hide_password=True)} is up to date")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="default GARDIEN_HOST")] = None,
    port: Annotated[int | None, typer.Option(help="default GARDIEN_PORT")] = None,
    demo: Annotated[bool, typer.Option(help="migrate, create the demo organisation and print an admin key")] = False,
    workers: Annotated[int, typer.Option(min=0, max=64, help="worker processes; default GARDIEN_WORKERS")] = 0,
    access_log: Annotated[bool, typer.Option(help="log every request (costs a tenth of the ingest rate)")] = False,
) -> None:
    """Serve the API (and /docs) with uvicorn."""
    import uvicorn

    from gardien.app import create_app

    settings = Settings()
    host = host or settings.host
    port = port or settings.port
    workers = workers or settings.workers
    if demo:
        _prepare_demo(host, port)
    if workers > 1:
        # Each worker process builds its own app (and group-commit writer) from the environment.
        uvicorn.run(
            "gardien.app:create_served_app",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level="info",
            access_log=access_log,
        )
        return
    uvicorn.run(create_app(settings, freeze_gc=True), host=host, port=port, log_level="info", access_log=access_log)


DEMO_USER = "dpo@demo.example.org"


def _prepare_demo(host: str, port: int) -> None:
    import secrets

    from gardien.core import service, users
    from gardien.core.errors import Conflict, NotFound

    runtime = _runtime()
    _migrate(runtime)
    with runtime.writes.begin() as session:
        try:
            org = service.get_org(session, "demo")
            created = False
        except NotFound:
            org = service.create_org(session, slug="demo", name="Demo organisation", country="FR")
            created = True
        key, token = service.create_key(session, org_id=org.id, name="make run", role=Role.ADMIN)
        org_id = org.id
    password: str | None = secrets.token_urlsafe(12)
    try:
        with runtime.writes.begin() as session:
            user = users.create_user(
                session, runtime.settings, org_ref=org_id, email=DEMO_USER, role=Role.DPO, password=password or ""
            )
            user_event = users.user_created_event(user, CLI_ACTOR)
    except Conflict:
        password = None
    ledger = _ledger(runtime)
    if created:
        ledger.record(org.id, service.org_created_event(org, CLI_ACTOR))
    ledger.record(key.org_id, service.key_created_event(key, CLI_ACTOR))
    if password is not None:
        ledger.record(org_id, user_event)
    runtime.close()
    base = f"http://{host}:{port}"
    typer.secho("\nGardien is starting.", bold=True)
    typer.echo(f"  organisation : demo ({org_id}){' — created' if created else ''}")
    typer.echo(f"  admin API key: {token}   (shown once; stored hashed)")
    if password is not None:
        typer.echo(f"  dpo user     : {DEMO_USER} / {password}   (shown once; stored as an argon2id hash)")
    else:
        typer.echo(f"  dpo user     : {DEMO_USER}   (its password was shown when it was created)")
    typer.echo(f"  console      : {base}/console/   (sign in with the key or the dpo user above)")
    typer.echo(f"  API docs     : {base}/docs")
    typer.echo(f"  OpenAPI      : {base}/openapi.json")
    typer.echo(f"  try          : curl -H 'Authorization: Bearer {token}' {base}/api/v1/me\n")


@app.command()
def worker() -> None:
    """Run background duties without serving the API: seal checkpoints, run retention policies on schedule.

    Checkpoints: needed where events are appended in-process or by the CLI while no `gardien serve`
    runs; several workers (and servers) may run at once, they take turns on each ledger's head row.
    Retention: every GARDIEN_RETENTION_TICK_SECONDS, the policies due on their cron schedule run
    (once across workers on PostgreSQL, through advisory locks; run one worker on SQLite), and
    storage quotas are checked.
    """
    import signal
    import threading

    from gardien.datamap.service import DatamapService
    from gardien.retention.jobs import Runner
    from gardien.retention.quotas import QuotaService
    from gardien.retention.schedule import Scheduler
    from gardien.retention.service import RetentionService

    runtime = _runtime()
    ledger = _ledger(runtime)
    stop = threading.Event()
    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, lambda *_: stop.set())
    ledger.start()
    maps = DatamapService(runtime, ledger)
    scheduler = Scheduler(
        Runner(runtime, ledger, maps), RetentionService(runtime, ledger), QuotaService(runtime, ledger)
    )
    tick = runtime.settings.retention_tick_seconds
    retention = threading.Thread(target=scheduler.loop, args=(stop, tick), name="retention", daemon=True)
    retention.start()
    typer.echo(
        f"gardien worker: sealing checkpoints every {runtime.settings.checkpoint_every_seconds} s,"
        f" retention policies checked every {tick} s"
    )
    try:
        stop.wait()
        retention.join(timeout=60)
    finally:
        ledger.stop()
        maps.close()
        runtime.close()


@admin.command("create-org")
def create_org(
    slug: str,
    name: Annotated[str | None, typer.Option(help="display name")] = None,
    country: Annotated[str, typer.Option(help="FR, BE, NL, LU or DE")] = "FR",
) -> None:
    """Create an organisation."""
    from gardien.core import service
    from gardien.core.errors import Problem

    runtime = _runtime()
    try:
        with runtime.writes.begin() as session:
            org = service.create_org(session, slug=slug, name=name or slug, country=country)
    except Problem as exc:
        _fail(exc.detail or exc.title)
    _ledger(runtime).record(org.id, service.org_created_event(org, CLI_ACTOR))
    typer.echo(f"{org.id}\t{org.slug}")


@admin.command("list-orgs")
def list_orgs() -> None:
    """List organisations."""
    from gardien.core import service

    with _runtime().sessions() as session:
        for org in service.list_orgs(session):
            typer.echo(f"{org.id}\t{org.slug}\t{org.country}\t{org.name}")


@admin.command("create-key")
def create_key(
    org: Annotated[str, typer.Argument(help="organisation id or slug")],
    role: Annotated[Role, typer.Option(help="what the key may do")],
    name: Annotated[str, typer.Option(help="who or what holds the key")] = "cli",
) -> None:
    """Create an API key; prints it once."""
    from gardien.core import service
    from gardien.core.errors import Problem

    runtime = _runtime()
    try:
        with runtime.writes.begin() as session:
            found = service.get_org(session, org)
            key, token = service.create_key(session, org_id=found.id, name=name, role=role)
    except Problem as exc:
        _fail(exc.detail or exc.title)
    _ledger(runtime).record(key.org_id, service.key_created_event(key, CLI_ACTOR))
    typer.echo(token)
    typer.secho(f"key {key.id} ({role.value}) for {org}; shown once, stored hashed", err=True)


@admin.command("create-user")
def create_user(
    org: Annotated[str, typer.Argument(help="organisation id or slug")],
    email: Annotated[str, typer.Argument(help="the e-mail address the person signs in with")],
    role: Annotated[Role, typer.Option(help="admin, dpo, auditor or operator")],
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="read the password from standard input's first line")
    ] = False,
) -> None:
    """Create a console user who signs in with a password (argon2id); the password is asked for,
    or read from standard input — never taken as an argument, where `ps` would show it."""
    from gardien.core import users
    from gardien.core.errors import Problem

    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True, err=True)
    runtime = _runtime()
    try:
        with runtime.writes.begin() as session:
            user = users.create_user(session, runtime.settings, org_ref=org, email=email, role=role, password=password)
            event = users.user_created_event(user, CLI_ACTOR)
            org_id, user_id, address = user.org_id, user.id, user.email
    except Problem as exc:
        _fail(exc.detail or exc.title)
    _ledger(runtime).record(org_id, event)
    typer.echo(f"{user_id}\t{address}\t{role.value}")


@keys.command("rotate")
def rotate(
    kind: Annotated[str, typer.Option(help="hmac, signing, encryption or all")] = "all",
) -> None:
    """Retire the active key(s) and create new ones; old keys stay for verification."""
    from gardien.core.keyring import KEY_KINDS

    runtime = _runtime()
    kinds = KEY_KINDS if kind == "all" else (kind,)
    for one in kinds:
        if one not in KEY_KINDS:
            _fail(f"unknown key kind {one!r}; choose hmac, signing, encryption or all")
        typer.echo(f"{one}: new key {runtime.keyring.rotate(one)}")
    _record_rotation(runtime, list(kinds))


def _record_rotation(runtime: Any, kinds: list[str]) -> None:
    """Every organisation's ledger says when the keys that seal it changed."""
    from sqlalchemy.exc import DBAPIError

    from gardien.core import service

    try:
        with runtime.sessions() as session:
            org_ids = [o.id for o in service.list_orgs(session)]
    except DBAPIError:
        typer.secho("no database yet: the rotation is not recorded in any ledger", err=True)
        return
    ledger = _ledger(runtime)
    for org_id in org_ids:
        ledger.record(
            org_id,
            {
                "module": "core",
                "action": "keyring.rotate",
                "crud": "update",
                "actor": CLI_ACTOR,
                "fields": {"kinds": kinds},
            },
        )


@keys.command("public")
def public_keys() -> None:
    """Print the checkpoint signing public keys (C2SP vkeys), oldest first."""
    from gardien.audit.signing import trusted_verifiers

    for verifier in trusted_verifiers(_runtime().keyring):
        typer.echo(verifier.vkey())


def _org_ids(runtime: Any, org: str | None) -> list[str]:
    from gardien.core import service
    from gardien.core.errors import NotFound

    with runtime.sessions() as session:
        if org is None:
            return [o.id for o in service.list_orgs(session)]
        try:
            return [service.get_org(session, org).id]
        except NotFound:
            _fail(f"no organisation {org!r}; see `gardien admin list-orgs`", 2)
    return []


@audit.command("verify")
def verify(
    org: OrgOption = None,
    checkpoint: Annotated[
        Path | None,
        typer.Option(help="a checkpoint note you kept; must still be covered", exists=True, dir_okay=False),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the reports as JSON lines")] = False,
) -> None:
    """Recompute the ledger: exit 0 ok, 1 tampered, 3 unverifiable (2 is a usage error)."""

    runtime = _runtime()
    ledger = _ledger(runtime)
    if checkpoint is not None and org is None:
        _fail("--checkpoint belongs to one organisation's log: name it with --org", 2)
    trusted = checkpoint.read_text() if checkpoint else None
    if trusted is not None:
        from gardien.audit.checkpoint import Checkpoint, Note, NoteError

        try:
            Checkpoint.parse(Note.parse(trusted).body)
        except NoteError as exc:
            # The caller's file, not the ledger, is at fault: do not report the ledger as tampered.
            raise typer.BadParameter(f"not a signed checkpoint note: {exc}", param_hint="--checkpoint") from exc
    worst = 0
    for org_id in _org_ids(runtime, org):
        report = ledger.verify(org_id, trusted_checkpoint=trusted)
        worst = max(worst, {"ok": 0, "unverifiable": 2, "tampered": 3}[report.status])
        if as_json:
            typer.echo(report.model_dump_json())
            continue
        colour = {"ok": typer.colors.GREEN, "tampered": typer.colors.RED}.get(report.status, typer.colors.YELLOW)
        typer.secho(f"{org_id}: {report.status.upper()}", fg=colour, bold=True)
        typer.echo(
            f"  {report.events_checked} events, {report.checkpoints_checked} checkpoints"
            f" in {report.seconds} s;"
            f" size {report.size}, unsealed tail {report.unsealed_tail}"
        )
        if report.purged_before:
            bundle = f" (bundle {report.purge_bundle})" if report.purge_bundle else ""
            typer.echo(f"  seq 0..{report.purged_before - 1}: purged per manifest{bundle}; everything after verified")
        if report.first_broken_seq is not None:
            typer.echo(f"  first broken sequence number: {report.first_broken_seq}")
        for finding in report.findings[:20]:
            typer.echo(f"  - [{finding.kind}] seq {finding.seq}: {finding.detail}")
    raise typer.Exit({0: 0, 2: 3, 3: 1}[worst])


@audit.command("export")
def export(
    org: OrgOption = None,
    fmt: Annotated[str, typer.Option("--format", help="jsonl, json or csv")] = "jsonl",
    out: Annotated[Path | None, typer.Option(help="copy the payload and manifest into this folder")] = None,
    since: Annotated[str | None, typer.Option(help="RFC 3339 time, inclusive")] = None,
    until: Annotated[str | None, typer.Option(help="RFC 3339 time, exclusive")] = None,
    module: Annotated[str | None, typer.Option()] = None,
    action: Annotated[str | None, typer.Option()] = None,
    actor: Annotated[str | None, typer.Option(help="actor id")] = None,
    target: Annotated[str | None, typer.Option(help="target id")] = None,
    outcome: Annotated[str | None, typer.Option(help="success or failure")] = None,
) -> None:
    """Export events with a signed manifest."""
    import shutil

    from pydantic import ValidationError

    from gardien.audit.schemas import EventFilter
    from gardien.core.errors import Problem

    runtime = _runtime()
    ids = _org_ids(runtime, org)
    if len(ids) != 1:
        _fail("name the organisation with --org")
    if fmt not in ("jsonl", "json", "csv"):
        _fail("--format must be jsonl, json or csv")
    raw = {
        "since": since,
        "until": until,
        "module": module,
        "action": action,
        "actor": actor,
        "target": target,
        "outcome": outcome,
    }
    try:
        flt = EventFilter.model_validate({k: v for k, v in raw.items() if v is not None})
    except ValidationError as exc:
        _fail(f"invalid filter: {exc.errors()[0]['loc'][0]}: {exc.errors()[0]['msg']}")
    try:
        result = _ledger(runtime).export(ids[0], fmt, flt, actor=CLI_ACTOR)
    except Problem as exc:  # e.g. nothing sealed yet to export
        _fail(exc.detail or exc.title)
    payload, manifest = result.payload_path, result.manifest_path
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        payload = Path(shutil.copy2(payload, out / payload.name))
        manifest = Path(shutil.copy2(manifest, out / manifest.name))
    typer.echo(f"{result.manifest['count']} events -> {payload}")
    typer.echo(f"manifest     -> {manifest}")


def _verifiers(public_key: list[str] | None) -> list[Any]:
    from gardien.audit.checkpoint import NoteError, NoteVerifier

    verifiers: list[NoteVerifier] = []
    for item in public_key or []:
        lines = Path(item).read_text().split() if Path(item).is_file() else [item]
        for line in lines:
            try:
                verifiers.append(NoteVerifier.from_vkey(line.strip()))
            except NoteError as exc:
                _fail(f"not a public key: {line[:40]}…: {exc}")
    if not verifiers:
        _fail("give the public key(s) to trust with --public-key (see `gardien keys public`)")
    return verifiers


PublicKeyOption = Annotated[
    list[str] | None,
    typer.Option(help="a C2SP vkey, or a file of them (one per line); repeatable"),
]
ManifestOption = Annotated[Path | None, typer.Option(help="default: PAYLOAD.manifest.json")]


def _check_offline(kind: str, payload: Path, manifest: Path | None, public_key: list[str] | None) -> None:
    from gardien.audit import offline

    verifiers = _verifiers(public_key)
    manifest_path = manifest or Path(str(payload) + ".manifest.json")
    if not payload.is_file() or not manifest_path.is_file():
        _fail(f"need both {payload} and {manifest_path}")
    check = offline.verify_export if kind == "export" else offline.verify_bundle
    result = check(payload, manifest_path, verifiers)
    for line in result.lines():
        typer.echo(line)
    raise typer.Exit(0 if result.ok else 1)


@audit.command("verify-export")
def verify_export(
    payload: Annotated[Path, typer.Argument(help="the exported payload file")],
    manifest: ManifestOption = None,
    public_key: PublicKeyOption = None,
) -> None:
    """Verify an export offline with only the public key(s). Exit 0 valid, 1 not."""
    _check_offline("export", payload, manifest, public_key)


@audit.command("verify-bundle")
def verify_bundle(
    payload: Annotated[Path, typer.Argument(help="the archive bundle (ledger-….jsonl.gz)")],
    manifest: ManifestOption = None,
    public_key: PublicKeyOption = None,
) -> None:
    """Verify a ledger archive bundle offline with only the public key(s). Exit 0 valid, 1 not."""
    _check_offline("bundle", payload, manifest, public_key)


@consent.command("expire")
def consent_expire(org: OrgOption = None) -> None:
    """Record an expiry event (audited) for every choice whose validity has run out; safe to run again."""
    from gardien.consent.service import ConsentService

    runtime = _runtime()
    service = ConsentService(runtime, _ledger(runtime))
    total = 0
    for org_id in _org_ids(runtime, org):
        expired = service.expire(org_id, actor=CLI_ACTOR)
        total += expired
        if expired:
            typer.echo(f"{org_id}: {expired} choices expired")
    typer.echo(f"{total} choices expired in all")


def _rights(runtime: Any) -> Any:
    from gardien.rights.service import RightsService

    return RightsService(runtime, _ledger(runtime))


@datamap.command("scaffold")
def datamap_scaffold(
    url: Annotated[
        str, typer.Argument(help="SQLAlchemy URL of the host database (sqlite:///…, postgresql://…, mysql://…)")
    ],
    key: Annotated[str, typer.Option(help="the dataset's fides_key")] = "app",
    schema: Annotated[str | None, typer.Option(help="PostgreSQL schema to read; default: the default one")] = None,
    sample: Annotated[
        int, typer.Option(min=0, max=1000, help="values sampled per text column to guess categories")
    ] = 20,
    url_env: Annotated[
        str | None, typer.Option(help="write `url_env: NAME` instead of the URL, which may hold a password")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="write the draft here instead of standard output")] = None,
) -> None:
    """Draft a data map from a live database: tables, keys, references and guessed categories, to review."""
    from sqlalchemy.exc import SQLAlchemyError

    from gardien.datamap.scaffold import scaffold

    try:
        draft = scaffold(url, key=key, schema=schema, sample=sample, url_env=url_env)
    except SQLAlchemyError as exc:
        _fail(f"cannot read {url}: {str(exc).splitlines()[0]}")
    if out is None:
        typer.echo(draft, nl=False)
    else:
        out.write_text(draft, encoding="utf-8")
        typer.echo(f"draft written to {out}: review every data category, then `gardien datamap validate {out}`")


@datamap.command("validate")
def datamap_validate(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="the map (YAML)")],
    live: Annotated[bool, typer.Option(help="also check tables, columns and keys in the live databases")] = True,
) -> None:
    """Report every problem of a map, each with its path; exit 1 if there is any."""
    from gardien.datamap.hosts import HostStores, validate_live
    from gardien.datamap.mapfile import MapInvalid, load_map

    try:
        datamap_ = load_map(file.read_text(encoding="utf-8"))
        issues = []
        if live:
            stores = HostStores(datamap_)
            try:
                issues = validate_live(stores)
            finally:
                stores.close()
    except MapInvalid as exc:
        issues = exc.issues
    for issue in issues:
        typer.echo(f"{issue.path}: {issue.message}")
    if issues:
        _fail(f"{len(issues)} problem{'s' if len(issues) > 1 else ''} in {file}")
    typer.echo(f"{file}: valid ({len(datamap_.tables)} tables, identities: {', '.join(sorted(datamap_.identities))})")


def _one_org(runtime: Any, org: str | None) -> str:
    ids = _org_ids(runtime, org)
    if len(ids) != 1:
        _fail("name the organisation with --org")
    return ids[0]


def _request_line(request: Any) -> str:
    flags = ("OVERDUE " if request.overdue else "") + ("extended " if request.extended else "")
    flags += "paused " if request.clock_paused else ""
    return f"{request.id}  {request.type.value:<13} {request.status.value:<16} due {request.due_on}  {flags}".rstrip()


@requests.command("list")
def requests_list(
    org: OrgOption = None,
    status: Annotated[str | None, typer.Option(help="received, identity_pending, in_progress, …")] = None,
    limit: Annotated[int, typer.Option(min=1, max=200)] = 50,
) -> None:
    """The newest requests: id, type, status and deadline (never the person's address)."""
    from gardien.rights.schemas import Status

    runtime = _runtime()
    org_id = _one_org(runtime, org)
    try:
        wanted = Status(status) if status else None
    except ValueError:
        _fail(f"unknown status {status!r}; one of {', '.join(s.value for s in Status)}", 2)
    for request in _rights(runtime).list_requests(org_id, status=wanted, limit=limit).requests:
        typer.echo(_request_line(request))


@requests.command("show")
def requests_show(request_id: Annotated[str, typer.Argument(help="the request's id")], org: OrgOption = None) -> None:
    """One request and its history as JSON (the address masked)."""
    import json

    from gardien.core.errors import NotFound

    runtime = _runtime()
    org_id = _one_org(runtime, org)
    service = _rights(runtime)
    try:
        request = service.get(org_id, request_id, reveal=False)
        history = service.history(org_id, request_id)
    except NotFound as exc:
        _fail(exc.detail)
    document = {"request": request.model_dump(mode="json"), "history": history.model_dump(mode="json")["history"]}
    typer.echo(json.dumps(document, indent=2, ensure_ascii=False))


@requests.command("due")
def requests_due(
    org: OrgOption = None,
    within: Annotated[int | None, typer.Option(min=0, max=90, help="days; default the organisation's setting")] = None,
) -> None:
    """Open requests overdue or due within the window, earliest first."""
    runtime = _runtime()
    org_id = _one_org(runtime, org)
    due = _rights(runtime).due(org_id, within)
    typer.echo(f"today {due.today}: {len(due.overdue)} overdue, {len(due.due_soon)} due within {due.within_days} days")
    for request in due.overdue + due.due_soon:
        typer.echo(_request_line(request))


@requests.command("remind")
def requests_remind(org: OrgOption = None) -> None:
    """Send the due-soon and overdue lists to each organisation's webhook and reminder addresses; for cron."""
    from gardien.core.errors import Problem

    runtime = _runtime()
    service = _rights(runtime)
    failed = False
    for org_id in _org_ids(runtime, org):
        try:
            sent = service.remind(org_id, CLI_ACTOR)
        except Problem as exc:
            typer.secho(f"{org_id}: {exc.detail}", fg=typer.colors.RED, err=True)
            failed = True
            continue
        typer.echo(f"{org_id}: {sent.overdue} overdue, {sent.due_soon} due soon")
    if failed:
        raise typer.Exit(1)


@requests.command("execute")
def requests_execute(
    request_id: Annotated[str, typer.Argument(help="the request's id")], org: OrgOption = None
) -> None:
    """Run an in-progress request over the data map now (again, after a failure); waits for the end."""
    from gardien.core.errors import Problem
    from gardien.datamap.service import DatamapService
    from gardien.rights.execution import DatamapExecutor
    from gardien.rights.packages import PackageStore

    runtime = _runtime()
    org_id = _one_org(runtime, org)
    ledger = _ledger(runtime)
    service = _rights(runtime)
    maps = DatamapService(runtime, ledger)
    service.executor = DatamapExecutor(service, maps, PackageStore(runtime, ledger), background=False)
    try:
        request = service.execute(org_id, request_id, CLI_ACTOR)
    except Problem as exc:
        _fail(exc.detail)
    finally:
        maps.close()
    execution = request.execution
    typer.echo(_request_line(request))
    if execution is not None and execution.error:
        typer.secho(f"attempt {execution.attempts} failed: {execution.error}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1)


@requests.command("purge-packages")
def requests_purge_packages(org: OrgOption = None) -> None:
    """Delete the access and portability packages that have expired; for cron (daily)."""
    from gardien.rights.packages import PackageStore

    runtime = _runtime()
    packages = PackageStore(runtime, _ledger(runtime))
    total = sum(packages.purge(org_id, CLI_ACTOR) for org_id in _org_ids(runtime, org))
    typer.echo(f"{total} expired packages deleted")


def _datamaps(runtime: Any) -> Any:
    from gardien.datamap.service import DatamapService

    return DatamapService(runtime, _ledger(runtime))


@datamap.command("register")
def datamap_register(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="the map (YAML)")],
    key: Annotated[str, typer.Option(help="the map's key in Gardien", min=1)],
    org: OrgOption = None,
) -> None:
    """Register the map as a new version (the same file again changes nothing)."""
    from gardien.core.errors import Problem

    runtime = _runtime()
    try:
        out = _datamaps(runtime).register(_one_org(runtime, org), key, file.read_text(encoding="utf-8"), CLI_ACTOR)
    except Problem as exc:
        for error in exc.extra.get("errors", []):
            typer.echo(f"{error['field']}: {error['message']}")
        _fail(exc.detail)
    typer.echo(f"{key}: version {out.version} ({len(out.tables)} tables)")


def _identities(pairs: list[str]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for pair in pairs:
        kind, sep, value = pair.partition("=")
        if not sep or not kind or not value:
            _fail(f"--identity takes TYPE=VALUE, e.g. email=ana@example.org; got {pair!r}", 2)
        found.setdefault(kind, []).append(value)
    return found


IdentityOption = Annotated[list[str], typer.Option("--identity", help="TYPE=VALUE, verified (repeatable)")]


@datamap.command("access")
def datamap_access(
    key: Annotated[str, typer.Argument(help="the registered map")],
    out: Annotated[Path, typer.Option(help="the ZIP to write")],
    identity: IdentityOption,
    org: OrgOption = None,
) -> None:
    """Write one person's access package (data.json, one CSV per table, README in fr/nl/en)."""
    from gardien.core.errors import Problem

    runtime = _runtime()
    try:
        with out.open("wb") as sink:
            summary = _datamaps(runtime).access(
                _one_org(runtime, org), key, _identities(identity), sink, actor=CLI_ACTOR
            )
    except Problem as exc:
        out.unlink(missing_ok=True)
        _fail(exc.detail)
    typer.echo(f"{out}: {sum(summary.counts.values())} rows from {len(summary.counts)} tables")


@datamap.command("can-erase")
def datamap_can_erase(key: Annotated[str, typer.Argument()], identity: IdentityOption, org: OrgOption = None) -> None:
    """The legal holds that keep some of the person's rows; exit 1 if any."""
    from gardien.core.errors import Problem

    runtime = _runtime()
    try:
        check = _datamaps(runtime).can_erase(_one_org(runtime, org), key, _identities(identity))
    except Problem as exc:
        _fail(exc.detail)
    typer.echo(check.model_dump_json(indent=2))
    raise typer.Exit(0 if check.erasable else 1)


@datamap.command("erase")
def datamap_erase(
    key: Annotated[str, typer.Argument()],
    identity: IdentityOption = [],  # noqa: B006 (typer reads the default, never mutates it)
    run: Annotated[str | None, typer.Option(help="resume this erasure run instead of starting one")] = None,
    org: OrgOption = None,
) -> None:
    """Erase the person (held rows are anonymised, never deleted); --run resumes a partial run."""
    from gardien.core.errors import Problem

    runtime = _runtime()
    service = _datamaps(runtime)
    try:
        result = service.erase(_one_org(runtime, org), key, _identities(identity), actor=CLI_ACTOR, run_id=run)
    except Problem as exc:
        resume = exc.extra.get("run_id")
        _fail(exc.detail + (f" (resume with --run {resume})" if resume else ""))
    typer.echo(result.model_dump_json(indent=2))


app.command("redact")(redact_command)
app.command("anonymize")(anonymize_command)


@registers.command("alerts")
def registers_alerts(org: OrgOption = None) -> None:
    """Print the processors whose DPA is missing, expired or due, or that lack clauses; exit 1 if any."""
    from gardien.registers.service import RegistersService

    runtime = _runtime()
    service = RegistersService(runtime, _ledger(runtime))
    found = 0
    for org_id in _org_ids(runtime, org):
        for alert in service.alerts(org_id).alerts:
            found += 1
            typer.echo(f"{org_id}\t{alert.processor}\t{alert.kind.value}\t{alert.detail}")
    typer.echo(f"{found} alerts", err=True)
    raise typer.Exit(1 if found else 0)


@registers.command("export")
def registers_export(
    org: Annotated[str, typer.Option("--org", help="organisation id or slug")],
    output: Annotated[Path, typer.Option(help="file to write", dir_okay=False)],
    format: Annotated[str, typer.Option(help="json, csv, xlsx or html")] = "xlsx",
) -> None:
    """Write the record of processing activities (Art. 30) to a file."""
    from gardien.core.clock import utcnow
    from gardien.registers import exports
    from gardien.registers.service import RegistersService

    if format not in exports.MEDIA_TYPES:
        _fail(f"unknown format {format!r}: json, csv, xlsx or html", 2)
    runtime = _runtime()
    service = RegistersService(runtime, _ledger(runtime))
    (org_id,) = _org_ids(runtime, org)
    entries = service.all_activities(org_id)
    fmt = cast(exports.ExportFormat, format)
    output.write_bytes(exports.export(entries, service.settings_or_none(org_id), fmt, utcnow()))
    typer.echo(f"{len(entries)} activities written to {output}")


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
