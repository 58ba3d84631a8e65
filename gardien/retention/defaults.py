"""Default retention periods that mirror common French and Belgian practice, each with its source.

They are starting points for a DPO, not legal advice: `GET /api/v1/retention/defaults` and
`gardien retention defaults` list them, and a policy made from one keeps its period, legal basis
and source as its note. Where a figure is a convention rather than a rule of law, the source says so.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Default:
    key: str
    title: str
    period: str  # ISO 8601 duration: PnY, PnM, PnD
    reference: str  # what the period is counted from
    action: str
    legal_basis: str
    source: str


DEFAULTS: tuple[Default, ...] = (
    Default(
        key="account",
        title="Customer account data",
        period="P2Y",
        reference="last activity (last login, last order)",
        action="delete",
        legal_basis="contract",
        source=(
            "CNIL, guide « Les durées de conservation » and référentiel « gestion commerciale » "
            "(délibération 2021-131): an account left inactive is deleted after two years; the same "
            "practice is followed by the Belgian APD/GBA. A convention of the regulators, not a statute."
        ),
    ),
    Default(
        key="health",
        title="Health data outside the medical record",
        period="P3Y",
        reference="last contact",
        action="delete",
        legal_basis="explicit_consent",
        source=(
            "Gardien's default for health data collected by an application (wellness, appointments). "
            "Medical records have longer statutory periods (France: 20 years, Code de la santé publique "
            "R1112-7; Belgium: 30 years, loi du 22 avril 2019): check the rule of your sector first."
        ),
    ),
    Default(
        key="audit",
        title="Audit trail",
        period="P6Y",
        reference="recorded_at",
        action="archive",
        legal_basis="legal_obligation",
        source=(
            "France: the tax authority's right of inspection runs for six years (Livre des procédures "
            "fiscales, art. L102 B); the audit trail proving how the data was processed is kept as long."
        ),
    ),
    Default(
        key="audit-financial",
        title="Audit trail of a financial institution (ACPR supervision)",
        period="P7Y",
        reference="recorded_at",
        action="archive",
        legal_basis="legal_obligation",
        source=(
            "Seven years of traceability, as expected of institutions under ACPR supervision "
            "(Gardien's DESIGN; check the figure against your own supervisory requirements)."
        ),
    ),
    Default(
        key="accounting",
        title="Accounting records",
        period="P7Y",
        reference="end of the financial year",
        action="delete",
        legal_basis="legal_obligation",
        source=(
            "Belgium: seven years from 1 January of the year after the financial year closes "
            "(Code de droit économique, art. III.86). France keeps accounting documents ten years "
            "(Code de commerce, art. L123-22): raise the period for French entities."
        ),
    ),
    Default(
        key="consent-proof",
        title="Proofs of consent",
        period="P5Y",
        reference="end of the consent (withdrawal or expiry)",
        action="delete",
        legal_basis="legal_obligation",
        source=(
            "GDPR Art. 7(1) asks the controller to demonstrate consent; Gardien keeps the proof for the "
            "five-year civil limitation period (France, Code civil art. 2224) after the consent ends. "
            "Gardien's choice, to be confirmed by the DPO."
        ),
    ),
    Default(
        key="technical-logs",
        title="Technical logs (connections, access logs)",
        period="P13M",
        reference="time of the log line",
        action="delete",
        legal_basis="legitimate_interests",
        source=(
            "CNIL: thirteen months is the upper bound it accepts for trackers and audience-measurement "
            "data without consent (recommendation of 2020 and its 2013 predecessor); Gardien applies the "
            "same bound to technical logs."
        ),
    ),
)

BY_KEY = {d.key: d for d in DEFAULTS}
