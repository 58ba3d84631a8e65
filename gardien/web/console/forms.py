"""The register forms: a record as form fields, and typed fields back as the record to validate.

Field names are the record's dotted paths (`purposes.0.name`), so that the validation errors of
the schemas land beside the field they are about. Rows left blank are dropped; the errors of the
rows kept are moved back to the row the person typed them in.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from gardien.registers.schemas import (
    BreachIn,
    Clauses,
    ControllerActivity,
    DataCategory,
    ProcessorIn,
)
from gardien.web.console.base import Form, lines, local_input, moment, optional

BLANK_ROWS = 2
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


def _kept(rows: list[dict[str, str]]) -> tuple[list[dict[str, str]], list[int]]:
    """The rows with something typed in, and for each the number of the row it came from."""
    kept = [(i, row) for i, row in enumerate(rows) if any(row.values())]
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
    """Errors of a list typed one item a line belong to its textarea: `subject_categories.2` -> line 3."""
    collapsed: dict[str, str] = {}
    names = set(members)
    for path, message in errors.items():
        parts = path.split(".")
        if parts[0] in names and len(parts) > 1 and parts[1].isdigit():
            collapsed.setdefault(parts[0], f"{int(parts[1]) + 1}: {message}")
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


def activity_body(state: dict[str, Any], kept_from: dict[str, Any]) -> tuple[dict[str, Any], Any]:
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


def breach_body(state: dict[str, Any], kept_from: dict[str, Any]) -> dict[str, Any]:
    """The record to validate; `kept_from`: the stored DPO contact's address, not on the form."""
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
    return {k: v for k, v in body.items() if v is not None or k in ("dpo_contact",)}


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


def processor_body(state: dict[str, Any], kept_from: dict[str, Any]) -> tuple[dict[str, Any], Any]:
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
