"""Documents generated from a breach: the pre-filled notification to the authority (Art. 33) and the
communication to the people concerned (Art. 34). Plain data first; HTML is rendered from it."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import Environment, PackageLoader, select_autoescape

from gardien.core.errors import Conflict
from gardien.registers.schemas import BreachOut, Contact, SettingsIn
from gardien.registers.service import field_error
from gardien.registers.texts import AUTHORITIES, COMMUNICATION, FORM_LABELS, Language, authority_name

# Times are shown in the authority's own zone, as its form expects them; stored times stay UTC.
ZONES = {"cnil": "Europe/Paris", "apd": "Europe/Brussels", "ap": "Europe/Amsterdam"}

templates = Environment(
    loader=PackageLoader("gardien.registers", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
)


def _when(moment: datetime | None, zone: str) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M %Z")


def _contact(contact: Contact | None) -> str | None:
    if contact is None:
        return None
    return " — ".join(part for part in (contact.name, contact.email, contact.phone, contact.address) if part)


def _listed(values: list[str]) -> str | None:
    return ", ".join(values) if values else None


def authority_language(authority: str, lang: Language | None) -> Language:
    languages = AUTHORITIES[authority].languages
    if lang is None:
        return languages[0]
    if lang not in languages:
        raise field_error("lang", f"the {authority} form is in {', '.join(languages)}")
    return lang


def notification_form(
    breach: BreachOut, header: SettingsIn | None, authority: str, lang: Language, kind: str
) -> dict[str, Any]:
    """The notification, section by section, in the order of the authority's form."""
    labels = FORM_LABELS[lang]
    record = breach.record
    zone = ZONES[authority]
    info = AUTHORITIES[authority]
    dpo = record.dpo_contact or (header.dpo if header is not None else None)
    yes_no = {True: labels["yes"], False: labels["no"]}

    def section(key: str, fields: list[tuple[str, Any]]) -> dict[str, Any]:
        return {
            "key": key,
            "title": labels[key],
            "fields": [{"key": name, "label": labels[name], "value": value} for name, value in fields],
        }

    sections = [
        section(
            "organisation",
            [
                ("controller", _contact(header.controller) if header is not None else None),
                ("dpo", _contact(dpo)),
            ],
        ),
        section(
            "breach",
            [
                ("summary", record.title),
                ("description", record.description),
                ("nature", _listed(list(record.nature))),
                ("circumstances", record.circumstances),
                ("started_at", _when(record.started_at, zone)),
                ("aware_at", _when(record.aware_at, zone)),
                ("ended_at", _when(record.ended_at, zone)),
                ("deadline", _when(breach.clock.deadline, zone)),
                ("cross_border", yes_no[record.cross_border]),
            ],
        ),
        section(
            "people",
            [
                ("subject_categories", _listed(record.subject_categories)),
                ("subjects_approx", record.subjects_approx),
                ("record_categories", _listed(record.record_categories)),
                ("records_approx", record.records_approx),
                ("special_categories", _listed([c.value for c in record.special_categories])),
            ],
        ),
        section("consequences", [("consequences", record.consequences)]),
        section(
            "measures", [("measures_taken", record.measures_taken), ("measures_proposed", record.measures_proposed)]
        ),
        section(
            "information",
            [
                ("risk", record.risk.value),
                ("subjects_informed_at", _when(record.subjects_informed_at, zone)),
                ("art34_exemption", record.art34_exemption.value if record.art34_exemption else None),
            ],
        ),
    ]
    if breach.clock.state in ("overdue", "notified_late") or record.late_reasons:
        sections.append(section("late_reasons", [("late_reasons", record.late_reasons)]))
    return {
        "authority": {
            "code": info.code,
            "name": authority_name(authority, lang),
            "channel": info.channel,
        },
        "language": lang,
        "title": labels["title"],
        "kind": kind,
        "kind_label": labels[f"kind_{kind}"],
        "breach_id": breach.id,
        "previous": [
            {"kind": labels[f"kind_{n.kind}"], "sent_at": _when(n.sent_at, zone), "reference": n.reference}
            for n in breach.notifications
        ],
        "previous_label": labels["previous"],
        "empty": labels["none"],
        "sections": sections,
    }


def communication(breach: BreachOut, header: SettingsIn | None, lang: Language) -> dict[str, Any]:
    """The Art. 34 message; refused unless the risk is high and no Art. 34(3) exemption applies."""
    if not breach.communication_required:
        raise Conflict(
            "Art. 34 applies only to a breach likely to result in a high risk with no Art. 34(3) exemption recorded"
        )
    words = COMMUNICATION[lang]
    record = breach.record
    authority = header.authority.value if header is not None else "cnil"
    dpo = record.dpo_contact or (header.dpo if header is not None else None)
    paragraphs: list[dict[str, str | None]] = [
        {"heading": words["what"], "text": record.description},
        {"heading": None, "text": words["when"].format(aware=_when(record.aware_at, ZONES[authority]))},
        {"heading": words["data"], "text": _listed(record.record_categories)},
        {"heading": words["consequences"], "text": record.consequences},
        {
            "heading": words["measures"],
            "text": "\n".join(m for m in (record.measures_taken, record.measures_proposed) if m) or None,
        },
        {"heading": words["contact"], "text": f"{words['contact_text']} {_contact(dpo) or ''}".strip()},
        {
            "heading": None,
            "text": words["complaint"].format(authority=authority_name(authority, lang)),
        },
    ]
    return {
        "language": lang,
        "subject": words["subject"],
        "greeting": words["greeting"],
        "intro": words["intro"],
        "paragraphs": [p for p in paragraphs if p["text"]],
        "closing": words["closing"],
        "sender": header.controller.name if header is not None else None,
    }


def render(template: str, document: dict[str, Any]) -> str:
    return templates.get_template(template).render(doc=document)
