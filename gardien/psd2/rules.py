"""The SCA decision under Delegated Regulation (EU) 2018/389: which exemptions apply, and which to use.

Pure: no database, no clock, no I/O. `decide(request, policy, ruleset)` takes everything it needs as
arguments and answers in a few microseconds, so it can sit in a payment's hot path. The service
layer (`service.py`) loads a payer's counters, calls it, and records what was decided.

The figures (amounts, counts, reference fraud rates) come from a `RuleSet` loaded from versioned
data (`thresholds.py`); the readings of the text that the regulation leaves to the PSP are the
`Policy`. Article numbers refer to the RTS as amended by Delegated Regulation (EU) 2022/2360.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum

from gardien.psd2.thresholds import CounterLimits, RuleSet, load_ruleset

ZERO = Decimal(0)


class Operation(StrEnum):
    PAYMENT = "payment"
    ACCOUNT_INFORMATION = "account_information"
    TRUSTED_BENEFICIARY_CHANGE = "trusted_beneficiary_change"


class Channel(StrEnum):
    REMOTE = "remote"
    CONTACTLESS_POS = "contactless_pos"
    UNATTENDED_TERMINAL = "unattended_terminal"
    OTHER = "other"


class Instrument(StrEnum):
    CARD = "card"
    CREDIT_TRANSFER = "credit_transfer"


class DecidingRole(StrEnum):
    """Who asks: the payer's PSP (card issuer, or account-servicing PSP) or the payee's (acquirer)."""

    ISSUER = "issuer"
    ASPSP = "aspsp"
    ACQUIRER = "acquirer"


class Initiation(StrEnum):
    PAYER = "payer"
    MERCHANT_INITIATED = "merchant_initiated"
    MOTO = "moto"


class PayerType(StrEnum):
    NATURAL_PERSON = "natural_person"
    LEGAL_PERSON = "legal_person"


class CounterMode(StrEnum):
    """Which of the two alternative limits of Art. 11 and 16 the PSP applies: (b) amount or (c) count."""

    AMOUNT = "amount"
    COUNT = "count"


class Outcome(StrEnum):
    EXEMPT = "exempt"
    SCA_REQUIRED = "sca_required"
    OUT_OF_SCOPE = "out_of_scope"


class Method(StrEnum):
    NONE = "none"
    OTP_SMS = "otp_sms"
    BIOMETRIC = "biometric"
    PUSH_NOTIFICATION = "push_notification"
    HARDWARE_TOKEN = "hardware_token"


# What each article exempts, by the name used in the API.
EXEMPTION_NAMES: dict[str, str] = {
    "10": "account_information",
    "10a": "account_information_via_aisp",
    "11": "contactless_pos",
    "12": "unattended_transport_parking",
    "13": "trusted_beneficiary",
    "14": "recurring",
    "15": "own_account_transfer",
    "16": "low_value_remote",
    "17": "secure_corporate",
    "18": "transaction_risk_analysis",
}
# The payer's PSP may apply every exemption; the payee's PSP only transaction risk analysis.
PAYER_PSP_ROLES = frozenset({DecidingRole.ISSUER, DecidingRole.ASPSP})
DEFAULT_PREFERENCE: tuple[str, ...] = ("10a", "10", "15", "14", "13", "12", "11", "17", "16", "18")


@dataclass(frozen=True, slots=True)
class RiskSignals:
    """The six findings of the real-time transaction monitoring of Art. 18(2)(c); any one rules TRA out."""

    abnormal_spending: bool = False
    unusual_device: bool = False
    malware: bool = False
    known_fraud_scenario: bool = False
    abnormal_location: bool = False
    high_risk_payee_location: bool = False

    def found(self) -> list[str]:
        return [name for name in _SIGNAL_NAMES if getattr(self, name)]


_SIGNAL_NAMES = (
    "abnormal_spending",
    "unusual_device",
    "malware",
    "known_fraud_scenario",
    "abnormal_location",
    "high_risk_payee_location",
)
NO_SIGNALS = RiskSignals()


@dataclass(frozen=True, slots=True)
class Counters:
    """What the payer did since the last SCA, the current transaction not included."""

    contactless_count: int = 0
    contactless_sum_eur: Decimal = ZERO
    remote_count: int = 0
    remote_sum_eur: Decimal = ZERO


NO_COUNTERS = Counters()


@dataclass(frozen=True, slots=True)
class RecurringSeries:
    """A series of payments as the payer authenticated it (Art. 14): same amount, same payee."""

    amount: Decimal
    currency: str
    payee: str
    payments_made: int


@dataclass(frozen=True, slots=True)
class AccountAccess:
    """An online access to account information (Art. 10 direct, Art. 10a through an AISP)."""

    via_aisp: bool
    items: frozenset[str]
    oldest_transaction_age_days: int = 0
    sensitive_payment_data: bool = False
    days_since_last_sca: int | None = None
    fraud_suspicion: bool = False


ACCOUNT_ITEMS = frozenset({"balance", "transactions"})


@dataclass(frozen=True, slots=True)
class Payment:
    amount: Decimal
    currency: str
    channel: Channel
    instrument: Instrument
    payer: str
    payee: str
    terminal_purpose: str | None = None
    initiation: Initiation = Initiation.PAYER
    eur_rate: Decimal | None = None

    def amount_eur(self) -> Decimal:
        if self.currency == "EUR":
            return self.amount
        if self.eur_rate is None:
            raise ValueError(f"a payment in {self.currency} needs eur_rate (EUR for one {self.currency})")
        return self.amount * self.eur_rate


@dataclass(frozen=True, slots=True)
class ScaRequest:
    operation: Operation = Operation.PAYMENT
    role: DecidingRole = DecidingRole.ISSUER
    payment: Payment | None = None
    account_access: AccountAccess | None = None
    trusted_beneficiaries: frozenset[str] = frozenset()
    recurring: RecurringSeries | None = None
    same_owner: bool = False
    same_aspsp: bool = False
    payer_type: PayerType = PayerType.NATURAL_PERSON
    corporate_protocol_approved: bool = False
    # The PSP's rolling 90-day fraud rate in percent (Art. 19), per instrument type of remote payment.
    fraud_rates: Mapping[str, Decimal] = field(default_factory=dict)
    # (instrument, ETV) bands where Art. 20 has suspended transaction risk analysis.
    tra_suspended: frozenset[tuple[str, Decimal]] = frozenset()
    risk_signals: RiskSignals = NO_SIGNALS
    risk_score: float | None = None
    counters: Counters = NO_COUNTERS


@dataclass(frozen=True, slots=True)
class MethodRule:
    """One row of the SCA-method policy: the first row whose limits the payment is within applies."""

    method: Method
    max_risk_score: float | None = None
    max_amount_eur: Decimal | None = None


DEFAULT_METHODS: tuple[MethodRule, ...] = (
    MethodRule(Method.OTP_SMS, max_risk_score=25, max_amount_eur=Decimal(250)),
    MethodRule(Method.BIOMETRIC, max_risk_score=50, max_amount_eur=Decimal(1000)),
    MethodRule(Method.PUSH_NOTIFICATION, max_risk_score=75, max_amount_eur=Decimal(5000)),
    MethodRule(Method.HARDWARE_TOKEN),
)


@dataclass(frozen=True, slots=True)
class Policy:
    """The PSP's readings of the points the RTS leaves open, and its own risk appetite."""

    counter_mode: CounterMode = CounterMode.AMOUNT
    # Whether the current payment counts toward "previous" amounts and counts. Counting it is the
    # conservative reading: SCA on the 6th payment, and at €100 cumulative including this one.
    count_current: bool = True
    # Above this score, transaction risk analysis is refused whatever the fraud rate (0–100).
    tra_max_risk_score: float | None = None
    preference: tuple[str, ...] = DEFAULT_PREFERENCE
    methods: tuple[MethodRule, ...] = DEFAULT_METHODS


DEFAULT_POLICY = Policy()


@dataclass(frozen=True, slots=True)
class Exemption:
    article: str
    name: str
    mandatory: bool = False
    etv_eur: Decimal | None = None


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why an exemption does not apply; `in_scope` is False when it does not cover this kind of operation."""

    article: str
    reason: str
    in_scope: bool = True


@dataclass(frozen=True, slots=True)
class Decision:
    outcome: Outcome
    recommended: Exemption | None
    exemptions: tuple[Exemption, ...]
    not_applicable: tuple[Refusal, ...]
    reason: str | None
    method: Method
    challenge_indicator: str | None
    amount_eur: Decimal | None
    ruleset: str

    @property
    def sca_required(self) -> bool:
        return self.outcome is Outcome.SCA_REQUIRED


def _euros(value: Decimal) -> str:
    return f"€{value:,.2f}" if value == value.quantize(Decimal("0.01")) else f"€{value:,}"


def _within_counters(limits: CounterLimits, count: int, total: Decimal, amount: Decimal, policy: Policy) -> str | None:
    """None when the payment stays within the Art. 11/16 limits, else why it does not."""
    if amount > limits.single_max_eur:
        return f"amount {_euros(amount)} exceeds {_euros(limits.single_max_eur)}"
    if policy.counter_mode is CounterMode.AMOUNT:
        cumulative = total + amount if policy.count_current else total
        if cumulative > limits.cumulative_max_eur:
            scope = "including" if policy.count_current else "before"
            return (
                f"cumulative amount since the last SCA ({scope} this payment) {_euros(cumulative)} "
                f"exceeds {_euros(limits.cumulative_max_eur)}"
            )
        return None
    # Art. 11(c) counts the consecutive payments themselves, this one included; Art. 16(c) counts
    # "previous" payments, which the policy may read literally.
    including = limits.count_includes_current or policy.count_current
    number = count + 1 if including else count
    if number > limits.consecutive_max:
        ordinal = "payment" if including else "previous payments"
        return f"{number} {ordinal} since the last SCA exceeds {limits.consecutive_max}"
    return None


_REMOTE_ONLY = "only remote payments"


def _tra(request: ScaRequest, payment: Payment, amount: Decimal, policy: Policy, ruleset: RuleSet) -> Exemption | str:
    if payment.channel is not Channel.REMOTE:
        return _REMOTE_ONLY
    found = request.risk_signals.found()
    if found:
        return "real-time risk analysis found " + ", ".join(found)
    if (
        policy.tra_max_risk_score is not None
        and request.risk_score is not None
        and request.risk_score > policy.tra_max_risk_score
    ):
        return f"risk score {request.risk_score:g} is above the policy's {policy.tra_max_risk_score:g}"
    instrument = payment.instrument.value
    rate = request.fraud_rates.get(instrument)
    if rate is None:
        return f"no fraud rate given for remote {instrument.replace('_', ' ')} payments"
    bands = ruleset.tra_bands[instrument]
    # The payment falls in one threshold range, the lowest ETV it does not exceed; Art. 20 suspends
    # ranges, so a suspended range is not replaced by a higher one.
    band = next((band for band in bands if amount <= band.etv_eur), None)
    if band is None:
        return f"amount {_euros(amount)} exceeds the highest exemption threshold {_euros(bands[-1].etv_eur)}"
    if rate > band.reference_rate_percent:
        return (
            f"fraud rate {rate}% exceeds the {band.reference_rate_percent}% reference for the "
            f"{_euros(band.etv_eur)} band"
        )
    if (instrument, band.etv_eur) in request.tra_suspended:
        return f"the {_euros(band.etv_eur)} band is suspended under Art. 20"
    return Exemption("18", EXEMPTION_NAMES["18"], etv_eur=band.etv_eur)


def _payment_exemptions(
    request: ScaRequest, payment: Payment, amount: Decimal, policy: Policy, ruleset: RuleSet
) -> tuple[list[Exemption], list[Refusal]]:
    eligible: list[Exemption] = []
    refused: list[Refusal] = []

    def judge(article: str, refusal: str | None, in_scope: bool = True) -> None:
        if refusal is None:
            eligible.append(Exemption(article, EXEMPTION_NAMES[article]))
        else:
            refused.append(Refusal(article, refusal, in_scope))

    payer_psp = request.role in PAYER_PSP_ROLES
    if not payer_psp:
        for article in ("11", "12", "13", "14", "15", "16", "17"):
            refused.append(Refusal(article, "only the payer's PSP may apply it", False))
    else:
        channel = payment.channel
        counters = request.counters
        if channel is not Channel.CONTACTLESS_POS:
            judge("11", "only contactless payments at a point of sale", False)
        elif payment.instrument is not Instrument.CARD:
            judge("11", "only card-based contactless payments", False)
        else:
            judge(
                "11",
                _within_counters(
                    ruleset.contactless, counters.contactless_count, counters.contactless_sum_eur, amount, policy
                ),
            )
        if channel is not Channel.UNATTENDED_TERMINAL:
            judge("12", "only payments at an unattended terminal", False)
        elif payment.terminal_purpose not in ruleset.unattended_purposes:
            judge("12", "only transport fares and parking fees, not other unattended terminals")
        else:
            judge("12", None)
        if payment.payee in request.trusted_beneficiaries:
            judge("13", None)
        else:
            judge("13", "payee is not on the payer's trusted beneficiaries", bool(request.trusted_beneficiaries))
        recurring = _recurring_refusal(request.recurring, payment)
        judge("14", recurring, recurring is not _NOT_RECURRING)
        if payment.instrument is not Instrument.CREDIT_TRANSFER:
            judge("15", "only credit transfers", False)
        elif not (request.same_owner and request.same_aspsp):
            judge("15", "payer and payee accounts are not both the payer's own at the same ASPSP")
        else:
            judge("15", None)
        if channel is not Channel.REMOTE:
            judge("16", "only remote payments", False)
        else:
            judge(
                "16",
                _within_counters(ruleset.low_value, counters.remote_count, counters.remote_sum_eur, amount, policy),
            )
        if request.payer_type is not PayerType.LEGAL_PERSON:
            judge("17", "only payers that are legal persons", False)
        elif not request.corporate_protocol_approved:
            judge("17", "the dedicated corporate process has no approval from the competent authority")
        else:
            judge("17", None)
    tra = _tra(request, payment, amount, policy, ruleset)
    if isinstance(tra, Exemption):
        eligible.append(tra)
    else:
        refused.append(Refusal("18", tra, tra is not _REMOTE_ONLY))
    return eligible, refused


_NOT_RECURRING = "not part of a recurring series"


def _recurring_refusal(series: RecurringSeries | None, payment: Payment) -> str | None:
    if series is None:
        return _NOT_RECURRING
    if series.payments_made < 1:
        return "the first payment of a series needs SCA"
    if series.payee != payment.payee:
        return "payee differs from the authenticated series: an amended series needs SCA"
    if series.amount != payment.amount or series.currency != payment.currency:
        return "amount differs from the authenticated series: an amended series needs SCA"
    return None


def _account_access(request: ScaRequest, ruleset: RuleSet) -> tuple[list[Exemption], list[Refusal]]:
    access = request.account_access
    assert access is not None
    article = "10a" if access.via_aisp else "10"
    if request.role is DecidingRole.ACQUIRER:
        return [], [Refusal(article, "only the account-servicing PSP decides on account access")]
    refusal: str | None = None
    if not access.items or not access.items <= ACCOUNT_ITEMS:
        refusal = "only the balance and the recent transactions are covered"
    elif (
        "transactions" in access.items and access.oldest_transaction_age_days > ruleset.account_information_max_age_days
    ):
        refusal = f"transactions older than {ruleset.account_information_max_age_days} days"
    elif access.sensitive_payment_data:
        refusal = "sensitive payment data would be disclosed"
    elif access.days_since_last_sca is None:
        refusal = "first access needs SCA"
    elif access.days_since_last_sca > ruleset.account_information_renewal_days:
        refusal = f"more than {ruleset.account_information_renewal_days} days since the last SCA"
    elif access.via_aisp and access.fraud_suspicion:
        refusal = "objectively justified and documented suspicion of fraud (Art. 10a(3))"
    if refusal is not None:
        return [], [Refusal(article, refusal)]
    return [Exemption(article, EXEMPTION_NAMES[article], mandatory=access.via_aisp)], []


def _method(policy: Policy, risk_score: float | None, amount: Decimal | None) -> Method:
    for rule in policy.methods:
        if rule.max_risk_score is not None and risk_score is not None and risk_score > rule.max_risk_score:
            continue
        if rule.max_amount_eur is not None and amount is not None and amount > rule.max_amount_eur:
            continue
        return rule.method
    return Method.HARDWARE_TOKEN


def _indicator(payment: Payment | None, role: DecidingRole, recommended: Exemption | None) -> str | None:
    """EMV 3-D Secure 2.2 threeDSRequestorChallengeInd for a remote card payment, else None."""
    if payment is None or payment.instrument is not Instrument.CARD or payment.channel is not Channel.REMOTE:
        return None
    if recommended is None:
        return "04"
    if recommended.article == "13":
        return "08"
    if recommended.article == "18" and role is DecidingRole.ACQUIRER:
        return "05"
    return "02"


def _recommend(eligible: list[Exemption], preference: tuple[str, ...]) -> Exemption | None:
    if not eligible:
        return None
    for exemption in eligible:
        if exemption.mandatory:
            return exemption
    rank = {article: index for index, article in enumerate(preference)}
    return min(eligible, key=lambda exemption: rank.get(exemption.article, len(rank)))


def decide(request: ScaRequest, policy: Policy = DEFAULT_POLICY, ruleset: RuleSet | None = None) -> Decision:
    """Is SCA required for this operation, and if not, under which exemption?"""
    ruleset = ruleset or load_ruleset()
    payment = request.payment
    amount: Decimal | None = None
    if request.operation is Operation.TRUSTED_BENEFICIARY_CHANGE:
        return _required(request, policy, ruleset, [], "creating or amending trusted beneficiaries needs SCA (Art. 13)")
    if request.operation is Operation.ACCOUNT_INFORMATION:
        if request.account_access is None:
            raise ValueError("an account_information operation needs account_access")
        eligible, refused = _account_access(request, ruleset)
    else:
        if payment is None:
            raise ValueError("a payment operation needs payment")
        if payment.initiation is not Initiation.PAYER:
            convertible = payment.currency == "EUR" or payment.eur_rate is not None
            return Decision(
                outcome=Outcome.OUT_OF_SCOPE,
                recommended=None,
                exemptions=(),
                not_applicable=(),
                reason=None,
                method=Method.NONE,
                challenge_indicator=None,
                amount_eur=payment.amount_eur() if convertible else None,
                ruleset=ruleset.id,
            )
        amount = payment.amount_eur()
        eligible, refused = _payment_exemptions(request, payment, amount, policy, ruleset)
    recommended = _recommend(eligible, policy.preference)
    if recommended is None:
        relevant = [f"Art. {r.article}: {r.reason}" for r in refused if r.in_scope]
        reason = "no exemption applies: " + ("; ".join(relevant) if relevant else "none covers this operation")
        return _required(request, policy, ruleset, refused, reason, amount)
    return Decision(
        outcome=Outcome.EXEMPT,
        recommended=recommended,
        exemptions=tuple(eligible),
        not_applicable=tuple(refused),
        reason=None,
        method=Method.NONE,
        challenge_indicator=_indicator(payment, request.role, recommended),
        amount_eur=amount,
        ruleset=ruleset.id,
    )


def _required(
    request: ScaRequest,
    policy: Policy,
    ruleset: RuleSet,
    refused: list[Refusal],
    reason: str,
    amount: Decimal | None = None,
) -> Decision:
    return Decision(
        outcome=Outcome.SCA_REQUIRED,
        recommended=None,
        exemptions=(),
        not_applicable=tuple(refused),
        reason=reason,
        method=_method(policy, request.risk_score, amount),
        challenge_indicator=_indicator(request.payment, request.role, None),
        amount_eur=amount,
        ruleset=ruleset.id,
    )


@dataclass(frozen=True, slots=True)
class QuarterRate:
    """A quarter's monitored fraud rate for remote payments of one instrument type (Art. 19, 20)."""

    quarter: str
    instrument: Instrument
    rate_percent: Decimal
    # The PSP notified the competent authority that it intends to use TRA again (Art. 20(4)).
    resumption_notified: bool = False


def quarter_index(quarter: str) -> int:
    """'2026-Q3' → a number that increases by one from each quarter to the next."""
    year, _, q = quarter.partition("-Q")
    if not (len(year) == 4 and year.isdigit() and q in ("1", "2", "3", "4")):
        raise ValueError(f"quarter {quarter!r} is not of the form YYYY-Qn")
    return int(year) * 4 + int(q) - 1


def tra_suspensions(history: Iterable[QuarterRate], ruleset: RuleSet | None = None) -> frozenset[tuple[str, Decimal]]:
    """The (instrument, ETV) bands where Art. 20 forbids transaction risk analysis after `history`.

    A band is suspended once its monitored rate exceeds the reference rate for the configured number
    of consecutive quarters (two); it is usable again only after the configured number of quarters
    within the reference (one) and a notification to the competent authority.
    """
    ruleset = ruleset or load_ruleset()
    by_instrument: dict[str, list[QuarterRate]] = {}
    for row in history:
        by_instrument.setdefault(row.instrument.value, []).append(row)
    suspended: set[tuple[str, Decimal]] = set()
    for instrument, rows in by_instrument.items():
        rows.sort(key=lambda row: quarter_index(row.quarter))
        for band in ruleset.tra_bands[instrument]:
            above = within = 0
            stopped = False
            previous: int | None = None
            for row in rows:
                index = quarter_index(row.quarter)
                if previous is not None and index != previous + 1:
                    above = within = 0
                previous = index
                if row.rate_percent > band.reference_rate_percent:
                    above, within = above + 1, 0
                else:
                    above, within = 0, within + 1
                if not stopped and above >= ruleset.suspend_after_quarters_above:
                    stopped = True
                elif stopped and within >= ruleset.resume_after_quarters_within and row.resumption_notified:
                    stopped = False
            if stopped:
                suspended.add((instrument, band.etv_eur))
    return frozenset(suspended)
