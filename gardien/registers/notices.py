"""Published versions of the privacy notice: generate from the register, publish when it changed, serve.

A version is immutable: its document (the facts and their texts in fr, nl, en, de) is stored as
RFC 8785 canonical JSON with its SHA-256. Publishing writes a new version only when that hash
differs from the latest one's, and each new version is an audit event committed with it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
import rfc8785
from sqlalchemy import Connection, Row, func, insert, select
from sqlalchemy.orm import Session

from gardien.audit.sealing import PreparedEvent
from gardien.core.clock import utcnow
from gardien.core.errors import Conflict, NotFound
from gardien.core.models import Organisation
from gardien.core.service import get_org
from gardien.registers import notice
from gardien.registers.documents import render
from gardien.registers.models import NOTICES
from gardien.registers.schemas import ControllerActivity, NoticeOut, NoticeText
from gardien.registers.service import MODULE, RegistersService
from gardien.registers.texts import AUTHORITIES, Language

SITE_KEY_PREFIX = "gdn_site_"


@dataclass(frozen=True)
class NoticeVersion:
    version: int
    sha256: str
    published_at: datetime
    published_by: str
    document: dict[str, Any]


@dataclass(frozen=True)
class Publication:
    version: NoticeVersion
    created: bool


def _digest(document: Mapping[str, Any]) -> tuple[str, str]:
    canonical = bytes(rfc8785.dumps(dict(document))).decode()
    return canonical, hashlib.sha256(canonical.encode()).hexdigest()


def _version(row: Row[Any]) -> NoticeVersion:
    return NoticeVersion(row.version, row.sha256, row.published_at, row.published_by, orjson.loads(row.document))


class NoticeService:
    def __init__(
        self,
        registers: RegistersService,
        org_of_site_key: Callable[[str], str],
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.registers = registers
        self.runtime = registers.runtime
        self.ledger = registers.ledger
        # The consent capability's public site key leads to its organisation (the banner's key).
        self.org_of_site_key = org_of_site_key
        self.clock = clock or utcnow

    def _organisation(self, org_id: str) -> Organisation:
        with Session(self.runtime.engine) as session:
            return get_org(session, org_id)

    def facts(self, org_id: str) -> dict[str, Any]:
        """What the notice would say now; 409 while the register lacks what it needs."""
        header = self.registers.settings_or_none(org_id)
        if header is None:
            raise Conflict("the register has no header yet: PUT /api/v1/registers/settings (controller, DPO)")
        activities = [
            e.record for e in self.registers.all_activities(org_id) if isinstance(e.record, ControllerActivity)
        ]
        if not activities:
            raise Conflict("the register has no processing activity as controller: the notice would have no purpose")
        processors = [e.record for e in self.registers.all_processors(org_id)]
        return notice.facts(self._organisation(org_id).name, header, activities, processors)

    def draft(self, org_id: str) -> tuple[dict[str, Any], str, NoticeVersion | None]:
        """The document as it would be published now, its hash, and the latest published version."""
        document = notice.document(self.facts(org_id))
        return document, _digest(document)[1], self.latest(org_id)

    async def publish(self, org_id: str, actor: Mapping[str, Any]) -> Publication:
        document = notice.document(self.facts(org_id))
        canonical, digest = _digest(document)
        who = str(actor.get("id", ""))

        def work(conn: Connection) -> tuple[Publication, list[PreparedEvent]]:
            # The ledger's writer serialises an organisation's transactions, so the latest version
            # read here is still the latest when the new one is inserted.
            latest = conn.execute(
                select(NOTICES).where(NOTICES.c.org_id == org_id).order_by(NOTICES.c.version.desc()).limit(1)
            ).first()
            if latest is not None and latest.sha256 == digest:
                return Publication(_version(latest), created=False), []
            version = (latest.version if latest is not None else 0) + 1
            now = self.clock()
            conn.execute(
                insert(NOTICES).values(
                    org_id=org_id,
                    version=version,
                    sha256=digest,
                    document=canonical,
                    published_at=now,
                    published_by=who,
                )
            )
            event = self.ledger.prepare(
                {
                    "module": MODULE,
                    "action": f"{MODULE}.notice.published",
                    "crud": "create",
                    "actor": dict(actor),
                    "target": {"type": "register_notice", "id": str(version), "display": f"privacy notice v{version}"},
                    "fields": {
                        "version": version,
                        "sha256": digest,
                        "previous_sha256": latest.sha256 if latest is not None else None,
                        "languages": sorted(document["texts"]),
                    },
                }
            )
            return Publication(NoticeVersion(version, digest, now, who, document), created=True), [event]

        result: Publication = (await self.ledger.transact_async(org_id, work))[0]
        return result

    def versions(self, org_id: str) -> list[NoticeVersion]:
        with self.runtime.engine.connect() as conn:
            rows = conn.execute(select(NOTICES).where(NOTICES.c.org_id == org_id).order_by(NOTICES.c.version))
            return [_version(row) for row in rows]

    def latest(self, org_id: str) -> NoticeVersion | None:
        with self.runtime.engine.connect() as conn:
            newest = select(func.max(NOTICES.c.version)).where(NOTICES.c.org_id == org_id).scalar_subquery()
            row = conn.execute(select(NOTICES).where(NOTICES.c.org_id == org_id, NOTICES.c.version == newest)).first()
        return _version(row) if row is not None else None

    def version(self, org_id: str, version: int | None) -> NoticeVersion:
        """One version, or the latest when `version` is None; 404 when there is none."""
        if version is None:
            found = self.latest(org_id)
        else:
            with self.runtime.engine.connect() as conn:
                row = conn.execute(
                    select(NOTICES).where(NOTICES.c.org_id == org_id, NOTICES.c.version == version)
                ).first()
            found = _version(row) if row is not None else None
        if found is None:
            raise NotFound("privacy notice version" if version is not None else "a published privacy notice")
        return found

    def org_of_public_ref(self, ref: str) -> str:
        """The organisation behind a public reference: its slug, or the consent banner's site key."""
        if ref.startswith(SITE_KEY_PREFIX):
            return self.org_of_site_key(ref)
        with Session(self.runtime.engine) as session:
            org = session.scalar(select(Organisation).where(Organisation.slug == ref))
        if org is None:
            raise NotFound(f"organisation {ref!r}")
        return org.id

    @staticmethod
    def language(document: Mapping[str, Any], lang: Language | None, accept_language: str | None) -> Language:
        """The asked language; else the best of Accept-Language; else the authority's first language."""
        texts: Mapping[str, Any] = document["texts"]
        if lang is not None:
            return lang
        for tag in _accepted(accept_language):
            if tag in texts:
                chosen: Language = tag  # type: ignore[assignment]
                return chosen
        return AUTHORITIES[document["facts"]["authority"]].languages[0]


def _accepted(header: str | None) -> list[str]:
    """Primary language subtags of an Accept-Language header, by decreasing weight."""
    if not header:
        return []
    weighted: list[tuple[float, int, str]] = []
    for position, part in enumerate(header.split(",")[:20]):
        tag, _, params = part.strip().partition(";")
        weight = 1.0
        if params.strip().startswith("q="):
            try:
                weight = float(params.strip()[2:])
            except ValueError:
                weight = 0.0
        primary = tag.strip().split("-")[0].lower()
        if primary and weight > 0:
            weighted.append((-weight, position, primary))
    return [tag for _, _, tag in sorted(weighted)]


def notice_out(
    document: Mapping[str, Any], sha256: str, lang: Language, found: NoticeVersion | None, *, draft: bool
) -> NoticeOut:
    """The API's answer for a version (draft=False) or for the draft compared with `found`, the latest."""
    return NoticeOut(
        version=None if draft else (found.version if found else None),
        sha256=sha256,
        published_at=None if draft or found is None else found.published_at,
        changed=draft and (found is None or found.sha256 != sha256),
        notice=NoticeText.model_validate(document["texts"][lang]),
        facts=dict(document["facts"]),
    )


def notice_page(
    document: Mapping[str, Any],
    lang: Language,
    found: NoticeVersion | None,
    languages: Sequence[tuple[str, str]] = (),
) -> str:
    """The notice as an HTML page; `found` is the version shown, None for a draft."""
    text = document["texts"][lang]
    status = notice.status_line(
        lang,
        found.version if found else None,
        found.published_at.date().isoformat() if found else None,
    )
    return render(
        "notice.html",
        {
            **text,
            "organisation": document["facts"]["organisation"],
            "status": status,
            "sha256": found.sha256 if found else None,
            "languages": list(languages),
        },
    )
