"""The SCA decision engine against Delegated Regulation (EU) 2018/389 as amended by (EU) 2022/2360.

Every expectation here is written from the text of the RTS (and the research note
`regulatory.md` §4 that quotes it), never from the engine's output: the amounts, rates, counts
and articles are typed in by hand. Where the regulation leaves a point open, the case names the
`Policy` reading it exercises.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from decimal import Decimal
from importlib import resources
from typing import Any

import pytest

from gardien.psd2.rules import (
    AccountAccess,
    Channel,
    CounterMode,
    Counters,
    DecidingRole,
    Decision,
    Initiation,
    Instrument,
    Method,
    MethodRule,
    Operation,
    Outcome,
    PayerType,
    Payment,
    Policy,
    QuarterRate,
    RecurringSeries,
    RiskSignals,
    ScaRequest,
    decide,
    quarter_index,
    tra_suspensions,
)
from gardien.psd2.thresholds import load_ruleset, parse_ruleset

D = Decimal
RULESET_ID = "eu-2018-389+2022-2360"

# The readings of the text the engine makes configurable (regulatory.md §4, "Engine notes").
DEFAULT = Policy()
AMOUNT_LITERAL = Policy(counter_mode=CounterMode.AMOUNT, count_current=False)
COUNT = Policy(counter_mode=CounterMode.COUNT)
COUNT_LITERAL = Policy(counter_mode=CounterMode.COUNT, count_current=False)


# --- builders -------------------------------------------------------------------------------------


def payment(
    amount: str,
    *,
    channel: Channel = Channel.REMOTE,
    instrument: Instrument = Instrument.CARD,
    payee: str = "merchant-1",
    currency: str = "EUR",
    eur_rate: str | None = None,
    terminal_purpose: str | None = None,
    initiation: Initiation = Initiation.PAYER,
) -> Payment:
    return Payment(
        amount=D(amount),
        currency=currency,
        channel=channel,
        instrument=instrument,
        payer="payer-1",
        payee=payee,
        terminal_purpose=terminal_purpose,
        initiation=initiation,
        eur_rate=None if eur_rate is None else D(eur_rate),
    )


def remote_card(amount: str, **request: Any) -> ScaRequest:
    """A remote card payment decided by the issuer (unless `role` says otherwise)."""
    request.setdefault("role", DecidingRole.ISSUER)
    return ScaRequest(payment=payment(amount), **request)


def remote_transfer(amount: str, payee: str = "merchant-1", **request: Any) -> ScaRequest:
    """A remote credit transfer decided by the payer's account-servicing PSP."""
    request.setdefault("role", DecidingRole.ASPSP)
    return ScaRequest(payment=payment(amount, instrument=Instrument.CREDIT_TRANSFER, payee=payee), **request)


def contactless(amount: str, instrument: Instrument = Instrument.CARD, **request: Any) -> ScaRequest:
    return ScaRequest(
        role=DecidingRole.ISSUER,
        payment=payment(amount, channel=Channel.CONTACTLESS_POS, instrument=instrument),
        **request,
    )


def unattended(amount: str, purpose: str | None) -> ScaRequest:
    return ScaRequest(
        role=DecidingRole.ISSUER,
        payment=payment(amount, channel=Channel.UNATTENDED_TERMINAL, terminal_purpose=purpose),
    )


def card_tra(amount: str, rate: str, role: DecidingRole = DecidingRole.ISSUER, **request: Any) -> ScaRequest:
    return remote_card(amount, role=role, fraud_rates={"card": D(rate)}, **request)


def transfer_tra(amount: str, rate: str, **request: Any) -> ScaRequest:
    return remote_transfer(amount, fraud_rates={"credit_transfer": D(rate)}, **request)


def account(
    *items: str,
    via_aisp: bool = False,
    oldest: int = 0,
    days_since_sca: int | None = 10,
    sensitive: bool = False,
    fraud_suspicion: bool = False,
) -> ScaRequest:
    return ScaRequest(
        operation=Operation.ACCOUNT_INFORMATION,
        role=DecidingRole.ASPSP,
        account_access=AccountAccess(
            via_aisp=via_aisp,
            items=frozenset(items),
            oldest_transaction_age_days=oldest,
            sensitive_payment_data=sensitive,
            days_since_last_sca=days_since_sca,
            fraud_suspicion=fraud_suspicion,
        ),
    )


def series(amount: str, payee: str = "merchant-1", made: int = 3) -> RecurringSeries:
    return RecurringSeries(amount=D(amount), currency="EUR", payee=payee, payments_made=made)


def remote_counters(count: int = 0, total: str = "0") -> Counters:
    return Counters(remote_count=count, remote_sum_eur=D(total))


def contactless_counters(count: int = 0, total: str = "0") -> Counters:
    return Counters(contactless_count=count, contactless_sum_eur=D(total))


# --- expectations ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Expected:
    outcome: Outcome
    recommended: str | None = None
    among: tuple[str, ...] = ()
    not_among: tuple[str, ...] = ()
    etv: Decimal | None = None


def exempt(article: str, *, among: tuple[str, ...] = (), etv: str | None = None) -> Expected:
    return Expected(Outcome.EXEMPT, article, among=(article, *among), etv=None if etv is None else D(etv))


def sca(*not_among: str) -> Expected:
    return Expected(Outcome.SCA_REQUIRED, None, not_among=not_among)


OUT_OF_SCOPE = Expected(Outcome.OUT_OF_SCOPE)


def case(case_id: str, citation: str, sca_request: ScaRequest, expected: Expected, policy: Policy = DEFAULT) -> Any:
    return pytest.param(citation, sca_request, policy, expected, id=case_id)


SIGNALS = (
    "abnormal_spending",
    "unusual_device",
    "malware",
    "known_fraud_scenario",
    "abnormal_location",
    "high_risk_payee_location",
)

CASES = [
    # Art. 16 — low-value remote: amount ≤ €30 and (previous ≤ €100 or previous ≤ 5 consecutive).
    case("art16-eur30.00-exempt", "Art. 16(a)", remote_card("30.00"), exempt("16")),
    case("art16-eur30.01-sca", "Art. 16(a)", remote_card("30.01"), sca("16")),
    case(
        "art16-count-5th-exempt",
        "Art. 16(c), default policy counts the current payment",
        remote_card("10", counters=remote_counters(4, "500")),
        exempt("16"),
        COUNT,
    ),
    case(
        "art16-count-6th-sca",
        "Art. 16(c), default policy counts the current payment",
        remote_card("10", counters=remote_counters(5, "50")),
        sca("16"),
        COUNT,
    ),
    case(
        "art16-count-literal-6th-exempt",
        "Art. 16(c) 'previous … does not exceed five'",
        remote_card("10", counters=remote_counters(5, "50")),
        exempt("16"),
        COUNT_LITERAL,
    ),
    case(
        "art16-count-literal-7th-sca",
        "Art. 16(c) 'previous … does not exceed five'",
        remote_card("10", counters=remote_counters(6, "60")),
        sca("16"),
        COUNT_LITERAL,
    ),
    case(
        "art16-amount-80+20-exempt",
        "Art. 16(b), €100 including the current payment",
        remote_card("20", counters=remote_counters(12, "80")),
        exempt("16"),
    ),
    case(
        "art16-amount-90+20-sca",
        "Art. 16(b), €100 including the current payment",
        remote_card("20", counters=remote_counters(2, "90")),
        sca("16"),
    ),
    case(
        "art16-amount-literal-90+20-exempt",
        "Art. 16(b) 'cumulative amount of previous … does not exceed EUR 100'",
        remote_card("20", counters=remote_counters(2, "90")),
        exempt("16"),
        AMOUNT_LITERAL,
    ),
    case(
        "art16-amount-literal-100.00-exempt",
        "Art. 16(b) 'previous … does not exceed EUR 100'",
        remote_card("20", counters=remote_counters(3, "100.00")),
        exempt("16"),
        AMOUNT_LITERAL,
    ),
    case(
        "art16-amount-literal-100.01-sca",
        "Art. 16(b) 'previous … does not exceed EUR 100'",
        remote_card("20", counters=remote_counters(3, "100.01")),
        sca("16"),
        AMOUNT_LITERAL,
    ),
    case(
        "art16-credit-transfer-exempt",
        "Art. 16: any remote electronic payment transaction",
        remote_transfer("25"),
        exempt("16"),
    ),
    case(
        "art16-not-for-acquirer",
        "Art. 16; only the payer's PSP applies it (§4 'Who')",
        remote_card("20", role=DecidingRole.ACQUIRER),
        sca("16"),
    ),
    # Art. 11 — contactless at POS: amount ≤ €50 and (previous ≤ €150 or ≤ 5 consecutive).
    case("art11-eur50.00-exempt", "Art. 11(a)", contactless("50.00"), exempt("11")),
    case("art11-eur50.01-sca", "Art. 11(a)", contactless("50.01"), sca("11")),
    case(
        "art11-amount-130+20-exempt",
        "Art. 11(b), €150 including the current payment",
        contactless("20", counters=contactless_counters(9, "130")),
        exempt("11"),
    ),
    case(
        "art11-amount-130.01+20-sca",
        "Art. 11(b), €150 including the current payment",
        contactless("20", counters=contactless_counters(2, "130.01")),
        sca("11"),
    ),
    case(
        "art11-amount-literal-150.00-exempt",
        "Art. 11(b) 'cumulative amount of previous … does not exceed EUR 150'",
        contactless("20", counters=contactless_counters(3, "150.00")),
        exempt("11"),
        AMOUNT_LITERAL,
    ),
    case(
        "art11-amount-literal-150.01-sca",
        "Art. 11(b) 'cumulative amount of previous … does not exceed EUR 150'",
        contactless("20", counters=contactless_counters(3, "150.01")),
        sca("11"),
        AMOUNT_LITERAL,
    ),
    case(
        "art11-count-5th-exempt",
        "Art. 11(c) 'number of consecutive … does not exceed five'",
        contactless("20", counters=contactless_counters(4, "400")),
        exempt("11"),
        COUNT,
    ),
    case(
        "art11-count-6th-sca",
        "Art. 11(c) 'number of consecutive … does not exceed five'",
        contactless("20", counters=contactless_counters(5, "40")),
        sca("11"),
        COUNT,
    ),
    # Art. 11(c), unlike 11(b) and 16(c), does not say "previous": the consecutive contactless
    # payments since the last SCA include the one being made, whatever the "previous" reading.
    case(
        "art11-count-literal-6th-sca",
        "Art. 11(c) has no 'previous': the 6th consecutive contactless payment exceeds five",
        contactless("20", counters=contactless_counters(5, "40")),
        sca("11"),
        COUNT_LITERAL,
    ),
    case(
        "art11-remote-counters-do-not-count",
        "Art. 11(b): previous contactless payments, not remote ones",
        contactless("20", counters=Counters(remote_count=40, remote_sum_eur=D("900"))),
        exempt("11"),
    ),
    case(
        "art11-not-credit-transfers",
        "Art. 11: card-based contactless payments only",
        contactless("20", instrument=Instrument.CREDIT_TRANSFER),
        sca("11"),
    ),
    # Art. 12 — unattended terminals: transport fares and parking fees, no amount cap.
    case("art12-transport-fare-exempt", "Art. 12", unattended("200.00", "transport_fare"), exempt("12")),
    case("art12-parking-fee-exempt", "Art. 12", unattended("1500.00", "parking_fee"), exempt("12")),
    case("art12-vending-machine-sca", "Art. 12; EBA Q&A 2018_4057", unattended("2.50", "other"), sca("12")),
    # Art. 13 — trusted beneficiaries.
    case(
        "art13-issuer-trusted-payee-exempt",
        "Art. 13(2)",
        remote_card("800", trusted_beneficiaries=frozenset({"merchant-1", "landlord"})),
        exempt("13"),
    ),
    case(
        "art13-aspsp-trusted-payee-exempt",
        "Art. 13(2)",
        remote_transfer("5000", payee="landlord", trusted_beneficiaries=frozenset({"landlord"})),
        exempt("13"),
    ),
    case(
        "art13-payee-not-in-list-sca",
        "Art. 13(2)",
        remote_transfer("5000", payee="stranger", trusted_beneficiaries=frozenset({"landlord"})),
        sca("13"),
    ),
    case(
        "art13-not-for-acquirer",
        "Art. 13; EBA Q&A 2018_4076 (list held by the payer's ASPSP)",
        remote_card("800", role=DecidingRole.ACQUIRER, trusted_beneficiaries=frozenset({"merchant-1"})),
        sca("13"),
    ),
    case(
        "art13-list-change-sca",
        "Art. 13(1)",
        ScaRequest(operation=Operation.TRUSTED_BENEFICIARY_CHANGE, role=DecidingRole.ASPSP),
        sca(),
    ),
    # Art. 14 — recurring series with the same amount and the same payee.
    case("art14-subsequent-exempt", "Art. 14(2)", remote_transfer("75", recurring=series("75")), exempt("14")),
    case("art14-second-payment-exempt", "Art. 14(2)", remote_card("75", recurring=series("75", made=1)), exempt("14")),
    case("art14-first-payment-sca", "Art. 14(1)", remote_transfer("75", recurring=series("75", made=0)), sca("14")),
    case("art14-changed-amount-sca", "Art. 14(1)", remote_transfer("80", recurring=series("75")), sca("14")),
    case(
        "art14-changed-payee-sca",
        "Art. 14(1)",
        remote_transfer("75", payee="merchant-2", recurring=series("75", payee="merchant-1")),
        sca("14"),
    ),
    # Art. 15 — credit transfer between the payer's own accounts at the same ASPSP.
    case(
        "art15-own-account-exempt",
        "Art. 15",
        remote_transfer("10000", same_owner=True, same_aspsp=True),
        exempt("15"),
    ),
    case(
        "art15-other-aspsp-sca",
        "Art. 15 'and both … held by the same ASPSP'",
        remote_transfer("10000", same_owner=True, same_aspsp=False),
        sca("15"),
    ),
    case(
        "art15-other-owner-sca",
        "Art. 15 'same natural or legal person'",
        remote_transfer("10000", same_owner=False, same_aspsp=True),
        sca("15"),
    ),
    case(
        "art15-not-cards",
        "Art. 15: credit transfers only",
        remote_card("200", same_owner=True, same_aspsp=True),
        sca("15"),
    ),
    # Art. 17 — secure corporate processes.
    case(
        "art17-legal-person-approved-exempt",
        "Art. 17",
        remote_transfer("250000", payer_type=PayerType.LEGAL_PERSON, corporate_protocol_approved=True),
        exempt("17"),
    ),
    case(
        "art17-not-approved-sca",
        "Art. 17 'competent authorities are satisfied'",
        remote_transfer("250000", payer_type=PayerType.LEGAL_PERSON, corporate_protocol_approved=False),
        sca("17"),
    ),
    case(
        "art17-natural-person-sca",
        "Art. 17 'legal persons'",
        remote_transfer("250000", payer_type=PayerType.NATURAL_PERSON, corporate_protocol_approved=True),
        sca("17"),
    ),
    # Art. 18 + Annex — remote card-based payments: €100/0.13 %, €250/0.06 %, €500/0.01 %.
    case(
        "art18-card-100.00-at-0.13-exempt",
        "Art. 18(2)(a)(b), Annex",
        card_tra("100.00", "0.13"),
        exempt("18", etv="100"),
    ),
    case("art18-card-100.00-at-0.1301-sca", "Art. 18(2)(a), Annex", card_tra("100.00", "0.1301"), sca("18")),
    case("art18-card-100.01-at-0.13-sca", "Art. 18(2)(b), Annex", card_tra("100.01", "0.13"), sca("18")),
    case(
        "art18-card-100.01-at-0.06-exempt", "Art. 18(2)(b), Annex", card_tra("100.01", "0.06"), exempt("18", etv="250")
    ),
    case(
        "art18-card-250.00-at-0.06-exempt", "Art. 18(2)(b), Annex", card_tra("250.00", "0.06"), exempt("18", etv="250")
    ),
    case("art18-card-250.00-at-0.0601-sca", "Art. 18(2)(a), Annex", card_tra("250.00", "0.0601"), sca("18")),
    case("art18-card-250.01-at-0.06-sca", "Art. 18(2)(b), Annex", card_tra("250.01", "0.06"), sca("18")),
    case(
        "art18-card-250.01-at-0.01-exempt", "Art. 18(2)(b), Annex", card_tra("250.01", "0.01"), exempt("18", etv="500")
    ),
    case(
        "art18-card-500.00-at-0.01-exempt", "Art. 18(2)(b), Annex", card_tra("500.00", "0.01"), exempt("18", etv="500")
    ),
    case("art18-card-500.00-at-0.0101-sca", "Art. 18(2)(a), Annex", card_tra("500.00", "0.0101"), sca("18")),
    case("art18-card-500.01-never", "Art. 18(2)(b), Annex: no ETV above €500", card_tra("500.01", "0"), sca("18")),
    # Art. 18 + Annex — remote credit transfers: €100/0.015 %, €250/0.01 %, €500/0.005 %.
    case(
        "art18-ct-100.00-at-0.015-exempt",
        "Art. 18(2)(a)(b), Annex",
        transfer_tra("100.00", "0.015"),
        exempt("18", etv="100"),
    ),
    case("art18-ct-100.00-at-0.0151-sca", "Art. 18(2)(a), Annex", transfer_tra("100.00", "0.0151"), sca("18")),
    case("art18-ct-100.01-at-0.015-sca", "Art. 18(2)(b), Annex", transfer_tra("100.01", "0.015"), sca("18")),
    case(
        "art18-ct-100.01-at-0.01-exempt",
        "Art. 18(2)(b), Annex",
        transfer_tra("100.01", "0.01"),
        exempt("18", etv="250"),
    ),
    case(
        "art18-ct-250.00-at-0.01-exempt",
        "Art. 18(2)(b), Annex",
        transfer_tra("250.00", "0.01"),
        exempt("18", etv="250"),
    ),
    case("art18-ct-250.01-at-0.01-sca", "Art. 18(2)(b), Annex", transfer_tra("250.01", "0.01"), sca("18")),
    case(
        "art18-ct-500.00-at-0.005-exempt",
        "Art. 18(2)(b), Annex",
        transfer_tra("500.00", "0.005"),
        exempt("18", etv="500"),
    ),
    case("art18-ct-500.00-at-0.0051-sca", "Art. 18(2)(a), Annex", transfer_tra("500.00", "0.0051"), sca("18")),
    case("art18-ct-500.01-never", "Art. 18(2)(b), Annex: no ETV above €500", transfer_tra("500.01", "0"), sca("18")),
    # Art. 18(2)(c) — any one of the six real-time findings rules TRA out.
    *(
        case(
            f"art18-signal-{signal}-sca",
            f"Art. 18(2)(c)({numeral})",
            card_tra("200", "0.01", risk_signals=RiskSignals(**{signal: True})),
            sca("18"),
        )
        for numeral, signal in zip(("i", "ii", "iii", "iv", "v", "vi"), SIGNALS, strict=True)
    ),
    case("art18-no-signal-exempt", "Art. 18(2)(c): none found", card_tra("200", "0.01"), exempt("18", etv="250")),
    case(
        "art18-other-instrument-rate-does-not-count",
        "Art. 18(2)(a) 'fraud rate for that type of transaction'",
        remote_card("200", fraud_rates={"credit_transfer": D("0.001")}),
        sca("18"),
    ),
    case(
        "art18-acquirer-tra-only",
        "Art. 18; the payee's PSP may apply TRA (§4 'Who')",
        card_tra("200", "0.05", DecidingRole.ACQUIRER),
        exempt("18", etv="250"),
    ),
    case(
        "art18-acquirer-low-amount-tra-not-art16",
        "Art. 16 is the payer's PSP's; the acquirer has Art. 18 only",
        card_tra("20", "0.05", DecidingRole.ACQUIRER, trusted_beneficiaries=frozenset({"merchant-1"})),
        Expected(Outcome.EXEMPT, "18", among=("18",), not_among=("13", "16"), etv=D("100")),
    ),
    case(
        "art18-acquirer-above-500-sca",
        "Art. 18(2)(b), Annex",
        card_tra("600", "0", DecidingRole.ACQUIRER),
        sca("18"),
    ),
    case(
        "art18-issuer-low-value-and-tra-both-eligible",
        "Art. 16 and Art. 18 both hold",
        card_tra("20", "0.05"),
        exempt("16", among=("18",)),
    ),
    case(
        "art18-contactless-not-remote",
        "Art. 18(1) 'remote electronic payment transaction'",
        contactless("60", fraud_rates={"card": D("0")}),
        sca("11", "18"),
    ),
    case(
        "art18-policy-risk-score-cap",
        "Art. 18(3) risk scoring; PSP's own cap",
        card_tra("200", "0.01", risk_score=80.0),
        sca("18"),
        Policy(tra_max_risk_score=50.0),
    ),
    # Art. 10 (direct) and 10a (via an AISP) — account information.
    case("art10-balance-exempt", "Art. 10(1)(a)", account("balance"), exempt("10")),
    case(
        "art10-transactions-90d-exempt",
        "Art. 10(1)(b) 'last 90 days'",
        account("transactions", oldest=90),
        exempt("10"),
    ),
    case("art10-transactions-91d-sca", "Art. 10(1)(b) 'last 90 days'", account("transactions", oldest=91), sca("10")),
    case(
        "art10-either-or-both-exempt",
        "Art. 10(1) 'either or both of the following items'",
        account("balance", "transactions", oldest=30),
        exempt("10"),
    ),
    case(
        "art10-other-data-sca",
        "Art. 10(1) 'limited to'",
        account("balance", "standing_orders"),
        sca("10"),
    ),
    case(
        "art10-sensitive-data-sca",
        "Art. 10(1) 'without disclosure of sensitive payment data'",
        account("balance", sensitive=True),
        sca("10"),
    ),
    case("art10-first-access-sca", "Art. 10(2)(a)", account("balance", days_since_sca=None), sca("10")),
    case(
        "art10-180-days-exempt",
        "Art. 10(2)(b) 'more than 180 days'",
        account("transactions", oldest=60, days_since_sca=180),
        exempt("10"),
    ),
    case(
        "art10-181-days-sca",
        "Art. 10(2)(b) 'more than 180 days'",
        account("transactions", oldest=60, days_since_sca=181),
        sca("10"),
    ),
    case("art10a-aisp-exempt", "Art. 10a(1)", account("balance", "transactions", via_aisp=True), exempt("10a")),
    case(
        "art10a-aisp-180-days-exempt",
        "Art. 10a(2)(b)",
        account("transactions", via_aisp=True, days_since_sca=180),
        exempt("10a"),
    ),
    case(
        "art10a-aisp-181-days-sca",
        "Art. 10a(2)(b)",
        account("transactions", via_aisp=True, days_since_sca=181),
        sca("10a"),
    ),
    case(
        "art10a-aisp-first-access-sca",
        "Art. 10a(2)(a)",
        account("balance", via_aisp=True, days_since_sca=None),
        sca("10a"),
    ),
    case(
        "art10a-aisp-91d-sca",
        "Art. 10a(1) with Art. 10(1)(b)",
        account("transactions", via_aisp=True, oldest=91),
        sca("10a"),
    ),
    case(
        "art10a-fraud-suspicion-sca",
        "Art. 10a(3)",
        account("balance", via_aisp=True, fraud_suspicion=True),
        sca("10a"),
    ),
    # Outside SCA scope (PSD2 Art. 97): merchant-initiated transactions and mail/telephone orders.
    case(
        "scope-merchant-initiated",
        "PSD2 Art. 97; MIT outside SCA scope",
        ScaRequest(payment=payment("900", initiation=Initiation.MERCHANT_INITIATED)),
        OUT_OF_SCOPE,
    ),
    case(
        "scope-moto",
        "PSD2 Art. 97; MOTO outside SCA scope",
        ScaRequest(payment=payment("900", initiation=Initiation.MOTO)),
        OUT_OF_SCOPE,
    ),
    # Amounts in another currency are compared in euros.
    case(
        "non-eur-usd32-at-0.93-exempt",
        "Art. 16(a) 'EUR 30': USD 32.00 = €29.76",
        ScaRequest(payment=payment("32.00", currency="USD", eur_rate="0.93")),
        exempt("16"),
    ),
    case(
        "non-eur-usd30-at-1.01-sca",
        "Art. 16(a) 'EUR 30': USD 30.00 = €30.30",
        ScaRequest(payment=payment("30.00", currency="USD", eur_rate="1.01")),
        sca("16"),
    ),
]


def test_the_table_is_large_enough_and_every_case_cites_the_text() -> None:
    assert len(CASES) >= 45
    ids = [param.id for param in CASES]
    assert len(ids) == len(set(ids))
    for param in CASES:
        citation = param.values[0]
        assert "Art." in citation, param.id


@pytest.mark.parametrize(("citation", "sca_request", "policy", "expected"), CASES)
def test_rts_case(citation: str, sca_request: ScaRequest, policy: Policy, expected: Expected) -> None:
    decision = decide(sca_request, policy)
    where = f"{citation} — engine said {decision.outcome}: {decision.reason}"
    assert decision.outcome is expected.outcome, where
    recommended = decision.recommended.article if decision.recommended else None
    assert recommended == expected.recommended, where
    articles = {exemption.article for exemption in decision.exemptions}
    for article in expected.among:
        assert article in articles, where
    for article in expected.not_among:
        assert article not in articles, where
    if expected.etv is not None:
        assert decision.recommended is not None
        assert decision.recommended.etv_eur == expected.etv, where
    if expected.outcome is Outcome.SCA_REQUIRED:
        assert decision.exemptions == ()
        assert decision.reason
    if expected.outcome is Outcome.OUT_OF_SCOPE:
        assert decision.exemptions == ()
        assert decision.method is Method.NONE


# --- Art. 10a is the mandatory exemption ------------------------------------------------------------


def test_account_information_via_aisp_is_mandatory_and_direct_is_not() -> None:
    via_aisp = decide(account("balance", via_aisp=True))
    direct = decide(account("balance"))
    assert via_aisp.recommended is not None and via_aisp.recommended.article == "10a"
    assert via_aisp.recommended.mandatory is True
    assert direct.recommended is not None and direct.recommended.article == "10"
    assert direct.recommended.mandatory is False


def test_non_eur_payment_without_rate_is_rejected() -> None:
    with pytest.raises(ValueError):
        decide(ScaRequest(payment=payment("20", currency="USD")))


# --- EMV 3-D Secure 2.2 threeDSRequestorChallengeInd ------------------------------------------------


@pytest.mark.parametrize(
    ("sca_request", "indicator"),
    [
        pytest.param(remote_card("200"), "04", id="sca-required-04-challenge-mandated"),
        pytest.param(
            remote_card("200", trusted_beneficiaries=frozenset({"merchant-1"})), "08", id="trusted-beneficiary-08"
        ),
        pytest.param(card_tra("200", "0.05", DecidingRole.ACQUIRER), "05", id="acquirer-tra-05"),
        pytest.param(remote_transfer("200"), None, id="credit-transfer-sca-none"),
        pytest.param(remote_transfer("20"), None, id="credit-transfer-exempt-none"),
        pytest.param(contactless("20"), None, id="contactless-exempt-none"),
        pytest.param(contactless("80"), None, id="contactless-sca-none"),
    ],
)
def test_challenge_indicator(sca_request: ScaRequest, indicator: str | None) -> None:
    assert decide(sca_request).challenge_indicator == indicator


def test_issuer_tra_is_not_flagged_as_requestor_tra() -> None:
    # "05" tells the issuer that the 3DS requestor's side (the acquirer) already performed TRA.
    decision = decide(card_tra("200", "0.05"))
    assert decision.recommended is not None and decision.recommended.article == "18"
    assert decision.challenge_indicator not in ("04", "05")


# --- Art. 20: cessation and resumption of transaction risk analysis ---------------------------------


def card_quarter(quarter: str, rate: str, notified: bool = False) -> QuarterRate:
    return QuarterRate(quarter, Instrument.CARD, D(rate), resumption_notified=notified)


def transfer_quarter(quarter: str, rate: str, notified: bool = False) -> QuarterRate:
    return QuarterRate(quarter, Instrument.CREDIT_TRANSFER, D(rate), resumption_notified=notified)


def test_one_quarter_above_does_not_suspend() -> None:
    assert tra_suspensions([card_quarter("2026-Q1", "0.05")]) == frozenset()


def test_two_consecutive_quarters_above_suspend_that_band_only() -> None:
    # 0.05 % exceeds the €500 card reference (0.01 %) but not the €250 (0.06 %) or €100 (0.13 %) ones.
    history = [card_quarter("2025-Q4", "0.05"), card_quarter("2026-Q1", "0.05")]
    assert tra_suspensions(history) == frozenset({("card", D("500"))})


def test_quarters_are_taken_in_calendar_order() -> None:
    history = [card_quarter("2026-Q1", "0.05"), card_quarter("2025-Q4", "0.05")]
    assert tra_suspensions(history) == frozenset({("card", D("500"))})


def test_rate_equal_to_reference_is_not_above() -> None:
    history = [card_quarter("2026-Q1", "0.01"), card_quarter("2026-Q2", "0.01")]
    assert tra_suspensions(history) == frozenset()


def test_credit_transfer_bands() -> None:
    # 0.012 % exceeds 0.01 % (€250) and 0.005 % (€500) but is within 0.015 % (€100).
    history = [transfer_quarter("2026-Q1", "0.012"), transfer_quarter("2026-Q2", "0.012")]
    assert tra_suspensions(history) == frozenset({("credit_transfer", D("250")), ("credit_transfer", D("500"))})


def test_instruments_are_judged_separately() -> None:
    history = [
        card_quarter("2026-Q1", "0.2"),
        card_quarter("2026-Q2", "0.2"),
        transfer_quarter("2026-Q1", "0.001"),
        transfer_quarter("2026-Q2", "0.001"),
    ]
    assert tra_suspensions(history) == frozenset({("card", D("100")), ("card", D("250")), ("card", D("500"))})


def test_non_consecutive_quarters_do_not_suspend() -> None:
    history = [card_quarter("2025-Q3", "0.05"), card_quarter("2026-Q1", "0.05")]
    assert tra_suspensions(history) == frozenset()


def test_a_compliant_quarter_in_between_does_not_suspend() -> None:
    history = [card_quarter("2026-Q1", "0.05"), card_quarter("2026-Q2", "0.005"), card_quarter("2026-Q3", "0.05")]
    assert tra_suspensions(history) == frozenset()


def test_compliant_quarter_without_notification_stays_suspended() -> None:
    history = [card_quarter("2025-Q4", "0.05"), card_quarter("2026-Q1", "0.05"), card_quarter("2026-Q2", "0.005")]
    assert tra_suspensions(history) == frozenset({("card", D("500"))})


def test_compliant_quarter_with_notification_resumes() -> None:
    history = [
        card_quarter("2025-Q4", "0.05"),
        card_quarter("2026-Q1", "0.05"),
        card_quarter("2026-Q2", "0.005", notified=True),
    ]
    assert tra_suspensions(history) == frozenset()


def test_notification_without_a_compliant_quarter_does_not_resume() -> None:
    history = [
        card_quarter("2025-Q4", "0.05"),
        card_quarter("2026-Q1", "0.05"),
        card_quarter("2026-Q2", "0.05", notified=True),
    ]
    assert tra_suspensions(history) == frozenset({("card", D("500"))})


def test_resumption_is_per_band() -> None:
    # Two quarters at 0.2 % stop all three card bands; a notified quarter at 0.05 % is compliant
    # for €100 (0.13 %) and €250 (0.06 %) but not for €500 (0.01 %).
    history = [
        card_quarter("2025-Q3", "0.2"),
        card_quarter("2025-Q4", "0.2"),
        card_quarter("2026-Q1", "0.05", notified=True),
    ]
    assert tra_suspensions(history) == frozenset({("card", D("500"))})


def test_after_resumption_one_quarter_above_is_not_enough() -> None:
    history = [
        card_quarter("2025-Q2", "0.05"),
        card_quarter("2025-Q3", "0.05"),
        card_quarter("2025-Q4", "0.005", notified=True),
        card_quarter("2026-Q1", "0.05"),
    ]
    assert tra_suspensions(history) == frozenset()


def test_suspended_band_makes_the_engine_use_a_lower_band() -> None:
    suspended = frozenset({("card", D("500"))})
    decision = decide(card_tra("200", "0.005", tra_suspended=suspended))
    assert decision.outcome is Outcome.EXEMPT
    assert decision.recommended is not None
    assert decision.recommended.article == "18"
    assert decision.recommended.etv_eur == D("250")


def test_suspended_band_refuses_tra_above_the_lower_bands() -> None:
    suspended = frozenset({("card", D("500"))})
    assert decide(card_tra("400", "0.005")).outcome is Outcome.EXEMPT  # control: not suspended
    assert decide(card_tra("400", "0.005", tra_suspended=suspended)).outcome is Outcome.SCA_REQUIRED


def test_suspended_band_is_not_replaced_by_a_higher_one() -> None:
    # Art. 20(2): TRA ceases "in the specific exemption threshold range"; an €80 payment lies in the
    # €100 range, so it may not borrow the €250 ETV while the €100 range is suspended.
    suspended = frozenset({("card", D("100"))})
    assert decide(card_tra("80", "0.005")).outcome is Outcome.EXEMPT  # control: not suspended
    assert decide(card_tra("80", "0.005", tra_suspended=suspended)).outcome is Outcome.SCA_REQUIRED


def test_suspended_credit_transfer_band() -> None:
    suspended = frozenset({("credit_transfer", D("250")), ("credit_transfer", D("500"))})
    assert decide(transfer_tra("90", "0.001", tra_suspended=suspended)).outcome is Outcome.EXEMPT
    assert decide(transfer_tra("240", "0.001", tra_suspended=suspended)).outcome is Outcome.SCA_REQUIRED


def test_suspensions_feed_the_decision() -> None:
    history = [card_quarter("2025-Q4", "0.008"), card_quarter("2026-Q1", "0.2"), card_quarter("2026-Q2", "0.2")]
    suspended = tra_suspensions(history)
    assert suspended == frozenset({("card", D("100")), ("card", D("250")), ("card", D("500"))})
    # The current rolling rate is back within every reference, but no band may be used yet.
    assert decide(card_tra("80", "0.005", tra_suspended=suspended)).outcome is Outcome.SCA_REQUIRED


@pytest.mark.parametrize(
    ("earlier", "later"),
    [("2026-Q1", "2026-Q2"), ("2026-Q3", "2026-Q4"), ("2025-Q4", "2026-Q1")],
)
def test_quarter_index_steps_by_one(earlier: str, later: str) -> None:
    assert quarter_index(later) - quarter_index(earlier) == 1


@pytest.mark.parametrize(
    "quarter", ["2026Q1", "2026-Q0", "2026-Q5", "26-Q1", "2026-q1", "Q1-2026", "2026-Q1x", "2026-01", "", "abcd-Q1"]
)
def test_quarter_index_rejects_malformed(quarter: str) -> None:
    with pytest.raises(ValueError):
        quarter_index(quarter)


def test_tra_suspensions_rejects_malformed_quarter() -> None:
    with pytest.raises(ValueError):
        tra_suspensions([card_quarter("2026-Q1", "0.05"), card_quarter("2026/2", "0.05")])


# --- Which SCA method when SCA is required ----------------------------------------------------------


def test_exempt_needs_no_method() -> None:
    decision = decide(remote_card("10", risk_score=99.0))
    assert decision.outcome is Outcome.EXEMPT
    assert decision.method is Method.NONE


@pytest.mark.parametrize(
    ("amount", "score", "method"),
    [
        pytest.param("200", None, Method.OTP_SMS, id="no-score-low-amount"),
        pytest.param("250", 25.0, Method.OTP_SMS, id="score25-eur250"),
        pytest.param("250", 25.5, Method.BIOMETRIC, id="score25.5"),
        pytest.param("250.01", 10.0, Method.BIOMETRIC, id="eur250.01"),
        pytest.param("1000", 50.0, Method.BIOMETRIC, id="score50-eur1000"),
        pytest.param("100", 60.0, Method.PUSH_NOTIFICATION, id="score60"),
        pytest.param("1000.01", 10.0, Method.PUSH_NOTIFICATION, id="eur1000.01"),
        pytest.param("5000", 75.0, Method.PUSH_NOTIFICATION, id="score75-eur5000"),
        pytest.param("100", 76.0, Method.HARDWARE_TOKEN, id="score76"),
        pytest.param("5000.01", 0.0, Method.HARDWARE_TOKEN, id="eur5000.01"),
    ],
)
def test_default_method_escalates_with_risk_and_amount(amount: str, score: float | None, method: Method) -> None:
    decision = decide(remote_card(amount, risk_score=score))
    assert decision.outcome is Outcome.SCA_REQUIRED
    assert decision.method is method


def test_method_for_trusted_beneficiary_change_uses_the_risk_score() -> None:
    change = ScaRequest(operation=Operation.TRUSTED_BENEFICIARY_CHANGE, role=DecidingRole.ASPSP, risk_score=90.0)
    assert decide(change).method is Method.HARDWARE_TOKEN


def test_custom_one_row_method_policy_is_honoured() -> None:
    policy = Policy(methods=(MethodRule(Method.BIOMETRIC),))
    assert decide(remote_card("200", risk_score=5.0), policy).method is Method.BIOMETRIC
    assert decide(remote_card("9000", risk_score=99.0), policy).method is Method.BIOMETRIC


# --- Figures are data, decisions name the rule set ----------------------------------------------------


def _packaged_rts() -> dict[str, Any]:
    text = resources.files("gardien.psd2").joinpath("rts_2018_389.json").read_text(encoding="utf-8")
    raw: dict[str, Any] = json.loads(text)
    return raw


@pytest.mark.parametrize(
    "sca_request",
    [
        pytest.param(remote_card("20"), id="payment"),
        pytest.param(account("balance"), id="account-information"),
        pytest.param(ScaRequest(operation=Operation.TRUSTED_BENEFICIARY_CHANGE), id="list-change"),
        pytest.param(ScaRequest(payment=payment("20", initiation=Initiation.MOTO)), id="out-of-scope"),
    ],
)
def test_decisions_name_the_rule_set(sca_request: ScaRequest) -> None:
    decision: Decision = decide(sca_request)
    assert decision.ruleset == RULESET_ID


def test_packaged_figures_are_those_of_the_rts() -> None:
    rules = load_ruleset()
    assert rules.id == RULESET_ID
    assert (rules.low_value.single_max_eur, rules.low_value.cumulative_max_eur, rules.low_value.consecutive_max) == (
        D(30),
        D(100),
        5,
    )
    assert (
        rules.contactless.single_max_eur,
        rules.contactless.cumulative_max_eur,
        rules.contactless.consecutive_max,
    ) == (
        D(50),
        D(150),
        5,
    )
    annex = {
        instrument: [(band.etv_eur, band.reference_rate_percent) for band in bands]
        for instrument, bands in rules.tra_bands.items()
    }
    assert annex == {
        "card": [(D(100), D("0.13")), (D(250), D("0.06")), (D(500), D("0.01"))],
        "credit_transfer": [(D(100), D("0.015")), (D(250), D("0.01")), (D(500), D("0.005"))],
    }
    assert (rules.account_information_max_age_days, rules.account_information_renewal_days) == (90, 180)
    assert rules.unattended_purposes == frozenset({"transport_fare", "parking_fee"})
    assert (rules.suspend_after_quarters_above, rules.resume_after_quarters_within) == (2, 1)
    assert (rules.max_failed_attempts, rules.inactivity_timeout_seconds) == (5, 300)


def test_low_value_limit_comes_from_the_data_file() -> None:
    raw = copy.deepcopy(_packaged_rts())
    raw["id"] = "test-low-value-25"
    raw["low_value_remote"]["single_max_eur"] = "25"
    modified = parse_ruleset(raw)

    assert decide(remote_card("27")).outcome is Outcome.EXEMPT
    under_modified = decide(remote_card("27"), ruleset=modified)
    assert under_modified.outcome is Outcome.SCA_REQUIRED
    assert under_modified.ruleset == "test-low-value-25"
    assert decide(remote_card("25"), ruleset=modified).outcome is Outcome.EXEMPT


def test_annex_band_comes_from_the_data_file() -> None:
    raw = copy.deepcopy(_packaged_rts())
    raw["transaction_risk_analysis"]["annex_bands"]["card"][0]["reference_rate_percent"] = "0.20"
    modified = parse_ruleset(raw)
    assert decide(card_tra("90", "0.15")).outcome is Outcome.SCA_REQUIRED
    exempt_decision = decide(card_tra("90", "0.15"), ruleset=modified)
    assert exempt_decision.outcome is Outcome.EXEMPT
    assert exempt_decision.recommended is not None and exempt_decision.recommended.etv_eur == D(100)
