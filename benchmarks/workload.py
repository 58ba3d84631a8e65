"""Realistic audit events, and the no-integrity baseline they are compared with.

Standard library only: the load generator imports this module and must stay light.
The same goes for the SCA advisor's decision requests at the end of the module.

The events look like what a booking/CRM/billing application sends: an actor, a target, the
request's source address and user agent, the changed fields with integer and string values, the
personal-data categories touched and a legal basis. The "floats" variant adds money amounts,
rates and coordinates to `changes`; one event in four also carries an integral float (``1500.0``)
or a tiny one (``2.5e-05``), which have no short RFC 8785 form and take the slow canonical path.

The baseline is what django-auditlog does: one row per event in a table with a few indexed
columns and JSON stored as text (``json.dumps`` from the standard library, as Django does), no
hashing, no chain, no signature.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

ACTIONS: dict[str, list[tuple[str, str, str]]] = {
    # module: [(action, crud, target type)]
    "bookings": [
        ("artist.update", "update", "artist"),
        ("artist.create", "create", "artist"),
        ("booking.create", "create", "booking"),
        ("booking.cancel", "update", "booking"),
        ("booking.read", "read", "booking"),
        ("contract.sign", "execute", "contract"),
    ],
    "crm": [
        ("contact.update", "update", "contact"),
        ("contact.read", "read", "contact"),
        ("contact.delete", "delete", "contact"),
        ("contact.export", "execute", "contact"),
    ],
    "billing": [
        ("invoice.create", "create", "invoice"),
        ("invoice.update", "update", "invoice"),
        ("payment.refund", "execute", "payment"),
    ],
    "auth": [
        ("user.login", "execute", "user"),
        ("user.password_reset", "update", "user"),
        ("user.role.update", "update", "user"),
    ],
}
CATEGORIES = [
    "user.contact.email",
    "user.contact.phone_number",
    "user.contact.address",
    "user.name",
    "user.financial.bank_account",
    "user.financial",
    "user.location.imprecise",
    "user.account.settings",
    "user.behavior.browsing_history",
    "system.operations",
]
LEGAL_BASES = ["contract", "consent", "legal_obligation", "legitimate_interests"]
_WEBKIT = "AppleWebKit/537.36 (KHTML, like Gecko)"
USER_AGENTS = [
    f"Mozilla/5.0 (Windows NT 10.0; Win64; x64) {_WEBKIT} Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 Version/18.1 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0",
    f"Mozilla/5.0 (Linux; Android 14; Pixel 8) {_WEBKIT} Chrome/131.0.0.0 Mobile Safari/537.36",
    "python-requests/2.32.3",
    "bookings-backend/4.12.0 (+https://bookings.example)",
]
FIRST_NAMES = ["Émilie", "Jean", "Zoé", "Lucas", "Anaïs", "Mehdi", "Chloé", "Sven", "Marta", "Noël"]
LAST_NAMES = ["Dupont", "Martin", "Van den Berg", "Müller", "Lefèvre", "Janssens", "Schmit", "Rossi"]
TARGET_NAMES = ["Les Ogres", "Orchestre de chambre", "Festival d'été", "Théâtre du Nord", "Studio 9"]
STATUSES = ["draft", "confirmed", "cancelled", "paid", "pending"]


def _ip(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.15:
        return f"2001:db8:{rng.randrange(65536):x}::{rng.randrange(1, 65536):x}"
    if roll < 0.5:
        return f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
    return f"203.0.113.{rng.randrange(1, 255)}"


def _int_changes(rng: random.Random, target_type: str) -> dict[str, Any]:
    before: dict[str, Any] = {}
    after: dict[str, Any] = {}
    fee = rng.randrange(100, 20_000)
    before["fee"], after["fee"] = fee, fee + rng.randrange(-50, 500) * 10
    if rng.random() < 0.6:
        seats = rng.randrange(20, 5_000)
        before["capacity"], after["capacity"] = seats, seats + rng.randrange(1, 200)
    if rng.random() < 0.5:
        before["status"], after["status"] = rng.sample(STATUSES, 2)
    if rng.random() < 0.3:
        name = f"{rng.choice(FIRST_NAMES).lower()}.{rng.choice(LAST_NAMES).lower().replace(' ', '')}"
        before["email"] = f"{name}@example.org"
        after["email"] = f"{name}@example.com"
    if target_type == "user" and rng.random() < 0.5:
        before["roles"], after["roles"] = ["viewer"], ["viewer", "editor"]
    return {"before": before, "after": after}


def _float_changes(rng: random.Random) -> dict[str, Any]:
    price = round(rng.uniform(5, 2_000), 2)
    before: dict[str, Any] = {
        "price": price,
        "discount": rng.choice([0.05, 0.1, 0.15, 0.2]),
        "lat": round(rng.uniform(43, 51), 4),
        "lng": round(rng.uniform(-1, 7), 4),
    }
    after = dict(before, price=round(price * rng.uniform(0.8, 1.3), 2), discount=0.25)
    if rng.random() < 0.25:
        # Integral or tiny floats: valid JSON numbers without a short RFC 8785 form.
        after["deposit"] = rng.choice([1500.0, 250.0, 2.5e-05])
    return {"before": before, "after": after}


def make_event(rng: random.Random, *, floats: bool = False) -> dict[str, Any]:
    module = rng.choice(list(ACTIONS))
    action, crud, target_type = rng.choice(ACTIONS[module])
    actor_roll = rng.random()
    if actor_roll < 0.8:
        actor = {
            "type": "user",
            "id": f"u-{rng.randrange(1, 50_000)}",
            "display": f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}",
        }
    elif actor_roll < 0.95:
        actor = {"type": "service", "id": f"svc-{rng.choice(['sync', 'billing', 'mailer'])}"}
    else:
        actor = {"type": "api_key", "id": f"key-{rng.randrange(1, 40)}", "display": "integration"}
    event: dict[str, Any] = {
        "module": module,
        "action": action,
        "crud": crud,
        "actor": actor,
        "target": {
            "type": target_type,
            "id": f"{target_type[0]}-{rng.randrange(1, 1_000_000)}",
            "display": rng.choice(TARGET_NAMES),
        },
        "source": {"ip": _ip(rng), "user_agent": rng.choice(USER_AGENTS)},
        "request_id": f"req-{rng.getrandbits(64):016x}",
        "data_categories": rng.sample(CATEGORIES, rng.randrange(1, 4)),
        "legal_basis": rng.choice(LEGAL_BASES),
    }
    if crud in ("create", "update", "delete") or floats:
        event["changes"] = _float_changes(rng) if floats else _int_changes(rng, target_type)
    if rng.random() < 0.5:
        moment = datetime(2026, 11, 22, 9, 30, tzinfo=UTC) + timedelta(microseconds=rng.getrandbits(34))
        event["occurred_at"] = moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if rng.random() < 0.05:
        event["outcome"] = "failure"
        event["reason"] = rng.choice(["permission denied", "validation failed: fee must be positive"])
    if rng.random() < 0.2:
        event["fields"] = {"tenant": f"t-{rng.randrange(1, 30)}", "attempt": rng.randrange(1, 4)}
    return event


def event_pool(size: int, *, seed: int, floats: bool = False) -> list[dict[str, Any]]:
    """`size` distinct events; benchmarks cycle through them (Gardien assigns ids and seqs)."""
    rng = random.Random(seed)
    return [make_event(rng, floats=floats) for _ in range(size)]


def batches(pool: Sequence[dict[str, Any]], total: int, size: int) -> Iterator[list[dict[str, Any]]]:
    """`total` events from the pool in batches of `size`, as fresh lists."""
    position = 0
    for start in range(0, total, size):
        count = min(size, total - start)
        batch = [pool[(position + i) % len(pool)] for i in range(count)]
        position += count
        yield batch


# --- the baseline: a django-auditlog-like table, plain INSERTs ----------------------------------

BASELINE_TABLE = "bench_auditlog_logentry"
BASELINE_COLUMNS = (
    "content_type_id",
    "object_pk",
    "object_repr",
    "action",
    "changes",
    "actor_id",
    "remote_addr",
    "timestamp",
    "additional_data",
)
_CRUD_CODES = {"create": 0, "update": 1, "delete": 2, "read": 3, "execute": 3}
_CONTENT_TYPES = {kind: 10 + i for i, kind in enumerate(sorted({t for a in ACTIONS.values() for _, _, t in a}))}


def baseline_ddl(dialect: str) -> list[str]:
    """The table, without its secondary indexes (see baseline_index_ddl)."""
    if dialect == "sqlite":
        key, stamp = "id INTEGER PRIMARY KEY AUTOINCREMENT", "TEXT"
    else:
        key, stamp = "id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY", "TIMESTAMPTZ"
    return [
        f"""CREATE TABLE IF NOT EXISTS {BASELINE_TABLE} (
            {key},
            content_type_id INTEGER NOT NULL,
            object_pk VARCHAR(255) NOT NULL,
            object_repr TEXT NOT NULL,
            action SMALLINT NOT NULL,
            changes TEXT NOT NULL,
            actor_id VARCHAR(256),
            remote_addr VARCHAR(45),
            timestamp {stamp} NOT NULL,
            additional_data TEXT
        )"""
    ]


def baseline_index_ddl() -> list[str]:
    """django-auditlog's lookups: by object, by actor, by time, by content type."""
    return [
        f"CREATE INDEX IF NOT EXISTS ix_{BASELINE_TABLE}_{name} ON {BASELINE_TABLE} ({column})"
        for name, column in (
            ("object_pk", "object_pk"),
            ("actor", "actor_id"),
            ("timestamp", "timestamp"),
            ("ctype", "content_type_id"),
        )
    ]


def baseline_insert_sql(paramstyle: str) -> str:
    marker = "?" if paramstyle == "qmark" else "%s"
    columns = ", ".join(BASELINE_COLUMNS)
    return f"INSERT INTO {BASELINE_TABLE} ({columns}) VALUES ({', '.join([marker] * len(BASELINE_COLUMNS))})"


def baseline_row(event: dict[str, Any], now: datetime, *, sqlite: bool) -> tuple[Any, ...]:
    """The row django-auditlog would write for this event: JSON as text, nothing sealed."""
    target = event.get("target") or {}
    source = event.get("source") or {}
    extra = {
        key: event[key]
        for key in ("module", "action", "outcome", "reason", "data_categories", "legal_basis", "fields")
        if key in event
    }
    if "user_agent" in source:
        extra["user_agent"] = source["user_agent"]
    if "request_id" in event:
        extra["request_id"] = event["request_id"]
    return (
        _CONTENT_TYPES.get(target.get("type", ""), 1),
        target.get("id", ""),
        target.get("display") or target.get("id", ""),
        _CRUD_CODES[event["crud"]],
        json.dumps(event.get("changes") or {}),
        event["actor"]["id"],
        source.get("ip"),
        now.strftime("%Y-%m-%d %H:%M:%S.%f") if sqlite else now,
        json.dumps(extra),
    )


# --- PSD2 SCA decisions: what a card issuer or bank asks POST /api/v1/sca/decide -----------------

SCA_PAYERS = 2_000
# Put in the policy (and given to the in-process requests) so that transaction risk analysis
# applies: card up to the €250 band, credit transfers up to the €500 band.
SCA_FRAUD_RATES = {"card": "0.05", "credit_transfer": "0.004"}
# (kind, weight in percent)
SCA_KINDS: tuple[tuple[str, int], ...] = (
    ("remote_card", 30),
    ("remote_credit_transfer", 14),
    ("contactless_pos", 24),
    ("unattended_terminal", 4),
    ("trusted_beneficiary", 5),
    ("recurring", 5),
    ("foreign_currency_card", 3),
    ("acquirer_tra", 3),
    ("account_information", 8),
    ("merchant_initiated", 2),
    ("trusted_beneficiary_change", 2),
)
_FOREIGN_RATES = (("USD", "0.92"), ("GBP", "1.17"), ("CHF", "1.05"))
_TERMINALS = ("transport_fare", "transport_fare", "parking_fee", "other")
_SIGNALS = ("abnormal_spending", "unusual_device", "malware", "known_fraud_scenario", "abnormal_location")


def _amount(rng: random.Random, low: float, high: float) -> str:
    """Euros, log-uniform between low and high: many small payments, a long tail of large ones."""
    return f"{math.exp(rng.uniform(math.log(low), math.log(high))):.2f}"


def _payment(rng: random.Random, payer: str, channel: str, instrument: str, amount: str) -> dict[str, Any]:
    return {
        "amount": amount,
        "currency": "EUR",
        "channel": channel,
        "instrument": instrument,
        "payer": payer,
        "payee": f"merchant-{rng.randrange(1, 400):03d}",
    }


def make_sca_request(rng: random.Random, kind: str, payer: str) -> dict[str, Any]:
    """One DecideIn body of the given kind (the advisor keeps the counters: none are sent)."""
    body: dict[str, Any] = {}
    if kind in ("remote_card", "acquirer_tra", "merchant_initiated"):
        body["payment"] = _payment(rng, payer, "remote", "card", _amount(rng, 1, 1_000))
        if kind == "acquirer_tra":
            body["role"] = "acquirer"
        elif kind == "merchant_initiated":
            body["payment"]["initiation"] = "merchant_initiated"
    elif kind == "remote_credit_transfer":
        body["payment"] = _payment(rng, payer, "remote", "credit_transfer", _amount(rng, 1, 1_000))
        if rng.random() < 0.1:  # to the payer's own savings account at the same bank (Art. 15)
            body["same_owner"] = body["same_aspsp"] = True
    elif kind == "contactless_pos":
        body["payment"] = _payment(rng, payer, "contactless_pos", "card", _amount(rng, 1, 80))
    elif kind == "unattended_terminal":
        body["payment"] = _payment(rng, payer, "unattended_terminal", "card", _amount(rng, 1, 30))
        body["payment"]["terminal_purpose"] = rng.choice(_TERMINALS)
    elif kind == "trusted_beneficiary":
        payment = _payment(rng, payer, "remote", "credit_transfer", _amount(rng, 5, 1_000))
        others = [f"BE{rng.randrange(10**13, 10**14)}" for _ in range(rng.randrange(0, 4))]
        body["payment"] = payment
        body["trusted_beneficiaries"] = [*others, payment["payee"]]
    elif kind == "recurring":
        payment = _payment(rng, payer, "remote", "card", rng.choice(["9.99", "12.99", "17.99", "49.00", "120.00"]))
        amended = rng.random() < 0.1
        body["payment"] = payment
        body["recurring"] = {
            "amount": "15.99" if amended else payment["amount"],
            "payee": payment["payee"],
            "payments_made": rng.randrange(0, 25),
        }
    elif kind == "foreign_currency_card":
        currency, rate = rng.choice(_FOREIGN_RATES)
        body["payment"] = _payment(rng, payer, "remote", "card", _amount(rng, 1, 800))
        body["payment"].update(currency=currency, eur_rate=rate)
    elif kind == "account_information":
        body["operation"] = "account_information"
        body["account_access"] = {
            "payer": payer,
            "via_aisp": rng.random() < 0.5,
            "items": rng.choice([["balance"], ["balance", "transactions"], ["transactions"]]),
            "oldest_transaction_age_days": rng.randrange(0, 120),
            "days_since_last_sca": None if rng.random() < 0.15 else rng.randrange(0, 200),
        }
    elif kind == "trusted_beneficiary_change":
        body["operation"] = "trusted_beneficiary_change"
        body["payer"] = payer
    else:
        raise ValueError(f"unknown kind of SCA request {kind!r}")
    if rng.random() < 0.7:
        body["risk_score"] = round(rng.uniform(0, 100), 1)
    if "payment" in body and body["payment"]["channel"] == "remote" and rng.random() < 0.03:
        body["risk_signals"] = {rng.choice(_SIGNALS): True}
    body["record"] = True
    return body


def sca_request_pool(size: int, *, seed: int, payers: int = SCA_PAYERS) -> list[tuple[str, dict[str, Any]]]:
    """`size` (kind, DecideIn body) pairs in the SCA_KINDS mix, over `payers` distinct payers."""
    rng = random.Random(seed)
    kinds = [kind for kind, _ in SCA_KINDS]
    weights = [weight for _, weight in SCA_KINDS]
    out = []
    for kind in rng.choices(kinds, weights, k=size):
        payer = f"cust-{rng.randrange(payers):06d}"
        out.append((kind, make_sca_request(rng, kind, payer)))
    return out


# --- Consent choices (the consent group) --------------------------------------------------------

CONSENT_SUBJECTS = 20_000
CONSENT_PURPOSES = ("functional", "analytics", "marketing", "personalisation")
# How people answer a banner: mostly one click, some customise, a server sets the rest.
CONSENT_METHODS: tuple[tuple[str, int], ...] = (("accept_all", 45), ("reject_all", 30), ("custom", 15), ("api", 10))


def _four(text: str) -> dict[str, str]:
    return {locale: f"{text} ({locale})" for locale in ("fr", "nl", "en", "de")}


def consent_notice() -> dict[str, Any]:
    """A notice version of four purposes (one essential) with services, in the four languages."""
    purposes = []
    for key in CONSENT_PURPOSES:
        purposes.append(
            {
                "key": key,
                "essential": key == "functional",
                "title": _four(key.capitalize()),
                "description": _four(f"What the {key} cookies are for"),
                "services": [{"key": f"{key}-svc", "name": f"{key} service", "provider": "Example SAS"}],
                "google_consent_mode": {"analytics": ["analytics_storage"], "marketing": ["ad_storage"]}.get(key, []),
            }
        )
    texts = {key: _four(key) for key in ("title", "description", "accept_all", "reject_all", "customise", "save")}
    texts["settings"] = _four("Cookie settings")
    return {"purposes": purposes, "texts": texts, "controller": {"name": "Example SAS"}}


def consent_subject(index: int) -> str:
    """The consent id (a UUID, as the banner makes them) of subject number `index`."""
    return f"00000000-0000-4000-8000-{index:012d}"


def consent_choice_pool(size: int, *, seed: int, subjects: int = CONSENT_SUBJECTS) -> list[dict[str, Any]]:
    """`size` bodies of POST /api/v1/consent/records (ChoiceIn) over `subjects` consent ids."""
    rng = random.Random(seed)
    methods = [method for method, _ in CONSENT_METHODS]
    weights = [weight for _, weight in CONSENT_METHODS]
    out = []
    for method in rng.choices(methods, weights, k=size):
        body: dict[str, Any] = {
            "method": method,
            "consent_id": consent_subject(rng.randrange(subjects)),
            "locale": rng.choice(("fr-FR", "fr-BE", "nl-BE", "nl-NL", "en", "de-BE")),
        }
        if method in ("custom", "api"):
            body["states"] = {key: rng.choice(("granted", "denied")) for key in CONSENT_PURPOSES[1:]}
        if method != "api":
            body["surface"] = "preferences" if method == "custom" else "first_layer"
        out.append(body)
    return out
