"""The scanner's inline check digits give python-stdnum's answer, on generated values of every shape."""

from __future__ import annotations

import datetime
import random
import re

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from stdnum import iban, luhn, numdb
from stdnum.be import nn
from stdnum.fr import nir

from gardien.privacy.checks import be_nn_ok, fr_nir_ok, iban_ok, luhn_ok
from gardien.privacy.detect import _CARD_ISSUERS, _card_lengths, is_card_number

DIGITS = "0123456789"
# What the scanner's candidates are made of, plus characters stdnum's clean-up rewrites (a
# backtick, a non-breaking hyphen, a full-width digit) and a few that make a value invalid.
NOISE = " .-`\u2011\uff11\u0663xX/"
digits = st.text(alphabet=DIGITS, min_size=0, max_size=22)
noisy = st.text(alphabet=DIGITS + NOISE, min_size=0, max_size=22)
SETTINGS = settings(max_examples=3000, deadline=None)


@SETTINGS
@given(st.one_of(digits, noisy))
@example("4111111111111111")
@example("")
@example("0")
def test_luhn_is_stdnum_luhn(value: str) -> None:
    assert luhn_ok(value) == luhn.is_valid(value)


def _with_luhn_digit(body: str) -> str:
    return body + luhn.calc_check_digit(body)


@SETTINGS
@given(st.text(alphabet=DIGITS, min_size=12, max_size=18))
def test_luhn_on_numbers_that_pass(body: str) -> None:
    number = _with_luhn_digit(body)
    assert luhn_ok(number) is True
    broken = number[:-1] + str((int(number[-1]) + 1) % 10)
    assert luhn_ok(broken) is False


def _nir(rng: random.Random) -> str:
    department = rng.choice(["2A", "2B", f"{rng.randrange(1, 96):02d}", "99"])
    born = f"{rng.choice('12')}{rng.randrange(100):02d}{rng.randrange(1, 13):02d}"
    body = f"{born}{department}{rng.randrange(1000):03d}{rng.randrange(1000):03d}"
    key = nir.calc_check_digits(body + "00")
    return body + key


@SETTINGS
@given(st.integers(0, 2**32), st.integers(0, 3), st.text(alphabet=DIGITS + NOISE + "ABab", max_size=3))
def test_nir_is_stdnum_nir(seed: int, mutation: int, noise: str) -> None:
    rng = random.Random(seed)
    value = _nir(rng)
    if mutation == 1:  # a wrong key or a changed digit
        at = rng.randrange(len(value))
        value = value[:at] + rng.choice(DIGITS) + value[at + 1 :]
    elif mutation == 2:  # separators and noise
        at = rng.randrange(len(value) + 1)
        value = value[:at] + noise + value[at:]
    elif mutation == 3:
        value = " ".join([value[:1], value[1:3], value[3:5], value[5:7].lower(), value[7:10], value[10:13], value[13:]])
    assert fr_nir_ok(value) == nir.is_valid(value), value


@SETTINGS
@given(st.one_of(digits, noisy, st.text(alphabet=DIGITS + "AB .", min_size=13, max_size=21)))
def test_nir_on_any_text(value: str) -> None:
    assert fr_nir_ok(value) == nir.is_valid(value)


def _be_nn(rng: random.Random) -> str:
    year = rng.randrange(100)
    body = f"{year:02d}{rng.randrange(0, 35):02d}{rng.randrange(0, 32):02d}{rng.randrange(1000):03d}"
    born_2000 = rng.random() < 0.5
    check = 97 - int(("2" if born_2000 else "") + body) % 97
    return f"{body}{check:02d}"


@SETTINGS
@given(st.integers(0, 2**32), st.integers(0, 2), st.text(alphabet=DIGITS + NOISE, max_size=3))
def test_be_nn_is_stdnum_be_nn(seed: int, mutation: int, noise: str) -> None:
    rng = random.Random(seed)
    value = _be_nn(rng)
    if mutation == 1:
        at = rng.randrange(len(value))
        value = value[:at] + rng.choice(DIGITS) + value[at + 1 :]
    elif mutation == 2:
        at = rng.randrange(len(value) + 1)
        value = value[:at] + noise + value[at:]
    assert be_nn_ok(value) == nn.is_valid(value), value


@SETTINGS
@given(st.one_of(digits, noisy))
@example("00000000000")
@example("00000100197")
def test_be_nn_on_any_text(value: str) -> None:
    assert be_nn_ok(value) == nn.is_valid(value)


def test_be_nn_born_this_year_and_next() -> None:
    year = datetime.date.today().year % 100
    for yy in (year, (year + 1) % 100):
        body = f"{yy:02d}0101123"
        value = body + f"{97 - int('2' + body) % 97:02d}"
        assert be_nn_ok(value) == nn.is_valid(value)


COUNTRIES = ["FR", "BE", "NL", "DE", "GB", "LU", "ES", "IT", "CH", "MT", "NO", "QQ", "XK", "AD", "LC"]
KINDS = {"n": DIGITS, "a": "ABCXYZ", "c": DIGITS + "ABCXYZ"}


def _bban(rng: random.Random, country: str) -> str:
    """A BBAN in the country's registry format (stdnum's data), or of a random shape."""
    structure = numdb.get("iban").info(country)[0][1].get("bban")
    if structure is None or rng.random() < 0.3:
        return "".join(rng.choice(DIGITS if rng.random() < 0.8 else "ABCXYZ") for _ in range(rng.randrange(8, 31)))
    return "".join(
        rng.choice(KINDS[kind]) for count, kind in re.findall(r"(\d+)!([nac])", structure) for _ in range(int(count))
    )


def _iban(rng: random.Random) -> str:
    country = rng.choice(COUNTRIES)
    bban = _bban(rng, country)
    check = iban.calc_check_digits(country + "00" + bban)
    return country + check + bban


@SETTINGS
@given(st.integers(0, 2**32), st.integers(0, 3), st.text(alphabet=DIGITS + NOISE + "az", max_size=3))
def test_iban_is_stdnum_iban(seed: int, mutation: int, noise: str) -> None:
    rng = random.Random(seed)
    value = _iban(rng)
    if mutation == 1:
        at = rng.randrange(len(value))
        value = value[:at] + rng.choice(DIGITS + "AZ") + value[at + 1 :]
    elif mutation == 2:
        at = rng.randrange(len(value) + 1)
        value = value[:at] + noise + value[at:]
    elif mutation == 3:
        value = " ".join(value[i : i + 4] for i in range(0, len(value), 4))
    assert iban_ok(value) == iban.is_valid(value, check_country=False), value


def test_generated_ibans_are_mostly_valid() -> None:
    rng = random.Random(5)
    values = [_iban(rng) for _ in range(500)]
    valid = sum(iban.is_valid(v, check_country=False) for v in values)
    assert 200 < valid < 500  # both answers are exercised above
    assert [iban_ok(v) for v in values] == [iban.is_valid(v, check_country=False) for v in values]


@pytest.mark.parametrize(
    "value",
    [
        "FR76 3000 6000 0112 3456 7890 189",
        "BE71 0961 2345 6769",
        "NL91ABNA0417164300",
        "DE89370400440532013000",
        "GB29NWBK60161331926819",
        "GB29NWBK60161331926818",
        "fr7630006000011234567890189",
        "FR76",
        "FR7",
        "",
    ],
)
def test_iban_examples(value: str) -> None:
    assert iban_ok(value) == iban.is_valid(value, check_country=False)


@SETTINGS
@given(st.text(alphabet=DIGITS, min_size=4, max_size=19))
def test_card_lengths_table_is_the_issuer_list(number: str) -> None:
    issued = any(
        int(number[:width]) in prefixes and len(number) in lengths for prefixes, width, lengths in _CARD_ISSUERS
    )
    assert (len(number) in _card_lengths(number)) == issued
    assert is_card_number(number) == (issued and luhn.is_valid(number))
