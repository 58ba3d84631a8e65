"""Generalisation hierarchies kept as data: age bands, French départements, Belgian provinces."""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass

from gardien.privacy.errors import OperatorError


def age_range(age: int, *, step: int = 10, top: int = 90) -> str:
    """37 → '30-39'; ages from ``top`` on form one band, '90+', since few people reach them."""
    if age < 0 or age > 150:
        raise OperatorError("not a plausible age")
    if age >= top:
        return f"{top}+"
    low = age - age % step
    return f"{low}-{min(low + step, top) - 1}"


# Overseas postcodes start with the three digits of the INSEE code, except the two collectivities
# that La Poste still numbers inside Guadeloupe's range.
_OVERSEAS_COLLECTIVITIES = {"97133": "977", "97150": "978"}  # Saint-Barthélemy, Saint-Martin


def fr_department(postcode: str) -> str:
    """French postcode → INSEE département code: 75001 → 75, 20000 → 2A, 20200 → 2B, 97400 → 974."""
    code = postcode.strip()
    if len(code) != 5 or not code.isascii() or not code.isdigit():
        raise OperatorError("a French postcode is five digits")
    head, number = code[:2], int(code)
    if head == "20":
        # La Poste numbers Corse-du-Sud 200xx–201xx and Haute-Corse 202xx and 206xx.
        if number < 20200:
            return "2A"
        if number < 20300 or 20600 <= number < 20700:
            return "2B"
        raise OperatorError("not a Corsican postcode")
    if head == "97":
        if code in _OVERSEAS_COLLECTIVITIES:
            return _OVERSEAS_COLLECTIVITIES[code]
        if code[2] in "123456":
            return code[:3]
        raise OperatorError("not an overseas département postcode")
    if 1 <= int(head) <= 95:
        return head
    raise OperatorError("not a postcode of a French département")


@dataclass(frozen=True)
class Province:
    code: str  # ISO 3166-2:BE
    name: str


_BRUSSELS = Province("BE-BRU", "Brussels-Capital Region")
_WALLOON_BRABANT = Province("BE-WBR", "Walloon Brabant")
_FLEMISH_BRABANT = Province("BE-VBR", "Flemish Brabant")
_ANTWERP = Province("BE-VAN", "Antwerp")
_LIMBURG = Province("BE-VLI", "Limburg")
_LIEGE = Province("BE-WLG", "Liège")
_NAMUR = Province("BE-WNA", "Namur")
_HAINAUT = Province("BE-WHT", "Hainaut")
_LUXEMBOURG = Province("BE-WLX", "Luxembourg")
_WEST_FLANDERS = Province("BE-VWV", "West Flanders")
_EAST_FLANDERS = Province("BE-VOV", "East Flanders")

# bpost's ranges: (first postcode of the range, province), sorted.
_BE_RANGES: tuple[tuple[int, Province], ...] = (
    (1000, _BRUSSELS),
    (1300, _WALLOON_BRABANT),
    (1500, _FLEMISH_BRABANT),
    (2000, _ANTWERP),
    (3000, _FLEMISH_BRABANT),
    (3500, _LIMBURG),
    (4000, _LIEGE),
    (5000, _NAMUR),
    (6000, _HAINAUT),
    (6600, _LUXEMBOURG),
    (7000, _HAINAUT),
    (8000, _WEST_FLANDERS),
    (9000, _EAST_FLANDERS),
)
_BE_STARTS = [start for start, _ in _BE_RANGES]


def be_province(postcode: str) -> Province:
    """Belgian postcode → province: 2000 → Antwerp (BE-VAN); Brussels is a region, BE-BRU."""
    code = postcode.strip()
    if len(code) != 4 or not code.isascii() or not code.isdigit() or code[0] == "0":
        raise OperatorError("a Belgian postcode is four digits, 1000 to 9999")
    return _BE_RANGES[bisect_right(_BE_STARTS, int(code)) - 1][1]
