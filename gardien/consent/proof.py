"""A consent id's proof in three shapes: Gardien's JSON, ISO/IEC TS 27560 as JSON-LD, a Kantara receipt.

Pure functions over what the service read: every event of the consent id and every notice version
those events were made under, so that a reader sees what the person was shown and what they chose.

The ISO/IEC TS 27560 shape follows the W3C DPV guide to the standard: a record header (schema
version, record id, the PII principal), the processing (one entry per purpose of the notice: legal
basis, controller, recipients, notice, withdrawal method, storage duration), the parties and the
events. Terms DPV lacks (method, surface, the notice's hash) are in Gardien's namespace.
The Kantara shape is a Consent Receipt v1.1 (KI-CR-v1.1.0) of the last event.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Row

from gardien.consent.rules import DENIED, ESSENTIAL_PURPOSE, GRANTED, Method
from gardien.core.clock import rfc3339

SCHEMA = "gardien-consent-proof/1"
DPV = "https://w3id.org/dpv#"
GDN = "https://gardien.dev/ns/consent#"
WITHDRAWAL = "the banner's cookie settings link, or POST /api/v1/consent/subjects/{id}/withdraw"


@dataclass(frozen=True)
class NoticeDoc:
    version: int
    sha256: str
    created_at: datetime
    document: dict[str, Any]


@dataclass(frozen=True)
class Record:
    org_id: str
    organisation: str
    country: str
    consent_id: str
    generated_at: datetime
    validity_months: int
    state: dict[str, Any]
    events: list[dict[str, Any]]
    notices: dict[int, NoticeDoc]


def event_of(row: Row[Any]) -> dict[str, Any]:
    return {
        "id": row.id,
        "occurred_at": rfc3339(row.occurred_at),
        "method": row.method,
        "surface": row.surface,
        "states": orjson.loads(row.states),
        "notice_version": row.notice_version,
        "notice_sha256": row.notice_sha256,
        "locale": row.locale,
        "expires_at": rfc3339(row.expires_at),
        "ip_truncated": row.ip_truncated,
        "ua_class": row.ua_class,
        "user_ref": row.user_ref,
    }


def as_json(record: Record) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "organisation": {"id": record.org_id, "name": record.organisation},
        "consent_id": record.consent_id,
        "generated_at": rfc3339(record.generated_at),
        "validity_months": record.validity_months,
        "current": record.state,
        "events": record.events,
        "notices": [
            {"version": n.version, "sha256": n.sha256, "created_at": rfc3339(n.created_at), "notice": n.document}
            for _, n in sorted(record.notices.items())
        ],
        "ledger": {"module": "consent", "target": record.consent_id},
    }


def _urn(kind: str, *parts: object) -> str:
    return ":".join(("urn:gardien", kind, *(str(p) for p in parts)))


def _status(method: str, state: str) -> str:
    if method == Method.EXPIRY:
        return "dpv:ConsentExpired"
    if state == GRANTED:
        return "dpv:ConsentGiven"
    if state == DENIED:
        return "dpv:ConsentWithdrawn" if method == Method.WITHDRAW else "dpv:ConsentRefused"
    return "dpv:ConsentUnknown"


def _texts(localised: dict[str, str]) -> list[dict[str, str]]:
    return [{"@value": text, "@language": locale} for locale, text in localised.items()]


def as_iso27560(record: Record) -> dict[str, Any]:
    latest = record.notices[max(record.notices)]
    controller_id = _urn("controller", record.org_id)
    controller = latest.document.get("controller") or {}
    parties: list[dict[str, Any]] = [
        {
            "@id": controller_id,
            "@type": ["dpv:DataController", "dpv:LegalEntity"],
            "dpv:hasName": controller.get("name") or record.organisation,
            **({"dpv:hasContact": controller["contact"]} if controller.get("contact") else {}),
            **({"dpv:hasAddress": controller["address"]} if controller.get("address") else {}),
        }
    ]
    processing = []
    for purpose in latest.document["purposes"]:
        recipients = []
        for service in purpose["services"]:
            service_id = _urn("service", record.org_id, purpose["key"], service["key"])
            recipients.append({"@id": service_id})
            parties.append(
                {
                    "@id": service_id,
                    "@type": ["dpv:Recipient", "dpv:ThirdParty"],
                    "dpv:hasName": f"{service['name']} ({service['provider']})",
                    **({"dct:source": service["privacy_policy_url"]} if service.get("privacy_policy_url") else {}),
                }
            )
        entry: dict[str, Any] = {
            "@type": "dpv:PersonalDataHandling",
            "dpv:hasPurpose": {
                "@id": _urn("purpose", record.org_id, purpose["key"]),
                "@type": "dpv:Purpose",
                "dct:title": _texts(purpose["title"]),
                "dct:description": _texts(purpose["description"]),
            },
            "dpv:hasDataController": {"@id": controller_id},
            "dpv:hasRecipient": recipients,
            "dpv:hasNotice": {"@id": _urn("notice", record.org_id, latest.version)},
            "dpv:hasPersonalData": ["consent id (first-party cookie)", "IP address truncated", "user-agent class"],
            "dpv:hasJurisdiction": "EU",
            "dpv:hasWithdrawalMethod": WITHDRAWAL,
            "dpv:hasStorageCondition": {"dpv:hasDuration": f"P{record.validity_months}M"},
            "gdn:essential": purpose["essential"],
        }
        if not purpose["essential"]:
            entry["dpv:hasLegalBasis"] = {"@id": "dpv:Consent"}
        processing.append(entry)
    events = [
        {
            "@id": _urn("consent-event", event["id"]),
            "@type": "gdn:ConsentEvent",
            "dct:date": {"@value": event["occurred_at"], "@type": "xsd:dateTime"},
            "gdn:method": event["method"],
            "gdn:surface": event["surface"],
            "dct:language": event["locale"],
            "dpv:hasNotice": {"@id": _urn("notice", record.org_id, event["notice_version"])},
            "gdn:expiresAt": {"@value": event["expires_at"], "@type": "xsd:dateTime"},
            "gdn:states": [
                {
                    "dpv:hasPurpose": {"@id": _urn("purpose", record.org_id, key)},
                    "dpv:hasConsentStatus": {"@id": _status(event["method"], state)},
                }
                for key, state in event["states"].items()
            ],
        }
        for event in record.events
    ]
    notices = [
        {
            "@id": _urn("notice", record.org_id, n.version),
            "@type": "dpv:ConsentNotice",
            "gdn:version": n.version,
            "gdn:sha256": n.sha256,
            "dct:created": {"@value": rfc3339(n.created_at), "@type": "xsd:dateTime"},
        }
        for _, n in sorted(record.notices.items())
    ]
    return {
        "@context": {
            "dpv": DPV,
            "dct": "http://purl.org/dc/terms/",
            "xsd": "http://www.w3.org/2001/XMLSchema#",
            "gdn": GDN,
        },
        "@id": _urn("consent-record", record.org_id, record.consent_id),
        "@type": "dpv:ConsentRecord",
        "dct:conformsTo": "ISO/IEC TS 27560:2023",
        "dct:hasVersion": SCHEMA,
        "dct:identifier": record.consent_id,
        "dct:created": {"@value": rfc3339(record.generated_at), "@type": "xsd:dateTime"},
        "dpv:hasDataSubject": {
            "@id": _urn("consent-id", record.consent_id),
            "@type": "dpv:DataSubject",
            "dct:identifier": record.consent_id,
        },
        "gdn:processing": processing,
        "gdn:parties": parties,
        "gdn:events": events,
        "gdn:notices": notices,
    }


def as_kantara(record: Record) -> dict[str, Any]:
    """A Kantara Consent Receipt v1.1 of the last event: the purposes granted, by service."""
    last = record.events[-1]
    notice = record.notices[last["notice_version"]].document
    controller = notice.get("controller") or {}
    contact = controller.get("contact") or ""
    locale = (last["locale"] or "en")[:2]
    valid = record.state["status"] == "valid" and last["method"] != Method.EXPIRY
    termination = f"on withdrawal, or at {last['expires_at']}"
    services = []
    for purpose in notice["purposes"]:
        if not valid or last["states"].get(purpose["key"]) != GRANTED:
            continue
        entry = {
            "purpose": purpose["title"].get(locale, purpose["title"]["en"]),
            "purposeCategory": [purpose["key"]],
            "consentType": "NOT APPLICABLE" if purpose["essential"] else "EXPLICIT",
            "piiCategory": ["online identifier"],
            "primaryPurpose": purpose["key"] == ESSENTIAL_PURPOSE,
            "termination": termination,
        }
        for service in purpose["services"] or [None]:
            services.append(
                {
                    "service": service["name"] if service else purpose["key"],
                    "purposes": [
                        {
                            **entry,
                            "thirdPartyDisclosure": service is not None,
                            **({"thirdPartyName": service["provider"]} if service else {}),
                        }
                    ],
                }
            )
    return {
        "version": "KI-CR-v1.1.0",
        "jurisdiction": record.country,
        "consentTimestamp": int(datetime.fromisoformat(last["occurred_at"].replace("Z", "+00:00")).timestamp()),
        "collectionMethod": f"{last['method']} ({last['surface']})",
        "consentReceiptID": last["id"],
        "language": locale,
        "piiPrincipalId": record.consent_id,
        "piiControllers": [
            {
                "piiController": controller.get("name") or record.organisation,
                "onBehalf": False,
                "contact": contact,
                "address": controller.get("address") or "",
                "email": contact if "@" in contact else "",
                "phone": "",
            }
        ],
        "policyUrl": notice.get("privacy_policy_url") or "",
        "services": services,
        "sensitive": False,
        "spiCat": [],
    }


FORMATS: dict[str, Callable[[Record], dict[str, Any]]] = {
    "json": as_json,
    "iso27560": as_iso27560,
    "kantara": as_kantara,
}
