"""The privacy operators served to an organisation: pseudonyms under Gardien's keyring, audited re-identification."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gardien.audit.service import Ledger, capability_event
from gardien.core.errors import InvalidInput
from gardien.core.runtime import Runtime
from gardien.privacy.detect import Scanner
from gardien.privacy.errors import OperatorError
from gardien.privacy.operators import OperatorContext, compile_operator, reidentify
from gardien.privacy.redact import Redactor, Style
from gardien.privacy.schemas import FindingOut, PseudonymizeIn, RedactOut, ReidentifyIn, ReidentifyOut

MODULE = "privacy"


def _invalid(exc: OperatorError) -> InvalidInput:
    field = exc.field or "body"
    return InvalidInput(f"{field}: {exc}", [{"field": field, "message": str(exc), "type": "privacy"}])


class PrivacyService:
    def __init__(self, runtime: Runtime, ledger: Ledger) -> None:
        self.runtime = runtime
        self.ledger = ledger
        self.scanner = Scanner()
        self._redactors: dict[Style, Redactor] = {}

    def context(self, org_id: str) -> OperatorContext:
        """Operators for one organisation: the keyring's keys, pseudonyms scoped to the organisation."""
        return OperatorContext(keys=self.runtime.keyring, scope=org_id)

    def pseudonymize(self, org_id: str, body: PseudonymizeIn) -> list[str]:
        params: dict[str, Any] = {"domain": body.domain}
        if body.operator == "hmac":
            params["normalize"] = body.normalize
        transform = compile_operator({"operator": body.operator, "params": params})
        context = self.context(org_id)
        return [transform(value, context) for value in body.values]

    async def reidentify(self, org_id: str, body: ReidentifyIn, actor: Mapping[str, Any]) -> ReidentifyOut:
        """The value behind a reversible pseudonym, once the event saying who asked and why is durable."""
        try:
            value = reidentify(body.token, body.domain, self.context(org_id))
        except OperatorError as exc:
            raise _invalid(exc) from None
        event = capability_event(
            MODULE,
            "pseudonym.reidentify",
            "read",
            actor,
            ("pseudonym", body.domain),
            reason=body.reason,
            fields={"token": body.token, "domain": body.domain},
        )
        (sealed,) = await self.ledger.append_async(org_id, [self.ledger.prepare(event)])
        return ReidentifyOut(value=value, audit_event_id=sealed.id)

    def redact(self, text: str, style: Style) -> RedactOut:
        redactor = self._redactors.get(style)
        if redactor is None:
            redactor = self._redactors[style] = Redactor(self.scanner, style)
        redacted, findings = redactor.redact_with_findings(text)
        return RedactOut(
            text=redacted, findings=[FindingOut(start=f.start, end=f.end, entity=f.entity) for f in findings]
        )
