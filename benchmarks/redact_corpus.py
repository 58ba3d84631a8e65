"""A seeded, labelled synthetic log corpus for the redaction benchmark.

Lines come from log templates (plain text, key=value, JSON, syslog) filled with Faker values in
fr_FR, nl_BE, en_US and en_GB, and with identifiers built to their official rules (NIR with its key,
Belgian national numbers with the 2000 rule, IBANs and cards from Faker). Each personal value is a
gold span with its type; hard negatives (UUIDs, hashes, order numbers, Luhn-failing card-length
numbers, NIR-shaped numbers with a wrong key, versions, builds, durations, amounts, timestamps) are
labelled too, as spans that must not be redacted.
"""

from __future__ import annotations

import random
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from faker import Faker

TYPES = ("EMAIL", "PERSON", "PHONE", "CREDIT_CARD", "IBAN", "FR_NIR", "BE_NN", "IP_ADDRESS")
LOCALES = ("fr_FR", "nl_BE", "en_US", "en_GB")


@dataclass
class Line:
    text: str
    gold: list[tuple[int, int, str]] = field(default_factory=list)  # (start, end, type)
    negatives: list[tuple[int, int, str]] = field(default_factory=list)  # (start, end, kind)


class _Builder:
    def __init__(self) -> None:
        self.parts: list[str] = []
        self.size = 0
        self.line = Line("")

    def text(self, value: str) -> _Builder:
        self.parts.append(value)
        self.size += len(value)
        return self

    def pii(self, value: str, kind: str) -> _Builder:
        self.line.gold.append((self.size, self.size + len(value), kind))
        return self.text(value)

    def negative(self, value: str, kind: str) -> _Builder:
        self.line.negatives.append((self.size, self.size + len(value), kind))
        return self.text(value)

    def build(self) -> Line:
        self.line.text = "".join(self.parts)
        return self.line


class Values:
    """Random values of each kind, from one seeded generator."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.fakers = {locale: Faker(locale) for locale in LOCALES}
        for index, faker in enumerate(self.fakers.values()):
            faker.seed_instance(seed + index)
        self.clock = datetime(2026, 11, 1, tzinfo=UTC)

    def faker(self) -> Faker:
        return self.fakers[self.rng.choice(LOCALES)]

    def timestamp(self) -> str:
        self.clock += timedelta(milliseconds=self.rng.randint(1, 5000))
        return self.clock.isoformat(timespec="milliseconds").replace("+00:00", "Z")

    def email(self) -> str:
        return str(self.faker().email())

    def person(self) -> str:
        return str(self.faker().name())

    def phone(self) -> str:
        rng = self.rng
        pairs = " ".join(f"{rng.randint(0, 99):02d}" for _ in range(4))
        choice = rng.randrange(8)
        if choice == 0:
            return f"0{rng.choice('67')} {pairs}"  # French mobile
        if choice == 1:
            return f"+33 {rng.choice('67')} {pairs}"
        if choice == 2:
            return f"04{rng.randint(70, 99)} {rng.randint(10, 99)} {rng.randint(10, 99)} {rng.randint(10, 99)}"
        if choice == 3:
            return f"+32 4{rng.randint(70, 99)} {rng.randint(10, 99)} {rng.randint(10, 99)} {rng.randint(10, 99)}"
        if choice == 4:
            return f"06-{rng.randint(10_000_000, 99_999_999)}"  # Dutch mobile
        if choice == 5:
            return f"+31 6 {rng.randint(10_000_000, 99_999_999)}"
        return str(self.fakers[rng.choice(("fr_FR", "nl_BE", "en_GB"))].phone_number())

    def card(self) -> str:
        kind = self.rng.choice(("visa16", "mastercard", "amex", "discover", "visa16", "mastercard"))
        number = str(self.fakers["en_US"].credit_card_number(kind))
        if self.rng.random() < 0.5 and len(number) == 16:
            return " ".join(number[i : i + 4] for i in range(0, 16, 4))
        return number

    def iban(self) -> str:
        number = str(self.fakers[self.rng.choice(("fr_FR", "nl_BE", "en_GB"))].iban())
        if self.rng.random() < 0.6:
            return " ".join(number[i : i + 4] for i in range(0, len(number), 4))
        return number

    def nir(self, valid: bool = True) -> str:
        rng = self.rng
        department = rng.choice([f"{d:02d}" for d in range(1, 96) if d != 20] + ["2A", "2B"])
        body = f"{rng.randint(1, 2)}{rng.randint(40, 99):02d}{rng.randint(1, 12):02d}{department}"
        body += f"{rng.randint(1, 999):03d}{rng.randint(1, 999):03d}"
        key = 97 - int(body.replace("2A", "19").replace("2B", "18")) % 97
        if not valid:
            key = key % 97 + 1
        if rng.random() < 0.5:
            return f"{body[0]} {body[1:3]} {body[3:5]} {body[5:7]} {body[7:10]} {body[10:13]} {key:02d}"
        return f"{body}{key:02d}"

    def be_nn(self) -> str:
        rng = self.rng
        born = date(1940, 1, 1) + timedelta(days=rng.randint(0, 25_000))
        nine = f"{born:%y%m%d}{rng.randint(1, 997):03d}"
        check = 97 - int(("2" if born.year >= 2000 else "") + nine) % 97
        if rng.random() < 0.5:
            return f"{nine[:2]}.{nine[2:4]}.{nine[4:6]}-{nine[6:9]}.{check:02d}"
        return f"{nine}{check:02d}"

    def ip(self) -> str:
        faker = self.fakers["en_US"]
        return str(faker.ipv6() if self.rng.random() < 0.3 else faker.ipv4_public())

    # hard negatives
    def uuid(self) -> str:
        return str(self.fakers["en_US"].uuid4())

    def hexid(self) -> str:
        return "".join(self.rng.choice("0123456789abcdef") for _ in range(self.rng.choice((12, 16, 40))))

    def order(self) -> str:
        return f"{self.rng.randint(2019, 2026)}-{self.rng.randint(100_000, 999_999)}"

    def bad_card(self) -> str:
        number = str(self.fakers["en_US"].credit_card_number("visa16"))
        return number[:-1] + str((int(number[-1]) + 1) % 10)

    def version(self) -> str:
        return f"{self.rng.randint(0, 12)}.{self.rng.randint(0, 30)}.{self.rng.randint(0, 99)}"

    def build(self) -> str:
        return f"{self.rng.randint(20240101, 20261231)}.{self.rng.randint(1, 99)}"

    def duration(self) -> str:
        return f"{self.rng.randint(1, 9999)}ms"

    def amount(self) -> str:
        return f"{self.rng.randint(1, 99999)}.{self.rng.randint(0, 99):02d}"

    def token(self) -> str:
        return "".join(self.rng.choice(string.ascii_letters + string.digits) for _ in range(24))


Template = Callable[[Values, _Builder], _Builder]


def _templates() -> list[Template]:
    def login(v: Values, b: _Builder) -> _Builder:
        return (
            b.text(f"{v.timestamp()} INFO auth: login succeeded for ")
            .pii(v.email(), "EMAIL")
            .text(" from ")
            .pii(v.ip(), "IP_ADDRESS")
            .text(" in ")
            .negative(v.duration(), "duration")
        )

    def card(v: Values, b: _Builder) -> _Builder:
        return (
            b.text(f"{v.timestamp()} WARN payment: card ")
            .pii(v.card(), "CREDIT_CARD")
            .text(" declined for order ")
            .negative(v.order(), "order")
            .text(" amount=")
            .negative(v.amount(), "amount")
            .text(" EUR")
        )

    def sepa(v: Values, b: _Builder) -> _Builder:
        return (
            b.text(f"{v.timestamp()} INFO sepa: transfer to ")
            .pii(v.iban(), "IBAN")
            .text(" by ")
            .pii(v.person(), "PERSON")
            .text(" ref=")
            .negative(v.uuid(), "uuid")
        )

    def logfmt(v: Values, b: _Builder) -> _Builder:
        return (
            b.text(f'ts={v.timestamp()} level=info msg="profile updated" name="')
            .pii(v.person(), "PERSON")
            .text('" email=')
            .pii(v.email(), "EMAIL")
            .text(" request_id=")
            .negative(v.hexid(), "hex")
            .text(" duration=")
            .negative(v.duration(), "duration")
        )

    def json_line(v: Values, b: _Builder) -> _Builder:
        return (
            b.text(f'{{"ts": "{v.timestamp()}", "level": "info", "event": "signup", "phone": "')
            .pii(v.phone(), "PHONE")
            .text('", "ip": "')
            .pii(v.ip(), "IP_ADDRESS")
            .text('", "app_version": "')
            .negative(v.version(), "version")
            .text('"}')
        )

    def nir(v: Values, b: _Builder) -> _Builder:
        return (
            b.text(f"{v.timestamp()} ERROR mutuelle: numéro de sécurité sociale ")
            .pii(v.nir(), "FR_NIR")
            .text(" refusé pour ")
            .pii(v.person(), "PERSON")
        )

    def rrn(v: Values, b: _Builder) -> _Builder:
        return (
            b.text(f"{v.timestamp()} INFO eid: rijksregisternummer ")
            .pii(v.be_nn(), "BE_NN")
            .text(" gecontroleerd, build ")
            .negative(v.build(), "build")
        )

    def syslog(v: Values, b: _Builder) -> _Builder:
        return (
            b.text(f"Nov {v.rng.randint(1, 30):2d} 0{v.rng.randint(0, 9)}:{v.rng.randint(10, 59)}:")
            .text(f"{v.rng.randint(10, 59)} web sshd[{v.rng.randint(100, 65000)}]: Accepted publickey for deploy from ")
            .pii(v.ip(), "IP_ADDRESS")
            .text(f" port {v.rng.randint(1024, 65535)}")
        )

    def callback(v: Values, b: _Builder) -> _Builder:
        return (
            b.text(f"{v.timestamp()} INFO support: rappeler ")
            .pii(v.person(), "PERSON")
            .text(" au ")
            .pii(v.phone(), "PHONE")
            .text(" (ticket ")
            .negative(v.order(), "order")
            .text(")")
        )

    def free_text(v: Values, b: _Builder) -> _Builder:
        return (
            b.text(f"{v.timestamp()} ERROR checkout: payment by ")
            .pii(v.person(), "PERSON")
            .text(" failed, contact ")
            .pii(v.email(), "EMAIL")
        )

    def noise(v: Values, b: _Builder) -> _Builder:
        return (
            b.text(f"{v.timestamp()} DEBUG cache: key=")
            .negative(v.hexid(), "hex")
            .text(" deploy v")
            .negative(v.version(), "version")
            .text(" build ")
            .negative(v.build(), "build")
            .text(" took ")
            .negative(v.duration(), "duration")
        )

    def decoys(v: Values, b: _Builder) -> _Builder:
        return (
            b.text(f"{v.timestamp()} INFO batch: ref ")
            .negative(v.bad_card(), "luhn_failing")
            .text(" check ")
            .negative(v.nir(valid=False), "nir_bad_key")
            .text(" session ")
            .negative(v.uuid(), "uuid")
            .text(" total ")
            .negative(v.amount(), "amount")
        )

    return [login, card, sepa, logfmt, json_line, nir, rrn, syslog, callback, free_text, noise, decoys]


def corpus(lines: int, seed: int) -> list[Line]:
    values = Values(seed)
    templates = _templates()
    return [values.rng.choice(templates)(values, _Builder()).build() for _ in range(lines)]
