"""The cookie banner in a real headless Chromium (Debian's, driven by Playwright), against a real
Gardien server and a host page on another origin that embeds it with one script tag.

The host page carries blocked scripts and an iframe of each purpose; a released script records its
name in `window.ran`, and the host server records every request it gets, so "nothing loaded" is
checked both in the page and on the wire. Screenshots of each language go to test-artifacts/banner/.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from string import Template
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlencode, urlparse

import httpx
import pytest
from playwright.sync_api import BrowserContext, Locator, Page, expect

from gardien.core.roles import Role
from tests.browser import audit
from tests.conftest import auth

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "banner"
HOST_PAGE = Template((Path(__file__).parent / "banner_host.html").read_text(encoding="utf-8"))

# One engine is enough in a browser: the consent backend's own tests cover both.
pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

LOCALES = ("fr", "nl", "en", "de")


def localised(fr: str, nl: str, en: str, de: str) -> dict[str, str]:
    return {"fr": fr, "nl": nl, "en": en, "de": de}


TEXTS = {
    "title": localised(
        "Nous respectons votre vie privée",
        "Wij respecteren uw privacy",
        "We respect your privacy",
        "Wir respektieren Ihre Privatsphäre",
    ),
    "description": localised(
        "Nous utilisons des cookies pour mesurer l'audience et vous montrer des offres de nos partenaires. "
        "Vous pouvez tout accepter, tout refuser ou choisir finalité par finalité. Refuser ne limite pas votre "
        "accès au site, et vous pouvez changer d'avis à tout moment via « Paramètres des cookies ».",
        "Wij gebruiken cookies om ons bezoek te meten en u aanbiedingen van onze partners te tonen. U kunt "
        "alles aanvaarden, alles weigeren of per doeleinde kiezen. Weigeren beperkt uw toegang tot de site "
        "niet, en u kunt uw keuze altijd wijzigen via „Cookie-instellingen”.",
        "We use cookies to measure our audience and to show you offers from our partners. You can accept "
        "all, reject all or choose purpose by purpose. Refusing does not limit your access to the site, and "
        "you can change your mind at any time under “Cookie settings”.",
        "Wir verwenden Cookies, um die Nutzung der Website zu messen und Ihnen Angebote unserer Partner zu "
        "zeigen. Sie können alle akzeptieren, alle ablehnen oder je Zweck wählen. Eine Ablehnung schränkt "
        "Ihren Zugang zur Website nicht ein, und Sie können Ihre Wahl jederzeit unter „Cookie-Einstellungen“ "
        "ändern.",
    ),
    "accept_all": localised("Tout accepter", "Alles aanvaarden", "Accept all", "Alle akzeptieren"),
    "reject_all": localised("Tout refuser", "Alles weigeren", "Reject all", "Alle ablehnen"),
    "customise": localised("Personnaliser", "Aanpassen", "Customise", "Anpassen"),
    "save": localised("Enregistrer mes choix", "Mijn keuze opslaan", "Save my choices", "Auswahl speichern"),
    "settings": localised("Paramètres des cookies", "Cookie-instellingen", "Cookie settings", "Cookie-Einstellungen"),
    "preferences_title": localised("Vos préférences", "Uw voorkeuren", "Your preferences", "Ihre Einstellungen"),
}
PURPOSE_TITLES = {
    "functional": localised("Fonctionnement du site", "Werking van de site", "Site operation", "Betrieb der Website"),
    "analytics": localised("Mesure d'audience", "Bezoekersstatistieken", "Audience measurement", "Reichweitenmessung"),
    "marketing": localised("Publicité", "Advertenties", "Advertising", "Werbung"),
}
# Not in the notice: the banner's own words for these (see docs/consent.md, "The banner").
ALWAYS_ON = localised("Toujours actif", "Altijd actief", "Always on", "Immer aktiv")
CLOSE = localised("Fermer", "Sluiten", "Close", "Schließen")


def notice(marker: str = "") -> dict[str, Any]:
    def purpose(key: str, essential: bool, description: dict[str, str], **extra: Any) -> dict[str, Any]:
        return {"key": key, "essential": essential, "title": PURPOSE_TITLES[key], "description": description, **extra}

    texts = {key: {lang: f"{text}{marker}" for lang, text in value.items()} for key, value in TEXTS.items()}
    return {
        "purposes": [
            purpose(
                "functional",
                True,
                localised(
                    "Indispensables au site : session, panier, sécurité et mémorisation de vos choix.",
                    "Nodig voor de site: sessie, winkelmandje, beveiliging en het onthouden van uw keuzes.",
                    "Needed by the site: session, basket, security and remembering your choices.",
                    "Für die Website nötig: Sitzung, Warenkorb, Sicherheit und Speicherung Ihrer Auswahl.",
                ),
                services=[
                    {"key": "gardien", "name": "Gardien", "provider": "Les Ogres SA", "cookies": ["gardien_consent"]}
                ],
                google_consent_mode=["security_storage"],
            ),
            purpose(
                "analytics",
                False,
                localised(
                    "Compter les visites et les pages vues pour améliorer le site.",
                    "Bezoeken en bekeken pagina's tellen om de site te verbeteren.",
                    "Count visits and page views to improve the site.",
                    "Besuche und Seitenaufrufe zählen, um die Website zu verbessern.",
                ),
                services=[
                    {
                        "key": "matomo",
                        "name": "Matomo",
                        "provider": "InnoCraft Ltd",
                        "privacy_policy_url": "https://matomo.org/privacy-policy/",
                        "cookies": ["_pk_id", "_pk_ses"],
                    }
                ],
                google_consent_mode=["analytics_storage"],
            ),
            purpose(
                "marketing",
                False,
                localised(
                    "Vous montrer des offres de nos partenaires adaptées à vos centres d'intérêt.",
                    "U aanbiedingen van onze partners tonen die bij uw interesses passen.",
                    "Show you offers from our partners that match your interests.",
                    "Ihnen Angebote unserer Partner zeigen, die zu Ihren Interessen passen.",
                ),
                services=[
                    {
                        "key": "google-ads",
                        "name": "Google Ads",
                        "provider": "Google Ireland Limited",
                        "privacy_policy_url": "https://policies.google.com/privacy",
                        "cookies": ["_gcl_au"],
                    },
                    {"key": "meta-pixel", "name": "Meta Pixel", "provider": "Meta Platforms Ireland Ltd"},
                ],
                google_consent_mode=["ad_storage", "ad_user_data", "ad_personalization"],
            ),
        ],
        "texts": texts,
        "controller": {"name": "Les Ogres SA", "contact": "dpo@ogres.example"},
        "privacy_policy_url": "https://ogres.example/privacy",
    }


ALL_SCRIPTS = {
    "functional",
    "analytics-src",
    "analytics-inline",
    "marketing-inline",
    "marketing-src",
    "analytics+marketing",
}
ANALYTICS_SCRIPTS = {"functional", "analytics-src", "analytics-inline"}
GRANTED_SIGNALS = {
    "security_storage": "granted",
    "analytics_storage": "granted",
    "ad_storage": "granted",
    "ad_user_data": "granted",
    "ad_personalization": "granted",
}
DENIED_SIGNALS = {key: "granted" if key == "security_storage" else "denied" for key in GRANTED_SIGNALS}
GTAG = """window.dataLayer = [];
      function gtag() { dataLayer.push(arguments); window.gtagCalls.push(Array.from(arguments)); }
      gtag("consent", "default", {analytics_storage: "denied", ad_storage: "denied", ad_user_data: "denied",
                                  ad_personalization: "denied"});"""
CONSENT_MODES = {"gtag": GTAG, "datalayer": "window.dataLayer = [];", "none": ""}


# Servers -----------------------------------------------------------------------------------------


@dataclass
class Site:
    """An organisation's consent setup on a live Gardien server."""

    gardien: str
    site_key: str
    tokens: dict[Role, str]

    def state(self, consent_id: str) -> dict[str, Any]:
        response = httpx.get(
            f"{self.gardien}/api/v1/consent/subjects/{consent_id}", headers=auth(self.tokens[Role.SERVICE])
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def publish(self, body: dict[str, Any]) -> dict[str, Any]:
        response = httpx.post(
            f"{self.gardien}/api/v1/consent/notices", json=body, headers=auth(self.tokens[Role.ADMIN])
        )
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created


@dataclass
class Host:
    """The host page's server, on its own origin; it remembers every path asked of it."""

    url: str
    hits: list[str] = field(default_factory=list)

    def page(self, lang: str | None = "en", locale: str | None = None, consent_mode: str = "gtag") -> str:
        query = {
            "consent_mode": consent_mode,
            **({"lang": lang} if lang else {}),
            **({"locale": locale} if locale else {}),
        }
        return f"{self.url}/?{urlencode(query)}"

    def trackers_fetched(self) -> list[str]:
        return [hit for hit in self.hits if hit.startswith(("/tracker.js", "/frame.html"))]


@pytest.fixture
def site(live_server: str, tokens: dict[Role, str]) -> Site:
    settings = httpx.get(f"{live_server}/api/v1/consent/settings", headers=auth(tokens[Role.ADMIN]))
    assert settings.status_code == 200, settings.text
    created = Site(gardien=live_server, site_key=settings.json()["site_key"], tokens=tokens)
    created.publish(notice())
    return created


def _host_handler(site: Site, host: Host) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlparse(self.path)
            host.hits.append(self.path)
            query = {key: values[0] for key, values in parse_qs(url.query).items()}
            if url.path == "/":
                lang, locale = query.get("lang"), query.get("locale")
                page = HOST_PAGE.substitute(
                    html_lang=f'lang="{lang}"' if lang else "",
                    data_locale=f'data-locale="{locale}"' if locale else "",
                    consent_mode=CONSENT_MODES[query.get("consent_mode", "gtag")],
                    gardien=site.gardien,
                    site_key=site.site_key,
                )
                self._answer("text/html; charset=utf-8", page)
            elif url.path == "/tracker.js":
                self._answer("text/javascript", f"window.ran.push({json.dumps(query['name'])});")
            elif url.path == "/frame.html":
                self._answer("text/html; charset=utf-8", "<!doctype html><title>Partner offers</title><p>Offers</p>")
            else:
                self.send_error(404)

        def _answer(self, content_type: str, body: str) -> None:
            data = body.encode()
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def host(site: Site) -> Iterator[Host]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    found = Host(url=f"http://127.0.0.1:{server.server_address[1]}")
    server.RequestHandlerClass = _host_handler(site, found)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield found
    server.shutdown()
    server.server_close()
    thread.join(10)


# The browser --------------------------------------------------------------------------------------


@pytest.fixture
def page(new_context: Callable[..., BrowserContext]) -> Page:
    return new_context().new_page()


# Helpers ------------------------------------------------------------------------------------------


def first_layer(page: Page, lang: str = "en") -> Locator:
    return page.get_by_role("dialog", name=TEXTS["title"][lang])


def preferences(page: Page, lang: str = "en") -> Locator:
    return page.get_by_role("dialog", name=TEXTS["preferences_title"][lang])


def button(scope: Page | Locator, key: str, lang: str = "en") -> Locator:
    return scope.get_by_role("button", name=TEXTS[key][lang], exact=True)


def is_choice_post(response: Any) -> bool:
    return bool(response.url.endswith("/choices") and response.request.method == "POST")


def choose(page: Page, action: Callable[[], None]) -> dict[str, Any]:
    """Do what makes a choice, and return the server's answer to the banner's POST."""
    with page.expect_response(is_choice_post) as answer:
        action()
    response = answer.value
    assert response.status == 201, response.text()
    # The banner keeps a choice queued until it has read the answer: a reload before that re-sends it.
    page.wait_for_function("localStorage.getItem('gardien_consent_pending') === null")
    body: dict[str, Any] = response.json()
    return body


def ran(page: Page) -> set[str]:
    return set(page.evaluate("window.ran"))


def consent_cookie(context: BrowserContext) -> dict[str, Any]:
    cookies = [cookie for cookie in context.cookies() if cookie["name"] == "gardien_consent"]
    assert len(cookies) == 1, cookies
    return {**cookies[0], "value": json.loads(unquote(cookies[0]["value"]))}


def focused(page: Page) -> str:
    """What has the keyboard focus inside the banner: the dialog, a button's name, or a switch's id."""
    described: str = page.evaluate(
        """() => {
            const active = document.getElementById("gardien-consent").shadowRoot.activeElement;
            if (!active) return "outside:" + document.activeElement.tagName;
            if (active.getAttribute("role") === "dialog") return "dialog:" + active.className;
            if (active.getAttribute("role") === "switch") return "switch:" + active.id;
            return (active.getAttribute("aria-label") || active.textContent).trim();
        }"""
    )
    return described


def tab_to(page: Page, target: str, *, shift: bool = False, limit: int = 20) -> None:
    for _ in range(limit):
        if focused(page) == target:
            return
        page.keyboard.press("Shift+Tab" if shift else "Tab")
    raise AssertionError(f"Tab never reached {target!r}; focus is on {focused(page)!r}")


def settle(page: Page) -> None:
    """Let anything that was released fetch and run before asserting that nothing did."""
    page.wait_for_load_state("networkidle")


# Choices -------------------------------------------------------------------------------------------


def test_reject_all_loads_no_blocked_script_and_the_server_records_the_refusal(
    page: Page, host: Host, site: Site
) -> None:
    page.goto(host.page())
    expect(first_layer(page)).to_be_visible()
    assert ran(page) == {"functional"}, "only the essential purpose runs before a choice"

    answer = choose(page, lambda: button(first_layer(page), "reject_all").click())
    settle(page)
    assert ran(page) == {"functional"}
    assert host.trackers_fetched() == []
    assert page.locator("iframe").get_attribute("src") is None
    expect(first_layer(page)).to_be_hidden()
    expect(button(page, "settings")).to_be_visible()

    consent_id = consent_cookie(page.context)["value"]["id"]
    state = site.state(consent_id)
    assert answer["consent_id"] == consent_id
    assert state["method"] == "reject_all" and state["surface"] == "first_layer" and state["status"] == "valid"
    assert state["states"] == {"functional": "granted", "analytics": "denied", "marketing": "denied"}

    page.reload()
    expect(button(page, "settings")).to_be_visible()
    settle(page)
    expect(first_layer(page)).to_be_hidden()
    assert ran(page) == {"functional"} and host.trackers_fetched() == []


def test_accept_all_loads_every_blocked_script_and_iframe_and_the_server_records_consent(
    page: Page, host: Host, site: Site
) -> None:
    page.goto(host.page())
    choose(page, lambda: button(first_layer(page), "accept_all").click())
    page.wait_for_function("window.ran.length >= 6")
    assert ran(page) == ALL_SCRIPTS
    assert page.evaluate("window.ran.indexOf('analytics-src') < window.ran.indexOf('marketing-src')")
    assert page.locator("iframe").get_attribute("src") == "/frame.html"
    expect(page.frame_locator("iframe").get_by_text("Offers")).to_be_visible()

    cookie = consent_cookie(page.context)
    state = site.state(cookie["value"]["id"])
    assert state["method"] == "accept_all" and state["status"] == "valid"
    assert state["states"] == {"functional": "granted", "analytics": "granted", "marketing": "granted"}
    # The mirror: what was granted, under which notice, until when; the cookie lives no longer.
    assert cookie["value"]["g"] == ["functional", "analytics", "marketing"]
    assert cookie["value"]["h"] == state["notice_sha256"]
    assert cookie["sameSite"] == "Lax" and cookie["secure"] is False  # http here; https adds Secure
    expires_at = datetime.fromisoformat(state["expires_at"]).timestamp()
    assert cookie["value"]["e"] == int(expires_at)
    assert cookie["expires"] <= expires_at + 1


def test_customise_with_analytics_only(page: Page, host: Host, site: Site) -> None:
    page.goto(host.page())
    button(first_layer(page), "customise").click()
    dialog = preferences(page)
    expect(dialog).to_be_visible()
    expect(dialog).to_have_attribute("aria-modal", "true")
    switches = dialog.get_by_role("switch")
    expect(switches).to_have_count(3)
    functional = dialog.get_by_role("switch", name=PURPOSE_TITLES["functional"]["en"])
    expect(functional).to_be_checked()
    expect(functional).to_be_disabled()
    expect(dialog.get_by_text(ALWAYS_ON["en"])).to_be_visible()
    for key in ("analytics", "marketing"):
        toggle = dialog.get_by_role("switch", name=PURPOSE_TITLES[key]["en"])
        expect(toggle).not_to_be_checked()  # off by default
        expect(toggle).to_be_enabled()
    expect(dialog.get_by_role("link", name="Matomo")).to_have_attribute("href", "https://matomo.org/privacy-policy/")
    expect(dialog.get_by_text("(Meta Platforms Ireland Ltd)")).to_be_visible()

    dialog.get_by_role("switch", name=PURPOSE_TITLES["analytics"]["en"]).check()
    choose(page, lambda: button(dialog, "save").click())
    page.wait_for_function("window.ran.includes('analytics-src')")
    settle(page)
    assert ran(page) == ANALYTICS_SCRIPTS
    assert not any("marketing" in hit for hit in host.trackers_fetched())
    expect(dialog).to_be_hidden()
    expect(first_layer(page)).to_be_hidden()

    state = site.state(consent_cookie(page.context)["value"]["id"])
    assert state["method"] == "custom" and state["surface"] == "preferences"
    assert state["states"] == {"functional": "granted", "analytics": "granted", "marketing": "denied"}


def test_closing_the_preferences_without_choosing_is_not_consent(page: Page, host: Host) -> None:
    page.goto(host.page())
    posts: list[str] = []
    page.on("request", lambda request: posts.append(request.url) if request.method == "POST" else None)
    button(first_layer(page), "customise").click()
    dialog = preferences(page)
    dialog.get_by_role("switch", name=PURPOSE_TITLES["marketing"]["en"]).check()
    dialog.get_by_role("button", name=CLOSE["en"]).click()
    expect(dialog).to_be_hidden()
    expect(first_layer(page)).to_be_visible()
    settle(page)
    assert posts == [] and ran(page) == {"functional"} and host.trackers_fetched() == []
    assert [c for c in page.context.cookies() if c["name"] == "gardien_consent"] == []

    page.reload()
    expect(first_layer(page)).to_be_visible()  # asked again: nothing was decided
    assert ran(page) == {"functional"}


# Keyboard and accessibility --------------------------------------------------------------------------


def test_the_whole_flow_works_with_the_keyboard_only(page: Page, host: Host, site: Site) -> None:
    page.goto(host.page())
    expect(first_layer(page)).to_be_visible()
    assert focused(page) == "dialog:gdn-banner", "focus moves into the banner when it opens"

    tab_to(page, TEXTS["customise"]["en"])
    page.keyboard.press("Enter")
    expect(preferences(page)).to_be_visible()
    assert focused(page) == "dialog:gdn-prefs"

    # Focus is trapped in the preferences dialog, both ways round.
    inside = "() => !!document.getElementById('gardien-consent').shadowRoot.activeElement?.closest('.gdn-prefs')"
    for key in ["Tab"] * 12 + ["Shift+Tab"] * 12:
        page.keyboard.press(key)
        assert page.evaluate(inside), f"{key} left the dialog for {focused(page)!r}"

    page.keyboard.press("Escape")
    expect(preferences(page)).to_be_hidden()
    assert focused(page) == TEXTS["customise"]["en"], "focus returns to what opened the dialog"

    page.keyboard.press("Enter")
    expect(preferences(page)).to_be_visible()
    tab_to(page, "switch:gdn-p-analytics-on")
    page.keyboard.press("Space")
    expect(preferences(page).get_by_role("switch", name=PURPOSE_TITLES["analytics"]["en"])).to_be_checked()
    tab_to(page, TEXTS["save"]["en"])
    choose(page, lambda: page.keyboard.press("Enter"))
    assert site.state(consent_cookie(page.context)["value"]["id"])["states"]["analytics"] == "granted"
    assert focused(page) == TEXTS["settings"]["en"], "after a choice, focus rests on the settings button"

    # And back again: the settings button reopens the preferences with the choice shown.
    page.keyboard.press("Space")
    expect(preferences(page)).to_be_visible()
    expect(preferences(page).get_by_role("switch", name=PURPOSE_TITLES["analytics"]["en"])).to_be_checked()
    page.keyboard.press("Escape")
    assert focused(page) == TEXTS["settings"]["en"]


def test_focus_is_visible(page: Page, host: Host) -> None:
    page.goto(host.page())
    expect(first_layer(page)).to_be_visible()
    tab_to(page, TEXTS["reject_all"]["en"])
    outline = button(first_layer(page), "reject_all").evaluate(
        "el => { const s = getComputedStyle(el); return [s.outlineStyle, parseFloat(s.outlineWidth)]; }"
    )
    assert outline[0] == "solid" and outline[1] >= 2


def test_axe_finds_no_violation_in_the_first_layer_or_the_preferences(page: Page, host: Host) -> None:
    page.goto(host.page())
    expect(first_layer(page)).to_be_visible()
    assert audit(page) == []
    button(first_layer(page), "customise").click()
    expect(preferences(page)).to_be_visible()
    assert audit(page) == []


@pytest.mark.parametrize("width", [1280, 375])
def test_accept_and_reject_have_equal_weight(
    new_context: Callable[..., BrowserContext], host: Host, width: int
) -> None:
    page = new_context(viewport={"width": width, "height": 800}).new_page()
    page.goto(host.page())
    properties = [
        "background-color",
        "color",
        "font-family",
        "font-size",
        "font-weight",
        "font-style",
        "text-decoration-line",
        "text-transform",
        "letter-spacing",
        "padding-top",
        "padding-right",
        "padding-bottom",
        "padding-left",
        "border-top-width",
        "border-top-style",
        "border-top-color",
        "border-bottom-width",
        "border-top-left-radius",
        "box-shadow",
        "opacity",
    ]
    measure = """(el, properties) => {
        const style = getComputedStyle(el);
        const box = el.getBoundingClientRect();
        return {style: Object.fromEntries(properties.map(p => [p, style.getPropertyValue(p)])),
                width: Math.round(box.width * 10) / 10, height: Math.round(box.height * 10) / 10};
    }"""
    for layer in ("first layer", "preferences"):
        if layer == "preferences":
            button(first_layer(page), "customise").click()
        scope = first_layer(page) if layer == "first layer" else preferences(page)
        expect(scope).to_be_visible()
        accept = button(scope, "accept_all").evaluate(measure, properties)
        reject = button(scope, "reject_all").evaluate(measure, properties)
        assert accept == reject, layer
        assert accept["width"] > 0 and accept["height"] >= 44
        if width < 640:
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / f"en-{layer.replace(' ', '-')}-{width}px.png"))


# Withdrawal, re-asking, retries ----------------------------------------------------------------------


def reload_with_marketing_blocked(page: Page, host: Host) -> None:
    """Reload a page whose choice grants analytics only: marketing neither runs nor is fetched."""
    already = len(host.hits)
    page.reload()
    page.wait_for_function("window.ran.includes('analytics-src')")
    settle(page)
    assert ran(page) == ANALYTICS_SCRIPTS
    assert not any("marketing" in hit for hit in host.hits[already:])
    assert page.locator("iframe").get_attribute("src") is None


def test_the_settings_button_reopens_and_a_withdrawal_un_grants(page: Page, host: Host, site: Site) -> None:
    page.goto(host.page())
    choose(page, lambda: button(first_layer(page), "accept_all").click())
    page.reload()
    # Released from the cookie's mirror on load, before and whatever the network answers.
    page.wait_for_function("window.ran.includes('marketing-src')")
    page.evaluate("() => { window.changes = []; Gardien.consent.onChange(states => window.changes.push(states)); }")
    assert page.evaluate("Gardien.consent.get('marketing')") is True

    button(page, "settings").click()
    dialog = preferences(page)
    expect(dialog).to_be_visible()
    marketing = dialog.get_by_role("switch", name=PURPOSE_TITLES["marketing"]["en"])
    expect(marketing).to_be_checked()
    marketing.uncheck()
    choose(page, lambda: button(dialog, "save").click())

    state = site.state(consent_cookie(page.context)["value"]["id"])
    assert state["states"] == {"functional": "granted", "analytics": "granted", "marketing": "denied"}
    assert page.evaluate("window.changes") == [{"functional": True, "analytics": True, "marketing": False}]
    assert page.evaluate("[Gardien.consent.get('marketing'), Gardien.consent.get('analytics')]") == [False, True]

    reload_with_marketing_blocked(page, host)


def test_a_returning_visitor_s_choice_applies_from_the_cookie_without_the_network(page: Page, host: Host) -> None:
    page.goto(host.page())
    choose(page, lambda: button(first_layer(page), "accept_all").click())
    page.route("**/api/v1/consent/public/**", lambda route: route.abort("internetdisconnected"))
    page.reload()
    page.wait_for_function("window.ran.length >= 6")
    assert ran(page) == ALL_SCRIPTS
    assert page.evaluate("window.gtagCalls")[1:] == [["consent", "update", GRANTED_SIGNALS]]
    expect(first_layer(page)).to_have_count(0)  # no notice, no banner: nothing to ask with


def test_the_server_s_answer_overrides_the_cookie(page: Page, host: Host, site: Site) -> None:
    page.goto(host.page())
    choose(page, lambda: button(first_layer(page), "accept_all").click())
    consent_id = consent_cookie(page.context)["value"]["id"]
    withdrawn = httpx.post(
        f"{site.gardien}/api/v1/consent/subjects/{consent_id}/withdraw",
        json={"purposes": ["marketing"]},
        headers=auth(site.tokens[Role.SERVICE]),
    )
    assert withdrawn.status_code == 201, withdrawn.text

    with page.expect_response(lambda r: f"/choices/{consent_id}" in r.url):
        page.reload()
    page.wait_for_function("!Gardien.consent.get('marketing')")
    assert consent_cookie(page.context)["value"]["g"] == ["functional", "analytics"]
    reload_with_marketing_blocked(page, host)
    expect(first_layer(page)).to_be_hidden()


def test_an_expired_choice_asks_again_and_releases_nothing(page: Page, host: Host) -> None:
    page.goto(host.page())
    choose(page, lambda: button(first_layer(page), "accept_all").click())
    cookie = consent_cookie(page.context)
    # A choice past its expiry whose cookie is still there (a clock set back, a cookie kept too long).
    stale = {**cookie["value"], "e": int(time.time()) - 60}
    page.context.add_cookies(
        [{"name": "gardien_consent", "value": quote(json.dumps(stale)), "url": host.url, "expires": time.time() + 3600}]
    )
    page.reload()
    expect(first_layer(page)).to_be_visible()
    settle(page)
    assert ran(page) == {"functional"}
    assert page.evaluate("Gardien.consent.get('analytics')") is False
    answer = choose(page, lambda: button(first_layer(page), "reject_all").click())
    assert answer["consent_id"] == cookie["value"]["id"], "the consent id outlives the choice"


def test_a_new_notice_version_asks_again(page: Page, host: Host, site: Site) -> None:
    page.goto(host.page())
    choose(page, lambda: button(first_layer(page), "accept_all").click())
    site.publish(notice(marker=" ·"))
    page.reload()
    expect(page.get_by_role("dialog", name=f"{TEXTS['title']['en']} ·")).to_be_visible()
    assert page.evaluate("Gardien.consent.get('marketing')") is False
    answer = choose(page, lambda: page.get_by_role("button", name=f"{TEXTS['reject_all']['en']} ·").click())
    assert answer["notice_version"] == 2 and answer["states"]["marketing"] == "denied"
    assert answer["consent_id"] == consent_cookie(page.context)["value"]["id"]


def test_a_choice_made_offline_is_applied_at_once_and_sent_when_the_server_answers(
    page: Page, host: Host, site: Site
) -> None:
    failures = {"left": 2}

    def flaky(route: Any) -> None:
        if route.request.method == "POST" and failures["left"]:
            failures["left"] -= 1
            route.abort("internetdisconnected")
        else:
            route.continue_()

    page.route("**/choices", flaky)
    page.goto(host.page())
    with page.expect_response(lambda r: is_choice_post(r) and r.status == 201, timeout=15_000) as answer:
        button(first_layer(page), "accept_all").click()
        page.wait_for_function("window.ran.length >= 6")  # applied before the server has it
    assert failures["left"] == 0
    assert answer.value.json()["method"] == "accept_all"
    assert site.state(consent_cookie(page.context)["value"]["id"])["states"]["marketing"] == "granted"
    assert page.evaluate("localStorage.getItem('gardien_consent_pending')") is None


# Global Privacy Control ----------------------------------------------------------------------------


def test_gpc_records_a_refusal_without_showing_the_banner_and_a_later_choice_replaces_it(
    new_context: Callable[..., BrowserContext], host: Host, site: Site
) -> None:
    context = new_context(extra_http_headers={"Sec-GPC": "1"})
    context.add_init_script("Object.defineProperty(Navigator.prototype, 'globalPrivacyControl', {get: () => true})")
    page = context.new_page()
    with page.expect_response(is_choice_post) as answer:
        page.goto(host.page())
    assert answer.value.status == 201, answer.value.text()
    expect(button(page, "settings")).to_be_visible()
    expect(first_layer(page)).to_be_hidden()
    settle(page)
    assert ran(page) == {"functional"} and host.trackers_fetched() == []
    state = site.state(consent_cookie(context)["value"]["id"])
    assert state["method"] == "gpc"
    assert state["states"] == {"functional": "granted", "analytics": "denied", "marketing": "denied"}

    # The person may still choose otherwise; GPC does not override a valid explicit choice.
    button(page, "settings").click()
    choose(page, lambda: button(preferences(page), "accept_all").click())
    page.reload()
    page.wait_for_function("window.ran.length >= 6")
    settle(page)
    assert site.state(consent_cookie(context)["value"]["id"])["method"] == "accept_all"


# Languages ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("lang", LOCALES)
def test_each_language_comes_from_the_notice(page: Page, host: Host, lang: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.goto(host.page(lang=f"{lang}-BE"))
    banner = first_layer(page, lang)
    expect(banner).to_be_visible()
    expect(banner).to_contain_text(TEXTS["description"][lang][:40])
    for key in ("accept_all", "reject_all", "customise"):
        expect(button(banner, key, lang)).to_be_visible()
    page.wait_for_timeout(100)
    page.screenshot(path=str(ARTIFACTS / f"{lang}-first-layer.png"))

    button(banner, "customise", lang).click()
    dialog = preferences(page, lang)
    expect(dialog).to_be_visible()
    for titles in PURPOSE_TITLES.values():
        expect(dialog.get_by_role("switch", name=titles[lang])).to_have_count(1)
    expect(dialog.get_by_text(ALWAYS_ON[lang])).to_be_visible()
    expect(dialog.get_by_role("button", name=CLOSE[lang])).to_be_visible()
    expect(button(dialog, "save", lang)).to_be_visible()
    assert dialog.evaluate("el => el.closest('[lang]').lang") == lang
    page.wait_for_timeout(200)
    page.screenshot(path=str(ARTIFACTS / f"{lang}-preferences.png"))


@pytest.mark.parametrize(
    ("html_lang", "data_locale", "browser_locale", "expected"),
    [
        ("en", "nl", "fr-FR", "nl"),  # data-locale on the script tag first
        ("de", None, "fr-FR", "de"),  # then the page's <html lang>
        (None, None, "fr-BE", "fr"),  # then the browser's languages
        ("es", None, "it-IT", "en"),  # else English
    ],
)
def test_the_language_is_chosen_from_the_tag_the_page_or_the_browser(
    new_context: Callable[..., BrowserContext],
    host: Host,
    site: Site,
    html_lang: str | None,
    data_locale: str | None,
    browser_locale: str,
    expected: str,
) -> None:
    page = new_context(locale=browser_locale).new_page()
    page.goto(host.page(lang=html_lang, locale=data_locale))
    expect(first_layer(page, expected)).to_be_visible()
    answer = choose(page, lambda: button(first_layer(page, expected), "reject_all", expected).click())
    assert answer["states"]["analytics"] == "denied"
    assert consent_cookie(page.context)["value"]["id"] == answer["consent_id"]


# Google Consent Mode v2 ------------------------------------------------------------------------------


def test_consent_mode_is_updated_through_gtag(page: Page, host: Host) -> None:
    page.goto(host.page(consent_mode="gtag"))
    choose(page, lambda: button(first_layer(page), "reject_all").click())
    calls = page.evaluate("window.gtagCalls")
    assert calls[0][:2] == ["consent", "default"]  # the page's own default, before the banner
    assert calls[1:] == [["consent", "update", DENIED_SIGNALS]]

    button(page, "settings").click()
    choose(page, lambda: button(preferences(page), "accept_all").click())
    assert page.evaluate("window.gtagCalls")[-1] == ["consent", "update", GRANTED_SIGNALS]

    page.reload()  # a returning visitor: the update comes from the cookie, without asking the server
    page.wait_for_function("window.gtagCalls.length >= 2")
    settle(page)
    assert page.evaluate("window.gtagCalls")[1:] == [["consent", "update", GRANTED_SIGNALS]]


def test_consent_mode_is_updated_through_the_data_layer_when_gtag_is_not_defined(page: Page, host: Host) -> None:
    page.goto(host.page(consent_mode="datalayer"))
    button(first_layer(page), "customise").click()
    preferences(page).get_by_role("switch", name=PURPOSE_TITLES["analytics"]["en"]).check()
    choose(page, lambda: button(preferences(page), "save").click())
    entries = page.evaluate("dataLayer.map(e => [Object.prototype.toString.call(e), Array.from(e)])")
    expected = {**DENIED_SIGNALS, "analytics_storage": "granted"}
    assert entries == [["[object Arguments]", ["consent", "update", expected]]]


def test_no_consent_mode_call_on_a_page_without_it(page: Page, host: Host) -> None:
    page.goto(host.page(consent_mode="none"))
    choose(page, lambda: button(first_layer(page), "accept_all").click())
    assert page.evaluate("typeof window.dataLayer") == "undefined"
    assert page.evaluate("window.gtagCalls") == []
