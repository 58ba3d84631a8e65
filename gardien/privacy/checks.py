"""Check digits of the identifiers the scanner validates, computed inline.

Each function gives python-stdnum's answer (``is_valid``) for the candidates the scanner produces,
at a fraction of the cost: stdnum's generic clean-up maps every character through a Unicode table
and raises exceptions on the way, which was most of the scan's validation time. A candidate that is
not plain ASCII (or holds a backtick, the one ASCII character stdnum rewrites) goes to stdnum
itself, so the answer never differs; tests compare both on many generated values.
"""

from __future__ import annotations

import datetime
import re

from stdnum import iban as stdnum_iban
from stdnum import luhn as stdnum_luhn
from stdnum import numdb
from stdnum.be import nn as stdnum_be_nn
from stdnum.fr import nir as stdnum_fr_nir

_DIGITS = frozenset("0123456789")


def _plain(candidate: str) -> bool:
    """ASCII that stdnum's clean-up leaves alone (it maps a backtick and many non-ASCII characters)."""
    return candidate.isascii() and "`" not in candidate


# Luhn: the value a digit adds when it is doubled.
_DOUBLED = {str(d): (2 * d) // 10 + (2 * d) % 10 for d in range(10)}


def luhn_ok(digits: str) -> bool:
    """``stdnum.luhn.is_valid`` for a string of ASCII digits (anything else goes to stdnum)."""
    if not digits or not _DIGITS.issuperset(digits):
        return stdnum_luhn.is_valid(digits)
    doubled = _DOUBLED
    total = sum(map(int, digits[-1::-2])) + sum(doubled[d] for d in digits[-2::-2])
    return total % 10 == 0


# IBAN: letters count as two digits (A = 10 … Z = 35) in the mod 97 check.
_IBAN_LETTERS = str.maketrans({chr(c): str(c - 55) for c in range(ord("A"), ord("Z") + 1)})
_IBAN_ALPHABET = frozenset("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ")
_STRUCTURE = re.compile(r"([1-9][0-9]*)!([nac])")
_STRUCTURE_CLASS = {"n": "[0-9]", "a": "[A-Z]", "c": "[A-Za-z0-9]"}
_bban_formats: dict[str, re.Pattern[str] | None] = {}


def _bban_format(country: str) -> re.Pattern[str] | None:
    """The BBAN format of the IBAN registry (stdnum's copy) for a country code, None if unknown."""
    try:
        return _bban_formats[country]
    except KeyError:
        pass
    properties = numdb.get("iban").info(country)[0][1]
    pattern: re.Pattern[str] | None = None
    if properties:
        regex = _STRUCTURE.sub(lambda m: f"{_STRUCTURE_CLASS[m.group(2)]}{{{m.group(1)}}}", properties.get("bban", ""))
        pattern = re.compile(f"^{regex}$")
    _bban_formats[country] = pattern
    return pattern


def iban_ok(candidate: str) -> bool:
    """``stdnum.iban.is_valid(candidate, check_country=False)``: mod 97 and the country's BBAN format."""
    if not _plain(candidate):
        return stdnum_iban.is_valid(candidate, check_country=False)
    number = candidate.replace(" ", "").replace("-", "").replace(".", "").strip().upper()
    if len(number) < 5 or not _IBAN_ALPHABET.issuperset(number):
        return stdnum_iban.is_valid(candidate, check_country=False)
    if int((number[4:] + number[:4]).translate(_IBAN_LETTERS)) % 97 != 1:
        return False
    bban = _bban_format(number[:2])
    return bban is not None and bban.match(number[4:]) is not None


def fr_nir_ok(candidate: str) -> bool:
    """``stdnum.fr.nir.is_valid``: 15 characters, Corsica's 2A/2B, key = 97 - (first 13 mod 97)."""
    if not _plain(candidate):
        return stdnum_fr_nir.is_valid(candidate)
    number = candidate.replace(" ", "").replace(".", "").strip().upper()
    if len(number) != 15:
        return False
    department = number[5:7]
    if department == "2A":
        body = number[:5] + "19" + number[7:13]
    elif department == "2B":
        body = number[:5] + "18" + number[7:13]
    else:
        body = number[:13]
    if not _DIGITS.issuperset(body) or not _DIGITS.issuperset(number[13:]):
        return False
    return 97 - int(body) % 97 == int(number[13:])


def be_nn_ok(candidate: str) -> bool:
    """``stdnum.be.nn.is_valid``: 11 digits, mod 97 over the first 9 (prefixed by 2 for births from
    2000), a month field of 0–12."""
    if not _plain(candidate):
        return stdnum_be_nn.is_valid(candidate)
    number = candidate.replace(" ", "").replace("-", "").replace(".", "").strip()
    if len(number) != 11 or not _DIGITS.issuperset(number) or int(number) <= 0:
        return False
    check = int(number[9:])
    born_2000 = int(number[:2]) + 2000 <= datetime.date.today().year
    if 97 - int(number[:9]) % 97 != check and not (born_2000 and 97 - int("2" + number[:9]) % 97 == check):
        return False
    return int(number[2:4]) <= 12
