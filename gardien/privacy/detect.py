"""PII detection in text: one pass of one combined regular expression, then a validator per candidate.

Candidates for every entity type come from a single alternation of named groups, so a line is read
once whatever the number of types. Each candidate is then checked the way its issuer checks it:
python-stdnum for the NIR key, the Belgian national number, IBAN mod 97 and Luhn; phonenumbers for
phone numbers (FR, BE, NL national formats, any country in international format); ``ipaddress``
for IP addresses; an issuer table for card numbers. A candidate that fails is shortened at its
separators (an IBAN followed by an upper-case word) and the other types are tried at the same
place, since a leftmost-first alternation would otherwise never try them there.

Structured logs name their fields: the value of a key such as ``email=``, ``"name":`` or
``client_ip:`` is reported whatever it looks like, typed by the key.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import phonenumbers
from stdnum import iban as stdnum_iban
from stdnum import luhn
from stdnum.be import nn as be_nn
from stdnum.exceptions import ValidationError
from stdnum.fr import nir as fr_nir

from gardien.privacy.errors import OperatorError

EMAIL, PHONE, IBAN, CREDIT_CARD = "EMAIL", "PHONE", "IBAN", "CREDIT_CARD"
FR_NIR, BE_NN, IP_ADDRESS, PERSON, SECRET = "FR_NIR", "BE_NN", "IP_ADDRESS", "PERSON", "SECRET"
ENTITIES = (EMAIL, PHONE, IBAN, CREDIT_CARD, FR_NIR, BE_NN, IP_ADDRESS, PERSON)
PHONE_REGIONS = ("FR", "BE", "NL")

# Field names of structured logs whose values are personal data, and the type of that data.
DEFAULT_KEY_NAMES: dict[str, str] = {
    **dict.fromkeys(("email", "e_mail", "mail", "email_address", "courriel"), EMAIL),
    **dict.fromkeys(("phone", "phone_number", "telephone", "tel", "mobile", "gsm", "telefoon"), PHONE),
    **dict.fromkeys(
        (
            "name",
            "full_name",
            "fullname",
            "first_name",
            "firstname",
            "last_name",
            "lastname",
            "surname",
            "given_name",
            "family_name",
            "customer_name",
            "holder",
            "cardholder",
            "prenom",
            "nom",
            "naam",
            "voornaam",
            "achternaam",
        ),
        PERSON,
    ),
    **dict.fromkeys(("iban", "account_iban"), IBAN),
    **dict.fromkeys(("card_number", "pan", "cc_number"), CREDIT_CARD),
    **dict.fromkeys(("nir", "ssn", "nss", "insee"), FR_NIR),
    **dict.fromkeys(("rrn", "niss", "national_number", "rijksregisternummer"), BE_NN),
    **dict.fromkeys(("ip", "ip_address", "client_ip", "remote_addr", "remote_ip", "x_forwarded_for"), IP_ADDRESS),
    **dict.fromkeys(("password", "passwd", "secret", "api_key", "access_token"), SECRET),
}

# Every pattern starts with a character class and only then looks behind (``X(?<![...].)``): a
# position whose character cannot start the type fails at once, which keeps one combined
# alternation fast. The look-behinds stop a match from starting inside a word or a number.
_IPV6_TAIL = r"(?:(?:\d{1,3}\.){3}\d{1,3}|[0-9A-Fa-f]{0,4})(?![\w:])"
_INTL_PREFIX = r"[1-9]\d{0,2}[ .-]?(?:\(0\)[ .-]?)?\d{1,4}"
_PATTERNS: dict[str, str] = {
    EMAIL: (
        r"[\w.%+-](?<![\w.%+-].)[\w.%+-]{0,63}@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+"
        r"[A-Za-z]{2,24}(?![\w-])"
    ),
    IBAN: r"[A-Z](?<![A-Za-z0-9].)[A-Z]\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?(?![A-Za-z0-9])",
    FR_NIR: (
        r"[12](?<![\w.-].)[ .]?\d{2}[ .]?(?:0[1-9]|1[0-2]|[2-9]\d)[ .]?(?:\d{2}|2[ABab])"
        r"[ .]?\d{3}[ .]?\d{3}[ .]?\d{2}(?!\w)"
    ),
    BE_NN: r"\d(?<![\w.-].)\d[ .]?\d{2}[ .]?\d{2}[ .-]?\d{3}[ .]?\d{2}(?!\w)",
    CREDIT_CARD: r"\d(?<![\w.-].)(?:[ -]?\d){12,18}(?!\w)",
    "IPV4": r"\d(?<![\w.].)\d{0,2}(?:\.\d{1,3}){3}(?!\.?\d)(?!\w)",
    "IPV6": (
        rf"(?::(?<![\w:.].):(?:[0-9A-Fa-f]{{1,4}}:){{0,6}}{_IPV6_TAIL}"
        rf"|[0-9A-Fa-f](?<![\w:.].)[0-9A-Fa-f]{{0,3}}:(?:[0-9A-Fa-f]{{0,4}}:){{1,6}}{_IPV6_TAIL})"
    ),
    PHONE: (
        rf"[+0](?<![\w+.:/-].)(?:(?<=\+){_INTL_PREFIX}|(?<=0)0{_INTL_PREFIX}|(?<=0)\d{{1,4}})"
        r"(?:[ ./-]?\d{2,4}){1,4}(?!\w)"
    ),
}
# A person's name in free text, without a language model: two to four capitalised words (particles
# and hyphenated parts allowed), none of them a word that log messages capitalise (HTTP reason
# phrases, weekdays, months, log vocabulary).
_NAME_WORD = r"[A-Z\u00c0-\u00de][a-z\u00df-\u00ff]+(?:-[A-Z\u00c0-\u00de][a-z\u00df-\u00ff]+)?"
_NAME_PARTICLE = r"(?:[Vv]an|[Dd]e|[Dd]u|[Dd]er|[Dd]en|[Ll]a|[Ll]e|von|ter|d')"
_PATTERNS[PERSON] = (
    rf"[A-Z\u00c0-\u00de](?<![\w.@/-].)[a-z\u00df-\u00ff]+(?:-{_NAME_WORD})?"
    rf"(?:[ ](?:{_NAME_PARTICLE}[ ])*{_NAME_WORD}){{1,3}}(?![\w@-])"
)
_NOT_NAMES_WORDS = """
    accepted bad conflict connection content continue created error expectation failed forbidden found
    gateway gone internal large length method moved multiple no not ok partial payload permanent permanently
    precondition processing redirect refused request requests required reset see server service switching
    temporary timeout too unauthorized unavailable unprocessable unsupported entity media type allowed many
    monday tuesday wednesday thursday friday saturday sunday lundi mardi mercredi jeudi vendredi samedi dimanche
    january february march april may june july august september october november december janvier février
    mars avril mai juin juillet août septembre octobre novembre décembre
    info debug warning warn critical fatal trace notice alert emergency audit security exception traceback
    file line user users account customer customers order orders payment payments invoice card session new
    the a an and or of in on at to for from by with via get post put patch delete head options true false
    none null default admin api http https json xml sql id uuid time date status code message details
"""
NOT_NAMES = frozenset(_NOT_NAMES_WORDS.split())
_GROUP_ENTITY = {EMAIL: EMAIL, IBAN: IBAN, FR_NIR: FR_NIR, BE_NN: BE_NN, CREDIT_CARD: CREDIT_CARD}
_GROUP_ENTITY.update({"IPV4": IP_ADDRESS, "IPV6": IP_ADDRESS, PHONE: PHONE, PERSON: PERSON})
_SEPARATORS = " ./-"
# Bare values of a key run over several words only while they look like a name: "name=Jean de la Tour".
_PARTICLES = "de|du|des|la|le|van|der|den|von|di|da|el|ter"


@dataclass(frozen=True, slots=True)
class Finding:
    start: int
    end: int
    entity: str
    detector: str  # the pattern, "key:<name>" or "custom:<name>"


def _digits(text: str) -> str:
    return text.replace(" ", "").replace("-", "")


# (first digits, allowed lengths) of the card networks: Visa, Mastercard (51–55 and 2221–2720),
# American Express, Discover, Diners Club, JCB, UnionPay.
_CARD_ISSUERS: tuple[tuple[range, int, tuple[int, ...]], ...] = (
    (range(4, 5), 1, (13, 16, 19)),
    (range(51, 56), 2, (16,)),
    (range(2221, 2721), 4, (16,)),
    (range(34, 35), 2, (15,)),
    (range(37, 38), 2, (15,)),
    (range(6011, 6012), 4, (16, 17, 18, 19)),
    (range(644, 650), 3, (16, 17, 18, 19)),
    (range(65, 66), 2, (16, 17, 18, 19)),
    (range(300, 306), 3, (14, 15, 16, 17, 18, 19)),
    (range(36, 37), 2, (14, 15, 16, 17, 18, 19)),
    (range(38, 40), 2, (14, 15, 16, 17, 18, 19)),
    (range(3528, 3590), 4, (16, 17, 18, 19)),
    (range(62, 63), 2, (16, 17, 18, 19)),
)


def is_card_number(digits: str) -> bool:
    """A number some card network issues (prefix and length) that passes Luhn."""
    issued = any(
        int(digits[:width]) in prefixes and len(digits) in lengths for prefixes, width, lengths in _CARD_ISSUERS
    )
    return issued and luhn.is_valid(digits)


def _valid_phone(candidate: str) -> bool:
    text = candidate.strip()
    if text.startswith("00"):
        text = "+" + text[2:]
    regions: Iterable[str | None] = (None,) if text.startswith("+") else PHONE_REGIONS
    for region in regions:
        try:
            number = phonenumbers.parse(text, region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_possible_number(number):
            return True
    return False


def _valid_iban(candidate: str) -> bool:
    # Mod 97 and the country's length and format; not the national bank-code checks, whose
    # bank registries cost more than the rest of the scan.
    try:
        stdnum_iban.validate(candidate, check_country=False)
    except ValidationError:
        return False
    return True


def _valid_ip(candidate: str) -> bool:
    try:
        ipaddress.ip_address(candidate)
    except ValueError:
        return False
    return True


def _valid_ipv4(candidate: str) -> bool:
    return all(int(octet) <= 255 and (octet == "0" or octet[0] != "0") for octet in candidate.split("."))


def _plausible_name(candidate: str) -> bool:
    return not any(part.casefold() in NOT_NAMES for word in candidate.split() for part in word.split("-"))


_CHECKS: dict[str, Callable[[str], bool]] = {
    EMAIL: lambda _: True,
    IBAN: _valid_iban,
    FR_NIR: fr_nir.is_valid,
    BE_NN: be_nn.is_valid,
    CREDIT_CARD: lambda c: is_card_number(_digits(c)),
    "IPV4": _valid_ipv4,
    "IPV6": _valid_ip,
    PHONE: _valid_phone,
    PERSON: _plausible_name,
}
# Types whose candidate may have swallowed a following group: retried shorter, cut at a separator.
_SHORTENED = frozenset({IBAN, PHONE, CREDIT_CARD})


def _valid_end(group: str, text: str, start: int, end: int) -> int | None:
    """End of the longest valid span starting at ``start`` within the candidate, if any."""
    check = _CHECKS[group]
    if check(text[start:end]):
        return end
    if group in _SHORTENED:
        for cut in range(end - 1, start, -1):
            if text[cut] in _SEPARATORS and text[cut - 1] not in _SEPARATORS and check(text[start:cut]):
                return cut
    return None


# A field name and its separator; whether the name is one of the scanner's keys is checked after.
_KEY = r"(?:[\"'](?<![\w.-].)[A-Za-z_][\w-]{0,39}[\"']?|[A-Za-z_](?<![\w.-].)[\w-]{0,39})(?P<kv_sep>[ \t]*[:=][ \t]*)"
_BARE_WORD = r"[^\s,;&\"'}\]]{1,128}"
_VALUE = re.compile(
    rf"\"(?P<dq>[^\"\n]{{1,256}})\"|'(?P<sq>[^'\n]{{1,256}})'"
    rf"|(?P<bare>{_BARE_WORD}(?: (?:{_PARTICLES}|[A-Z\u00c0-\u00de][^\s,;&\"'}}\]=:]{{0,63}})(?![=:\w])){{0,4}})"
)


class Scanner:
    """Finds personal data in text. Build one and reuse it: compiling the pattern is the costly part.

    ``entities`` limits the built-in types; ``key_names`` maps structured-log field names to the
    type of their values (``DEFAULT_KEY_NAMES`` by default, ``{}`` for none); ``custom`` adds
    named regular expressions, e.g. ``{"EMPLOYEE_ID": r"EMP-\\d{6}"}``.
    """

    def __init__(
        self,
        entities: Iterable[str] | None = None,
        key_names: Mapping[str, str] | None = None,
        custom: Mapping[str, str] | None = None,
    ) -> None:
        wanted = set(ENTITIES if entities is None else entities)
        unknown = wanted - set(ENTITIES)
        if unknown:
            raise OperatorError(f"unknown entity types {sorted(unknown)}; known: {', '.join(ENTITIES)}", "entities")
        self.key_names = {k.casefold(): v for k, v in (DEFAULT_KEY_NAMES if key_names is None else key_names).items()}
        self.custom = dict(custom or {})
        branches: dict[str, str] = {}
        self._custom_entity: dict[str, str] = {}
        for index, (entity, regex) in enumerate(self.custom.items()):
            try:
                compiled = re.compile(regex)
            except re.error as exc:
                raise OperatorError(f"custom pattern {entity!r}: {exc}", f"custom.{entity}") from None
            if compiled.groupindex:
                raise OperatorError(f"custom pattern {entity!r}: named groups are not allowed", f"custom.{entity}")
            if compiled.match(""):
                raise OperatorError(f"custom pattern {entity!r} matches the empty string", f"custom.{entity}")
            branches[f"custom{index}"] = f"(?:{regex})"
            self._custom_entity[f"custom{index}"] = entity
        branches.update({g: p for g, p in _PATTERNS.items() if _GROUP_ENTITY[g] in wanted})
        if self.key_names:
            branches["kv"] = _KEY  # last: at one place, any type's own pattern comes first
        self._groups = [g for g in branches if g != "kv"]
        self._combined = re.compile("|".join(f"(?P<{g}>{p})" for g, p in branches.items())) if branches else None
        self._single = {g: re.compile(p) for g, p in branches.items() if g != "kv"}

    def scan(self, text: str) -> list[Finding]:
        """Non-overlapping findings, left to right."""
        findings: list[Finding] = []
        combined = self._combined
        if combined is None:
            return findings
        pos, size = 0, len(text)
        while pos < size:
            match = combined.search(text, pos)
            if match is None:
                break
            group = match.lastgroup or ""
            if group == "kv":
                keyed = self._keyed(text, match)
                if keyed is None:
                    pos = match.start("kv_sep")  # a field of no interest: what follows is scanned like any text
                    continue
                findings.append(keyed)
                pos = max(keyed.end, match.end())
                continue
            start = match.start()
            found = self._accept(group, text, start, match.end())
            if found is None:
                found = self._retry(group, text, start)
            if found is None:
                # Skip the whole rejected candidate (digits inside a NIR with a bad key are no phone
                # number), except a name, whose next word may start one: "User Jean Dupont".
                pos = start + 1 if group == PERSON else max(match.end(), start + 1)
                continue
            findings.append(found)
            pos = max(found.end, start + 1)
        return findings

    def _keyed(self, text: str, match: re.Match[str]) -> Finding | None:
        name = text[match.start() : match.start("kv_sep")].strip("\"'")
        entity = self.key_names.get(name.casefold())
        if entity is None:
            return None
        value = _VALUE.match(text, match.end())
        if value is None:
            return None
        part = value.lastgroup or "bare"
        return Finding(value.start(part), value.end(part), entity, f"key:{name}")

    def _accept(self, group: str, text: str, start: int, end: int) -> Finding | None:
        if group in self._custom_entity:
            return Finding(start, end, self._custom_entity[group], f"custom:{self._custom_entity[group]}")
        valid_end = _valid_end(group, text, start, end)
        return None if valid_end is None else Finding(start, valid_end, _GROUP_ENTITY[group], group.lower())

    def _retry(self, failed: str, text: str, start: int) -> Finding | None:
        for group in self._groups:
            if group == failed:
                continue
            match = self._single[group].match(text, start)
            if match is not None:
                found = self._accept(group, text, start, match.end())
                if found is not None:
                    return found
        return None
