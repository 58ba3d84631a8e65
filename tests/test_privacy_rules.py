"""Rules with numbers in them, checked against their official sources rather than against the code.

- French départements: INSEE's Code officiel géographique (département codes 01–95, 2A Corse-du-Sud,
  2B Haute-Corse, 971 Guadeloupe, 972 Martinique, 973 Guyane, 974 La Réunion, 976 Mayotte) and
  La Poste's postcodes (Corsica: 200xx–201xx Corse-du-Sud, 202xx and 206xx Haute-Corse; Saint-Barthélemy
  97133 and Saint-Martin 97150 are collectivities with INSEE codes 977 and 978).
- Belgian provinces: bpost's postcode ranges (1000–1299 Brussels, 1300–1499 Walloon Brabant, 1500–1999
  and 3000–3499 Flemish Brabant, 2000–2999 Antwerp, 3500–3999 Limburg, 4000–4999 Liège, 5000–5999 Namur,
  6000–6599 and 7000–7999 Hainaut, 6600–6999 Luxembourg, 8000–8999 West Flanders, 9000–9999 East
  Flanders), province codes from ISO 3166-2:BE.
- NIR key: 97 − (the 13 digits mod 97), with 2A read as 19 and 2B as 18 (INSEE).
- Belgian national number: 97 − (the first 9 digits mod 97); for people born from 2000 on, a 2 is put
  in front of the 9 digits (Registre national, instructions RN).
- IP truncation: RFC 4632 / RFC 4291 prefixes; /24 and /48 are what the CNIL and Matomo use.
"""

from __future__ import annotations

import pytest

from gardien.privacy.detect import Scanner
from gardien.privacy.generalize import age_range, be_province, fr_department
from gardien.privacy.operators import OperatorError, truncate_ip


@pytest.mark.parametrize(
    ("postcode", "department"),
    [
        ("75001", "75"),  # Paris 1er
        ("75116", "75"),
        ("01000", "01"),  # Bourg-en-Bresse
        ("13001", "13"),  # Marseille
        ("59000", "59"),  # Lille
        ("95000", "95"),  # Cergy
        ("20000", "2A"),  # Ajaccio
        ("20090", "2A"),  # Ajaccio
        ("20137", "2A"),  # Porto-Vecchio
        ("20169", "2A"),  # Bonifacio
        ("20200", "2B"),  # Bastia
        ("20250", "2B"),  # Corte
        ("20260", "2B"),  # Calvi
        ("20600", "2B"),  # Bastia, Furiani
        ("20620", "2B"),  # Biguglia
        ("97100", "971"),  # Basse-Terre
        ("97200", "972"),  # Fort-de-France
        ("97300", "973"),  # Cayenne
        ("97400", "974"),  # Saint-Denis de La Réunion
        ("97600", "976"),  # Mamoudzou
        ("97500", "975"),  # Saint-Pierre-et-Miquelon
        ("97133", "977"),  # Saint-Barthélemy
        ("97150", "978"),  # Saint-Martin
        (" 33000 ", "33"),  # Bordeaux, surrounding blanks ignored
    ],
)
def test_french_postcode_to_department(postcode: str, department: str) -> None:
    assert fr_department(postcode) == department


@pytest.mark.parametrize("postcode", ["7500", "750011", "2A000", "00100", "96000", "98000", "abcde", ""])
def test_french_postcode_that_is_no_department_is_refused(postcode: str) -> None:
    # 98000 is Monaco; 96xxx and 00xxx are not allocated.
    with pytest.raises(OperatorError):
        fr_department(postcode)


@pytest.mark.parametrize(
    ("postcode", "code"),
    [
        ("1000", "BE-BRU"),
        ("1299", "BE-BRU"),
        ("1300", "BE-WBR"),  # Wavre
        ("1499", "BE-WBR"),
        ("1500", "BE-VBR"),  # Halle
        ("1999", "BE-VBR"),
        ("2000", "BE-VAN"),  # Antwerpen
        ("2999", "BE-VAN"),
        ("3000", "BE-VBR"),  # Leuven
        ("3499", "BE-VBR"),
        ("3500", "BE-VLI"),  # Hasselt
        ("3999", "BE-VLI"),
        ("4000", "BE-WLG"),  # Liège
        ("4999", "BE-WLG"),
        ("5000", "BE-WNA"),  # Namur
        ("5999", "BE-WNA"),
        ("6000", "BE-WHT"),  # Charleroi
        ("6599", "BE-WHT"),
        ("6600", "BE-WLX"),  # Bastogne
        ("6999", "BE-WLX"),
        ("7000", "BE-WHT"),  # Mons
        ("7999", "BE-WHT"),
        ("8000", "BE-VWV"),  # Brugge
        ("8999", "BE-VWV"),
        ("9000", "BE-VOV"),  # Gent
        ("9999", "BE-VOV"),
    ],
)
def test_belgian_postcode_to_province(postcode: str, code: str) -> None:
    assert be_province(postcode).code == code


def test_belgian_province_names() -> None:
    assert be_province("1000").name == "Brussels-Capital Region"
    assert be_province("9000").name == "East Flanders"


@pytest.mark.parametrize("postcode", ["999", "0999", "10000", "B-1000x", ""])
def test_belgian_postcode_out_of_range_is_refused(postcode: str) -> None:
    with pytest.raises(OperatorError):
        be_province(postcode)


@pytest.mark.parametrize(
    ("age", "step", "top", "expected"),
    [
        (0, 10, 90, "0-9"),
        (9, 10, 90, "0-9"),
        (10, 10, 90, "10-19"),
        (37, 10, 90, "30-39"),
        (89, 10, 90, "80-89"),
        (90, 10, 90, "90+"),
        (104, 10, 90, "90+"),
        (37, 5, 90, "35-39"),
        (17, 5, 80, "15-19"),
        (85, 5, 80, "80+"),
    ],
)
def test_age_ranges(age: int, step: int, top: int, expected: str) -> None:
    assert age_range(age, step=step, top=top) == expected


@pytest.mark.parametrize(
    ("address", "v4", "v6", "expected"),
    [
        ("192.0.2.123", 24, 48, "192.0.2.0"),
        ("198.51.100.255", 16, 48, "198.51.0.0"),
        ("203.0.113.77", 32, 48, "203.0.113.77"),
        ("203.0.113.77", 0, 48, "0.0.0.0"),
        ("203.0.113.77", 20, 48, "203.0.112.0"),  # 113 = 0111 0001: the /20 keeps 0111
        ("2001:db8:85a3:8d3:1319:8a2e:370:7348", 24, 48, "2001:db8:85a3::"),
        ("2001:db8:85a3:8d3:1319:8a2e:370:7348", 24, 64, "2001:db8:85a3:8d3::"),
        ("2001:db8:85a3:8d3:1319:8a2e:370:7348", 24, 56, "2001:db8:85a3:800::"),
        ("::ffff:192.0.2.123", 24, 48, "::ffff:192.0.2.0"),  # IPv4-mapped: the IPv4 rule applies
    ],
)
def test_ip_truncation_prefixes(address: str, v4: int, v6: int, expected: str) -> None:
    assert truncate_ip(address, v4_prefix=v4, v6_prefix=v6) == expected


def test_ip_truncation_refuses_what_is_not_an_address() -> None:
    with pytest.raises(OperatorError):
        truncate_ip("192.0.2.256")


def patterns(entity: str) -> Scanner:
    """A scanner of one type's pattern and validator only, without the structured-log key names."""
    return Scanner(entities={entity}, key_names={})


# The NIR key is 97 − (13 digits mod 97). 2 55 08 14 168 025 is INSEE's own example (key 38).
NIR_13 = "2550814168025"


def _nir_key(thirteen: str) -> int:
    digits = thirteen.replace("2A", "19").replace("2B", "18")
    return 97 - int(digits) % 97


def test_nir_key_arithmetic_matches_insee_example() -> None:
    assert _nir_key(NIR_13) == 38


@pytest.mark.parametrize(
    "thirteen",
    [NIR_13, "1850578006084", "2900219004015", "1800120123456", "180012A123456", "180012B123456"],
)
def test_nir_with_its_key_is_detected_and_with_another_key_is_not(thirteen: str) -> None:
    scanner = patterns("FR_NIR")
    key = _nir_key(thirteen)
    good = f"{thirteen}{key:02d}"
    bad = f"{thirteen}{(key % 97) + 1:02d}"
    assert [f.entity for f in scanner.scan(f"nir={good} ok")] == ["FR_NIR"]
    assert scanner.scan(f"nir={bad} ok") == []


def test_nir_written_with_spaces_is_detected() -> None:
    scanner = patterns("FR_NIR")
    text = "numéro de sécu 2 55 08 14 168 025 38, merci"
    (finding,) = scanner.scan(text)
    assert text[finding.start : finding.end] == "2 55 08 14 168 025 38"


def _be_check(nine: str, born_2000_or_later: bool) -> int:
    number = int(("2" if born_2000_or_later else "") + nine)
    return 97 - number % 97


@pytest.mark.parametrize(
    ("nine", "after_2000"),
    [
        ("850730033", False),  # 30 July 1985, the Registre national's example 85.07.30-033.28
        ("720301123", False),
        ("000125567", True),  # 25 January 2000
        ("120229007", True),  # 29 February 2012
    ],
)
def test_belgian_national_number_checksum(nine: str, after_2000: bool) -> None:
    scanner = patterns("BE_NN")
    check = _be_check(nine, after_2000)
    good = f"{nine[:2]}.{nine[2:4]}.{nine[4:6]}-{nine[6:9]}.{check:02d}"
    bad = f"{nine}{check % 97 + 1:02d}"
    assert [f.entity for f in scanner.scan(f"NN {good} ;")] == ["BE_NN"]
    assert scanner.scan(f"NN {bad} ;") == []


def test_belgian_example_number() -> None:
    assert _be_check("850730033", False) == 28
    (finding,) = patterns("BE_NN").scan("rijksregisternummer 85.07.30-033.28")
    assert finding.entity == "BE_NN"


@pytest.mark.parametrize(
    "card",
    [
        "4111 1111 1111 1111",  # Visa test number
        "5555 5555 5555 4444",  # Mastercard 51–55
        "2223 0031 2200 3222",  # Mastercard 2-series (2221–2720)
        "3782 822463 10005",  # American Express, 15 digits
        "6011111111111117",  # Discover
    ],
)
def test_payment_cards_pass_luhn_and_are_detected(card: str) -> None:
    (finding,) = patterns("CREDIT_CARD").scan(f"card {card} charged")
    assert finding.entity == "CREDIT_CARD"


@pytest.mark.parametrize("number", ["4111 1111 1111 1112", "5555555555554445", "1234567812345670"])
def test_card_shaped_numbers_failing_luhn_or_issuer_are_not_cards(number: str) -> None:
    # 1234567812345670 passes Luhn but no card network issues numbers starting with 1.
    assert patterns("CREDIT_CARD").scan(f"ref {number} ok") == []


@pytest.mark.parametrize(
    "iban",
    [
        "FR76 3000 6000 0112 3456 7890 189",  # European Commission's example
        "NL91 ABNA 0417 1643 00",  # ING's published example
        "BE85 0094 2751 7906",
        "FR7630006000011234567890189",
    ],
)
def test_ibans_with_a_good_mod97_are_detected(iban: str) -> None:
    scanner = patterns("IBAN")
    text = f"iban={iban} amount=EUR"
    (finding,) = scanner.scan(text)
    assert text[finding.start : finding.end] == iban


def test_iban_followed_by_an_upper_case_word_keeps_its_own_length() -> None:
    text = "virement BE85 0094 2751 7906 EUR 120"
    (finding,) = patterns("IBAN").scan(text)
    assert text[finding.start : finding.end] == "BE85 0094 2751 7906"


def test_iban_with_a_wrong_check_is_not_detected() -> None:
    assert patterns("IBAN").scan("iban=FR76 3000 6000 0112 3456 7890 188") == []
