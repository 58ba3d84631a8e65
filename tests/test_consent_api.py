"""Consent over HTTP, on SQLite and PostgreSQL: the banner's public endpoints, the authenticated API,
the audit trail, tenant isolation, GPC, CORS, proofs, statistics and the expiry command."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest
import rfc8785
from dateutil.relativedelta import relativedelta
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from typer.testing import CliRunner

from gardien.audit.models import EVENTS as LEDGER
from gardien.audit.service import Ledger
from gardien.consent.models import DAILY, EVENTS, STATES
from gardien.consent.schemas import ChoiceIn, NoticeIn, WithdrawIn
from gardien.consent.service import ConsentService
from gardien.core import service
from gardien.core.roles import Role
from gardien.core.runtime import Runtime
from tests.conftest import auth, make_key, one_writer_group
from tests.consent_samples import sample_notice
from tests.test_cli import cli, run  # noqa: F401  (the CLI runner fixture, pointed at the test database)

ORIGIN = "https://ogres.example"


class Site:
    """An organisation with its settings read (so it has a site key) and one notice version."""

    def __init__(self, client: TestClient, tokens: dict[Role, str], origins: list[str] | None = None) -> None:
        self.client = client
        self.tokens = tokens
        self.service = auth(tokens[Role.SERVICE])
        self.admin = auth(tokens[Role.ADMIN])
        settings = client.put(
            "/api/v1/consent/settings", json={"allowed_origins": origins or []}, headers=auth(tokens[Role.DPO])
        )
        assert settings.status_code == 200, settings.text
        self.key = settings.json()["site_key"]
        notice = client.post("/api/v1/consent/notices", json=sample_notice(), headers=auth(tokens[Role.DPO]))
        assert notice.status_code == 201, notice.text
        self.sha = notice.json()["sha256"]
        self.public = f"/api/v1/consent/public/{self.key}"

    def choose(self, status: int = 201, headers: dict[str, str] | None = None, **body: Any) -> dict[str, Any]:
        body.setdefault("notice_sha256", self.sha)
        response = self.client.post(f"{self.public}/choices", json=body, headers=headers or {})
        assert response.status_code == status, response.text
        result: dict[str, Any] = response.json()
        return result

    def record(self, status: int = 201, **body: Any) -> dict[str, Any]:
        response = self.client.post("/api/v1/consent/records", json=body, headers=self.service)
        assert response.status_code == status, response.text
        result: dict[str, Any] = response.json()
        return result


@pytest.fixture
def site(client: TestClient, tokens: dict[Role, str]) -> Site:
    return Site(client, tokens)


def counts(runtime: Runtime, org: str) -> tuple[int, ...]:
    """Rows of every table a choice writes, the ledger included."""
    with runtime.engine.connect() as conn:
        return tuple(
            int(conn.execute(select(func.count()).select_from(table).where(table.c.org_id == org)).scalar_one())
            for table in (EVENTS, STATES, DAILY, LEDGER)
        )


def consent_audit(runtime: Runtime, org: str) -> list[dict[str, Any]]:
    with runtime.engine.connect() as conn:
        rows = conn.execute(
            select(LEDGER.c.canonical)
            .where(LEDGER.c.org_id == org, LEDGER.c.module == "consent")
            .order_by(LEDGER.c.seq)
        ).scalars()
        return [orjson.loads(row) for row in rows]


def test_the_banner_reads_the_notice_records_a_choice_and_reads_it_back(site: Site) -> None:
    notice = site.client.get(f"{site.public}/notice")
    assert notice.status_code == 200
    body = notice.json()
    assert (body["version"], body["sha256"], body["validity_months"]) == (1, site.sha, 6)
    assert [p["key"] for p in body["notice"]["purposes"]] == ["functional", "analytics", "marketing"]
    assert body["notice"]["texts"]["reject_all"]["nl"] == "reject_all (nl)"

    chosen = site.choose(method="custom", surface="preferences", states={"analytics": "granted"}, locale="nl-BE")
    uuid.UUID(chosen["consent_id"])  # generated, as none was sent
    assert chosen["states"] == {"functional": "granted", "analytics": "granted", "marketing": "denied"}
    assert chosen["status"] == "valid" and chosen["notice_sha256"] == site.sha and chosen["notice_version"] == 1
    assert chosen["consent_mode"] == {
        "ad_personalization": "denied",
        "ad_storage": "denied",
        "ad_user_data": "denied",
        "analytics_storage": "granted",
        "security_storage": "granted",
    }
    again = site.client.get(f"{site.public}/choices/{chosen['consent_id']}")
    assert again.status_code == 200 and again.json() == chosen


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"method": "custom", "states": {"functional": "denied"}}, "states.functional"),
        ({"method": "custom", "states": {"fingerprinting": "granted"}}, "states.fingerprinting"),
        ({"method": "accept_all", "notice_sha256": "ab" * 32}, "notice_sha256"),
        ({"method": "accept_all", "notice_sha256": "not hex"}, "notice_sha256"),
        ({"method": "withdraw"}, "method"),
        ({"method": "accept_all", "locale": "es"}, "locale"),
        ({"method": "accept_all", "consent_id": "not-a-uuid"}, "consent_id"),
        ({"method": "accept_all", "user_id": "u-1"}, "user_id"),
        ({"method": "gpc"}, "method"),
    ],
)
def test_bad_choices_are_422_with_the_field_and_change_nothing(
    site: Site, runtime: Runtime, org: str, body: dict[str, Any], field: str
) -> None:
    before = counts(runtime, org)
    body.setdefault("notice_sha256", site.sha)
    response = site.client.post(f"{site.public}/choices", json=body)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert any(error["field"] == field for error in response.json()["errors"]), response.text
    assert counts(runtime, org) == before


def test_a_choice_is_audited_with_its_dpia_tag(site: Site, runtime: Runtime, org: str) -> None:
    subject = str(uuid.uuid4())
    site.choose(method="reject_all", consent_id=subject)
    site.choose(method="accept_all", consent_id=subject)
    site.choose(method="custom", consent_id=subject, states={"analytics": "granted"})
    events = [e for e in consent_audit(runtime, org) if e["action"] == "consent.recorded"]
    assert [e["fields"].get("dpia_event") for e in events] == [None, "CONSENT_GRANTED", "CONSENT_REVOKED"]
    assert events[2]["fields"]["revoked"] == ["marketing"]
    assert {e["target"]["id"] for e in events} == {subject}
    assert events[0]["legal_basis"] == "consent" and events[0]["actor"]["type"] == "banner"
    assert [e["action"] for e in consent_audit(runtime, org)][:2] == [
        "consent.settings.updated",
        "consent.notice.created",
    ]


def test_withdrawal_is_one_call_and_the_check_sees_it_at_once(
    site: Site, runtime: Runtime, org: str, client: TestClient
) -> None:
    consent: ConsentService = client.app.state.consent  # type: ignore[attr-defined]
    subject = site.record(method="accept_all", user_id="user-42")["consent_id"]
    assert consent.is_allowed(org, subject, "marketing") is True  # now cached
    withdrawn = client.post(f"/api/v1/consent/subjects/{subject}/withdraw", headers=site.service)
    assert withdrawn.status_code == 201, withdrawn.text
    assert withdrawn.json()["states"] == {"functional": "granted", "analytics": "denied", "marketing": "denied"}
    assert consent.is_allowed(org, subject, "marketing") is False
    check = client.get(
        "/api/v1/consent/check", params={"subject": subject, "purpose": "marketing"}, headers=site.service
    )
    assert check.json()["allowed"] is False and check.json()["state"] == "denied"
    audit = consent_audit(runtime, org)[-1]
    assert audit["action"] == "consent.withdrawn" and audit["fields"]["dpia_event"] == "CONSENT_REVOKED"
    # The user id itself is stored nowhere: only its keyed pseudonym.
    user = client.get("/api/v1/consent/users/user-42", headers=site.service)
    assert user.status_code == 200 and [s["consent_id"] for s in user.json()["consent_ids"]] == [subject]
    with runtime.engine.connect() as conn:
        refs = set(conn.execute(select(EVENTS.c.user_ref).where(EVENTS.c.org_id == org)).scalars())
    assert "user-42" not in refs and len(next(iter(refs - {None}))) == 64
    assert "user-42" not in orjson.dumps(consent_audit(runtime, org)).decode()


def test_a_change_through_another_replica_is_seen_after_the_cache_ttl(site: Site, runtime: Runtime, org: str) -> None:
    now = [datetime.now(UTC)]
    replica = ConsentService(runtime, Ledger(runtime), clock=lambda: now[0])
    subject = site.record(method="accept_all")["consent_id"]
    assert replica.is_allowed(org, subject, "analytics") is True
    site.client.post(f"/api/v1/consent/subjects/{subject}/withdraw", headers=site.service)
    assert replica.is_allowed(org, subject, "analytics") is True, "still within the TTL"
    now[0] += timedelta(seconds=runtime.settings.consent_cache_seconds + 0.01)
    assert replica.is_allowed(org, subject, "analytics") is False


def test_a_replica_rereads_only_the_subjects_that_changed_elsewhere(
    site: Site, runtime: Runtime, org: str, client: TestClient
) -> None:
    now = [datetime.now(UTC)]
    replica = ConsentService(runtime, Ledger(runtime), clock=lambda: now[0])
    changed, unchanged = (site.record(method="accept_all")["consent_id"] for _ in range(2))
    assert replica.is_allowed(org, changed, "analytics") and replica.is_allowed(org, unchanged, "analytics")
    kept = replica._checks[(org, unchanged)]
    site.client.post(f"/api/v1/consent/subjects/{changed}/withdraw", headers=site.service)
    # Long after any TTL: the unchanged subject's entry is still the one read at first.
    now[0] += timedelta(seconds=runtime.settings.consent_cache_seconds * 100)
    assert replica.is_allowed(org, changed, "analytics") is False
    assert replica.is_allowed(org, unchanged, "analytics") is True
    assert replica._checks[(org, unchanged)] is kept
    # A new notice version made elsewhere asks everyone again: the whole organisation is re-read.
    dpo = auth(site.tokens[Role.DPO])
    notice = sample_notice()
    notice["texts"]["title"]["en"] = "We changed our cookies"
    assert client.post("/api/v1/consent/notices", json=notice, headers=dpo).status_code == 201
    now[0] += timedelta(seconds=runtime.settings.consent_cache_seconds + 0.01)
    assert replica.is_allowed(org, unchanged, "analytics") is False


def test_gpc_is_a_refusal_and_needs_the_header(site: Site, runtime: Runtime, org: str) -> None:
    before = counts(runtime, org)
    refused = site.client.post(f"{site.public}/choices", json={"method": "gpc", "notice_sha256": site.sha})
    assert refused.status_code == 422 and counts(runtime, org) == before
    chosen = site.choose(method="gpc", headers={"Sec-GPC": "1"})
    assert chosen["method"] == "gpc"
    assert chosen["states"] == {"functional": "granted", "analytics": "denied", "marketing": "denied"}
    # A later explicit choice by the person replaces it.
    later = site.choose(method="accept_all", consent_id=chosen["consent_id"], headers={"Sec-GPC": "1"})
    assert later["states"]["marketing"] == "granted"


def test_cors_answers_the_allowed_origins_only(client: TestClient, tokens: dict[Role, str]) -> None:
    site = Site(client, tokens, origins=[ORIGIN])
    preflight = {
        "Origin": ORIGIN,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type",
    }
    answer = client.options(f"{site.public}/choices", headers=preflight)
    assert answer.status_code == 204
    assert answer.headers["access-control-allow-origin"] == ORIGIN
    assert "POST" in answer.headers["access-control-allow-methods"]
    assert "content-type" in answer.headers["access-control-allow-headers"].lower()
    assert "access-control-allow-credentials" not in answer.headers
    elsewhere = client.options(f"{site.public}/choices", headers={**preflight, "Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in elsewhere.headers
    # Answers and errors alike carry the header, so that the banner can read why a call failed.
    error = client.post(f"{site.public}/choices", json={"method": "nope"}, headers={"Origin": ORIGIN})
    assert error.status_code == 422 and error.headers["access-control-allow-origin"] == ORIGIN
    unknown = client.get(f"{site.public}/choices/{uuid.uuid4()}", headers={"Origin": ORIGIN})
    assert unknown.status_code == 404 and unknown.headers["access-control-allow-origin"] == ORIGIN
    # An empty list allows any origin.
    client.put("/api/v1/consent/settings", json={"allowed_origins": []}, headers=site.admin)
    anywhere = client.get(f"{site.public}/notice", headers={"Origin": "https://other.example"})
    assert anywhere.headers["access-control-allow-origin"] == "https://other.example"


def test_another_organisations_consent_ids_and_site_keys(site: Site, runtime: Runtime, client: TestClient) -> None:
    with runtime.writes.begin() as session:
        other = service.create_org(session, slug=f"o-{uuid.uuid4().hex[:10]}", name="Other").id
    theirs = Site(client, {role: make_key(runtime, other, role) for role in Role})
    subject = theirs.choose(method="accept_all")["consent_id"]
    for path in (f"/subjects/{subject}", f"/subjects/{subject}/proof"):
        assert client.get(f"/api/v1/consent{path}", headers=site.admin).status_code == 404
    withdraw = client.post(f"/api/v1/consent/subjects/{subject}/withdraw", headers=site.service)
    assert withdraw.status_code == 404
    assert client.get(f"{site.public}/choices/{subject}").status_code == 404
    # My site key with their notice's hash: an unknown notice here.
    assert (
        client.post(f"{site.public}/choices", json={"method": "accept_all", "notice_sha256": "0" * 64}).status_code
        == 422
    )
    assert client.get("/api/v1/consent/public/gdn_site_doesnotexist/notice").status_code == 404
    check = client.get(
        "/api/v1/consent/check", params={"subject": subject, "purpose": "analytics"}, headers=site.service
    )
    assert check.json()["allowed"] is False and check.json()["state"] == "not_given"
    assert client.get(f"{theirs.public}/choices/{subject}").json()["states"]["marketing"] == "granted"


def test_proofs_in_three_formats(site: Site, client: TestClient) -> None:
    subject = site.choose(method="accept_all", locale="fr-BE")["consent_id"]
    client.post(f"/api/v1/consent/subjects/{subject}/withdraw", json={"purposes": ["marketing"]}, headers=site.service)
    url = f"/api/v1/consent/subjects/{subject}/proof"
    plain = client.get(url, headers=site.admin)
    assert plain.status_code == 200
    proof = plain.json()
    assert [e["method"] for e in proof["events"]] == ["accept_all", "withdraw"]
    shown = proof["notices"][0]
    assert shown["notice"] == NoticeIn.model_validate(sample_notice()).model_dump(mode="json")
    # An auditor recomputes the hash from the proof alone: SHA-256 of the RFC 8785 form.
    assert shown["sha256"] == site.sha == hashlib.sha256(rfc8785.dumps(shown["notice"])).hexdigest()
    assert proof["current"]["states"]["marketing"] == "denied"

    linked = client.get(url, params={"format": "iso27560"}, headers=auth(site.tokens[Role.AUDITOR]))
    assert linked.headers["content-type"].startswith("application/ld+json")
    record = linked.json()
    assert record["@type"] == "dpv:ConsentRecord" and record["dct:identifier"] == subject
    assert record["@context"]["dpv"] == "https://w3id.org/dpv#"
    assert record["dpv:hasDataSubject"]["dct:identifier"] == subject
    assert len(record["gdn:processing"]) == 3 and len(record["gdn:events"]) == 2
    statuses = {
        s["dpv:hasPurpose"]["@id"].rsplit(":", 1)[1]: s["dpv:hasConsentStatus"]["@id"]
        for s in record["gdn:events"][1]["gdn:states"]
    }
    assert statuses == {
        "functional": "dpv:ConsentGiven",
        "analytics": "dpv:ConsentGiven",
        "marketing": "dpv:ConsentWithdrawn",
    }
    assert any("dpv:DataController" in p["@type"] for p in record["gdn:parties"])

    receipt = client.get(url, params={"format": "kantara"}, headers=site.admin).json()
    assert receipt["version"] == "KI-CR-v1.1.0" and receipt["piiPrincipalId"] == subject
    assert receipt["piiControllers"][0]["piiController"] == "Les Ogres SA"
    assert receipt["piiControllers"][0]["email"] == "dpo@ogres.example"
    assert {s["service"] for s in receipt["services"]} == {"functional vendor", "analytics vendor"}
    assert client.get(url, params={"format": "xml"}, headers=site.admin).status_code == 422
    assert client.get(url, headers=site.service).status_code == 403


def test_stats_count_choices_per_purpose_per_day(site: Site, client: TestClient, runtime: Runtime, org: str) -> None:
    for method in ("accept_all", "accept_all", "reject_all"):
        site.choose(method=method)
    site.choose(method="custom", states={"analytics": "granted"})
    subject = site.record(method="api", states={"analytics": "granted"})["consent_id"]  # marketing not presented
    client.post(f"/api/v1/consent/subjects/{subject}/withdraw", json={"purposes": ["analytics"]}, headers=site.service)
    stats = client.get("/api/v1/consent/stats", headers=site.admin)
    assert stats.status_code == 200, stats.text
    today = datetime.now(UTC).date().isoformat()
    rows = {(d["day"], d["purpose"]): (d["granted"], d["denied"], d["rate"]) for d in stats.json()["days"]}
    assert rows == {(today, "analytics"): (4, 2, 0.6667), (today, "marketing"): (2, 2, 0.5)}
    assert stats.json()["expiring_next_30_days"] == 0
    # Five and a half months later, the five choices (all made today, kept six months) expire within 30 days.
    later = datetime.now(UTC) + relativedelta(months=5, days=15)
    replica = ConsentService(runtime, Ledger(runtime), clock=lambda: later)
    assert replica.stats(org, None, None).expiring_next_30_days == 5
    bad = client.get("/api/v1/consent/stats", params={"since": "2020-01-01", "until": "2026-01-01"}, headers=site.admin)
    assert bad.status_code == 422
    # The default 30-day window before the first representable day is clipped, not an overflow.
    earliest = client.get("/api/v1/consent/stats", params={"until": "0001-01-01"}, headers=site.admin)
    assert earliest.status_code == 200 and earliest.json()["days"] == []


def test_bulk_check_and_its_limit(site: Site, client: TestClient) -> None:
    granted = site.choose(method="accept_all")["consent_id"]
    checks = [{"subject": granted, "purpose": "marketing"}, {"subject": str(uuid.uuid4()), "purpose": "analytics"}]
    answer = client.post("/api/v1/consent/check", json={"checks": checks}, headers=site.service)
    assert [(r["allowed"], r["state"]) for r in answer.json()["results"]] == [(True, "granted"), (False, "not_given")]
    unknown = client.post(
        "/api/v1/consent/check",
        json={"checks": [*checks, {"subject": granted, "purpose": "tracking"}]},
        headers=site.service,
    )
    assert unknown.status_code == 422 and unknown.json()["errors"][0]["field"] == "checks.2.purpose"
    too_many = client.post("/api/v1/consent/check", json={"checks": checks * 501}, headers=site.service)
    assert too_many.status_code == 422


def test_notice_versions_are_immutable_and_numbered(site: Site, client: TestClient) -> None:
    dpo = auth(site.tokens[Role.DPO])
    same = client.post("/api/v1/consent/notices", json=sample_notice(), headers=dpo)
    assert same.status_code == 409
    invalid = sample_notice()
    invalid["purposes"][1]["essential"] = True  # analytics
    assert client.post("/api/v1/consent/notices", json=invalid, headers=dpo).status_code == 422
    missing = sample_notice()
    del missing["texts"]["reject_all"]
    refused = client.post("/api/v1/consent/notices", json=missing, headers=dpo)
    assert refused.status_code == 422 and refused.json()["errors"][0]["field"] == "texts"
    second = client.post("/api/v1/consent/notices", json=sample_notice("v2"), headers=dpo)
    assert second.status_code == 201 and second.json()["version"] == 2
    listing = client.get("/api/v1/consent/notices", headers=dpo).json()["notices"]
    assert [(n["version"], n["current"]) for n in listing] == [(1, False), (2, True)]
    assert client.get("/api/v1/consent/notices/1", headers=dpo).json()["sha256"] == site.sha
    assert client.get("/api/v1/consent/notices/3", headers=dpo).status_code == 404


def test_the_address_is_kept_truncated_and_the_agent_as_a_class(live_server: str, runtime: Runtime, org: str) -> None:
    tokens = {role: make_key(runtime, org, role) for role in Role}
    with httpx.Client(base_url=live_server) as http:
        dpo = auth(tokens[Role.DPO])
        key = http.get("/api/v1/consent/settings", headers=dpo).json()["site_key"]
        sha = http.post("/api/v1/consent/notices", json=sample_notice(), headers=dpo).json()["sha256"]
        agent = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148"
        chosen = http.post(
            f"/api/v1/consent/public/{key}/choices",
            json={"method": "reject_all", "notice_sha256": sha},
            headers={"User-Agent": agent},
        )
        assert chosen.status_code == 201, chosen.text
    with runtime.engine.connect() as conn:
        row = conn.execute(select(EVENTS.c.ip_truncated, EVENTS.c.ua_class).where(EVENTS.c.org_id == org)).one()
    assert tuple(row) == ("127.0.0.0/24", "mobile")


@pytest.mark.usefixtures("cli")
def test_consent_expire_records_each_expiry_once(runtime: Runtime, org: str) -> None:
    past = datetime.now(UTC) - timedelta(days=200)
    earlier = ConsentService(runtime, Ledger(runtime), clock=lambda: past)
    actor = {"type": "test", "id": "expire"}
    earlier.create_notice(org, NoticeIn.model_validate(sample_notice()), actor)
    subjects = [str(uuid.uuid4()) for _ in range(3)]
    for subject in subjects:
        earlier.record(org, ChoiceIn(consent_id=uuid.UUID(subject), method="accept_all"), actor)
    fresh = ConsentService(runtime, Ledger(runtime))
    kept = fresh.record(org, ChoiceIn(method="accept_all"), actor).consent_id
    first = run(CliRunner(), "consent", "expire", "--org", org)
    assert first.exit_code == 0, first.output
    assert "3 choices expired in all" in first.output
    second = run(CliRunner(), "consent", "expire", "--org", org)
    assert "0 choices expired in all" in second.output
    audit = [e for e in consent_audit(runtime, org) if e["action"] == "consent.expired"]
    assert sorted(e["target"]["id"] for e in audit) == sorted(subjects)
    assert fresh.state(org, subjects[0]).status == "expired" and fresh.state(org, subjects[0]).method == "expiry"
    assert fresh.is_allowed(org, subjects[0], "analytics") is False
    assert fresh.is_allowed(org, kept, "analytics") is True


def test_records_take_the_fast_lane_and_everything_else_the_regular_route(
    site: Site, tokens: dict[Role, str], runtime: Runtime, org: str
) -> None:
    url = "/api/v1/consent/records"
    lane = site.client.app.state.fast_routes[url].counters  # type: ignore[attr-defined]
    before = dict(lane)
    served = site.record(method="accept_all", user_id="u-1")
    assert served["states"]["analytics"] == "granted" and served["status"] == "valid"
    assert lane["served"] == before["served"] + 1
    rows = counts(runtime, org)
    invalid = site.client.post(url, json={"method": "accept_every"}, headers=site.service)
    assert invalid.status_code == 422 and invalid.json()["errors"][0]["field"] == "method"
    assert site.client.post(url, json={"method": "accept_all"}, headers=auth(tokens[Role.AUDITOR])).status_code == 403
    assert site.client.post(url, json={"method": "accept_all"}).status_code == 401
    assert lane["replayed"] == before["replayed"] + 3
    assert counts(runtime, org) == rows
    # An unknown purpose passes the schema and is refused by the service, in the lane, as a problem.
    unknown = site.client.post(url, json={"method": "api", "states": {"weather": "granted"}}, headers=site.service)
    assert unknown.status_code == 422 and unknown.headers["content-type"] == "application/problem+json"
    assert counts(runtime, org) == rows


def test_choices_of_one_subject_in_one_writer_group_apply_in_order(runtime: Runtime, org: str) -> None:
    """The writer records a whole group at once; a withdrawal queued behind the consent sees it."""
    ledger = Ledger(runtime)
    consent = ConsentService(runtime, ledger)
    actor = {"type": "service", "id": "test"}
    consent.create_notice(org, NoticeIn.model_validate(sample_notice()), actor)
    subject = str(uuid.uuid4())
    ledger.start()
    try:

        async def grant_then_withdraw() -> list[Any]:
            given = ChoiceIn.model_validate({"method": "accept_all", "consent_id": subject})
            async with one_writer_group(ledger, org) as group:
                group.append(asyncio.ensure_future(consent.record_async(org, given, actor)))
                await asyncio.sleep(0.1)  # the choice is queued behind the held writer before the withdrawal
                withdrawal = WithdrawIn(purposes=["marketing"])
                group.append(asyncio.ensure_future(consent.withdraw_async(org, subject, withdrawal, actor)))
            return group

        granted, withdrawn = asyncio.run(grant_then_withdraw())
    finally:
        ledger.stop()
    assert granted.states["marketing"] == "granted"
    assert withdrawn.states["marketing"] == "denied" and withdrawn.states["analytics"] == "granted"
    with runtime.engine.connect() as conn:
        given_at = conn.execute(select(EVENTS.c.occurred_at).where(EVENTS.c.consent_id == subject)).scalars().all()
    assert len(given_at) == 2 and len(set(given_at)) == 1, "the two choices were not recorded in one group"
    assert [event["action"] for event in consent_audit(runtime, org)][-2:] == ["consent.recorded", "consent.withdrawn"]
    assert consent_audit(runtime, org)[-1]["fields"]["dpia_event"] == "CONSENT_REVOKED"
    assert consent.is_allowed(org, subject, "analytics") and not consent.is_allowed(org, subject, "marketing")
