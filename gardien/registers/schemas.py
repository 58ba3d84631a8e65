"""Shapes of the registers' records and answers. Every string, number and list is bounded."""

from __future__ import annotations

from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from gardien.core.schemas import NO_NUL

Name = Annotated[str, Field(min_length=1, max_length=200, pattern=NO_NUL)]
Text = Annotated[str, Field(max_length=4000, pattern=NO_NUL)]
# DPIA answers: the PIA tool keeps rich text (HTML) that runs to a few thousand characters.
LongText = Annotated[str, Field(max_length=20_000, pattern=NO_NUL)]
Label = Annotated[str, Field(min_length=1, max_length=200, pattern=NO_NUL)]
Country = Annotated[str, Field(pattern=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2", examples=["FR"])]
Labels = Annotated[list[Label], Field(max_length=50)]
Severity = Annotated[int, Field(ge=1, le=4, description="1 negligible, 2 limited, 3 important, 4 maximum")]
MAX_PEOPLE = 10**10
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2999, 12, 31, tzinfo=UTC)


def _plausible(moment: datetime) -> datetime:
    # Also keeps 72-hour sums and UTC conversions of the extreme years off the overflow edge.
    if not EARLIEST <= moment <= LATEST:
        raise ValueError("must be between 1970 and 2999")
    return moment


Moment = Annotated[AwareDatetime, AfterValidator(_plausible)]


def _plausible_day(day: date) -> date:
    if not EARLIEST.date() <= day <= LATEST.date():
        raise ValueError("must be between 1970 and 2999")
    return day


ReportDay = Annotated[date, AfterValidator(_plausible_day)]

# EU member states, and Iceland, Liechtenstein and Norway (EEA Agreement): no transfer tool needed.
EEA = frozenset(
    {
        # the EU 27
        "AT",
        "BE",
        "BG",
        "HR",
        "CY",
        "CZ",
        "DK",
        "EE",
        "FI",
        "FR",
        "DE",
        "GR",
        "HU",
        "IE",
        "IT",
        "LV",
        "LT",
        "LU",
        "MT",
        "NL",
        "PL",
        "PT",
        "RO",
        "SK",
        "SI",
        "ES",
        "SE",
        "IS",
        "LI",
        "NO",
    }
)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Contact(Strict):
    name: Name
    address: Text | None = None
    email: str | None = Field(default=None, max_length=254, pattern=r"^[^@\s\x00]+@[^@\s\x00]+$")
    phone: str | None = Field(default=None, max_length=40, pattern=r"^[0-9+() .\-]{1,40}$")


class Authority(StrEnum):
    CNIL = "cnil"
    APD = "apd"
    AP = "ap"


class NoticeSettings(Strict):
    """What the privacy notice says that the register does not hold (Art. 13(2)(e)–(f))."""

    rights_contact: Text | None = Field(
        default=None, description="Where people exercise their rights: an e-mail address or a URL"
    )
    statutory_requirement: Text | None = Field(
        default=None, description="Whether providing the data is a statutory or contractual requirement (Art. 13(2)(e))"
    )
    automated_decisions: Text | None = Field(
        default=None, description="Automated decisions and profiling, with their logic (Art. 13(2)(f)); null: none"
    )


class SettingsIn(Strict):
    controller: Contact
    representative: Contact | None = None
    dpo: Contact | None = None
    authority: Authority = Authority.CNIL
    notice: NoticeSettings = Field(default_factory=NoticeSettings)


# Processing activities -------------------------------------------------------------------------


class LegalBasis(StrEnum):
    """Art. 6(1)(a)–(f)."""

    CONSENT = "consent"
    CONTRACT = "contract"
    LEGAL_OBLIGATION = "legal_obligation"
    VITAL_INTERESTS = "vital_interests"
    PUBLIC_TASK = "public_task"
    LEGITIMATE_INTERESTS = "legitimate_interests"


class Purpose(Strict):
    name: Name
    legal_basis: LegalBasis
    legitimate_interest: Text | None = None

    @model_validator(mode="after")
    def _interest_named(self) -> Purpose:
        if self.legal_basis is LegalBasis.LEGITIMATE_INTERESTS and not self.legitimate_interest:
            raise ValueError("legitimate_interest: name the interest when the basis is legitimate_interests")
        return self


class DataCategory(StrEnum):
    """The CNIL template's categories of data."""

    IDENTITY = "identity"
    PERSONAL_LIFE = "personal_life"
    PROFESSIONAL_LIFE = "professional_life"
    ECONOMIC_FINANCIAL = "economic_financial"
    CONNECTION = "connection"
    LOCATION = "location"
    OTHER = "other"


class SpecialCategory(StrEnum):
    """Art. 9(1), and Art. 10 for criminal convictions and offences."""

    RACIAL_OR_ETHNIC_ORIGIN = "racial_or_ethnic_origin"
    POLITICAL_OPINIONS = "political_opinions"
    RELIGIOUS_OR_PHILOSOPHICAL_BELIEFS = "religious_or_philosophical_beliefs"
    TRADE_UNION_MEMBERSHIP = "trade_union_membership"
    GENETIC = "genetic"
    BIOMETRIC = "biometric"
    HEALTH = "health"
    SEX_LIFE_OR_ORIENTATION = "sex_life_or_orientation"
    CRIMINAL_CONVICTIONS = "criminal_convictions"


class DataItem(Strict):
    category: DataCategory
    description: Text | None = None
    retention: Text | None = Field(default=None, description="How long, or the criteria (Art. 30(1)(f))")


class RecipientKind(StrEnum):
    INTERNAL = "internal"
    PROCESSOR = "processor"
    PARTNER = "partner"
    AUTHORITY = "authority"
    OTHER = "other"


class Recipient(Strict):
    name: Name
    kind: RecipientKind
    country: Country | None = None


class Safeguard(StrEnum):
    """Chapter V: adequacy (Art. 45), Art. 46 tools, the EU–US framework, Art. 49 derogations."""

    ADEQUACY = "adequacy"
    SCC = "scc"
    BCR = "bcr"
    CODE_OF_CONDUCT = "code_of_conduct"
    CERTIFICATION = "certification"
    DPF = "dpf"
    DEROGATION = "derogation"


class Transfer(Strict):
    recipient: Name
    country: Country
    safeguard: Safeguard
    documentation: Text | None = Field(default=None, description="Where the safeguard's documents are")

    @model_validator(mode="after")
    def _outside_eea(self) -> Transfer:
        if self.country in EEA:
            raise ValueError(f"country: {self.country} is in the EEA; a transfer is to a third country")
        return self


class SecurityMeasure(StrEnum):
    """The CNIL template's checklist."""

    ACCESS_CONTROL = "access_control"
    TRACEABILITY = "traceability"
    SOFTWARE_PROTECTION = "software_protection"
    BACKUP = "backup"
    ENCRYPTION = "encryption"
    PROCESSOR_CONTROL = "processor_control"
    OTHER = "other"


class ControllerActivity(Strict):
    """A processing activity of the organisation as controller (Art. 30(1))."""

    role: Literal["controller"] = "controller"
    name: Name
    reference: str | None = Field(default=None, max_length=64, pattern=NO_NUL)
    description: Text | None = None
    joint_controllers: list[Contact] = Field(default_factory=list, max_length=20)
    purposes: list[Purpose] = Field(min_length=1, max_length=50)
    subject_categories: Labels = Field(min_length=1)
    data_categories: list[DataItem] = Field(min_length=1, max_length=50)
    special_categories: list[SpecialCategory] = Field(default_factory=list, max_length=9)
    nir: bool = Field(default=False, description="The French social security number (NIR) is processed")
    recipients: list[Recipient] = Field(default_factory=list, max_length=50)
    transfers: list[Transfer] = Field(default_factory=list, max_length=50)
    retention: Text | None = None
    retention_policy: str | None = Field(default=None, max_length=64, pattern=NO_NUL)
    security_measures: list[SecurityMeasure] = Field(default_factory=list, max_length=7)
    security_description: Text | None = None
    sources: Labels = Field(
        default_factory=list,
        description="Where the data come from when not from the person (Art. 14(2)(f)); empty: from the person",
    )


class ServedController(Strict):
    controller: Contact
    representative: Contact | None = None
    dpo: Contact | None = None


class ProcessorActivity(Strict):
    """Processing carried out on behalf of controllers (Art. 30(2))."""

    role: Literal["processor"]
    name: Name
    reference: str | None = Field(default=None, max_length=64, pattern=NO_NUL)
    controllers: list[ServedController] = Field(min_length=1, max_length=50)
    processing_categories: Labels = Field(min_length=1)
    transfers: list[Transfer] = Field(default_factory=list, max_length=50)
    security_measures: list[SecurityMeasure] = Field(default_factory=list, max_length=7)
    security_description: Text | None = None


ActivityIn = Annotated[ControllerActivity | ProcessorActivity, Field(discriminator="role")]


# Processors (Art. 28) -----------------------------------------------------------------------------


class TransferTool(StrEnum):
    EEA = "eea"
    ADEQUACY = "adequacy"
    SCC = "scc"
    BCR = "bcr"
    DPF = "dpf"
    DEROGATION = "derogation"
    NONE = "none"


class Location(Strict):
    country: Country
    transfer_tool: TransferTool


class Dpa(Strict):
    signed_on: date | None = None
    review_on: date | None = None
    reference: Text | None = None


class Clauses(Strict):
    """Art. 28(3)(a)–(h): what the contract must stipulate."""

    a_instructions: bool = False
    b_confidentiality: bool = False
    c_security: bool = False
    d_sub_processing: bool = False
    e_data_subject_rights: bool = False
    f_assistance_32_36: bool = False
    g_deletion_or_return: bool = False
    h_audits: bool = False


class SubProcessor(Strict):
    name: Name
    country: Country
    service: Text | None = None
    authorisation: Literal["specific", "general"]


class ProcessorIn(Strict):
    name: Name
    address: Text | None = None
    country: Country
    contact: Contact | None = None
    dpo: Contact | None = None
    services: Labels = Field(min_length=1)
    data_categories: Labels = Field(default_factory=list)
    subject_categories: Labels = Field(default_factory=list)
    duration: Text | None = None
    locations: list[Location] = Field(default_factory=list, max_length=50)
    dpa: Dpa = Field(default_factory=Dpa)
    clauses: Clauses = Field(default_factory=Clauses)
    sub_processors: list[SubProcessor] = Field(default_factory=list, max_length=50)
    breach_notice_hours: int | None = Field(default=None, ge=1, le=720)


class AlertKind(StrEnum):
    DPA_MISSING = "dpa_missing"
    DPA_EXPIRED = "dpa_expired"
    DPA_REVIEW_DUE = "dpa_review_due"
    CLAUSES_MISSING = "clauses_missing"
    TRANSFER_WITHOUT_SAFEGUARD = "transfer_without_safeguard"


class Alert(BaseModel):
    processor_id: str
    processor: str
    kind: AlertKind
    detail: str


class AlertList(BaseModel):
    alerts: list[Alert]


# Breaches (Art. 33/34) ----------------------------------------------------------------------------


class Risk(StrEnum):
    NONE = "none"  # unlikely to result in a risk: no notification (Art. 33(1))
    RISK = "risk"
    HIGH = "high"  # Art. 34 applies


class Art34Exemption(StrEnum):
    """Art. 34(3)(a)–(c)."""

    ENCRYPTED = "encrypted"
    SUBSEQUENT_MEASURES = "subsequent_measures"
    DISPROPORTIONATE = "disproportionate"


class BreachIn(Strict):
    title: Name
    description: Text = Field(min_length=1, description="The nature of the breach (Art. 33(3)(a))")
    aware_at: Moment = Field(description="When the controller became aware: the 72-hour clock starts here")
    started_at: Moment | None = None
    ended_at: Moment | None = None
    nature: list[Literal["confidentiality", "integrity", "availability"]] = Field(min_length=1, max_length=3)
    circumstances: Text | None = None
    subject_categories: Labels = Field(default_factory=list)
    subjects_approx: int | None = Field(default=None, ge=0, le=MAX_PEOPLE)
    record_categories: Labels = Field(default_factory=list)
    records_approx: int | None = Field(default=None, ge=0, le=MAX_PEOPLE)
    special_categories: list[SpecialCategory] = Field(default_factory=list, max_length=9)
    consequences: Text | None = None
    measures_taken: Text | None = None
    measures_proposed: Text | None = None
    dpo_contact: Contact | None = None
    cross_border: bool = False
    risk: Risk
    no_notification_reason: Text | None = None
    art34_exemption: Art34Exemption | None = None
    subjects_informed_at: Moment | None = None
    late_reasons: Text | None = None
    status: Literal["open", "closed"] = "open"

    @model_validator(mode="after")
    def _consistent(self) -> BreachIn:
        if self.risk is Risk.NONE and not self.no_notification_reason:
            raise ValueError("no_notification_reason: say why the breach is unlikely to result in a risk")
        if self.started_at is not None and self.ended_at is not None and self.ended_at < self.started_at:
            raise ValueError("ended_at: before started_at")
        return self


class NotificationIn(Strict):
    kind: Literal["initial", "complementary"]
    sent_at: Moment
    authority: Authority
    reference: str | None = Field(default=None, max_length=200, pattern=NO_NUL)
    late_reasons: Text | None = Field(default=None, description="Required for an initial notification past 72 hours")


class Notification(Strict):
    kind: Literal["initial", "complementary"]
    sent_at: datetime
    authority: Authority
    reference: str | None = None


class ClockOut(BaseModel):
    deadline: datetime
    state: str
    hours_elapsed: float
    hours_remaining: float


# DPIAs (Art. 35, the CNIL PIA tool's sections) ---------------------------------------------------


class Context(Strict):
    """Section 1: 1.1 overview (111–113), 1.2 data, processes and supports (121–123)."""

    processing: LongText | None = None
    responsibilities: LongText | None = None
    standards: LongText | None = None
    data: LongText | None = None
    lifecycle: LongText | None = None
    supports: LongText | None = None


class Principles(Strict):
    """Section 2: 2.1 proportionality and necessity (211–215), 2.2 controls protecting rights (221–227)."""

    purposes: LongText | None = None
    legal_basis: LongText | None = None
    minimisation: LongText | None = None
    accuracy: LongText | None = None
    retention: LongText | None = None
    information: LongText | None = None
    consent: LongText | None = None
    access_portability: LongText | None = None
    rectification_erasure: LongText | None = None
    restriction_objection: LongText | None = None
    processors: LongText | None = None
    transfers: LongText | None = None


class Measure(Strict):
    title: Name
    content: LongText | None = None


class RiskAssessment(Strict):
    impacts: Labels = Field(default_factory=list)
    threats: Labels = Field(default_factory=list)
    sources: Labels = Field(default_factory=list)
    measures: Labels = Field(default_factory=list)
    severity: Severity | None = None
    severity_justification: LongText | None = None
    likelihood: Severity | None = None
    likelihood_justification: LongText | None = None


class Risks(Strict):
    """Section 3: 3.2 illegitimate access, 3.3 unwanted modification, 3.4 data disappearance."""

    illegitimate_access: RiskAssessment = Field(default_factory=RiskAssessment)
    unwanted_modification: RiskAssessment = Field(default_factory=RiskAssessment)
    data_disappearance: RiskAssessment = Field(default_factory=RiskAssessment)


class Action(Strict):
    reference: str = Field(
        max_length=16, pattern=r"^[1-4](\.[0-9]{1,3}){0,2}$", description="The PIA item it answers, e.g. 2.1.215 or 3.2"
    )
    action: LongText = Field(min_length=1)
    due_on: date | None = None
    owner: Name | None = None
    status: Literal["planned", "in_progress", "done"] = "planned"


class Opinion(StrEnum):
    FAVOURABLE = "favourable"
    UNFAVOURABLE = "unfavourable"


class Validation(Strict):
    """Section 4: opinions of the DPO and of the persons concerned, decision."""

    author: Name | None = None
    evaluator: Name | None = None
    validator: Name | None = None
    dpo_names: Name | None = None
    dpo_opinion: LongText | None = None
    dpo_status: Opinion | None = None
    people_names: Name | None = None
    people_searched: bool = False
    people_opinion: LongText | None = None
    people_status: Opinion | None = None
    status: Literal["draft", "validated", "rejected"] = "draft"
    rejection_reason: LongText | None = None


class DpiaIn(Strict):
    name: Name
    activity_id: str | None = Field(default=None, max_length=36, pattern=NO_NUL)
    context: Context = Field(default_factory=Context)
    principles: Principles = Field(default_factory=Principles)
    measures: list[Measure] = Field(default_factory=list, max_length=200)
    risks: Risks = Field(default_factory=Risks)
    action_plan: list[Action] = Field(default_factory=list, max_length=200)
    validation: Validation = Field(default_factory=Validation)


class DpiaEvent(StrEnum):
    """The DPIA event log's vocabulary: events other capabilities tag with `fields.dpia_event`."""

    DATA_ANONYMIZATION = "DATA_ANONYMIZATION"
    DATA_DELETION = "DATA_DELETION"
    DATA_EXPORT = "DATA_EXPORT"
    DATA_ACCESS = "DATA_ACCESS"
    CONSENT_GRANTED = "CONSENT_GRANTED"
    CONSENT_REVOKED = "CONSENT_REVOKED"
    SCA_TRIGGERED = "SCA_TRIGGERED"
    RISK_ASSESSMENT = "RISK_ASSESSMENT"


class EventCount(BaseModel):
    event: DpiaEvent
    count: int
    last_at: datetime | None


class PeriodSummary(BaseModel):
    period: str = Field(description="YYYY-MM-DD, YYYY-MM, or 'all'")
    events: list[EventCount]


class DpiaEventSummary(BaseModel):
    since: datetime
    until: datetime
    periods: list[PeriodSummary]


# Envelopes ---------------------------------------------------------------------------------------

R = TypeVar("R")


class Entry(BaseModel, Generic[R]):
    """One register entry: its record as last written, and who changed it when."""

    id: str
    version: int
    created_at: datetime
    updated_at: datetime
    created_by: str
    updated_by: str
    record: R


class ActivityOut(Entry[ControllerActivity | ProcessorActivity]):
    sensitive: bool = Field(description="Special categories (Art. 9/10) or the French NIR")
    transfers_outside_eea: int


class ProcessorOut(Entry[ProcessorIn]):
    alerts: list[AlertKind]


class BreachOut(Entry[BreachIn]):
    notifications: list[Notification]
    clock: ClockOut
    notification_required: bool
    communication_required: bool = Field(description="Art. 34: high risk and no Art. 34(3) exemption")


class DpiaOut(Entry[DpiaIn]):
    prior_consultation: bool = Field(description="Art. 36: a risk with severity and likelihood both 3 or more")


class SettingsOut(Entry[SettingsIn]):
    pass


class Page(BaseModel, Generic[R]):
    items: list[R]
    next_cursor: str | None


def dump(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(mode="json")


# Privacy notices (Art. 13/14) ----------------------------------------------------------------------


class NoticeTable(BaseModel):
    head: list[str]
    rows: list[list[str]]


class NoticeSection(BaseModel):
    key: str = Field(description="controller, dpo, purposes, data, sources, recipients, transfers, retention, …")
    title: str
    paragraphs: list[str]
    items: list[str]
    table: NoticeTable | None = None
    closing: list[str] = Field(default_factory=list)
    authority: dict[str, str] | None = None


class NoticeText(BaseModel):
    language: Literal["fr", "nl", "en", "de"]
    title: str
    intro: str
    sections: list[NoticeSection]


class NoticeVersionSummary(BaseModel):
    version: int
    sha256: str = Field(description="SHA-256 of the version's RFC 8785 canonical JSON document (facts and texts)")
    published_at: datetime
    published_by: str


class NoticeVersionList(BaseModel):
    versions: list[NoticeVersionSummary]


class NoticeOut(BaseModel):
    version: int | None = Field(description="null for a draft")
    sha256: str
    published_at: datetime | None
    changed: bool = Field(description="Draft: differs from the latest published version (publishing makes a new one)")
    notice: NoticeText
    facts: dict[str, Any] = Field(description="What the notice says, taken from the register")


class PublicationOut(NoticeVersionSummary):
    created: bool = Field(description="false: the content had not changed, the latest version stands")


# Compliance matrix -------------------------------------------------------------------------------


class ComplianceRow(BaseModel):
    article: str = Field(examples=["28"])
    title: str
    status: Literal["CONFORME", "PARTIEL", "ABSENT"]
    finding: str
    evidence: dict[str, Any] = Field(description="Counts, dates and ids the status follows from")
    action: str | None = Field(description="What would change the status; null when CONFORME")


class ComplianceOut(BaseModel):
    organisation: str
    generated_at: datetime
    language: Literal["en", "fr"]
    summary: dict[str, int] = Field(description="Rows per status")
    rows: list[ComplianceRow]


# Period report -----------------------------------------------------------------------------------


class PurposeChoices(BaseModel):
    purpose: str
    granted: int
    denied: int


class MonthConsents(BaseModel):
    month: str = Field(description="YYYY-MM")
    given: int
    withdrawn: int


class ConsentFigures(BaseModel):
    given: int = Field(description="Consent events that granted a purpose (CONSENT_GRANTED)")
    withdrawn: int = Field(description="Consent events that withdrew a purpose (CONSENT_REVOKED)")
    choices_granted: int = Field(description="Choices per non-essential purpose: granted")
    choices_denied: int
    by_purpose: list[PurposeChoices]
    by_month: list[MonthConsents]


class RequestTypeFigures(BaseModel):
    type: str
    received: int = Field(description="Received during the period")
    answered: int = Field(description="Completed or rejected during the period")
    answered_in_time: int = Field(description="Of those, closed on or before their due day")
    share_in_time: float | None


class RequestFigures(BaseModel):
    received: int
    answered: int
    answered_in_time: int
    share_in_time: float | None
    extended: int = Field(description="Received during the period and extended (Art. 12(3))")
    overdue_now: int = Field(description="Open and past their due day when the report was generated")
    by_type: list[RequestTypeFigures]


class ActionFigures(BaseModel):
    requests_completed: int = Field(description="Erasure (or access and portability) requests completed in the period")
    ledger_events: int = Field(description="Ledger events tagged DATA_DELETION (or DATA_EXPORT) in the period")


class BreachFigures(BaseModel):
    recorded: int = Field(description="Breaches the controller became aware of during the period")
    high_risk: int
    notification_not_required: int
    notified_in_time: int
    notified_late: int
    not_notified_overdue: int
    clock_running: int
    people_informed: int
    subjects_approx: int


class RetentionFigures(BaseModel):
    available: bool = Field(description="false: the retention capability is not installed or not plugged in")
    runs: int
    succeeded: int
    failed: int
    records_affected: int


class LedgerFigures(BaseModel):
    status: Literal["ok", "tampered", "unverifiable"]
    verified_at: datetime
    size: int
    events_checked: int
    checkpoints_checked: int
    first_broken_seq: int | None


class ReportOut(BaseModel):
    organisation: str
    generated_at: datetime
    language: Literal["en", "fr"]
    since: date = Field(description="First day, UTC")
    until: date = Field(description="Last day, UTC, inclusive")
    consent: ConsentFigures
    requests: RequestFigures
    erasures: ActionFigures
    exports: ActionFigures
    breaches: BreachFigures
    retention: RetentionFigures
    ledger: LedgerFigures
    dpia_events: dict[str, int] = Field(description="Ledger events per DPIA event type in the period")
