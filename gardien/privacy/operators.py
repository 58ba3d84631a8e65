"""Anonymisation and pseudonymisation operators: small, named, validated transformations of one value.

Detection and transformation are kept apart (as in Presidio): an operator knows nothing of where a
value came from. Each operator is a class with a parameter model, ``validate(params)`` and
``operate(value, params, context)``, registered by name in ``OPERATORS``. Callers (the retention
engine, exports, the data map) hold an operator as plain data, ``{"operator": "truncate_ip",
"params": {"v4_prefix": 24}}``, and compile it once with ``compile_operator`` before applying it to
many values. Secrets never travel in the parameters: keys come from the ``OperatorContext``.
"""

from __future__ import annotations

import base64
import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, ClassVar, Generic, Literal, Protocol, TypeVar

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESSIV
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gardien.core.keyring import HmacKey
from gardien.privacy import generalize
from gardien.privacy.errors import OperatorError

Value = Any
P = TypeVar("P", bound="Params")
DOMAIN_PATTERN = r"^[A-Za-z0-9_.:\-/\[\]*]{1,128}$"


class KeySource(Protocol):
    """Where operators get their keys: Gardien's ``Keyring`` (gardien/core/keyring.py) is one."""

    def hmac_key(self, kid: str | None = None) -> HmacKey: ...

    def hmac_keys(self) -> dict[str, HmacKey]: ...

    def encryption_key(self, kid: str | None = None) -> tuple[str, bytes]: ...


@dataclass(frozen=True)
class OperatorContext:
    """What an operator may need beyond its parameters.

    ``scope`` separates tenants: the organisation id, so that one person's pseudonyms differ between
    two organisations of one Gardien. ``subject`` is the person a row is about (set per row by
    ``apply_record``), so that date shifting moves all of one person's dates by the same offset.
    """

    keys: KeySource | None = None
    scope: str = ""
    subject: str | None = None

    def with_subject(self, subject: str | None) -> OperatorContext:
        return OperatorContext(keys=self.keys, scope=self.scope, subject=subject)

    def require_keys(self) -> KeySource:
        if self.keys is None:
            raise OperatorError("this operator needs keys: pass the keyring in the OperatorContext")
        return self.keys


class Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Operator(Generic[P]):
    """One named transformation. Subclasses set ``name``, ``params`` and implement ``operate``."""

    name: ClassVar[str]
    params: type[P]
    summary: ClassVar[str]

    def validate(self, params: Mapping[str, Any] | None) -> P:
        try:
            return self.params.model_validate(dict(params or {}))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "params"
            raise OperatorError(f"{self.name}: {first['msg']}", field=f"params.{where}") from None

    def operate(self, value: Value, params: P, context: OperatorContext) -> Value:
        raise NotImplementedError


OPERATORS: dict[str, Operator[Any]] = {}


def register(operator: Operator[Any]) -> Operator[Any]:
    """Make an operator available by name; a name is registered once."""
    if operator.name in OPERATORS:
        raise ValueError(f"operator {operator.name!r} is already registered")
    OPERATORS[operator.name] = operator
    return operator


class OperatorSpec(BaseModel):
    """An operator as plain data, as a policy or the data map declares it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    operator: str = Field(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_]*$")
    params: dict[str, Any] = Field(default_factory=dict, max_length=16)
    on_invalid: Literal["error", "null"] = Field(
        default="error",
        description="What to do with a value the operator cannot transform: fail, or write null instead.",
    )


Transform = Callable[[Value, OperatorContext], Value]


def compile_operator(spec: OperatorSpec | Mapping[str, Any]) -> Transform:
    """Validate an operator and its parameters once; return the function to apply to each value.

    ``None`` passes through unchanged: there is nothing personal in a missing value.
    """
    if not isinstance(spec, OperatorSpec):
        try:
            spec = OperatorSpec.model_validate(dict(spec))
        except ValidationError as exc:
            first = exc.errors()[0]
            raise OperatorError(first["msg"], field=".".join(str(p) for p in first["loc"])) from None
    operator = OPERATORS.get(spec.operator)
    if operator is None:
        raise OperatorError(f"unknown operator {spec.operator!r}; known: {', '.join(sorted(OPERATORS))}", "operator")
    params = operator.validate(spec.params)
    fallback_to_null = spec.on_invalid == "null"

    def transform(value: Value, context: OperatorContext) -> Value:
        if value is None:
            return None
        try:
            return operator.operate(value, params, context)
        except OperatorError:
            if fallback_to_null:
                return None
            raise

    return transform


def apply(operator: str, value: Value, context: OperatorContext | None = None, /, **params: Any) -> Value:
    """Apply one operator to one value: ``apply("mask", "0612345678", keep_end=2)``."""
    return compile_operator({"operator": operator, "params": params})(value, context or OperatorContext())


# --- IP addresses -------------------------------------------------------------------------------


class TruncateIpParams(Params):
    v4_prefix: int = Field(default=24, ge=0, le=32, description="IPv4 bits kept")
    v6_prefix: int = Field(default=48, ge=0, le=128, description="IPv6 bits kept")


def truncate_ip(value: str, v4_prefix: int = 24, v6_prefix: int = 48) -> str:
    """Zero the host bits: 192.0.2.123 → 192.0.2.0 (/24), 2001:db8:85a3:8d3:… → 2001:db8:85a3:: (/48).

    An IPv4-mapped IPv6 address keeps its IPv4 form and follows the IPv4 rule; otherwise its
    last 32 bits, the IPv4 address, would survive any IPv6 prefix longer than 96 bits.
    """
    text = str(value).strip()
    if ":" not in text:
        quick = _truncate_dotted_quad(text, v4_prefix)
        if quick is not None:
            return quick
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        raise OperatorError("not an IPv4 or IPv6 address") from None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        network = ipaddress.IPv4Network((address.ipv4_mapped, v4_prefix), strict=False)
        return f"::ffff:{network.network_address}"
    prefix = v4_prefix if address.version == 4 else v6_prefix
    return str(ipaddress.ip_network((address, prefix), strict=False).network_address)


_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_DOTTED_QUAD = re.compile(rf"(?:{_OCTET}\.){{3}}{_OCTET}")


def _truncate_dotted_quad(text: str, prefix: int) -> str | None:
    """The common case without `ipaddress` (ten times faster); None when `ipaddress` must decide.

    Accepts exactly what `ipaddress` accepts for IPv4: four ASCII decimal octets, 0-255, without
    leading zeros.
    """
    if _DOTTED_QUAD.fullmatch(text) is None:
        return None
    if prefix == 24:
        return text[: text.rfind(".")] + ".0"
    a, b, c, d = (int(part) for part in text.split("."))
    number = (a << 24 | b << 16 | c << 8 | d) & (0xFFFFFFFF << (32 - prefix)) & 0xFFFFFFFF
    return f"{number >> 24}.{number >> 16 & 255}.{number >> 8 & 255}.{number & 255}"


class TruncateIp(Operator[TruncateIpParams]):
    name = "truncate_ip"
    params = TruncateIpParams
    summary = "Keep the network part of an IP address (/24 for IPv4 and /48 for IPv6 by default)."

    def operate(self, value: Value, params: TruncateIpParams, context: OperatorContext) -> Value:
        return truncate_ip(value, params.v4_prefix, params.v6_prefix)


# --- keyed pseudonyms ---------------------------------------------------------------------------


class HmacParams(Params):
    domain: str = Field(
        default="default",
        pattern=DOMAIN_PATTERN,
        description="What the value is (e.g. users.email): the same value in two domains gets unrelated pseudonyms.",
    )
    length: int = Field(default=32, ge=16, le=64, description="hex characters kept of the HMAC-SHA256")
    normalize: Literal["none", "casefold"] = Field(
        default="none", description="casefold: trim and compare case-insensitively (e-mail addresses)"
    )
    key_id: str | None = Field(
        default=None, max_length=64, description="a key of the keyring; default: the active HMAC key"
    )
    with_key_id: bool = Field(default=True, description="prefix the key id, so that pseudonyms survive rotation")


def _normalised(value: Value, mode: str) -> bytes:
    text = value if isinstance(value, str) else str(value)
    if mode == "casefold":
        text = text.strip().casefold()
    return text.encode("utf-8")


def _hmac_message(context: OperatorContext, domain: str, value: bytes) -> bytes:
    # Fields are NUL-separated and NUL cannot occur in scope or domain, so no two inputs share a message.
    return b"gardien-pseudonym-v1\0" + context.scope.encode() + b"\0" + domain.encode() + b"\0" + value


class KeyedPseudonym(Operator[HmacParams]):
    """HMAC-SHA256 under a keyring key: stable, irreversible, and useless to whoever lacks the key.

    A bare SHA-256 of an e-mail address or phone number is not a pseudonym: the inputs can be
    enumerated (ENISA, Pseudonymisation techniques and best practices, 2019).
    """

    name = "hmac"
    params = HmacParams
    summary = "Keyed, irreversible pseudonym: HMAC-SHA256 with a keyring key, prefixed with the key id."

    def operate(self, value: Value, params: HmacParams, context: OperatorContext) -> Value:
        keys = context.require_keys()
        try:
            key = keys.hmac_key(params.key_id)
        except Exception as exc:
            raise OperatorError(str(exc), "params.key_id") from None
        return self.with_key(key, value, params, context)

    def with_key(self, key: HmacKey, value: Value, params: HmacParams, context: OperatorContext) -> str:
        digest = key.digest(_hmac_message(context, params.domain, _normalised(value, params.normalize))).hex()
        return f"{key.kid}:{digest[: params.length]}" if params.with_key_id else digest[: params.length]

    def every_form(self, value: Value, params: HmacParams, context: OperatorContext) -> list[str]:
        """The value's pseudonym under every HMAC key ever used, to find its records across rotations."""
        keys = context.require_keys()
        return [self.with_key(key, value, params, context) for key in keys.hmac_keys().values()]


# --- reversible pseudonyms ----------------------------------------------------------------------


class EncryptParams(Params):
    domain: str = Field(
        default="default",
        pattern=DOMAIN_PATTERN,
        description="Bound to the token as associated data: a token decrypts only for its domain.",
    )


def _siv_associated_data(context: OperatorContext, domain: str) -> list[bytes]:
    return [b"gardien-pseudonym-v1", context.scope.encode(), domain.encode()]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class ReversiblePseudonym(Operator[EncryptParams]):
    """AES-SIV (RFC 5297): deterministic, so equal values give equal tokens, and reversible with the key.

    A token is ``<key id>:<base64url ciphertext>``; the organisation and the domain are associated
    data, so a token cannot be replayed under another organisation or field. Reversal is
    ``reidentify``; over the API only the dpo role may call it, and each call is audited.
    """

    name = "encrypt"
    params = EncryptParams
    summary = "Keyed, reversible pseudonym: deterministic AES-SIV; reversal restricted to the DPO and audited."

    def operate(self, value: Value, params: EncryptParams, context: OperatorContext) -> Value:
        kid, key = context.require_keys().encryption_key()
        plaintext = (value if isinstance(value, str) else str(value)).encode("utf-8")
        token = AESSIV(key).encrypt(plaintext, _siv_associated_data(context, params.domain))
        return f"{kid}:{_b64(token)}"


def reidentify(token: str, domain: str, context: OperatorContext) -> str:
    """The value behind a reversible pseudonym, or OperatorError if the token is not one of ours."""
    kid, sep, body = token.partition(":")
    if not sep or not kid or not body:
        raise OperatorError("not a reversible pseudonym: expected <key id>:<token>", "token")
    keys = context.require_keys()
    try:
        _, key = keys.encryption_key(kid)
    except Exception:
        raise OperatorError(f"unknown key id {kid!r}", "token") from None
    try:
        ciphertext = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        plaintext = AESSIV(key).decrypt(ciphertext, _siv_associated_data(context, domain))
        return plaintext.decode("utf-8")
    except (ValueError, InvalidTag, UnicodeDecodeError):
        raise OperatorError("the token does not decrypt under this organisation and domain", "token") from None


# --- masking, nulling, replacing ----------------------------------------------------------------


class MaskParams(Params):
    keep_start: int = Field(default=0, ge=0, le=64, description="characters left in clear at the start")
    keep_end: int = Field(default=0, ge=0, le=64, description="characters left in clear at the end")
    char: str = Field(default="*", min_length=1, max_length=1)
    keep_chars: str = Field(default="", max_length=16, description="characters never masked, e.g. '@.' for e-mails")


class Mask(Operator[MaskParams]):
    name = "mask"
    params = MaskParams
    summary = "Replace characters with a mask character, optionally keeping a few at either end."

    def operate(self, value: Value, params: MaskParams, context: OperatorContext) -> Value:
        text = value if isinstance(value, str) else str(value)
        end = len(text) - params.keep_end
        return "".join(
            c if i < params.keep_start or i >= end or c in params.keep_chars else params.char
            for i, c in enumerate(text)
        )


class NoParams(Params):
    pass


class Nullify(Operator[NoParams]):
    name = "null"
    params = NoParams
    summary = "Replace the value with null."

    def operate(self, value: Value, params: NoParams, context: OperatorContext) -> Value:
        return None


class ReplaceParams(Params):
    value: str | int | float | bool | None = Field(default="[REDACTED]")


class Replace(Operator[ReplaceParams]):
    name = "replace"
    params = ReplaceParams
    summary = "Replace the value with a constant."

    def operate(self, value: Value, params: ReplaceParams, context: OperatorContext) -> Value:
        return params.value


# --- generalisation -----------------------------------------------------------------------------


class AgeRangeParams(Params):
    step: int = Field(default=10, ge=1, le=50, description="width of a band, in years")
    top: int = Field(default=90, ge=1, le=150, description="ages from here on form one band, e.g. 90+")


def _integer(value: Value) -> int:
    if isinstance(value, bool):
        raise OperatorError("not a number")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    raise OperatorError("not a whole number")


class AgeRange(Operator[AgeRangeParams]):
    name = "age_range"
    params = AgeRangeParams
    summary = "Age → band: 37 → '30-39', 93 → '90+' (10-year bands, top-coded at 90, by default)."

    def operate(self, value: Value, params: AgeRangeParams, context: OperatorContext) -> Value:
        return generalize.age_range(_integer(value), step=params.step, top=params.top)


def _as_date(value: Value) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.strip()).date()
        except ValueError:
            raise OperatorError("not an ISO 8601 date") from None
    raise OperatorError("not a date")


class BirthYearParams(Params):
    as_date: bool = Field(default=False, description="return 1 January of the year instead of the year number")


class BirthYear(Operator[BirthYearParams]):
    name = "birth_year"
    params = BirthYearParams
    summary = "Date of birth → year (or 1 January of that year, for date columns)."

    def operate(self, value: Value, params: BirthYearParams, context: OperatorContext) -> Value:
        year = _as_date(value).year
        if not params.as_date:
            return year
        first = date(year, 1, 1)
        return first.isoformat() if isinstance(value, str) else first


class FrDepartment(Operator[NoParams]):
    name = "fr_department"
    params = NoParams
    summary = "French postcode → département code (75, 2A, 2B, 971…)."

    def operate(self, value: Value, params: NoParams, context: OperatorContext) -> Value:
        return generalize.fr_department(str(value))


class BeProvinceParams(Params):
    output: Literal["code", "name"] = Field(default="code", description="ISO 3166-2 code (BE-VAN) or English name")


class BeProvince(Operator[BeProvinceParams]):
    name = "be_province"
    params = BeProvinceParams
    summary = "Belgian postcode → province (ISO 3166-2:BE code, Brussels as BE-BRU)."

    def operate(self, value: Value, params: BeProvinceParams, context: OperatorContext) -> Value:
        province = generalize.be_province(str(value))
        return province.code if params.output == "code" else province.name


# --- date shifting ------------------------------------------------------------------------------


class DateShiftParams(Params):
    days: int = Field(default=0, ge=-36_500, le=36_500, description="fixed shift, in days")
    max_days: int = Field(
        default=0,
        ge=0,
        le=3_650,
        description="add a keyed offset in [-max_days, +max_days], the same for every date of one subject",
    )
    domain: str = Field(default="date_shift", pattern=DOMAIN_PATTERN)


class DateShift(Operator[DateShiftParams]):
    """Shift dates: intervals between one person's dates survive, the calendar dates do not.

    With ``max_days`` the offset is derived from an HMAC of the subject (never stored), so it is
    the same for every record of that person and unknown to anyone without the key.
    """

    name = "date_shift"
    params = DateShiftParams
    summary = "Shift dates by a fixed number of days plus an optional keyed per-subject offset."

    def operate(self, value: Value, params: DateShiftParams, context: OperatorContext) -> Value:
        offset = params.days
        if params.max_days:
            if context.subject is None:
                raise OperatorError("max_days needs the row's subject (apply_record's subject_path)")
            key = context.require_keys().hmac_key()
            digest = key.digest(_hmac_message(context, params.domain, context.subject.encode()))
            offset += int.from_bytes(digest[:8], "big") % (2 * params.max_days + 1) - params.max_days
        shift = timedelta(days=offset)
        try:
            if isinstance(value, (date, datetime)):
                return value + shift
            if isinstance(value, str):
                text = value.strip()
                parsed = datetime.fromisoformat(text)
                if len(text) == 10:
                    return (parsed.date() + shift).isoformat()
                return (parsed + shift).isoformat()
        except ValueError:
            raise OperatorError("not an ISO 8601 date or datetime") from None
        except OverflowError:
            raise OperatorError("the shifted date is out of range") from None
        raise OperatorError("not a date")


for _operator in (
    TruncateIp(),
    KeyedPseudonym(),
    ReversiblePseudonym(),
    Mask(),
    Nullify(),
    Replace(),
    AgeRange(),
    BirthYear(),
    FrDepartment(),
    BeProvince(),
    DateShift(),
):
    register(_operator)
