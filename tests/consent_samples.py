"""A notice version and choices the consent tests share: three purposes, every text in fr, nl, en, de."""

from __future__ import annotations

from typing import Any

LOCALES = ("fr", "nl", "en", "de")
BANNER_TEXTS = ("title", "description", "accept_all", "reject_all", "customise", "save", "settings")


def localised(text: str) -> dict[str, str]:
    return {locale: f"{text} ({locale})" for locale in LOCALES}


def purpose(key: str, essential: bool, consent_mode: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        "key": key,
        "essential": essential,
        "title": localised(key.title()),
        "description": localised(f"What {key} cookies do"),
        "services": [{"key": f"{key}-vendor", "name": f"{key} vendor", "provider": "Vendor SAS", "cookies": ["_v"]}],
        "google_consent_mode": list(consent_mode),
    }


def sample_notice(marker: str = "") -> dict[str, Any]:
    """functional (essential), analytics and marketing, with their Google Consent Mode signals."""
    texts = {key: localised(f"{key} {marker}".strip()) for key in BANNER_TEXTS}
    return {
        "purposes": [
            purpose("functional", True, ("security_storage",)),
            purpose("analytics", False, ("analytics_storage",)),
            purpose("marketing", False, ("ad_storage", "ad_user_data", "ad_personalization")),
        ],
        "texts": texts,
        "controller": {"name": "Les Ogres SA", "contact": "dpo@ogres.example"},
        "privacy_policy_url": "https://ogres.example/privacy",
    }
