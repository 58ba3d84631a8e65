"""Dynamic linking (RTS Art. 5): an authentication code bound to one amount and one set of payees.

Pure. The code itself is never stored: a challenge keeps an HMAC over the challenge id, the code,
the amount, the currency and the payees. Verifying recomputes it from what the payer confirms now,
so a changed amount, currency or payee, or a wrong code, all fail the same way (Art. 5(1)(d)), and
no answer tells which element was wrong (Art. 4(2)).
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Iterable
from decimal import Decimal

CODE_DIGITS = 6


def new_code(digits: int = CODE_DIGITS) -> str:
    """A one-time numeric code from the operating system's CSPRNG."""
    return f"{secrets.randbelow(10**digits):0{digits}d}"


def amount_text(amount: Decimal) -> str:
    """One spelling per value: 42.5, 42.50 and 4.25E+1 all bind as '42.5'."""
    return f"{amount.normalize():f}"


def binding_message(challenge_id: str, code: str, amount: Decimal, currency: str, payees: Iterable[str]) -> bytes:
    """The bytes the binding MAC covers. Fields are length-prefixed so no two tuples collide.

    Payees are sorted: a batch (Art. 5(3)(b)) binds the set of payees and the total amount.
    """
    parts = [challenge_id, code, amount_text(amount), currency, *sorted(payees)]
    return b"".join(len(encoded).to_bytes(4, "big") + encoded for encoded in (p.encode() for p in parts))


def bind(key: bytes, message: bytes) -> bytes:
    return hmac.digest(key, message, "sha256")


def matches(key: bytes, message: bytes, binding: bytes) -> bool:
    return hmac.compare_digest(bind(key, message), binding)
