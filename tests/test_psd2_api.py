"""The SCA advisor over HTTP, on SQLite and PostgreSQL: counters, challenges, fraud figures, Art. 21.

The figures asserted here come from Delegated Regulation (EU) 2018/389: €30 and five payments for
low-value remote payments (Art. 16), five failed attempts and five minutes of inactivity (Art. 4),
two quarters above the reference rate to suspend TRA (Art. 20).
"""

from __future__ import annotations

import asyncio
import threading
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from gardien.audit.models import EVENTS
from gardien.audit.service import Ledger
from gardien.core.roles import Role
from gardien.core.runtime import Runtime
from gardien.psd2.models import ScaChallenge, ScaCounter, ScaDecision
from gardien.psd2.schemas import DecideIn, DecisionOut, PolicyIn
from gardien.psd2.service import ScaAdvisor
from tests.conftest import auth, make_key, one_writer_group


def payment(amount: str = "20", payer: str = "alice", **overrides: Any) -> dict[str, Any]:
    body = {"amount": amount, "channel": "remote", "instrument": "card", "payer": payer, "payee": "shop"}
    body.update(overrides)
    return body


class Sca:
    def __init__(self, client: TestClient, tokens: dict[Role, str]) -> None:
        self.client = client
        self.service = auth(tokens[Role.SERVICE])
        self.admin = auth(tokens[Role.ADMIN])

    def decide(self, status: int = 200, **body: Any) -> dict[str, Any]:
        response = self.client.post("/api/v1/sca/decide", json=body, headers=self.service)
        assert response.status_code == status, response.text
        result: dict[str, Any] = response.json()
        return result

    def pay(self, amount: str = "20", payer: str = "alice", **overrides: Any) -> dict[str, Any]:
        return self.decide(payment=payment(amount, payer, **overrides))

    def counters(self, payer: str = "alice") -> dict[str, Any]:
        response = self.client.get(f"/api/v1/sca/payers/{payer}/counters", headers=self.service)
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    def challenge(self, **body: Any) -> dict[str, Any]:
        body = {"payer": "alice", "amount": "120.50", "payee": "shop", **body}
        response = self.client.post("/api/v1/sca/challenges", json=body, headers=self.service)
        assert response.status_code == 201, response.text
        result: dict[str, Any] = response.json()
        return result

    def verify(self, challenge_id: str, **body: Any) -> dict[str, Any]:
        response = self.client.post(f"/api/v1/sca/challenges/{challenge_id}/verify", json=body, headers=self.service)
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result


@pytest.fixture
def sca(client: TestClient, tokens: dict[Role, str]) -> Sca:
    return Sca(client, tokens)


def psd2_events(runtime: Runtime, org: str) -> list[tuple[str, str]]:
    with runtime.engine.connect() as conn:
        rows = conn.execute(
            select(EVENTS.c.action, EVENTS.c.canonical)
            .where(EVENTS.c.org_id == org, EVENTS.c.module == "psd2")
            .order_by(EVENTS.c.seq)
        ).all()
    return [(row.action, row.canonical.decode()) for row in rows]


def test_low_value_counters_run_until_the_sixth_payment_then_sca_resets_them(
    sca: Sca, runtime: Runtime, org: str
) -> None:
    sca.client.put("/api/v1/sca/policy", json={"counter_mode": "count"}, headers=sca.admin)
    outcomes = [sca.pay("10")["outcome"] for _ in range(6)]
    assert outcomes == ["exempt"] * 5 + ["sca_required"]
    assert sca.counters()["remote_count"] == 5
    assert sca.counters()["remote_sum_eur"] == "50"

    created = sca.challenge(amount="10")
    result = sca.verify(created["id"], code=created["code"], amount="10", payee="shop")
    assert result["status"] == "verified"
    after = sca.counters()
    assert (after["remote_count"], after["remote_sum_eur"]) == (0, "0")
    assert after["last_sca_at"] is not None
    assert sca.pay("10")["outcome"] == "exempt"


def test_cumulative_amount_counts_the_current_payment_by_default(sca: Sca) -> None:
    # €25 × 4 = €100: the fourth stays within €100 including itself, the fifth would reach €125.
    assert [sca.pay("25")["recommended"]["article"] for _ in range(4)] == ["16"] * 4
    fifth = sca.pay("25")
    assert fifth["outcome"] == "sca_required"
    assert "€125.00 exceeds €100.00" in fifth["reason"]


def test_counters_are_kept_per_instrument_when_the_policy_says_so(sca: Sca) -> None:
    sca.client.put(
        "/api/v1/sca/policy", json={"counter_mode": "count", "counter_scope": "instrument"}, headers=sca.admin
    )
    for _ in range(5):
        assert sca.pay("5", instrument_id="card-1")["outcome"] == "exempt"
    assert sca.pay("5", instrument_id="card-1")["outcome"] == "sca_required"
    assert sca.pay("5", instrument_id="card-2")["outcome"] == "exempt"
    created = sca.challenge(amount="5", instrument_id="card-1")
    assert sca.verify(created["id"], code=created["code"], amount="5", payee="shop")["verified"] is True
    assert sca.pay("5", instrument_id="card-1")["outcome"] == "exempt", "SCA on card-1 restarts its counters"


def test_a_simulation_changes_nothing(sca: Sca, runtime: Runtime, org: str) -> None:
    before = psd2_events(runtime, org)
    answer = sca.decide(payment=payment("300"), record=False)
    assert answer["outcome"] == "sca_required" and answer["decision_id"] is None
    assert sca.counters()["remote_count"] == 0
    exempt = sca.decide(payment=payment("10"), record=False)
    assert exempt["outcome"] == "exempt"
    assert sca.counters()["remote_count"] == 0
    assert psd2_events(runtime, org) == before
    with runtime.sessions() as session:
        assert session.scalar(select(func.count()).select_from(ScaDecision).where(ScaDecision.org_id == org)) == 0


def test_caller_kept_counters_override_and_leave_stored_ones_alone(sca: Sca) -> None:
    answer = sca.decide(payment=payment("10"), counters={"remote_count": 0, "remote_sum_eur": "95"})
    assert answer["outcome"] == "sca_required"
    assert sca.counters()["remote_count"] == 0


def test_a_decision_that_triggers_sca_is_audited_for_the_dpia_log(sca: Sca, runtime: Runtime, org: str) -> None:
    answer = sca.pay("900")
    assert answer["sca_required"] is True
    assert answer["challenge_indicator"] == "04"
    events = psd2_events(runtime, org)
    assert [action for action, _ in events] == ["sca.required"]
    canonical = events[0][1]
    assert '"dpia_event":"SCA_TRIGGERED"' in canonical
    assert answer["decision_id"] in canonical
    # The payer is recorded only by its keyed pseudonym.
    assert "alice" not in canonical
    sca.pay("10")
    assert len(psd2_events(runtime, org)) == 1, "an exempt payment is not an SCA event"


def test_wrong_code_changed_amount_and_changed_payee_fail_alike(sca: Sca) -> None:
    created = sca.challenge()
    assert created["display"] == "Confirm the payment of 120.50 EUR to shop"
    wrong_code = "0" * 6 if created["code"] != "0" * 6 else "1" * 6
    attempts = [
        {"code": wrong_code, "amount": "120.50", "payee": "shop"},
        {"code": created["code"], "amount": "120.51", "payee": "shop"},
        {"code": created["code"], "amount": "120.50", "payee": "shop2"},
        {"code": created["code"], "amount": "120.50", "currency": "USD", "payee": "shop"},
    ]
    answers = [sca.verify(created["id"], **attempt) for attempt in attempts]
    assert [a["detail"] for a in answers] == ["authentication failed"] * 4
    assert [a["attempts_left"] for a in answers] == [4, 3, 2, 1]
    assert {a["status"] for a in answers} == {"failed"}
    # Trailing zeros are the same amount: the code still binds.
    assert sca.verify(created["id"], code=created["code"], amount="120.5000", payee="shop")["verified"] is True
    # A verified challenge cannot be replayed.
    again = sca.verify(created["id"], code=created["code"], amount="120.50", payee="shop")
    assert again["status"] == "verified" and again["attempts_left"] == 0


def test_the_fifth_failure_blocks_the_challenge(sca: Sca, runtime: Runtime, org: str) -> None:
    created = sca.challenge()
    wrong = {"code": "9" * 7, "amount": "120.50", "payee": "shop"}
    statuses = [sca.verify(created["id"], **wrong)["status"] for _ in range(5)]
    assert statuses == ["failed"] * 4 + ["blocked"]
    # Even the right code is refused now.
    right = sca.verify(created["id"], code=created["code"], amount="120.50", payee="shop")
    assert right["status"] == "blocked" and right["verified"] is False
    actions = [action for action, _ in psd2_events(runtime, org)]
    assert actions == ["sca.challenge.created"] + ["sca.challenge.failed"] * 4 + ["sca.challenge.blocked"]


def test_five_minutes_without_activity_expire_the_challenge(sca: Sca, runtime: Runtime) -> None:
    created = sca.challenge()
    with runtime.writes.begin() as session:
        row = session.get(ScaChallenge, created["id"])
        assert row is not None
        # Just inside the limit: still usable. A failed attempt counts as activity.
        session.execute(
            update(ScaChallenge)
            .where(ScaChallenge.id == created["id"])
            .values(last_activity_at=row.last_activity_at - timedelta(seconds=299))
        )
    assert sca.verify(created["id"], code="1", amount="120.50", payee="shop")["status"] == "failed"
    with runtime.writes.begin() as session:
        row = session.get(ScaChallenge, created["id"])
        assert row is not None
        session.execute(
            update(ScaChallenge)
            .where(ScaChallenge.id == created["id"])
            .values(last_activity_at=row.last_activity_at - timedelta(seconds=301))
        )
    status = sca.client.get(f"/api/v1/sca/challenges/{created['id']}", headers=sca.service).json()
    assert status["status"] == "expired"
    answer = sca.verify(created["id"], code=created["code"], amount="120.50", payee="shop")
    assert answer["status"] == "expired" and answer["verified"] is False
    assert "5 minutes" in answer["detail"]


def test_a_batch_binds_the_total_and_the_set_of_payees(sca: Sca) -> None:
    created = sca.challenge(amount="300", payee=None, payees=["a", "b", "c"], locale="nl")
    assert created["display"] == "Bevestig de betaling van 300.00 EUR aan a, b, c"
    missing = sca.verify(created["id"], code=created["code"], amount="300", payees=["a", "b"])
    assert missing["status"] == "failed"
    reordered = sca.verify(created["id"], code=created["code"], amount="300", payees=["c", "a", "b"])
    assert reordered["verified"] is True


def test_two_quarters_above_the_reference_suspend_the_band(sca: Sca) -> None:
    admin = sca.admin
    sca.client.put("/api/v1/sca/policy", json={"fraud_rates": {"card": "0.05"}}, headers=admin)
    # €400 needs the €500 band, whose card reference rate is 0.01 %: 0.05 % is above it anyway.
    # €200 fits the €250 band (0.06 %), usable at 0.05 %.
    assert sca.pay("200")["recommended"] == {
        "article": "18",
        "name": "transaction_risk_analysis",
        "mandatory": False,
        "etv_eur": "250",
    }
    for quarter in ("2026-Q1", "2026-Q2"):
        response = sca.client.put(
            f"/api/v1/sca/fraud-quarters/{quarter}/card", json={"rate_percent": "0.07"}, headers=admin
        )
        assert response.status_code == 200, response.text
    suspended = response.json()["tra_suspended"]
    assert suspended == [{"instrument": "card", "etv_eur": "250"}, {"instrument": "card", "etv_eur": "500"}]
    refused = sca.pay("200")
    assert refused["outcome"] == "sca_required"
    assert "suspended under Art. 20" in refused["reason"]
    assert sca.pay("90")["recommended"]["article"] == "18", "the €100 band (0.13 %) is not suspended"

    # A compliant quarter is not enough without telling the authority (Art. 20(4)).
    sca.client.put("/api/v1/sca/fraud-quarters/2026-Q3/card", json={"rate_percent": "0.05"}, headers=admin)
    assert sca.pay("200")["outcome"] == "sca_required"
    body = {"rate_percent": "0.05", "resumption_notified": True}
    resumed = sca.client.put("/api/v1/sca/fraud-quarters/2026-Q3/card", json=body, headers=admin)
    assert resumed.json()["tra_suspended"] == [{"instrument": "card", "etv_eur": "500"}]
    assert sca.pay("200")["recommended"]["article"] == "18"


def test_the_art21_report_counts_value_fraud_and_each_exemption(sca: Sca) -> None:
    sca.client.put("/api/v1/sca/policy", json={"fraud_rates": {"card": "0.1"}}, headers=sca.admin)
    low = [sca.pay("20", payer=f"p{i}") for i in range(3)]
    tra = sca.pay("80", payer="p9")
    sca.pay("1000", payer="p10")
    sca.decide(payment={**payment("12"), "channel": "contactless_pos"})
    sca.decide(payment={**payment("7"), "initiation": "merchant_initiated"})
    fraud = sca.client.post(f"/api/v1/sca/decisions/{low[0]['decision_id']}/fraud", json={}, headers=sca.service)
    assert fraud.status_code == 200, fraud.text
    part = sca.client.post(
        f"/api/v1/sca/decisions/{tra['decision_id']}/fraud", json={"amount_eur": "40"}, headers=sca.service
    )
    assert part.status_code == 200, part.text
    too_much = sca.client.post(
        f"/api/v1/sca/decisions/{tra['decision_id']}/fraud", json={"amount_eur": "80.01"}, headers=sca.service
    )
    assert too_much.status_code == 422

    quarter = sca.client.get("/api/v1/sca/policy", headers=sca.admin).json()["updated_at"]
    year, month = int(quarter[:4]), int(quarter[5:7])
    report = sca.client.get(f"/api/v1/sca/reports/art21/{year}-Q{(month - 1) // 3 + 1}", headers=sca.admin).json()
    assert report["out_of_scope"] == 1
    segments = {(s["remote"], s["instrument"]): s for s in report["segments"]}
    remote = segments[(True, "card")]
    assert remote["transactions"] == 5
    assert remote["value_eur"] == "1140"
    assert remote["average_value_eur"] == "228.00"
    assert remote["fraud_value_eur"] == "60"
    assert remote["fraud_rate_percent"] == "5.2632"  # 60 / 1140
    shares = {row["exemption"]: (row["count"], row["share_percent"]) for row in remote["by_exemption"]}
    assert shares == {"16": (3, "60.00"), "18": (1, "20.00"), "sca": (1, "20.00")}
    contactless = segments[(False, "card")]
    assert contactless["transactions"] == 1 and contactless["by_exemption"][0]["exemption"] == "11"
    empty = sca.client.get("/api/v1/sca/reports/art21/2019-Q4", headers=sca.admin).json()
    assert empty["segments"] == [] and empty["out_of_scope"] == 0


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({"payment": payment("0")}, "payment.amount"),
        ({"payment": payment("-5")}, "payment.amount"),
        ({"payment": payment("10", currency="USD")}, "payment"),
        ({"payment": payment("10", channel="teleport")}, "payment.channel"),
        ({"payment": payment("10", channel="unattended_terminal")}, "payment"),
        ({"payment": payment("10"), "risk_score": 101}, "risk_score"),
        ({"operation": "account_information"}, ""),
        ({"payment": payment("10"), "surprise": True}, "surprise"),
        ({"payment": payment("NaN")}, "payment.amount"),
    ],
)
def test_bad_decision_input_is_a_422_with_the_field_and_changes_nothing(
    sca: Sca, runtime: Runtime, org: str, body: dict[str, Any], path: str
) -> None:
    response = sca.client.post("/api/v1/sca/decide", json=body, headers=sca.service)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    if path:
        assert any(error["field"].startswith(path) for error in response.json()["errors"]), response.text
    with runtime.sessions() as session:
        assert session.scalar(select(func.count()).select_from(ScaDecision).where(ScaDecision.org_id == org)) == 0


def test_foreign_currency_converts_with_the_callers_rate(sca: Sca) -> None:
    under = sca.pay("32", currency="USD", eur_rate="0.9")  # €28.80
    assert under["amount_eur"] == "28.8" and under["recommended"]["article"] == "16"
    over = sca.pay("34", currency="USD", eur_rate="0.9")  # €30.60
    assert over["outcome"] == "sca_required"


def test_another_organisations_decisions_and_challenges_are_not_found(
    sca: Sca, runtime: Runtime, client: TestClient
) -> None:
    from gardien.core import service

    with runtime.writes.begin() as session:
        other = service.create_org(session, slug="other-bank", name="Other bank").id
    theirs = auth(make_key(runtime, other, Role.SERVICE))
    decision = client.post("/api/v1/sca/decide", json={"payment": payment("10")}, headers=theirs).json()
    created = client.post(
        "/api/v1/sca/challenges", json={"payer": "alice", "amount": "5", "payee": "x"}, headers=theirs
    ).json()
    assert (
        client.post(f"/api/v1/sca/decisions/{decision['decision_id']}/fraud", json={}, headers=sca.service).status_code
        == 404
    )
    assert client.get(f"/api/v1/sca/challenges/{created['id']}", headers=sca.service).status_code == 404
    verify = {"code": created["code"], "amount": "5", "payee": "x"}
    assert (
        client.post(f"/api/v1/sca/challenges/{created['id']}/verify", json=verify, headers=sca.service).status_code
        == 404
    )
    # Counters are per organisation too: the same payer reference starts from zero here.
    assert sca.counters()["remote_count"] == 0
    assert client.get(f"/api/v1/sca/challenges/{created['id']}", headers=theirs).json()["status"] == "pending"


def test_concurrent_decisions_for_one_payer_never_exceed_the_count(sca: Sca, runtime: Runtime, org: str) -> None:
    sca.client.put("/api/v1/sca/policy", json={"counter_mode": "count"}, headers=sca.admin)
    results: list[str] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(4):
            outcome = sca.pay("1", payer="busy")["outcome"]
            with lock:
                results.append(outcome)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results.count("exempt") == 5
    assert results.count("sca_required") == 11
    with runtime.sessions() as session:
        rows = session.scalars(select(ScaCounter).where(ScaCounter.org_id == org)).all()
    assert [row.remote_count for row in rows] == [5]


def test_decisions_take_the_fast_lane_and_everything_else_the_regular_route(sca: Sca, tokens: dict[Role, str]) -> None:
    url = "/api/v1/sca/decide"
    counters = sca.client.app.state.fast_routes[url].counters  # type: ignore[attr-defined]
    before = dict(counters)
    served = sca.pay("20")
    assert served["recommended"]["article"] == "16"
    assert counters["served"] == before["served"] + 1
    invalid = sca.client.post(url, json={"payment": payment("0")}, headers=sca.service)
    assert invalid.status_code == 422 and invalid.json()["errors"][0]["field"].startswith("payment.amount")
    assert sca.client.post(url, json={"payment": payment()}, headers=auth(tokens[Role.AUDITOR])).status_code == 403
    assert sca.client.post(url, json={"payment": payment()}).status_code == 401
    assert counters["replayed"] == before["replayed"] + 3
    assert counters["served"] == before["served"] + 1


def test_a_payers_sixth_payment_in_the_same_writer_group_as_the_first_five_needs_sca(
    runtime: Runtime, org: str
) -> None:
    """The writer decides a whole group at once; within it, each payment still sees the ones before."""
    ledger = Ledger(runtime)
    advisor = ScaAdvisor(runtime, ledger)
    actor = {"type": "service", "id": "test"}
    advisor.set_policy(org, PolicyIn.model_validate({"counter_mode": "count"}), actor)
    ledger.start()
    try:

        async def seven_payments() -> list[DecisionOut]:
            body = DecideIn.model_validate({"payment": payment("1", payer="grouped")})
            async with one_writer_group(ledger, org) as group:
                group.extend(advisor.decide_async(org, body, actor) for _ in range(7))
            return group

        outcomes = asyncio.run(seven_payments())
    finally:
        ledger.stop()
    assert [o.outcome.value for o in outcomes] == ["exempt"] * 5 + ["sca_required"] * 2
    with runtime.sessions() as session:
        decided_at = session.scalars(select(ScaDecision.decided_at).where(ScaDecision.org_id == org)).all()
        counters = session.scalars(select(ScaCounter).where(ScaCounter.org_id == org)).one()
    assert len(set(decided_at)) == 1, "the seven decisions were not decided in one group"
    assert (counters.remote_count, counters.remote_micros) == (5, 5_000_000)


def test_a_policy_changed_by_another_replica_applies_to_the_next_decision(runtime: Runtime, org: str) -> None:
    """Each process keeps the policy it last read and checks its version with the counters; a change
    made elsewhere (here: counting per instrument instead of per payer) must not be missed."""
    ledger = Ledger(runtime)
    ours, theirs = ScaAdvisor(runtime, ledger), ScaAdvisor(runtime, ledger)
    actor = {"type": "service", "id": "test"}
    theirs.set_policy(org, PolicyIn.model_validate({"counter_mode": "count"}), actor)

    def pay(instrument: str) -> str:
        body = DecideIn.model_validate({"payment": payment("1", payer="replica", instrument_id=instrument)})
        return ours.decide(org, body, actor).outcome.value

    assert [pay("card-1") for _ in range(5)] == ["exempt"] * 5
    assert pay("card-2") == "sca_required", "per payer, the sixth payment needs SCA whatever the card"
    theirs.set_policy(org, PolicyIn.model_validate({"counter_mode": "count", "counter_scope": "instrument"}), actor)
    assert pay("card-2") == "exempt", "per instrument, card-2 has its own counters"
    theirs.set_policy(org, PolicyIn.model_validate({"counter_mode": "count"}), actor)
    assert pay("card-3") == "sca_required", "back to per payer: the five payments still count"
