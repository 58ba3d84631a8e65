"""Routes of the SCA advisor. Parse, authorise, call the ScaAdvisor, shape the answer."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi import Path as PathParam
from starlette.types import Scope

from gardien.core.auth import require
from gardien.core.fastlane import FastRoute, model_route
from gardien.core.roles import Role
from gardien.core.schemas import NO_NUL
from gardien.core.service import Principal
from gardien.psd2 import rules
from gardien.psd2.schemas import (
    Art21Report,
    ChallengeCreated,
    ChallengeIn,
    ChallengeOut,
    CountersOut,
    DecideIn,
    DecisionOut,
    FraudQuarterIn,
    FraudQuartersOut,
    FraudReportIn,
    PolicyIn,
    PolicyOut,
    Quarter,
    VerifyIn,
)
from gardien.psd2.service import ScaAdvisor

router = APIRouter(prefix="/api/v1/sca", tags=["psd2"])

# The payment systems that ask for decisions and run challenges.
DECIDERS = frozenset({Role.SERVICE, Role.OPERATOR, Role.ADMIN})
# Who sets the PSP's policy and fraud figures.
POLICY_WRITERS = frozenset({Role.ADMIN, Role.OPERATOR})
# Who reads the policy, the fraud figures and the Art. 21 report.
POLICY_READERS = frozenset({Role.ADMIN, Role.OPERATOR, Role.DPO, Role.AUDITOR})

Id = Annotated[str, PathParam(min_length=1, max_length=64, pattern=NO_NUL)]
PayerRef = Annotated[str, PathParam(min_length=1, max_length=128, pattern=NO_NUL)]
InstrumentId = Annotated[str | None, Query(min_length=1, max_length=128, pattern=NO_NUL)]


def advisor_of(request: Request) -> ScaAdvisor:
    advisor: ScaAdvisor = request.app.state.sca
    return advisor


def _requires(roles: frozenset[Role]) -> Any:
    return Depends(require(roles))


@router.post("/decide", response_model=DecisionOut, summary="Is SCA required, and under which exemption if not?")
async def decide(body: DecideIn, request: Request, principal: Principal = _requires(DECIDERS)) -> Response:
    decision = await advisor_of(request).decide_async(principal.org_id, body, principal.as_actor())
    # Serialised once here: the response model would validate the answer a second time.
    return Response(decision.model_dump_json(), media_type="application/json")


def decide_route(advisor: ScaAdvisor) -> FastRoute:
    """The fast lane's handler of ``POST /decide``: same parsing, same answer, without FastAPI's stack."""

    async def run(principal: Principal, request: DecideIn, _scope: Scope) -> DecisionOut:
        return await advisor.decide_async(principal.org_id, request, principal.as_actor())

    return model_route(f"{router.prefix}/decide", DECIDERS, DecideIn, 200, run)


@router.get("/policy", response_model=PolicyOut, summary="The organisation's SCA policy")
def get_policy(request: Request, principal: Principal = _requires(POLICY_READERS)) -> PolicyOut:
    return advisor_of(request).get_policy(principal.org_id)


@router.put("/policy", response_model=PolicyOut, summary="Replace the organisation's SCA policy")
async def put_policy(body: PolicyIn, request: Request, principal: Principal = _requires(POLICY_WRITERS)) -> PolicyOut:
    return await advisor_of(request).set_policy_async(principal.org_id, body, principal.as_actor())


@router.get("/fraud-quarters", response_model=FraudQuartersOut, summary="Quarterly fraud rates and Art. 20 status")
def fraud_quarters(request: Request, principal: Principal = _requires(POLICY_READERS)) -> FraudQuartersOut:
    return advisor_of(request).fraud_quarters(principal.org_id)


@router.put(
    "/fraud-quarters/{quarter}/{instrument}",
    response_model=FraudQuartersOut,
    summary="Record a quarter's monitored fraud rate for remote payments of one type",
)
async def put_fraud_quarter(
    quarter: Annotated[Quarter, PathParam()],
    instrument: rules.Instrument,
    body: FraudQuarterIn,
    request: Request,
    principal: Principal = _requires(POLICY_WRITERS),
) -> FraudQuartersOut:
    return await advisor_of(request).record_quarter_async(
        principal.org_id, quarter, instrument, body, principal.as_actor()
    )


@router.get("/payers/{payer}/counters", response_model=CountersOut, summary="A payer's counters since the last SCA")
def get_counters(
    payer: PayerRef, request: Request, instrument_id: InstrumentId = None, principal: Principal = _requires(DECIDERS)
) -> CountersOut:
    return advisor_of(request).counters(principal.org_id, payer, instrument_id)


@router.post(
    "/payers/{payer}/authenticated",
    response_model=CountersOut,
    summary="Tell Gardien that SCA was applied elsewhere: the counters restart",
)
async def sca_performed(
    payer: PayerRef, request: Request, instrument_id: InstrumentId = None, principal: Principal = _requires(DECIDERS)
) -> CountersOut:
    return await advisor_of(request).sca_performed_async(principal.org_id, payer, instrument_id, principal.as_actor())


@router.post(
    "/decisions/{decision_id}/fraud",
    summary="Report a decided payment as unauthorised or fraudulent (Art. 19 and 21)",
)
async def report_fraud(
    decision_id: Id, body: FraudReportIn, request: Request, principal: Principal = _requires(DECIDERS)
) -> dict[str, Any]:
    return await advisor_of(request).report_fraud_async(principal.org_id, decision_id, body, principal.as_actor())


@router.post("/challenges", status_code=201, response_model=ChallengeCreated, summary="Create a challenge")
async def create_challenge(
    body: ChallengeIn, request: Request, principal: Principal = _requires(DECIDERS)
) -> ChallengeCreated:
    return await advisor_of(request).create_challenge_async(principal.org_id, body, principal.as_actor())


@router.get("/challenges/{challenge_id}", response_model=ChallengeOut, summary="A challenge's status")
def get_challenge(challenge_id: Id, request: Request, principal: Principal = _requires(DECIDERS)) -> ChallengeOut:
    return advisor_of(request).challenge(principal.org_id, challenge_id)


@router.post(
    "/challenges/{challenge_id}/verify",
    response_model=ChallengeOut,
    summary="Check the payer's code against the amount and payee confirmed now",
)
async def verify_challenge(
    challenge_id: Id, body: VerifyIn, request: Request, principal: Principal = _requires(DECIDERS)
) -> ChallengeOut:
    return await advisor_of(request).verify_challenge_async(principal.org_id, challenge_id, body, principal.as_actor())


@router.get("/reports/art21/{quarter}", response_model=Art21Report, summary="Quarterly Art. 21 report")
def art21_report(
    quarter: Annotated[Quarter, PathParam()], request: Request, principal: Principal = _requires(POLICY_READERS)
) -> Art21Report:
    return advisor_of(request).art21_report(principal.org_id, quarter)
