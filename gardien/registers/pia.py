"""The CNIL PIA tool's JSON export format, mapped to and from Gardien's DPIA record.

What was checked against LINCnil/pia (`src/assets/files/pia_architecture.json` and the example
`2018-02-21-pia-example.json`): the top-level members `pia`, `answers`, `measures`, `evaluations`;
answers keyed by `reference_to` = section, item and question digits (111–123, 211–227, 321–346)
with `data: {text, gauge, list}`; risk questions x1–x4 are lists, x5 (severity) and x6
(likelihood) are gauges with a justification text; measures are `{title, content}`; evaluations
carry `reference_to` as "2.1.211" or "3.2" with `action_plan_comment` and
`estimated_implementation_date`. The meaning of the integer `status` and `dpo_status` values was
not verified and is documented as such in docs/registers.md.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import orjson
from pydantic import ValidationError

from gardien.core.errors import InvalidInput
from gardien.registers.schemas import DpiaIn, Opinion, RiskAssessment

CONTEXT = {111: "processing", 112: "responsibilities", 113: "standards", 121: "data", 122: "lifecycle", 123: "supports"}
PRINCIPLES = {
    211: "purposes",
    212: "legal_basis",
    213: "minimisation",
    214: "accuracy",
    215: "retention",
    221: "information",
    222: "consent",
    223: "access_portability",
    224: "rectification_erasure",
    225: "restriction_objection",
    226: "processors",
    227: "transfers",
}
RISKS = {32: "illegitimate_access", 33: "unwanted_modification", 34: "data_disappearance"}
RISK_LISTS = {1: "impacts", 2: "threats", 3: "sources", 4: "measures"}
RISK_GAUGES = {5: ("severity", "severity_justification"), 6: ("likelihood", "likelihood_justification")}
# Inferred, not verified: the example file's validated PIA has status 3 (see module docstring).
STATUS_OUT = {"draft": 0, "rejected": 1, "validated": 2}
STATUS_IN = {0: "draft", 1: "rejected", 2: "validated", 3: "validated"}


def _answer(
    reference: int, text: str | None = None, gauge: int | None = None, items: list[str] | None = None
) -> dict[str, Any]:
    return {"reference_to": reference, "data": {"text": text, "gauge": gauge, "list": items or []}}


def export(record: DpiaIn, entry_id: str) -> dict[str, Any]:
    v = record.validation
    answers: list[dict[str, Any]] = []
    for reference, name in CONTEXT.items():
        if (text := getattr(record.context, name)) is not None:
            answers.append(_answer(reference, text))
    for reference, name in PRINCIPLES.items():
        if (text := getattr(record.principles, name)) is not None:
            answers.append(_answer(reference, text))
    for prefix, name in RISKS.items():
        risk: RiskAssessment = getattr(record.risks, name)
        for digit, member in RISK_LISTS.items():
            if items := getattr(risk, member):
                answers.append(_answer(prefix * 10 + digit, items=list(items)))
        for digit, (gauge, why) in RISK_GAUGES.items():
            if getattr(risk, gauge) is not None or getattr(risk, why) is not None:
                answers.append(_answer(prefix * 10 + digit, getattr(risk, why), getattr(risk, gauge)))
    return {
        "pia": {
            "name": record.name,
            "author_name": v.author or "",
            "evaluator_name": v.evaluator or "",
            "validator_name": v.validator or "",
            "dpos_names": v.dpo_names or "",
            "dpo_opinion": v.dpo_opinion or "",
            "dpo_status": 1 if v.dpo_status is Opinion.FAVOURABLE else 0,
            "people_names": v.people_names or "",
            "concerned_people_searched_opinion": v.people_searched,
            "concerned_people_opinion": v.people_opinion or "",
            "concerned_people_status": 1 if v.people_status is Opinion.FAVOURABLE else 0,
            "rejection_reason": v.rejection_reason or "",
            "status": STATUS_OUT[v.status],
            "category": "",
            "gardien_id": entry_id,
        },
        "answers": answers,
        "measures": [{"title": m.title, "content": m.content or ""} for m in record.measures],
        "evaluations": [
            {
                "reference_to": a.reference,
                "action_plan_comment": a.action,
                "estimated_implementation_date": a.due_on.isoformat() if a.due_on else None,
                "person_in_charge": a.owner,
            }
            for a in record.action_plan
        ],
        "comments": [],
    }


def _opinion(status: Any, opinion: Any) -> str | None:
    if status == 1:
        return Opinion.FAVOURABLE.value
    return Opinion.UNFAVOURABLE.value if status == 0 and opinion else None


def _due(value: Any) -> str | None:
    if not isinstance(value, str) or len(value) < 10:
        return None
    try:
        return date.fromisoformat(value[:10]).isoformat()
    except ValueError:
        return None


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _status(value: Any) -> str:
    return STATUS_IN.get(value, "draft") if type(value) is int else "draft"


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def import_(document: dict[str, Any]) -> DpiaIn:
    """A DPIA record from a PIA tool export; 422 naming the member when it does not fit."""
    pia = document.get("pia")
    if not isinstance(pia, dict):
        raise InvalidInput("pia: missing", [{"field": "pia", "message": "missing", "type": "pia"}])
    context: dict[str, Any] = {}
    principles: dict[str, Any] = {}
    risks: dict[str, dict[str, Any]] = {name: {} for name in RISKS.values()}
    for answer in _list(document.get("answers")):
        if not isinstance(answer, dict) or not isinstance(answer.get("data"), dict):
            continue
        reference, data = answer.get("reference_to"), answer["data"]
        if not isinstance(reference, int):
            continue
        if reference in CONTEXT:
            context[CONTEXT[reference]] = _text(data.get("text"))
        elif reference in PRINCIPLES:
            principles[PRINCIPLES[reference]] = _text(data.get("text"))
        elif reference // 10 in RISKS:
            risk = risks[RISKS[reference // 10]]
            digit = reference % 10
            if digit in RISK_LISTS:
                risk[RISK_LISTS[digit]] = [i for i in _list(data.get("list")) if isinstance(i, str) and i]
            elif digit in RISK_GAUGES:
                gauge, why = RISK_GAUGES[digit]
                # The tool stores 0 for a gauge not yet set.
                risk[gauge] = data.get("gauge") or None
                risk[why] = _text(data.get("text"))
    measures = [
        {"title": m.get("title"), "content": _text(m.get("content"))}
        for m in _list(document.get("measures"))
        if isinstance(m, dict)
    ]
    actions = [
        {
            "reference": e.get("reference_to"),
            "action": e.get("action_plan_comment"),
            "due_on": _due(e.get("estimated_implementation_date")),
            "owner": _text(e.get("person_in_charge")),
        }
        for e in _list(document.get("evaluations"))
        if isinstance(e, dict) and _text(e.get("action_plan_comment"))
    ]
    record = {
        "name": pia.get("name"),
        "context": context,
        "principles": principles,
        "measures": measures,
        "risks": risks,
        "action_plan": actions,
        "validation": {
            "author": _text(pia.get("author_name")),
            "evaluator": _text(pia.get("evaluator_name")),
            "validator": _text(pia.get("validator_name")),
            "dpo_names": _text(pia.get("dpos_names")),
            "dpo_opinion": _text(pia.get("dpo_opinion")),
            "dpo_status": _opinion(pia.get("dpo_status"), pia.get("dpo_opinion")),
            "people_names": _text(pia.get("people_names")),
            "people_searched": pia.get("concerned_people_searched_opinion") is True,
            "people_opinion": _text(pia.get("concerned_people_opinion")),
            "people_status": _opinion(pia.get("concerned_people_status"), pia.get("concerned_people_opinion")),
            "status": _status(pia.get("status")),
            "rejection_reason": _text(pia.get("rejection_reason")),
        },
    }
    try:
        # Through JSON bytes, so that text a JSON parser let through but that is not Unicode
        # (lone surrogates) is refused here like any other bad value.
        return DpiaIn.model_validate_json(orjson.dumps(record))
    except orjson.JSONEncodeError as exc:
        raise InvalidInput(f"body: {exc}", [{"field": "body", "message": str(exc), "type": "unicode"}]) from exc
    except ValidationError as exc:
        errors = [
            {"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"], "type": e["type"]} for e in exc.errors()
        ]
        raise InvalidInput("; ".join(f"{e['field']}: {e['message']}" for e in errors[:5]), errors) from exc
