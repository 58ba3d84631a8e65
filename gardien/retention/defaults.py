"""Default retention periods that mirror common French and Belgian practice, each with its source.

They are starting points for a DPO, not legal advice: `GET /api/v1/retention/defaults` and
`gardien retention defaults` list them, and a policy made from one keeps its period, legal basis
and source as its note. Each says what kind of figure it is:

- `law`: a statute sets this period for this kind of data;
- `regulator`: a supervisory authority's recommendation or good practice (CNIL), not binding, but
  what an inspection measures against;
- `choice`: Gardien's choice, anchored on a statute that does not itself govern this data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["law", "regulator", "choice"]


@dataclass(frozen=True)
class Default:
    key: str
    title: str
    period: str  # ISO 8601 duration: PnY, PnM, PnD
    reference: str  # what the period is counted from
    action: str
    legal_basis: str
    kind: Kind
    source: str


DEFAULTS: tuple[Default, ...] = (
    Default(
        key="account",
        title="Customer account data",
        period="P2Y",
        reference="last activity (last login, last order)",
        action="delete",
        legal_basis="contract",
        kind="regulator",
        source=(
            "CNIL good practice on retention periods: an account the user created is deleted after two "
            "years of inactivity, once the user has been told. Not a statute. For customer data used for "
            "prospecting, the CNIL's commercial-management référentiel (délibération 2021-131) allows up "
            "to three years after the last contact."
        ),
    ),
    Default(
        key="health",
        title="Health data outside the medical record",
        period="P3Y",
        reference="last contact",
        action="delete",
        legal_basis="explicit_consent",
        kind="choice",
        source=(
            "Gardien's choice for health data an application collects (wellness, appointments): no statute "
            "or regulator sets a period for it. Medical records have statutory periods (France: 20 years, "
            "Code de la santé publique art. R1112-7; Belgium: 30 years, loi du 22 avril 2019): check the "
            "rule of your sector first."
        ),
    ),
    Default(
        key="audit",
        title="Audit trail",
        period="P6Y",
        reference="recorded_at",
        action="archive",
        legal_basis="legal_obligation",
        kind="choice",
        source=(
            "Gardien's choice, anchored on France's Livre des procédures fiscales art. L102 B: the books, "
            "registers and documents open to the tax authority's rights of communication, inquiry and "
            "control are kept six years from the last operation they record. No statute sets a period "
            "for a GDPR audit trail as such."
        ),
    ),
    Default(
        key="audit-financial",
        title="Audit trail of an investment firm or other supervised financial institution",
        period="P7Y",
        reference="recorded_at",
        action="archive",
        legal_basis="legal_obligation",
        kind="law",
        source=(
            "MiFID II (Directive 2014/65/EU) art. 16(7): records of services and transactions are kept "
            "five years and, where the competent authority (AMF, ACPR, FSMA) requests it, up to seven. "
            "Anti-money-laundering records: five years (Directive 2015/849 art. 40; France, Code "
            "monétaire et financier L561-12). Check your own supervisory requirements."
        ),
    ),
    Default(
        key="accounting",
        title="Accounting records",
        period="P10Y",
        reference="end of the financial year",
        action="delete",
        legal_basis="legal_obligation",
        kind="law",
        source=(
            "France: ten years from the close of the financial year (Code de commerce art. L123-22). "
            "Belgium: seven years under the Code de droit économique (art. III.86 supporting documents, "
            "III.88 books), but ten years for tax since the law of 20 November 2022 (CIR 92 art. 315, "
            "Code TVA art. 60), so ten years in practice."
        ),
    ),
    Default(
        key="consent-proof",
        title="Proofs of consent",
        period="P5Y",
        reference="end of the consent (replaced by a later choice, withdrawn or expired)",
        action="delete",
        legal_basis="legal_obligation",
        kind="choice",
        source=(
            "GDPR Art. 7(1) asks the controller to be able to demonstrate consent, without a period; "
            "Gardien keeps the proof for the five-year civil limitation period (France, Code civil "
            "art. 2224) after the consent ends. Gardien's choice, to be confirmed by the DPO."
        ),
    ),
    Default(
        key="technical-logs",
        title="Technical logs (connections, access logs)",
        period="P1Y",
        reference="time of the log line",
        action="delete",
        legal_basis="legitimate_interests",
        kind="regulator",
        source=(
            "CNIL recommendation on logging (délibération 2021-122 of 14 October 2021): keep logs six "
            "months to one year, longer only with a documented reason (internal control, a legal "
            "obligation). Thirteen months is the CNIL's bound for audience-measurement cookies, not for logs."
        ),
    ),
)

BY_KEY = {d.key: d for d in DEFAULTS}
