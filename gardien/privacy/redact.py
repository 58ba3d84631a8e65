"""Redaction: replace what a Scanner finds with a tag, a mask or a keyed pseudonym."""

from __future__ import annotations

from typing import Literal

from gardien.privacy.detect import Finding, Scanner
from gardien.privacy.errors import OperatorError
from gardien.privacy.operators import HmacParams, KeyedPseudonym, OperatorContext

Style = Literal["tag", "mask", "pseudonym"]
STYLES: tuple[Style, ...] = ("tag", "mask", "pseudonym")


class Redactor:
    """``tag``: ``<EMAIL>``; ``mask``: one ``*`` per character; ``pseudonym``: ``<EMAIL:kid:hex>``.

    The pseudonym style keeps lines about one person linkable without revealing who they are; it
    needs keys (``context``), and its pseudonyms are those of the ``hmac`` operator with the domain
    ``redact.<TYPE>``, 16 hex characters.
    """

    def __init__(
        self, scanner: Scanner | None = None, style: Style = "tag", context: OperatorContext | None = None
    ) -> None:
        if style not in STYLES:
            raise OperatorError(f"unknown style {style!r}; choose one of {', '.join(STYLES)}", "style")
        if style == "pseudonym" and (context is None or context.keys is None):
            raise OperatorError("the pseudonym style needs keys", "style")
        self.scanner = scanner or Scanner()
        self.style = style
        self.context = context or OperatorContext()
        self._pseudonym = KeyedPseudonym()
        self._params: dict[str, HmacParams] = {}

    def replacement(self, text: str, finding: Finding) -> str:
        if self.style == "tag":
            return f"<{finding.entity}>"
        if self.style == "mask":
            return "*" * (finding.end - finding.start)
        params = self._params.get(finding.entity)
        if params is None:
            params = self._params[finding.entity] = HmacParams(domain=f"redact.{finding.entity}", length=16)
        value = text[finding.start : finding.end]
        return f"<{finding.entity}:{self._pseudonym.operate(value, params, self.context)}>"

    def redact_with_findings(self, text: str) -> tuple[str, list[Finding]]:
        findings = self.scanner.scan(text)
        if not findings:
            return text, findings
        parts: list[str] = []
        last = 0
        for finding in findings:
            parts.append(text[last : finding.start])
            parts.append(self.replacement(text, finding))
            last = finding.end
        parts.append(text[last:])
        return "".join(parts), findings

    def redact(self, text: str) -> str:
        return self.redact_with_findings(text)[0]
