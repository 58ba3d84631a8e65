"""Shapes of the SCA advisor's API, and their conversion to the pure rule engine's inputs."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal, cast

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from gardien.core.schemas import NO_NUL
from gardien.psd2 import rules

Amount = Annotated[Decimal, Field(gt=0, max_digits=18, decimal_places=6, allow_inf_nan=False)]
Rate = Annotated[Decimal, Field(ge=0, le=100, max_digits=12, decimal_places=8, allow_inf_nan=False)]
Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$", examples=["EUR"])]
Ref = Annotated[str, Field(min_length=1, max_length=128, pattern=NO_NUL)]
Quarter = Annotated[str, Field(pattern=r"^2[01][0-9]{2}-Q[1-4]$", examples=["2026-Q3"])]
Article = Literal["10", "10a", "11", "12", "13", "14", "15", "16", "17", "18"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PaymentIn(_Strict):
    amount: Amount
    currency: Currency = "EUR"
    eur_rate: Annotated[Decimal, Field(gt=0, max_digits=18, decimal_places=10, allow_inf_nan=False)] | None = Field(
        default=None, description="Euros for one unit of `currency`; required when the currency is not EUR."
    )
    channel: rules.Channel
    instrument: rules.Instrument
    payer: Ref = Field(description="The PSP's identifier of the payer; Gardien stores only a keyed pseudonym of it.")
    payee: Ref
    instrument_id: Ref | None = Field(
        default=None, description="Card or account; counters are kept per instrument when the policy says so."
    )
    terminal_purpose: Literal["transport_fare", "parking_fee", "other"] | None = None
    initiation: rules.Initiation = rules.Initiation.PAYER

    @model_validator(mode="after")
    def _rate_for_foreign_currency(self) -> PaymentIn:
        if self.currency != "EUR" and self.eur_rate is None and self.initiation is rules.Initiation.PAYER:
            raise ValueError(f"eur_rate is required for a payment in {self.currency}")
        if self.channel is rules.Channel.UNATTENDED_TERMINAL and self.terminal_purpose is None:
            raise ValueError("terminal_purpose is required for an unattended terminal")
        return self


class AccountAccessIn(_Strict):
    payer: Ref
    via_aisp: bool
    items: list[Literal["balance", "transactions", "other"]] = Field(min_length=1, max_length=3)
    oldest_transaction_age_days: int = Field(default=0, ge=0, le=36500)
    sensitive_payment_data: bool = False
    days_since_last_sca: int | None = Field(default=None, ge=0, le=36500, description="None: never (first access).")
    fraud_suspicion: bool = False


class RecurringIn(_Strict):
    amount: Amount
    currency: Currency = "EUR"
    payee: Ref
    payments_made: int = Field(ge=0, le=1_000_000)


class RiskSignalsIn(_Strict):
    abnormal_spending: bool = False
    unusual_device: bool = False
    malware: bool = False
    known_fraud_scenario: bool = False
    abnormal_location: bool = False
    high_risk_payee_location: bool = False


class CountersIn(_Strict):
    contactless_count: int = Field(default=0, ge=0, le=1_000_000)
    contactless_sum_eur: Annotated[Decimal, Field(ge=0, max_digits=18, decimal_places=6)] = Decimal(0)
    remote_count: int = Field(default=0, ge=0, le=1_000_000)
    remote_sum_eur: Annotated[Decimal, Field(ge=0, max_digits=18, decimal_places=6)] = Decimal(0)


class FraudRatesIn(_Strict):
    card: Rate | None = None
    credit_transfer: Rate | None = None

    def as_mapping(self) -> dict[str, Decimal]:
        return {
            name: value for name, value in (("card", self.card), ("credit_transfer", self.credit_transfer)) if value
        }


class DecideIn(_Strict):
    operation: rules.Operation = rules.Operation.PAYMENT
    role: rules.DecidingRole = rules.DecidingRole.ISSUER
    payment: PaymentIn | None = None
    account_access: AccountAccessIn | None = None
    payer: Ref | None = Field(default=None, description="For a trusted_beneficiary_change: whose list changes.")
    trusted_beneficiaries: list[Ref] = Field(default_factory=list, max_length=1000)
    recurring: RecurringIn | None = None
    same_owner: bool = False
    same_aspsp: bool = False
    payer_type: rules.PayerType = rules.PayerType.NATURAL_PERSON
    corporate_protocol_approved: bool = False
    fraud_rates: FraudRatesIn | None = Field(
        default=None, description="Rolling 90-day rates in percent; defaults to the ones stored with the policy."
    )
    risk_signals: RiskSignalsIn = Field(default_factory=RiskSignalsIn)
    risk_score: float | None = Field(default=None, ge=0, le=100, allow_inf_nan=False)
    counters: CountersIn | None = Field(
        default=None, description="Counters since the last SCA kept by the caller; by default Gardien keeps them."
    )
    record: bool = Field(default=True, description="False: answer only, change nothing (a simulation).")

    @model_validator(mode="after")
    def _operation_has_its_input(self) -> DecideIn:
        if self.operation is rules.Operation.PAYMENT and self.payment is None:
            raise ValueError("a payment operation needs `payment`")
        if self.operation is rules.Operation.ACCOUNT_INFORMATION and self.account_access is None:
            raise ValueError("an account_information operation needs `account_access`")
        if self.operation is rules.Operation.TRUSTED_BENEFICIARY_CHANGE and self.payer is None:
            raise ValueError("a trusted_beneficiary_change needs `payer`")
        return self

    def payer_ref(self) -> str | None:
        if self.payment is not None and self.operation is rules.Operation.PAYMENT:
            return self.payment.payer
        if self.account_access is not None and self.operation is rules.Operation.ACCOUNT_INFORMATION:
            return self.account_access.payer
        return self.payer

    def to_request(
        self,
        counters: rules.Counters,
        fraud_rates: dict[str, Decimal],
        suspended: frozenset[tuple[str, Decimal]],
    ) -> rules.ScaRequest:
        payment = None
        if self.payment is not None:
            p = self.payment
            payment = rules.Payment(
                amount=p.amount,
                currency=p.currency,
                channel=p.channel,
                instrument=p.instrument,
                payer=p.payer,
                payee=p.payee,
                terminal_purpose=p.terminal_purpose,
                initiation=p.initiation,
                eur_rate=p.eur_rate,
            )
        access = None
        if self.account_access is not None:
            a = self.account_access
            access = rules.AccountAccess(
                via_aisp=a.via_aisp,
                items=frozenset(a.items),
                oldest_transaction_age_days=a.oldest_transaction_age_days,
                sensitive_payment_data=a.sensitive_payment_data,
                days_since_last_sca=a.days_since_last_sca,
                fraud_suspicion=a.fraud_suspicion,
            )
        recurring = None
        if self.recurring is not None:
            r = self.recurring
            recurring = rules.RecurringSeries(r.amount, r.currency, r.payee, r.payments_made)
        return rules.ScaRequest(
            operation=self.operation,
            role=self.role,
            payment=payment,
            account_access=access,
            trusted_beneficiaries=frozenset(self.trusted_beneficiaries),
            recurring=recurring,
            same_owner=self.same_owner,
            same_aspsp=self.same_aspsp,
            payer_type=self.payer_type,
            corporate_protocol_approved=self.corporate_protocol_approved,
            fraud_rates=self.fraud_rates.as_mapping() if self.fraud_rates is not None else fraud_rates,
            tra_suspended=suspended,
            risk_signals=rules.RiskSignals(**self.risk_signals.model_dump()),
            risk_score=self.risk_score,
            counters=counters,
        )


class ExemptionOut(BaseModel):
    article: str
    name: str
    mandatory: bool = False
    etv_eur: str | None = None


class RefusalOut(BaseModel):
    article: str
    reason: str
    in_scope: bool


class DecisionOut(BaseModel):
    decision_id: str | None = Field(description="Null when `record` was false.")
    outcome: rules.Outcome
    sca_required: bool
    recommended: ExemptionOut | None
    exemptions: list[ExemptionOut]
    not_applicable: list[RefusalOut]
    reason: str | None
    method: rules.Method
    challenge_indicator: str | None = Field(description="EMV 3-D Secure 2.2 threeDSRequestorChallengeInd.")
    amount_eur: str | None
    ruleset: str


class MethodRuleIn(_Strict):
    method: rules.Method
    max_risk_score: float | None = Field(default=None, ge=0, le=100, allow_inf_nan=False)
    max_amount_eur: Amount | None = None


class PolicyIn(_Strict):
    """The PSP's readings of the open points of the RTS, its fraud rates and its SCA-method table."""

    counter_mode: rules.CounterMode = rules.CounterMode.AMOUNT
    count_current: bool = True
    counter_scope: Literal["payer", "instrument"] = "payer"
    tra_max_risk_score: float | None = Field(default=None, ge=0, le=100, allow_inf_nan=False)
    preference: list[Article] = Field(
        default_factory=lambda: cast(list[Article], list(rules.DEFAULT_PREFERENCE)), min_length=1
    )
    methods: list[MethodRuleIn] = Field(
        default_factory=lambda: [
            MethodRuleIn(method=m.method, max_risk_score=m.max_risk_score, max_amount_eur=m.max_amount_eur)
            for m in rules.DEFAULT_METHODS
        ],
        min_length=1,
        max_length=20,
    )
    fraud_rates: FraudRatesIn = Field(default_factory=FraudRatesIn)

    @field_validator("preference")
    @classmethod
    def _no_repeats(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("an article is listed twice")
        return value

    def to_policy(self) -> rules.Policy:
        return rules.Policy(
            counter_mode=self.counter_mode,
            count_current=self.count_current,
            tra_max_risk_score=self.tra_max_risk_score,
            preference=tuple(self.preference),
            methods=tuple(rules.MethodRule(m.method, m.max_risk_score, m.max_amount_eur) for m in self.methods),
        )


class PolicyOut(PolicyIn):
    version: int
    updated_at: datetime | None


class FraudQuarterIn(_Strict):
    rate_percent: Rate
    resumption_notified: bool = Field(
        default=False, description="The competent authority was told that TRA will be used again (Art. 20(4))."
    )


class FraudQuarterOut(BaseModel):
    quarter: str
    instrument: rules.Instrument
    rate_percent: str
    resumption_notified: bool


class SuspendedBand(BaseModel):
    instrument: rules.Instrument
    etv_eur: str


class FraudQuartersOut(BaseModel):
    quarters: list[FraudQuarterOut]
    tra_suspended: list[SuspendedBand]


class CountersOut(BaseModel):
    contactless_count: int
    contactless_sum_eur: str
    remote_count: int
    remote_sum_eur: str
    last_sca_at: datetime | None


class FraudReportIn(_Strict):
    amount_eur: Amount | None = Field(default=None, description="Defaults to the payment's whole amount.")


class ChallengeIn(_Strict):
    payer: Ref
    amount: Amount = Field(description="For a card payment of unknown final amount, the amount to be blocked.")
    currency: Currency = "EUR"
    payee: Ref | None = None
    payees: list[Ref] | None = Field(default=None, min_length=1, max_length=1000, description="A batch's payees.")
    decision_id: Ref | None = None
    instrument_id: Ref | None = Field(
        default=None, description="The card or account, when the policy keeps counters per instrument."
    )
    locale: Literal["fr", "nl", "en", "de"] = "en"

    @model_validator(mode="after")
    def _one_payee_form(self) -> ChallengeIn:
        if (self.payee is None) == (self.payees is None):
            raise ValueError("give exactly one of `payee` and `payees`")
        return self

    def payee_list(self) -> list[str]:
        return [self.payee] if self.payee is not None else list(self.payees or [])


class ChallengeCreated(BaseModel):
    id: str
    code: str = Field(description="The one-time code to deliver to the payer. Shown once; Gardien keeps only a MAC.")
    display: str = Field(description="What the payer must be shown with the code: amount and payee (Art. 5(1)(a)).")
    status: str
    expires_at: datetime


class VerifyIn(_Strict):
    code: Annotated[str, Field(min_length=1, max_length=32, pattern=r"^[0-9]+$")]
    amount: Amount
    currency: Currency = "EUR"
    payee: Ref | None = None
    payees: list[Ref] | None = Field(default=None, min_length=1, max_length=1000)

    @model_validator(mode="after")
    def _one_payee_form(self) -> VerifyIn:
        if (self.payee is None) == (self.payees is None):
            raise ValueError("give exactly one of `payee` and `payees`")
        return self

    def payee_list(self) -> list[str]:
        return [self.payee] if self.payee is not None else list(self.payees or [])


class ChallengeOut(BaseModel):
    id: str
    status: Literal["pending", "verified", "failed", "blocked", "expired"]
    verified: bool
    attempts_left: int
    detail: str
    expires_at: datetime | None


class ExemptionShare(BaseModel):
    exemption: str = Field(description="An article number, or 'sca' for payments authenticated.")
    name: str
    count: int
    share_percent: str


class ReportSegment(BaseModel):
    remote: bool
    instrument: rules.Instrument
    transactions: int
    value_eur: str
    average_value_eur: str
    fraud_value_eur: str
    fraud_rate_percent: str
    by_exemption: list[ExemptionShare]


class Art21Report(BaseModel):
    quarter: str
    start: datetime
    end: datetime
    ruleset: str
    segments: list[ReportSegment]
    out_of_scope: int
