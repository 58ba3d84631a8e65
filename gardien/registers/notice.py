"""The privacy notice (Art. 13/14), built from the register: first the facts, then their texts.

`facts` gathers, language-neutral, what Art. 13(1)–(2) and 14(1)–(2) ask the controller to tell
people, from the register's header and its controller activities and processors. `render` writes
those facts in one language as sections a template or an API client can lay out. A published
version keeps both (see `document`), so it reads the same forever.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from gardien.registers.notice_texts import (
    DATA_CATEGORIES,
    LANGUAGES,
    LEGAL_BASES,
    RECIPIENT_KINDS,
    RIGHTS,
    SAFEGUARDS,
    SPECIAL_CATEGORIES,
    WORDS,
)
from gardien.registers.schemas import Contact, ControllerActivity, LegalBasis, ProcessorIn, SettingsIn, dump
from gardien.registers.texts import AUTHORITIES, Language, authority_name

# Bases under which Art. 20(1)(a) opens portability, and Art. 21(1) the right to object.
PORTABLE = frozenset({LegalBasis.CONSENT.value, LegalBasis.CONTRACT.value})
OBJECTABLE = frozenset({LegalBasis.LEGITIMATE_INTERESTS.value, LegalBasis.PUBLIC_TASK.value})
Section = dict[str, Any]


def facts(
    organisation: str,
    header: SettingsIn,
    activities: Sequence[ControllerActivity],
    processors: Sequence[ProcessorIn],
) -> dict[str, Any]:
    """What the notice says, taken from the register; no words of any language but the DPO's own."""
    return {
        "organisation": organisation,
        "controller": dump(header.controller),
        "representative": dump(header.representative) if header.representative else None,
        "dpo": dump(header.dpo) if header.dpo else None,
        "authority": header.authority.value,
        "rights_contact": header.notice.rights_contact or _reach(header.dpo) or _reach(header.controller),
        "statutory_requirement": header.notice.statutory_requirement,
        "automated_decisions": header.notice.automated_decisions,
        "activities": [
            {
                "name": a.name,
                "purposes": [
                    {"name": p.name, "legal_basis": p.legal_basis.value, "legitimate_interest": p.legitimate_interest}
                    for p in a.purposes
                ],
                "data_categories": [
                    {"category": d.category.value, "description": d.description, "retention": d.retention}
                    for d in a.data_categories
                ],
                "special_categories": [c.value for c in a.special_categories],
                "nir": a.nir,
                "recipients": [{"name": r.name, "kind": r.kind.value, "country": r.country} for r in a.recipients],
                "transfers": [
                    {
                        "recipient": t.recipient,
                        "country": t.country,
                        "safeguard": t.safeguard.value,
                        "documentation": t.documentation,
                    }
                    for t in a.transfers
                ],
                "retention": a.retention,
                "retention_policy": a.retention_policy,
                "sources": list(a.sources),
            }
            for a in activities
        ],
        "processors": [{"name": p.name, "country": p.country, "services": list(p.services)} for p in processors],
    }


def _reach(contact: Contact | None) -> str | None:
    return contact.email if contact is not None else None


def _contact_lines(contact: Mapping[str, Any], words: Mapping[str, str]) -> list[str]:
    lines = [str(contact["name"])]
    colon = words["colon"]
    lines += [f"{words[key]}{colon}{contact[key]}" for key in ("address", "email", "phone") if contact.get(key)]
    return lines


def _retention(activity: Mapping[str, Any], words: Mapping[str, str], categories: Mapping[str, str]) -> list[str]:
    colon = words["colon"]
    lines = [
        f"{categories[d['category']]}{colon}{d['retention']}" for d in activity["data_categories"] if d.get("retention")
    ]
    if activity.get("retention"):
        lines.append(str(activity["retention"]))
    if activity.get("retention_policy"):
        lines.append(words["policy"].format(key=activity["retention_policy"]))
    return lines or [words["retention_unknown"]]


def render(content: Mapping[str, Any], lang: Language) -> dict[str, Any]:
    """The notice in one language: a title, an introduction and sections of paragraphs, items and tables."""
    words = WORDS[lang]
    colon = words["colon"]
    categories = DATA_CATEGORIES[lang]
    special = SPECIAL_CATEGORIES[lang]
    activities: list[Mapping[str, Any]] = content["activities"]
    bases = {p["legal_basis"] for a in activities for p in a["purposes"]}
    sections: list[Section] = []

    def add(key: str, paragraphs: Sequence[str] = (), items: Sequence[str] = (), **more: Any) -> None:
        # Every member always present: the API's answer is then the stored text itself, and its hash checks.
        section = {"key": key, "title": words[key], "paragraphs": list(paragraphs), "items": list(items)}
        sections.append(section | {"table": None, "closing": [], "authority": None} | more)

    add("controller", items=_contact_lines(content["controller"], words))
    if content["representative"]:
        add("representative", items=_contact_lines(content["representative"], words))
    if content["dpo"]:
        add("dpo", items=_contact_lines(content["dpo"], words))
    rows = [
        [
            a["name"],
            p["name"],
            LEGAL_BASES[lang][p["legal_basis"]]
            + (f" — {words['interest'].format(interest=p['legitimate_interest'])}" if p["legitimate_interest"] else ""),
        ]
        for a in activities
        for p in a["purposes"]
    ]
    add("purposes", table={"head": [words["col_activity"], words["col_purpose"], words["col_basis"]], "rows": rows})
    data_items = []
    for a in activities:
        listed = [
            categories[d["category"]] + (f" ({d['description']})" if d.get("description") else "")
            for d in a["data_categories"]
        ]
        sensitive = [special[c] for c in a["special_categories"]] + ([words["nir"]] if a["nir"] else [])
        if sensitive:
            listed.append(words["special"].format(list=", ".join(sensitive)))
        data_items.append(f"{a['name']}{colon}" + "; ".join(listed))
    add("data", items=data_items)
    sourced = [f"{a['name']}{colon}{', '.join(a['sources'])}" for a in activities if a["sources"]]
    if sourced:
        add("sources", paragraphs=[words["sources_text"]], items=sourced)
    recipients = sorted(
        {
            f"{r['name']} ({RECIPIENT_KINDS[lang][r['kind']]}" + (f", {r['country']}" if r["country"] else "") + ")"
            for a in activities
            for r in a["recipients"]
        }
    )
    add("recipients", items=recipients)
    if content["processors"]:
        add(
            "processors",
            items=[f"{p['name']} ({p['country']}){colon}{', '.join(p['services'])}" for p in content["processors"]],
        )
    transfers = [
        f"{t['recipient']} ({t['country']}) — {words['safeguard']}{colon}{SAFEGUARDS[lang][t['safeguard']]}"
        + (f" — {words['documentation']}{colon}{t['documentation']}" if t["documentation"] else "")
        for a in activities
        for t in a["transfers"]
    ]
    add("transfers", paragraphs=[] if transfers else [words["no_transfers"]], items=transfers)
    add("retention", items=[f"{a['name']}{colon}" + "; ".join(_retention(a, words, categories)) for a in activities])
    rights = ["access", "rectification", "erasure", "restriction", "notification"]
    rights += ["portability"] if bases & PORTABLE else []
    rights += ["objection"] if bases & OBJECTABLE else []
    rights += ["automated"]
    closing = [words["rights_deadline"]]
    if content["rights_contact"]:
        closing.insert(0, words["rights_contact"].format(contact=content["rights_contact"]))
    add("rights", paragraphs=[words["rights_intro"]], items=[RIGHTS[lang][r] for r in rights], closing=closing)
    if LegalBasis.CONSENT.value in bases:
        add("withdrawal", paragraphs=[words["withdrawal_text"]])
    authority = AUTHORITIES[content["authority"]]
    add(
        "complaint",
        paragraphs=[
            words["complaint_text"].format(
                authority=authority_name(authority.code, lang), address=authority.address, url=authority.complaint_url
            )
        ],
        authority={"code": authority.code, "url": authority.complaint_url, "address": authority.address},
    )
    if content["statutory_requirement"]:
        add("requirement", paragraphs=[content["statutory_requirement"]])
    add("automated", paragraphs=[content["automated_decisions"] or words["automated_none"]])
    return {
        "language": lang,
        "title": words["title"],
        "intro": words["intro"].format(controller=content["controller"]["name"]),
        "sections": sections,
    }


def document(content: Mapping[str, Any]) -> dict[str, Any]:
    """What a version keeps: the facts, and the notice rendered in every language."""
    return {"facts": dict(content), "texts": {lang: render(content, lang) for lang in LANGUAGES}}


def status_line(lang: Language, version: int | None, published_on: str | None) -> str:
    words = WORDS[lang]
    if version is None or published_on is None:
        return words["draft"]
    return words["published"].format(version=version, date=published_on)
