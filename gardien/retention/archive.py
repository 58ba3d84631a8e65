"""Policies over Gardien's own stores: the ledger's archive-then-purge of its sealed prefix, exports, and the
consents and requests stores through `gardien.retention.stores`.

The ledger's part (bundle format, purge manifest, the one permitted DELETE) lives in
`gardien.audit.archive`; this module decides when, records the run and its audit events.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from gardien.audit import archive as ledger_archive
from gardien.audit.service import capability_event
from gardien.audit.signing import checkpoint_signer
from gardien.core.ids import new_id
from gardien.retention.schemas import PolicyIn, StoreTarget
from gardien.retention.stores import STORES, run_own_store

if TYPE_CHECKING:
    from gardien.retention.jobs import Progress, RunContext, Runner

TABLE = "ledger"


def run_store_policy(
    runner: Runner,
    ctx: RunContext,
    policy_row: Mapping[str, Any],
    policy: PolicyIn,
    actor: Mapping[str, Any],
    progress: Progress | None = None,
) -> str:
    """A policy on one of Gardien's stores; for the ledger, archive-then-purge its prefix older than the cutoff."""
    assert isinstance(policy.target, StoreTarget)
    store = policy.target.store
    org_id = ctx.org_id
    hold = runner.store_hold(org_id, store)
    if hold is not None:
        ctx.counts[store] = {"matched": 0}
        ctx.errors.append(f"{store}: skipped, {hold}")
        return runner.finish(ctx, policy_row, policy, [], actor, "suspended")
    if store == "exports":
        return _expire_exports(runner, ctx, policy_row, policy, actor)
    if store in STORES:
        return run_own_store(runner, ctx, policy_row, policy, actor, STORES[store], progress)
    engine = runner.runtime.engine
    with engine.connect() as conn:
        pending = ledger_archive.unpurged(conn, org_id)
        plan = None if pending else ledger_archive.plan_purge(conn, org_id, ctx.cutoff)
    counts = ctx.counts.setdefault(TABLE, {})
    if pending is not None:
        counts.setdefault("matched", pending[1])
    elif plan is not None:
        counts["matched"] = plan.count
        ctx.samples[TABLE] = [[plan.from_seq], [plan.to_seq - 1]]
    else:
        counts.setdefault("matched", 0)
    if ctx.dry_run:
        return runner.finish(ctx, policy_row, policy, [], actor, "completed")
    counts.setdefault("archived", 0)
    try:
        if plan is not None:
            _archive(runner, plan, ctx, actor)
            pending = (plan.to_seq, plan.count)
        if pending is not None:
            counts["archived"] += ledger_archive.delete_purged(engine, org_id, pending[0])
            ctx.batches += 1
    except ledger_archive.LedgerArchiveError as exc:
        ctx.errors.append(f"{TABLE}: {exc}")
        return runner.finish(ctx, policy_row, policy, [], actor, "failed")
    return runner.finish(ctx, policy_row, policy, [], actor, "completed")


def _archive(runner: Runner, plan: ledger_archive.PurgePlan, ctx: RunContext, actor: Mapping[str, Any]) -> None:
    """Write the bundle, then record the purge manifest and its audit event in one transaction."""
    org_id = ctx.org_id
    runtime = runner.runtime
    directory = runtime.settings.archive_dir / org_id
    with runtime.engine.connect() as conn:
        manifest, payload, _ = ledger_archive.write_bundle(
            conn,
            plan,
            bundle_id=new_id(),
            directory=directory,
            signer=checkpoint_signer(runtime.keyring),
            now=runner.clock(),
        )
    ctx.samples["bundle"] = [[str(payload)]]

    def work(conn: Any) -> tuple[None, list[Any]]:
        ledger_archive.record_purge(conn, manifest, runner.clock())
        event = capability_event(
            "retention",
            "retention.ledger.purged",
            "delete",
            actor,
            ("audit_bundle", manifest["bundle_id"]),
            legal_basis="legal_obligation",
            fields={
                "run_id": ctx.run_id,
                "from_seq": plan.from_seq,
                "to_seq": plan.to_seq,
                "manifest_sha256": ledger_archive.manifest_sha256(manifest),
                "payload_sha256": manifest["payload"]["sha256"],
                "payload": manifest["payload"]["name"],
            },
        )
        return None, [runner.ledger.prepare(event)]

    runner.ledger.transact(org_id, work)


def _expire_exports(
    runner: Runner, ctx: RunContext, policy_row: Mapping[str, Any], policy: PolicyIn, actor: Mapping[str, Any]
) -> str:
    """Delete the ledger exports (payload and manifest files, and their records) made before the cutoff."""
    ids = runner.ledger.exports_before(ctx.org_id, ctx.cutoff)
    counts = ctx.counts.setdefault("exports", {})
    counts["matched"] = len(ids)
    ctx.samples["exports"] = [[i] for i in ids[:5]]
    if ctx.dry_run or not ids:
        if not ctx.dry_run:
            counts["deleted"] = 0
        return runner.finish(ctx, policy_row, policy, [], actor, "completed")
    event = capability_event(
        "retention",
        "retention.exports.deleted",
        "delete",
        actor,
        ("retention_run", ctx.run_id),
        fields={"exports": ids[:1000], "count": len(ids)},
    )
    counts["deleted"] = runner.ledger.remove_exports(ctx.org_id, ids, [runner.ledger.prepare(event)])
    ctx.batches += 1
    return runner.finish(ctx, policy_row, policy, [], actor, "completed")
