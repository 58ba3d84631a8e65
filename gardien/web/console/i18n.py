"""The console's words in French and English, and the choice between them.

The choice: the language cookie set by the switch in the header, else the browser's
Accept-Language, else English.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gardien.web.console.texts import TEXTS

LANGUAGES = ("en", "fr")
DEFAULT = "en"
COOKIE = "gardien_lang"


def negotiate(cookie: str | None, accept_language: str | None) -> str:
    if cookie in LANGUAGES:
        return cookie
    ranked: list[tuple[float, int, str]] = []
    for position, part in enumerate((accept_language or "").split(",")[:20]):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        primary = tag.strip().lower().split("-")[0]
        if primary in LANGUAGES and quality > 0:
            ranked.append((-quality, position, primary))
    return min(ranked)[2] if ranked else DEFAULT


def text(lang: str, key: str, **values: Any) -> str:
    catalogue = TEXTS.get(lang, TEXTS[DEFAULT])
    template = catalogue.get(key) or TEXTS[DEFAULT].get(key) or key
    return template.format(**values) if values else template


def translator(lang: str) -> Callable[..., str]:
    def t(key: str, **values: Any) -> str:
        return text(lang, key, **values)

    return t
