"""A user agent reduced to a class: enough to read consent statistics, too little to single anyone out."""

from __future__ import annotations

import re

BOT = re.compile(r"bot|crawl|spider|slurp|headlesschrome|lighthouse|curl/|wget/|python-|httpx|okhttp|java/", re.I)
TABLET = re.compile(r"ipad|tablet|kindle|silk/|playbook|sm-t\d|android(?!.*mobile)", re.I)
MOBILE = re.compile(r"mobi|iphone|ipod|android|windows phone|blackberry|opera mini", re.I)
DESKTOP = re.compile(r"windows nt|macintosh|mac os x|x11|linux|cros", re.I)
CLASSES = ("desktop", "mobile", "tablet", "bot", "other")


def ua_class(user_agent: str | None) -> str:
    """desktop, mobile, tablet, bot or other; the order of the tests matters (tablets say Android too)."""
    if not user_agent:
        return "other"
    if BOT.search(user_agent):
        return "bot"
    if TABLET.search(user_agent):
        return "tablet"
    if MOBILE.search(user_agent):
        return "mobile"
    if DESKTOP.search(user_agent):
        return "desktop"
    return "other"
