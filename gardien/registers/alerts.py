"""What a processor's entry lacks under Art. 28: a signed DPA, a current review, clauses, a transfer tool."""

from __future__ import annotations

from datetime import date, timedelta

from gardien.registers.schemas import EEA, Alert, AlertKind, ProcessorIn, TransferTool

REVIEW_NOTICE = timedelta(days=30)
CLAUSE_LETTERS = {
    "a_instructions": "(a) documented instructions",
    "b_confidentiality": "(b) confidentiality",
    "c_security": "(c) Art. 32 security",
    "d_sub_processing": "(d) sub-processing conditions",
    "e_data_subject_rights": "(e) assistance with data subjects' rights",
    "f_assistance_32_36": "(f) assistance with Art. 32–36",
    "g_deletion_or_return": "(g) deletion or return at the end",
    "h_audits": "(h) audits and information",
}


def of_processor(record: ProcessorIn, today: date) -> list[tuple[AlertKind, str]]:
    found: list[tuple[AlertKind, str]] = []
    dpa = record.dpa
    if dpa.signed_on is None:
        found.append((AlertKind.DPA_MISSING, "no signed data processing agreement (Art. 28(3))"))
    if dpa.review_on is not None:
        if dpa.review_on < today:
            found.append((AlertKind.DPA_EXPIRED, f"review date {dpa.review_on.isoformat()} has passed"))
        elif dpa.review_on <= today + REVIEW_NOTICE:
            found.append((AlertKind.DPA_REVIEW_DUE, f"review due on {dpa.review_on.isoformat()}"))
    missing = [label for name, label in CLAUSE_LETTERS.items() if not getattr(record.clauses, name)]
    if missing:
        found.append((AlertKind.CLAUSES_MISSING, "Art. 28(3) clauses not ticked: " + "; ".join(missing)))
    unsafe = sorted(
        {
            loc.country
            for loc in record.locations
            if loc.country not in EEA and loc.transfer_tool in (TransferTool.NONE, TransferTool.EEA)
        }
    )
    if unsafe:
        found.append(
            (AlertKind.TRANSFER_WITHOUT_SAFEGUARD, "outside the EEA without a transfer tool: " + ", ".join(unsafe))
        )
    return found


def alerts(processor_id: str, record: ProcessorIn, today: date) -> list[Alert]:
    return [
        Alert(processor_id=processor_id, processor=record.name, kind=kind, detail=detail)
        for kind, detail in of_processor(record, today)
    ]
