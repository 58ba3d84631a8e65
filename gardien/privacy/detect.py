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

from gardien.privacy.checks import be_nn_ok, fr_nir_ok, iban_ok, luhn_ok
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
        rf"[0-9A-Fa-f:](?<![\w:.].)(?:(?<=:):(?:[0-9A-Fa-f]{{1,4}}:){{0,6}}{_IPV6_TAIL}"
        rf"|(?<!:)[0-9A-Fa-f]{{0,3}}:(?:[0-9A-Fa-f]{{0,4}}:){{1,6}}{_IPV6_TAIL})"
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


def _lengths_by_prefix() -> dict[str, frozenset[int]]:
    table: dict[str, frozenset[int]] = {}
    for value in range(10_000):
        prefix = f"{value:04d}"
        lengths = {n for prefixes, width, allowed in _CARD_ISSUERS if int(prefix[:width]) in prefixes for n in allowed}
        if lengths:
            table[prefix] = frozenset(lengths)
    return table


# The issuer list as one look-up: allowed lengths by the first four digits (every issuer's prefix
# has at most four, and a card number at least 13).
_CARD_LENGTHS = _lengths_by_prefix()
_NO_LENGTHS: frozenset[int] = frozenset()


def _card_lengths(digits: str) -> frozenset[int]:
    """The lengths some card network issues numbers of for these first digits."""
    if len(digits) >= 4:
        return _CARD_LENGTHS.get(digits[:4], _NO_LENGTHS)
    return frozenset(
        n for prefixes, width, allowed in _CARD_ISSUERS if int(digits[:width]) in prefixes for n in allowed
    )


def is_card_number(digits: str) -> bool:
    """A number some card network issues (prefix and length) that passes Luhn."""
    return len(digits) in _card_lengths(digits) and luhn_ok(digits)


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


def _valid_ip(candidate: str) -> bool:
    # Without "::" an IPv6 address has eight groups (seven colons), or six and an IPv4 tail.
    if "::" not in candidate and candidate.count(":") < 6:
        return False
    try:
        ipaddress.ip_address(candidate)
    except ValueError:
        return False
    return True


def _valid_ipv4(candidate: str) -> bool:
    return all(int(octet) <= 255 and (octet == "0" or octet[0] != "0") for octet in candidate.split("."))


def _plausible_name(candidate: str) -> bool:
    return NOT_NAMES.isdisjoint(candidate.casefold().replace("-", " ").split())


_CHECKS: dict[str, Callable[[str], bool]] = {
    EMAIL: lambda _: True,
    # Mod 97 and the country's length and format; not the national bank-code checks, whose
    # bank registries cost more than the rest of the scan.
    IBAN: iban_ok,
    FR_NIR: fr_nir_ok,
    BE_NN: be_nn_ok,
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
    if _CHECKS[group](text[start:end]):
        return end
    return _shorter_end(group, text, start, end) if group in _SHORTENED else None


def _shorter_end(group: str, text: str, start: int, end: int) -> int | None:
    """End of the longest valid span starting at ``start`` and cut at a separator before ``end``."""
    check = _CHECKS[group]
    for cut in range(end - 1, start, -1):
        if text[cut] in _SEPARATORS and text[cut - 1] not in _SEPARATORS and check(text[start:cut]):
            return cut
    return None


# A field name is a word of letters, digits, "_" and "-" (at most 40, not starting with a digit),
# quoted or not, then ":" or "=". The scanner matches only the names it knows, written in any case:
# a field of no interest is text like any other (an IPv6 address in quotes, "fe80::1", is no key).
_KEY_NAME = re.compile(r"[A-Za-z_][\w-]{0,39}")
_KEY_SEPARATOR = r"[ \t]*[:=][ \t]*"


def _either_case(char: str) -> str:
    upper = char.upper()
    if upper != char and len(upper) == 1:
        return f"[{re.escape(char)}{re.escape(upper)}]"
    return re.escape(char)


def _key_patterns(names: Iterable[str]) -> list[str]:
    """Patterns of a field whose name is one of ``names`` (case-folded): one for quoted names, one per
    initial of the others, each opening with a character class (which the engine checks before
    entering an alternative). A match is the name, its quotes and the separator."""
    by_initial: dict[str, list[str]] = {}
    for name in sorted(n for n in set(names) if _KEY_NAME.fullmatch(n)):
        by_initial.setdefault(name[0], []).append(name[1:])
    if not by_initial:
        return []

    def rests(tails: list[str]) -> str:
        return "|".join("".join(map(_either_case, tail)) for tail in tails)

    not_in_word = r"(?<![\w.-].)"
    words = "|".join(f"{_either_case(initial)}(?:{rests(tails)})" for initial, tails in by_initial.items())
    patterns = [f"[\"']{not_in_word}(?:{words})[\"']?{_KEY_SEPARATOR}"]
    patterns += [
        f"{_either_case(initial)}{not_in_word}(?:{rests(tails)}){_KEY_SEPARATOR}"
        for initial, tails in by_initial.items()
    ]
    return patterns


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
        names = DEFAULT_KEY_NAMES if key_names is None else key_names
        self.key_names = {k.casefold(): v for k, v in names.items()}
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
        self._groups = list(branches)
        self._branches = dict(branches)
        self._retries: dict[tuple[str, int], re.Pattern[str] | None] = {}
        # Field names come last: at one place, any type's own pattern comes first.
        # The names as given (lower case) and case-folded: "straße" and "strasse" both name "Straße".
        spellings = set(self.key_names) | {name.lower() for name in names}
        keys = {f"kv{index}": pattern for index, pattern in enumerate(_key_patterns(spellings))}
        self._keys = frozenset(keys)
        branches.update(keys)
        # Each branch opens with a character class and names itself with an empty group at its end,
        # so that the engine rejects a branch on its first character without entering it. Without
        # custom patterns, every branch refuses to start right after an ASCII letter or digit: the
        # pattern then consumes the character before the candidate (the text gets a leading "\n"),
        # and the engine skips the inside of words and numbers in its own loop. None of these
        # patterns reads across a line break, so a text is scanned line by line, each line with
        # the branches it can match: no e-mail address without "@", no field without ":" or "=".
        self._shift = 0 if self.custom else 1
        self._all = branches
        self._variants: dict[tuple[bool, bool, bool], re.Pattern[str] | None] = {}
        self._combined = self._variant(True, True, True)
        self._index = {g: i for i, g in enumerate(self._groups)}
        self._detector = {g: f"custom:{e}" for g, e in self._custom_entity.items()}
        self._detector.update({g: g.lower() for g in _PATTERNS})
        self._entity = dict(self._custom_entity)
        self._entity.update(_GROUP_ENTITY)

    def _variant(self, at: bool, colon: bool, equals: bool) -> re.Pattern[str] | None:
        """The combined pattern without the branches a line lacking "@", ":" or "=" cannot match."""
        key = (at, colon, equals)
        try:
            return self._variants[key]
        except KeyError:
            pass
        branches = {
            g: p
            for g, p in self._all.items()
            if (at or g != EMAIL) and (colon or g != "IPV6") and (colon or equals or g not in self._keys)
        }
        alternation = "|".join(f"{p}(?P<{g}>)" for g, p in branches.items())
        pattern: re.Pattern[str] | None = None
        if branches:
            pattern = re.compile(f"[^A-Za-z0-9](?:{alternation})" if self._shift else alternation)
        self._variants[key] = pattern
        return pattern

    def scan(self, text: str) -> list[Finding]:
        """Non-overlapping findings, left to right."""
        if not self._shift:
            return [Finding(*span) for span in self._scan(text, self._combined, 0, 0)]
        if "\n" not in text:
            combined = self._variant("@" in text, ":" in text, "=" in text)
            return [Finding(*span) for span in self._scan("\n" + text, combined, 1, -1)]
        spans: list[tuple[int, int, str, str]] = []
        offset = -1
        for line in text.split("\n"):
            if line:
                combined = self._variant("@" in line, ":" in line, "=" in line)
                spans += self._scan("\n" + line, combined, 1, offset)
            offset += len(line) + 1
        return [Finding(*span) for span in spans]

    def _scan(
        self, text: str, combined: re.Pattern[str] | None, shift: int, offset: int
    ) -> list[tuple[int, int, str, str]]:
        """Spans found in ``text`` from ``shift`` on, moved by ``offset``. With ``shift`` 1, the pattern
        consumes the character before a candidate, and ``text`` starts with a line break."""
        spans: list[tuple[int, int, str, str]] = []
        if combined is None:
            return spans
        search = combined.search
        custom = self._custom_entity
        keys = self._keys
        entities, detectors = self._entity, self._detector
        checks = _CHECKS
        pos, size = shift, len(text)
        while pos < size:
            match = search(text, pos - shift)
            if match is None:
                break
            group = match.lastgroup or ""
            start = match.start() + shift
            end = match.end()
            if group in keys:
                field = text[start:end].rstrip(" \t:=")
                keyed = self._keyed(text, field, end)
                if keyed is None:
                    pos = start + len(field)  # no value: what follows is scanned like any text
                    continue
                spans.append((keyed[0] + offset, keyed[1] + offset, keyed[2], keyed[3]))
                pos = max(keyed[1], end)
                continue
            if group in custom:
                valid_end: int | None = end
            elif checks[group](text[start:end]):
                valid_end = end
            else:
                valid_end = _shorter_end(group, text, start, end) if group in _SHORTENED else None
            if valid_end is None:
                found = self._retry(group, text, start)
                if found is None:
                    # Skip the whole rejected candidate (digits inside a NIR with a bad key are no phone
                    # number), except a name, whose next word may start one: "User Jean Dupont".
                    pos = start + 1 if group == PERSON else max(end, start + 1)
                    continue
                group, valid_end = found
            spans.append((start + offset, valid_end + offset, entities[group], detectors[group]))
            pos = valid_end if valid_end > start else start + 1
        return spans

    def _keyed(self, text: str, field: str, end: int) -> tuple[int, int, str, str] | None:
        name = field.strip("\"'")
        entity = self.key_names.get(name.casefold())
        if entity is None:
            return None
        value = _VALUE.match(text, end)
        if value is None:
            return None
        part = value.lastgroup or "bare"
        return (value.start(part), value.end(part), entity, f"key:{name}")

    def _retry(self, failed: str, text: str, start: int) -> tuple[str, int] | None:
        """The first other type, in pattern order, whose pattern matches at ``start`` and is valid there."""
        after = 0
        while True:
            retry = self._retry_pattern(failed, after)
            if retry is None:
                return None
            match = retry.match(text, start)
            if match is None:
                return None
            group = match.lastgroup or ""
            if group in self._custom_entity:
                return group, match.end()
            valid_end = _valid_end(group, text, start, match.end())
            if valid_end is not None:
                return group, valid_end
            after = self._index[group] + 1

    def _retry_pattern(self, failed: str, after: int) -> re.Pattern[str] | None:
        """The patterns of the types from the ``after``-th on but ``failed``, as one alternation."""
        key = (failed, after)
        try:
            return self._retries[key]
        except KeyError:
            pass
        rest = [g for g in self._groups[after:] if g != failed]
        pattern = re.compile("|".join(f"{self._branches[g]}(?P<{g}>)" for g in rest)) if rest else None
        self._retries[key] = pattern
        return pattern
