"""The register forms: a record as form fields, and typed fields back as the record to validate.

Field names are the record's dotted paths (`purposes.0.name`), so that the validation errors of
the schemas land beside the field they are about. Rows left blank are dropped; the errors of the
rows kept are moved back to the row the person typed them in.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

from gardien.registers.schemas import (
    BreachIn,
    Clauses,
    Context,
    ControllerActivity,
    DataCategory,
    DpiaIn,
    Principles,
    ProcessorIn,
    Risks,
)
from gardien.web.console.base import Form, lines, local_input, moment, optional

BLANK_ROWS = 2
# Moves the schema's errors (by the record's paths) onto the form's fields.
Place = Callable[[dict[str, str]], dict[str, str]]
ROW = re.compile(r"^([a-z_]+)\.(\d{1,3})\.([a-z_]+)$")

# Rows of an activity: list member -> its columns.
ACTIVITY_ROWS: dict[str, tuple[str, ...]] = {
    "purposes": ("name", "legal_basis", "legitimate_interest"),
    "recipients": ("name", "kind", "country"),
    "transfers": ("recipient", "country", "safeguard", "documentation"),
}
ACTIVITY_TEXTS = ("name", "reference", "description", "retention", "retention_policy", "security_description")
BREACH_TEXTS = (
    "title",
    "description",
    "circumstances",
    "consequences",
    "measures_taken",
    "measures_proposed",
    "no_notification_reason",
    "late_reasons",
    "subjects_approx",
    "records_approx",
    "risk",
    "art34_exemption",
    "status",
)
BREACH_TIMES = ("aware_at", "started_at", "ended_at", "subjects_informed_at")
BREACH_LINES = ("subject_categories", "record_categories")
CONTACT = ("name", "email", "phone")


def _rows(form: Form, member: str, columns: tuple[str, ...]) -> list[dict[str, str]]:
    numbers = sorted({int(m.group(2)) for name in form.values if (m := ROW.match(name)) and m.group(1) == member})
    return [{c: form.get(f"{member}.{n}.{c}").strip() for c in columns} for n in numbers]


def with_blanks(rows: list[dict[str, str]], columns: Iterable[str], blanks: int = BLANK_ROWS) -> list[dict[str, str]]:
    return rows + [dict.fromkeys(columns, "") for _ in range(blanks)]


def _kept(rows: list[dict[str, str]], ignored: Iterable[str] = ()) -> tuple[list[dict[str, str]], list[int]]:
    """The rows with something typed in, and for each the number of the row it came from.

    `ignored`: columns that hold a default in every row (a status), which alone make no row.
    """
    skip = set(ignored)
    kept = [(i, row) for i, row in enumerate(rows) if any(v for c, v in row.items() if c not in skip)]
    return [row for _, row in kept], [i for i, _ in kept]


def renumber(errors: dict[str, str], member: str, origins: list[int]) -> dict[str, str]:
    """Move `member.N…` errors from the N-th row kept to the row it was typed in."""
    moved: dict[str, str] = {}
    for path, message in errors.items():
        parts = path.split(".")
        if len(parts) > 1 and parts[0] == member and parts[1].isdigit() and int(parts[1]) < len(origins):
            parts[1] = str(origins[int(parts[1])])
        moved[".".join(parts)] = message
    return moved


def collapse(errors: dict[str, str], members: Iterable[str]) -> dict[str, str]:
    """Errors of a list typed one item a line belong to its textarea: `subject_categories.2` -> line 3.

    `members` are dotted paths (`risks.illegitimate_access.impacts`) or top-level names.
    """
    collapsed: dict[str, str] = {}
    names = set(members)
    for path, message in errors.items():
        member, _, rest = path.rpartition(".")
        if member in names and rest.isdigit():
            collapsed.setdefault(member, f"{int(rest) + 1}: {message}")
        else:
            collapsed.setdefault(path, message)
    return collapsed


# Processing activities (controller, Art. 30(1)) ------------------------------------------------


def activity_state(record: ControllerActivity | None) -> dict[str, Any]:
    """The form's fields for a record (a blank form for None)."""
    if record is None:
        return {
            **dict.fromkeys(ACTIVITY_TEXTS, ""),
            **{member: [] for member in ACTIVITY_ROWS},
            "subject_categories": "",
            "data": {c.value: {"checked": False, "description": "", "retention": ""} for c in DataCategory},
            "special_categories": [],
            "nir": False,
            "security_measures": [],
        }
    dumped = record.model_dump(mode="json")
    data = {c.value: {"checked": False, "description": "", "retention": ""} for c in DataCategory}
    for item in dumped["data_categories"]:
        data[item["category"]] = {
            "checked": True,
            "description": item["description"] or "",
            "retention": item["retention"] or "",
        }
    return {
        **{name: dumped.get(name) or "" for name in ACTIVITY_TEXTS},
        **{
            member: [{c: str(row.get(c) or "") for c in columns} for row in dumped[member]]
            for member, columns in ACTIVITY_ROWS.items()
        },
        "subject_categories": "\n".join(dumped["subject_categories"]),
        "data": data,
        "special_categories": dumped["special_categories"],
        "nir": dumped["nir"],
        "security_measures": dumped["security_measures"],
    }


def activity_from_form(form: Form) -> dict[str, Any]:
    return {
        **{name: form.get(name).strip() for name in ACTIVITY_TEXTS},
        **{member: _rows(form, member, columns) for member, columns in ACTIVITY_ROWS.items()},
        "subject_categories": form.get("subject_categories"),
        "data": {
            c.value: {
                "checked": c.value in form.all("data_categories"),
                "description": form.get(f"data_categories.{c.value}.description").strip(),
                "retention": form.get(f"data_categories.{c.value}.retention").strip(),
            }
            for c in DataCategory
        },
        "special_categories": form.all("special_categories"),
        "nir": form.has("nir"),
        "security_measures": form.all("security_measures"),
    }


def activity_body(state: dict[str, Any], kept_from: dict[str, Any]) -> tuple[dict[str, Any], Place]:
    """The record to validate, and how to move its errors back onto the form.

    `kept_from`: members of the stored record the form does not show (joint controllers), kept.
    """
    body: dict[str, Any] = {"role": "controller", **kept_from}
    for name in ACTIVITY_TEXTS:
        body[name] = optional(state[name]) if name != "name" else state[name]
    origins: dict[str, list[int]] = {}
    for member in ACTIVITY_ROWS:
        rows, origins[member] = _kept(state[member])
        body[member] = [{k: v for k, v in row.items() if v} for row in rows]
    chosen = [c for c, item in state["data"].items() if item["checked"]]
    body["data_categories"] = [
        {
            "category": c,
            "description": optional(state["data"][c]["description"]),
            "retention": optional(state["data"][c]["retention"]),
        }
        for c in chosen
    ]
    body["subject_categories"] = lines(state["subject_categories"])
    body["special_categories"] = state["special_categories"]
    body["nir"] = state["nir"]
    body["security_measures"] = state["security_measures"]

    def place(errors: dict[str, str]) -> dict[str, str]:
        for member, numbers in origins.items():
            errors = renumber(errors, member, numbers)
        placed: dict[str, str] = {}
        for path, message in collapse(errors, ["subject_categories"]).items():
            parts = path.split(".")
            if parts[0] == "data_categories" and len(parts) > 1 and parts[1].isdigit() and int(parts[1]) < len(chosen):
                parts[1] = chosen[int(parts[1])]
            placed.setdefault(".".join(parts), message)
        return placed

    return body, place


# Breaches (Art. 33/34) ---------------------------------------------------------------------------


def breach_state(record: BreachIn | None) -> dict[str, Any]:
    if record is None:
        state: dict[str, Any] = dict.fromkeys((*BREACH_TEXTS, *BREACH_TIMES, *BREACH_LINES), "")
        state.update(
            nature=[], special_categories=[], cross_border=False, status="open", dpo_contact=dict.fromkeys(CONTACT, "")
        )
        return state
    dumped = record.model_dump(mode="json")
    contact = dumped.get("dpo_contact") or {}
    return {
        **{name: "" if dumped.get(name) is None else str(dumped[name]) for name in BREACH_TEXTS},
        **{name: local_input(getattr(record, name)) for name in BREACH_TIMES},
        **{name: "\n".join(dumped[name]) for name in BREACH_LINES},
        "nature": dumped["nature"],
        "special_categories": dumped["special_categories"],
        "cross_border": dumped["cross_border"],
        "dpo_contact": {c: contact.get(c) or "" for c in CONTACT},
    }


def breach_from_form(form: Form) -> dict[str, Any]:
    return {
        **{name: form.get(name).strip() for name in (*BREACH_TEXTS, *BREACH_TIMES)},
        **{name: form.get(name) for name in BREACH_LINES},
        "nature": form.all("nature"),
        "special_categories": form.all("special_categories"),
        "cross_border": form.has("cross_border"),
        "dpo_contact": {c: form.get(f"dpo_contact.{c}").strip() for c in CONTACT},
    }


def breach_body(state: dict[str, Any], kept_from: dict[str, Any]) -> tuple[dict[str, Any], Place]:
    """The record to validate, and how to move its errors back onto the form.

    `kept_from`: the stored DPO contact's address, which the form does not show.
    """
    body: dict[str, Any] = {name: optional(state[name]) for name in BREACH_TEXTS}
    body["title"] = state["title"]
    body["description"] = state["description"]
    body["risk"] = state["risk"]
    body["status"] = state["status"] or "open"
    body.update({name: moment(state[name]) for name in BREACH_TIMES})
    body.update({name: lines(state[name]) for name in BREACH_LINES})
    body["nature"] = state["nature"]
    body["special_categories"] = state["special_categories"]
    body["cross_border"] = state["cross_border"]
    contact = {c: v for c, v in state["dpo_contact"].items() if v}
    body["dpo_contact"] = {**kept_from, **contact} if contact else None
    kept = {k: v for k, v in body.items() if v is not None or k in ("dpo_contact",)}
    return kept, lambda errors: collapse(errors, BREACH_LINES)


# Processors (Art. 28) ----------------------------------------------------------------------------

PROCESSOR_TEXTS = ("name", "address", "country", "duration", "breach_notice_hours")
PROCESSOR_LINES = ("services", "data_categories", "subject_categories")
PROCESSOR_ROWS: dict[str, tuple[str, ...]] = {
    "locations": ("country", "transfer_tool"),
    "sub_processors": ("name", "country", "service", "authorisation"),
}
DPA = ("signed_on", "review_on", "reference")
CLAUSES = tuple(Clauses.model_fields)
PROCESSOR_CONTACTS = ("contact", "dpo")


def processor_state(record: ProcessorIn | None) -> dict[str, Any]:
    if record is None:
        return {
            **dict.fromkeys((*PROCESSOR_TEXTS, *PROCESSOR_LINES), ""),
            **{member: [] for member in PROCESSOR_ROWS},
            "dpa": dict.fromkeys(DPA, ""),
            "clauses": [],
            **{who: dict.fromkeys(CONTACT, "") for who in PROCESSOR_CONTACTS},
        }
    dumped = record.model_dump(mode="json")
    return {
        **{name: "" if dumped.get(name) is None else str(dumped[name]) for name in PROCESSOR_TEXTS},
        **{name: "\n".join(dumped[name]) for name in PROCESSOR_LINES},
        **{
            member: [{c: str(row.get(c) or "") for c in columns} for row in dumped[member]]
            for member, columns in PROCESSOR_ROWS.items()
        },
        "dpa": {k: dumped["dpa"].get(k) or "" for k in DPA},
        "clauses": [name for name in CLAUSES if dumped["clauses"][name]],
        **{who: {c: (dumped.get(who) or {}).get(c) or "" for c in CONTACT} for who in PROCESSOR_CONTACTS},
    }


def processor_from_form(form: Form) -> dict[str, Any]:
    return {
        **{name: form.get(name).strip() for name in PROCESSOR_TEXTS},
        **{name: form.get(name) for name in PROCESSOR_LINES},
        **{member: _rows(form, member, columns) for member, columns in PROCESSOR_ROWS.items()},
        "dpa": {k: form.get(f"dpa.{k}").strip() for k in DPA},
        "clauses": [name for name in form.all("clauses") if name in CLAUSES],
        **{who: {c: form.get(f"{who}.{c}").strip() for c in CONTACT} for who in PROCESSOR_CONTACTS},
    }


def processor_body(state: dict[str, Any], kept_from: dict[str, Any]) -> tuple[dict[str, Any], Place]:
    """The record to validate, and how to move its errors back onto the form.

    `kept_from`: the stored contacts' postal addresses, which the form does not show.
    """
    body: dict[str, Any] = {name: optional(state[name]) for name in PROCESSOR_TEXTS}
    body["name"] = state["name"]
    body["country"] = state["country"]
    body.update({name: lines(state[name]) for name in PROCESSOR_LINES})
    origins: dict[str, list[int]] = {}
    for member in PROCESSOR_ROWS:
        rows, origins[member] = _kept(state[member])
        body[member] = [{k: v for k, v in row.items() if v} for row in rows]
    body["dpa"] = {k: optional(v) for k, v in state["dpa"].items()}
    body["clauses"] = {name: name in state["clauses"] for name in CLAUSES}
    for who in PROCESSOR_CONTACTS:
        typed = {c: v for c, v in state[who].items() if v}
        body[who] = {**kept_from.get(who, {}), **typed} if typed else None

    def place(errors: dict[str, str]) -> dict[str, str]:
        for member, numbers in origins.items():
            errors = renumber(errors, member, numbers)
        return collapse(errors, PROCESSOR_LINES)

    return {k: v for k, v in body.items() if v is not None}, place


# DPIAs (Art. 35, the CNIL PIA tool's sections) ---------------------------------------------------

DPIA_CONTEXT = tuple(Context.model_fields)
DPIA_PRINCIPLES = tuple(Principles.model_fields)
DPIA_RISKS = tuple(Risks.model_fields)
RISK_LISTS = ("impacts", "threats", "sources", "measures")
RISK_TEXTS = ("severity", "severity_justification", "likelihood", "likelihood_justification")
DPIA_ROWS: dict[str, tuple[str, ...]] = {
    "measures": ("title", "content"),
    "action_plan": ("reference", "action", "due_on", "owner", "status"),
}
# Every row of the action plan shows a status, "planned" until chosen otherwise: it alone makes no row.
DPIA_ROW_DEFAULTS: dict[str, dict[str, str]] = {"measures": {}, "action_plan": {"status": "planned"}}
DPIA_VALIDATION = (
    "author",
    "evaluator",
    "validator",
    "dpo_names",
    "dpo_status",
    "dpo_opinion",
    "people_names",
    "people_status",
    "people_opinion",
    "status",
    "rejection_reason",
)
# The schema's bound: "add a row" stops there.
DPIA_MAX_ROWS = 200


def _blank_row(member: str) -> dict[str, str]:
    return {**dict.fromkeys(DPIA_ROWS[member], ""), **DPIA_ROW_DEFAULTS[member]}


def dpia_state(record: DpiaIn | None) -> dict[str, Any]:
    """The form's fields for a record (a blank form for None), with blank rows to type new ones in."""
    dumped = (record or DpiaIn.model_construct(name="")).model_dump(mode="json")
    state: dict[str, Any] = {
        "name": dumped["name"],
        "activity_id": dumped["activity_id"] or "",
        "context": {k: dumped["context"][k] or "" for k in DPIA_CONTEXT},
        "principles": {k: dumped["principles"][k] or "" for k in DPIA_PRINCIPLES},
        "risks": {
            risk: {
                **{k: "\n".join(dumped["risks"][risk][k]) for k in RISK_LISTS},
                **{k: "" if dumped["risks"][risk][k] is None else str(dumped["risks"][risk][k]) for k in RISK_TEXTS},
            }
            for risk in DPIA_RISKS
        },
        "validation": {
            **{k: dumped["validation"][k] or "" for k in DPIA_VALIDATION},
            "people_searched": dumped["validation"]["people_searched"],
        },
        "added": "",
    }
    for member, columns in DPIA_ROWS.items():
        rows = [{c: "" if row.get(c) is None else str(row[c]) for c in columns} for row in dumped[member]]
        state[member] = rows + [_blank_row(member) for _ in range(BLANK_ROWS)]
    return state


def dpia_from_form(form: Form) -> dict[str, Any]:
    """The fields as typed; rows as sent, blank ones included, so that errors keep their row."""
    return {
        "name": form.get("name").strip(),
        "activity_id": form.get("activity_id").strip(),
        "context": {k: form.get(f"context.{k}") for k in DPIA_CONTEXT},
        "principles": {k: form.get(f"principles.{k}") for k in DPIA_PRINCIPLES},
        "risks": {
            risk: {
                **{k: form.get(f"risks.{risk}.{k}") for k in RISK_LISTS},
                **{k: form.get(f"risks.{risk}.{k}") for k in RISK_TEXTS},
            }
            for risk in DPIA_RISKS
        },
        **{member: _rows(form, member, columns) for member, columns in DPIA_ROWS.items()},
        "validation": {
            **{k: form.get(f"validation.{k}").strip() for k in DPIA_VALIDATION},
            "people_searched": form.has("validation.people_searched"),
        },
        "added": "",
    }


def dpia_add_row(state: dict[str, Any], member: str) -> dict[str, Any]:
    """The form with one more blank row of `member`, whose first field takes the focus."""
    rows = state.get(member) if member in DPIA_ROWS else None
    if rows is None or len(rows) >= DPIA_MAX_ROWS:
        return state
    first = DPIA_ROWS[member][0]
    return {**state, member: [*rows, _blank_row(member)], "added": f"{member}.{len(rows)}.{first}"}


def dpia_body(state: dict[str, Any], kept_from: dict[str, Any]) -> tuple[dict[str, Any], Place]:
    """The record to validate, and how to move its errors back onto the form.

    Every member of the record is on the form: `kept_from` is empty. A severity or likelihood goes
    to the schema as typed, which refuses anything but 1 to 4.
    """
    body: dict[str, Any] = {
        **kept_from,
        "name": state["name"],
        "activity_id": optional(state["activity_id"]),
        "context": {k: optional(v) for k, v in state["context"].items()},
        "principles": {k: optional(v) for k, v in state["principles"].items()},
        "risks": {
            risk: {
                **{k: lines(values[k]) for k in RISK_LISTS},
                **{k: optional(values[k]) for k in RISK_TEXTS},
            }
            for risk, values in state["risks"].items()
        },
        "validation": {
            **{k: optional(v) for k, v in state["validation"].items() if k != "people_searched"},
            "people_searched": state["validation"]["people_searched"],
        },
    }
    body["validation"]["status"] = body["validation"]["status"] or "draft"
    origins: dict[str, list[int]] = {}
    for member in DPIA_ROWS:
        rows, origins[member] = _kept(state[member], ignored=DPIA_ROW_DEFAULTS[member])
        body[member] = [{k: v for k, v in row.items() if v} for row in rows]
    lists = [f"risks.{risk}.{k}" for risk in DPIA_RISKS for k in RISK_LISTS]

    def place(errors: dict[str, str]) -> dict[str, str]:
        for member, numbers in origins.items():
            errors = renumber(errors, member, numbers)
        return collapse(errors, lists)

    return body, place
