"""The admin console in a real headless Chromium (Debian's, driven by Playwright) against a real
Gardien server: every page for every role (allowed or refused), the main flows with the keyboard
alone, axe-core on each page, and screenshots kept in test-artifacts/console/ to be looked at."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from gardien.core.roles import Role
from gardien.core.runtime import Runtime
from tests import registers_samples
from tests.browser import audit
from tests.conftest import auth, serving
from tests.console_support import ADMIN, AUDITOR, DPO, PAGES, World, make_user, make_world

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "console"

# One engine is enough in a browser: the HTTP tests run the console on both.
pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture(scope="module")
def server(runtime: Runtime) -> Iterator[str]:
    with serving(runtime) as base:
        yield base


@pytest.fixture(scope="module")
def world(runtime: Runtime, server: str) -> World:
    with httpx.Client(base_url=server) as http:
        return make_world(runtime, http)


@pytest.fixture(scope="module")
def role_pages(browser: Browser, server: str, world: World) -> Iterator[dict[Role, Page]]:
    """One signed-in page per role, shared by the matrix tests (signing in is tested on its own)."""
    contexts: list[BrowserContext] = []
    pages: dict[Role, Page] = {}
    for role in Role:
        context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-GB")
        context.set_default_timeout(10_000)
        contexts.append(context)
        page = context.new_page()
        sign_in_with_mouse(page, server, world.tokens[role])
        pages[role] = page
    yield pages
    for context in contexts:
        context.close()


def sign_in_with_mouse(page: Page, server: str, token: str) -> None:
    page.goto(f"{server}/console/sign-in")
    page.get_by_label("API key").fill(token)
    page.get_by_role("button", name="Sign in with the key").click()
    page.wait_for_url(lambda url: "/sign-in" not in url)


def sign_in_with_keyboard(page: Page, server: str, token: str) -> None:
    page.goto(f"{server}/console/sign-in")
    tab_to(page, "f-key")
    page.keyboard.type(token)
    page.keyboard.press("Enter")
    page.wait_for_url(f"{server}/console/")


def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def slug(path: str) -> str:
    return path.removeprefix("/console").strip("/").replace("/", "-").replace("{", "").replace("}", "") or "dashboard"


def focused(page: Page) -> str:
    """What has the keyboard focus: an element's id, else its accessible text."""
    described: str = page.evaluate(
        """() => {
            const el = document.activeElement;
            if (!el || el === document.body) return "body";
            return el.id || (el.getAttribute("aria-label") || el.textContent || el.value || "").trim();
        }"""
    )
    return described


def tab_to(page: Page, target: str, *, limit: int = 60) -> None:
    for _ in range(limit):
        if focused(page) == target:
            return
        page.keyboard.press("Tab")
    raise AssertionError(f"Tab never reached {target!r}; focus is on {focused(page)!r}")


# The page × role matrix --------------------------------------------------------------------------


@pytest.mark.parametrize("role", list(Role), ids=lambda r: r.value)
@pytest.mark.parametrize("path", list(PAGES))
def test_each_page_loads_for_the_roles_it_allows_and_is_refused_to_the_others(
    role_pages: dict[Role, Page], server: str, world: World, path: str, role: Role
) -> None:
    page = role_pages[role]
    response = page.goto(server + world.fill(path))
    assert response is not None
    if role in PAGES[path]:
        assert response.status == 200, f"{role.value} {path}"
        expect(page.locator("main h1")).to_be_visible()
        expect(page.get_by_role("navigation", name="Main menu")).to_be_visible()
        shot(page, f"{slug(path)}--{role.value}")
    else:
        assert response.status == 403, f"{role.value} {path}"
        expect(page.get_by_role("heading", name="Not allowed")).to_be_visible()
        expect(page.get_by_text(f"The {role.value} role may not open this page.")).to_be_visible()
        if path in ("/console/", "/console/registers/breaches/new"):
            shot(page, f"refused-{slug(path)}--{role.value}")


@pytest.mark.parametrize("path", list(PAGES))
def test_axe_finds_no_violation_on_any_page(role_pages: dict[Role, Page], server: str, world: World, path: str) -> None:
    role = DPO if DPO in PAGES[path] else ADMIN
    page = role_pages[role]
    page.goto(server + world.fill(path))
    assert audit(page) == []


def test_axe_finds_no_violation_on_the_sign_in_page_in_french(
    new_context: Callable[..., BrowserContext], server: str
) -> None:
    page = new_context(locale="fr-FR").new_page()
    page.goto(f"{server}/console/sign-in")
    expect(page.get_by_role("heading", name="Connexion à la console Gardien")).to_be_visible()
    assert audit(page) == []
    shot(page, "sign-in--fr")


# Keyboard only -----------------------------------------------------------------------------------


def test_sign_in_with_a_password_with_the_keyboard_alone(
    new_context: Callable[..., BrowserContext], runtime: Runtime, server: str, world: World
) -> None:
    email, password = make_user(runtime, world.org, AUDITOR)
    page = new_context().new_page()
    page.goto(f"{server}/console/audit")
    assert "/console/sign-in" in page.url
    assert audit(page) == []
    shot(page, "sign-in--en")

    # A wrong password first: the generic answer, the address kept, the password not.
    tab_to(page, "f-email")
    page.keyboard.type(email)
    page.keyboard.press("Tab")
    assert focused(page) == "f-password"
    page.keyboard.type("not the password")
    page.keyboard.press("Enter")
    expect(page.get_by_role("alert")).to_have_text("This e-mail address is unknown or the password is wrong.")
    expect(page.locator("#f-email")).to_have_value(email)
    expect(page.locator("#f-password")).to_have_value("")
    assert audit(page) == []
    shot(page, "sign-in-failed--en")

    tab_to(page, "f-password")
    page.keyboard.type(password)
    page.keyboard.press("Enter")
    page.wait_for_url(f"{server}/console/audit")
    expect(page.get_by_role("heading", level=1)).to_be_visible()
    expect(page.locator(".who")).to_contain_text(email)
    shot(page, "audit--auditor-password")


def test_a_locked_address_is_told_when_to_try_again(
    new_context: Callable[..., BrowserContext], runtime: Runtime, server: str, world: World
) -> None:
    email, _password = make_user(runtime, world.org, DPO)
    page = new_context(locale="fr-FR").new_page()
    page.goto(f"{server}/console/sign-in")
    for _ in range(5):
        page.get_by_label("Adresse e-mail").fill(email)
        page.get_by_label("Mot de passe").fill("pas le mot de passe")
        page.get_by_role("button", name="Se connecter", exact=True).click()
    expect(page.get_by_role("alert")).to_contain_text("Trop d'échecs de connexion avec cette adresse")
    assert audit(page) == []
    shot(page, "sign-in-locked--fr")


def test_the_skip_link_comes_first_and_moves_focus_to_the_content(role_pages: dict[Role, Page], server: str) -> None:
    page = role_pages[DPO]
    page.goto(f"{server}/console/requests")
    page.keyboard.press("Tab")
    assert focused(page) == "Skip to content"
    expect(page.get_by_role("link", name="Skip to content")).to_be_in_viewport()
    page.keyboard.press("Enter")
    assert focused(page) == "main"


def test_focus_is_visible_on_links_buttons_and_fields(role_pages: dict[Role, Page], server: str, world: World) -> None:
    page = role_pages[DPO]
    page.goto(f"{server}/console/requests/{world.request_id}")
    for target in ("Requests", "extend-reason"):
        tab_to(page, target)
        outline = page.evaluate(
            "() => { const s = getComputedStyle(document.activeElement);"
            " return [s.outlineStyle, parseFloat(s.outlineWidth)]; }"
        )
        assert outline[0] == "solid" and outline[1] >= 2, target


def test_sign_in_open_a_request_and_extend_it_with_the_keyboard_alone(
    new_context: Callable[..., BrowserContext], server: str, world: World
) -> None:
    with httpx.Client(base_url=server, headers=auth(world.tokens[ADMIN])) as api:
        created = api.post("/api/v1/requests", json={"type": "erasure", "email": "karim@example.org"})
        assert created.status_code == 201
        request_id = created.json()["id"]
    page = new_context().new_page()
    page.goto(f"{server}/console/requests")
    assert "/console/sign-in" in page.url

    tab_to(page, "f-key")
    page.keyboard.type(world.tokens[DPO])
    page.keyboard.press("Enter")
    page.wait_for_url(f"{server}/console/requests")
    assert world.tokens[DPO] not in page.url

    tab_to(page, "karim@example.org")
    page.keyboard.press("Enter")
    page.wait_for_url(f"{server}/console/requests/{request_id}")
    expect(page.get_by_role("heading", name="Extend the deadline")).to_be_visible()

    tab_to(page, "extend-reason")
    page.keyboard.type("The data sit in three systems run by two processors.")
    page.keyboard.press("Tab")
    assert focused(page) == "Extend by two months"
    page.keyboard.press("Enter")
    expect(page.get_by_role("status")).to_have_text("The deadline was extended.")
    shot(page, "request-extended--dpo")

    with httpx.Client(base_url=server, headers=auth(world.tokens[ADMIN])) as api:
        after = api.get(f"/api/v1/requests/{request_id}").json()
    assert after["extended"] is True
    assert after["extension_reason"] == "The data sit in three systems run by two processors."


def test_record_a_breach_with_the_keyboard_alone(
    new_context: Callable[..., BrowserContext], server: str, world: World
) -> None:
    page = new_context().new_page()
    sign_in_with_keyboard(page, server, world.tokens[DPO])

    tab_to(page, "Breaches")
    page.keyboard.press("Enter")
    page.wait_for_url(f"{server}/console/registers/breaches")
    tab_to(page, "Record a breach")
    page.keyboard.press("Enter")
    page.wait_for_url(f"{server}/console/registers/breaches/new")

    tab_to(page, "f-title")
    page.keyboard.type("Phishing: a volunteer's mailbox read by an attacker")
    page.keyboard.press("Tab")
    page.keyboard.type("An attacker read the mailbox of a volunteer for two days.")
    tab_to(page, "confidentiality")
    page.keyboard.press("Space")
    tab_to(page, "f-aware_at")
    # Chromium's date-time field, segment by segment in its own (en-US) order: month, day, year,
    # then hour, minute and AM/PM; the year takes up to six digits, so the arrow moves on.
    page.keyboard.type("12052026")
    page.keyboard.press("ArrowRight")
    page.keyboard.type("0630A")
    assert page.locator("#f-aware_at").input_value() == "2026-12-05T06:30"
    tab_to(page, "f-subjects_approx")
    page.keyboard.type("35")
    tab_to(page, "f-risk")
    page.keyboard.type("a high")
    assert page.locator("#f-risk").input_value() == "high"
    tab_to(page, "Save")
    page.keyboard.press("Enter")

    expect(page.get_by_role("status")).to_have_text("Saved.")
    expect(page.get_by_role("heading", level=1)).to_have_text("Phishing: a volunteer's mailbox read by an attacker")
    shot(page, "breach-recorded--dpo")
    with httpx.Client(base_url=server, headers=auth(world.tokens[ADMIN])) as api:
        items = api.get("/api/v1/registers/breaches").json()["items"]
    recorded = next(b for b in items if b["record"]["title"].startswith("Phishing"))
    assert recorded["record"]["aware_at"] == "2026-12-05T06:30:00Z"
    assert recorded["record"]["nature"] == ["confidentiality"]
    assert recorded["record"]["subjects_approx"] == 35
    assert recorded["record"]["risk"] == "high"


def test_a_refused_form_takes_the_focus_to_its_errors(role_pages: dict[Role, Page], server: str) -> None:
    page = role_pages[DPO]
    page.goto(f"{server}/console/registers/breaches/new")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("alert")).to_be_visible()
    assert focused(page) == "error-summary"
    # Each error is named by its field's label, and leads to the field.
    summary = page.locator("#error-summary")
    expect(summary.get_by_role("link", name="Title", exact=True)).to_be_visible()
    summary.get_by_role("link", name="Aware since (UTC)").click()
    assert focused(page) == "f-aware_at"
    shot(page, "breach-form-errors--dpo")
    assert audit(page) == []


def test_publish_the_privacy_notice_and_choose_a_report_period_with_the_keyboard_alone(
    new_context: Callable[..., BrowserContext], server: str, world: World
) -> None:
    with httpx.Client(base_url=server, headers=auth(world.tokens[ADMIN])) as api:
        header = api.put("/api/v1/registers/settings", json=registers_samples.settings())
        assert header.status_code == 200, header.text
    page = new_context().new_page()
    sign_in_with_keyboard(page, server, world.tokens[DPO])

    tab_to(page, "Privacy notice")
    page.keyboard.press("Enter")
    page.wait_for_url(f"{server}/console/reports/notice")
    tab_to(page, "Publish a new version")
    page.keyboard.press("Enter")
    expect(page.get_by_role("status")).to_have_text("A new version is published.")
    expect(page.get_by_text("It is the same as the current version: publishing changes nothing.")).to_be_visible()
    assert audit(page) == []
    shot(page, "notice-published--dpo")
    with httpx.Client(base_url=server, headers=auth(world.tokens[ADMIN])) as api:
        assert [v["version"] for v in api.get("/api/v1/registers/notices").json()["versions"]] == [1]

    tab_to(page, "Reports")
    page.keyboard.press("Enter")
    page.wait_for_url(f"{server}/console/reports")
    tab_to(page, "Period report")
    page.keyboard.press("Enter")
    page.wait_for_url(f"{server}/console/reports/period")
    # A period that ends before it starts: the error beside the field, no file offered.
    tab_to(page, "f-since")
    page.keyboard.type("07012026")
    tab_to(page, "f-until")
    page.keyboard.type("01012026")
    tab_to(page, "Show the report's files")
    page.keyboard.press("Enter")
    expect(page.locator("#e-since")).to_contain_text("must not be after until")
    assert focused(page) == "error-summary"
    assert audit(page) == []
    shot(page, "period-errors--dpo")
    tab_to(page, "f-since")
    page.keyboard.type("01012026")
    tab_to(page, "f-until")
    page.keyboard.type("06302026")
    tab_to(page, "Show the report's files")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="From 2026-01-01 to 2026-06-30")).to_be_visible()
    tab_to(page, "Web page with charts (HTML)")
    page.keyboard.press("Enter")
    page.wait_for_url(lambda url: "/console/reports/period.html" in url)
    expect(page.locator("svg").first).to_be_visible()
    shot(page, "period-report-html--dpo")


@pytest.mark.parametrize("path", ["/console/reports/compliance", "/console/reports/notice", "/console/reports/period"])
def test_the_document_pages_in_french(
    new_context: Callable[..., BrowserContext], server: str, world: World, path: str
) -> None:
    page = new_context(locale="fr-FR").new_page()
    page.goto(f"{server}/console/sign-in")
    page.get_by_label("Clé d'API").fill(world.tokens[AUDITOR])
    page.get_by_role("button", name="Se connecter avec la clé").click()
    page.wait_for_url(lambda url: "/sign-in" not in url)
    page.goto(server + path)
    expect(page.locator("main h1")).to_be_visible()
    assert page.locator("html").get_attribute("lang") == "fr"
    assert audit(page) == []
    shot(page, f"{slug(path)}--fr")


def test_import_a_pia_tool_export_with_the_keyboard_alone(
    new_context: Callable[..., BrowserContext], server: str, world: World
) -> None:
    with httpx.Client(base_url=server, headers=auth(world.tokens[ADMIN])) as api:
        document = api.get(f"/api/v1/registers/dpias/{world.dpia_id}/pia").json()
    document["pia"]["name"] = "Vidéosurveillance du foyer (import)"
    page = new_context().new_page()
    sign_in_with_keyboard(page, server, world.tokens[DPO])
    tab_to(page, "Impact assessments")
    page.keyboard.press("Enter")
    page.wait_for_url(f"{server}/console/registers/dpias")
    tab_to(page, "Import from the PIA tool")
    page.keyboard.press("Enter")
    page.wait_for_url(f"{server}/console/registers/dpias/import")
    tab_to(page, "f-pia")
    # What pasting does: the text arrives at once.
    page.keyboard.insert_text("{not json")
    page.keyboard.press("Tab")
    assert focused(page) == "Import"
    page.keyboard.press("Enter")
    expect(page.locator("#e-pia")).to_contain_text("This is not a JSON object")
    assert focused(page) == "error-summary"
    assert audit(page) == []
    shot(page, "dpia-import-errors--dpo")
    tab_to(page, "f-pia")
    page.keyboard.press("Control+A")
    page.keyboard.insert_text(json.dumps(document))
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    expect(page.get_by_role("status")).to_have_text("The assessment is imported.")
    expect(page.get_by_role("heading", level=1)).to_have_text("Vidéosurveillance du foyer (import)")
    shot(page, "dpia-imported--dpo")


def test_record_a_processor_with_the_keyboard_alone(
    new_context: Callable[..., BrowserContext], server: str, world: World
) -> None:
    page = new_context().new_page()
    sign_in_with_keyboard(page, server, world.tokens[DPO])
    tab_to(page, "Processors")
    page.keyboard.press("Enter")
    page.wait_for_url(f"{server}/console/registers/processors")
    tab_to(page, "Record a processor")
    page.keyboard.press("Enter")
    page.wait_for_url(f"{server}/console/registers/processors/new")
    tab_to(page, "f-name")
    page.keyboard.type("Scaleway")
    page.keyboard.press("Tab")
    assert focused(page) == "f-country"
    page.keyboard.type("FR")
    tab_to(page, "f-services")
    page.keyboard.type("hébergement des serveurs")
    tab_to(page, "f-locations-0-country")
    page.keyboard.type("FR")
    page.keyboard.press("Tab")
    page.keyboard.type("in the")
    assert page.locator("#f-locations-0-transfer_tool").input_value() == "eea"
    tab_to(page, "f-dpa-signed_on")
    page.keyboard.type("03012026")
    tab_to(page, "a_instructions")
    page.keyboard.press("Space")
    tab_to(page, "Save")
    page.keyboard.press("Enter")
    expect(page.get_by_role("status")).to_have_text("Saved.")
    expect(page.get_by_role("heading", level=1)).to_have_text("Scaleway")
    assert audit(page) == []
    shot(page, "processor-recorded--dpo")
    with httpx.Client(base_url=server, headers=auth(world.tokens[ADMIN])) as api:
        items = api.get("/api/v1/registers/processors").json()["items"]
    record = next(i["record"] for i in items if i["record"]["name"] == "Scaleway")
    assert record["locations"] == [{"country": "FR", "transfer_tool": "eea"}]
    assert record["dpa"]["signed_on"] == "2026-03-01"
    assert record["clauses"]["a_instructions"] is True and record["clauses"]["b_confidentiality"] is False


# The DPIA form is long, and Chromium's date fields take a Tab per segment.
LONG_FORM = 400


def test_record_and_edit_a_dpia_with_the_keyboard_alone(
    new_context: Callable[..., BrowserContext], server: str, world: World
) -> None:
    page = new_context().new_page()
    sign_in_with_keyboard(page, server, world.tokens[DPO])
    tab_to(page, "Impact assessments", limit=LONG_FORM)
    page.keyboard.press("Enter")
    page.wait_for_url(f"{server}/console/registers/dpias")
    tab_to(page, "New impact assessment", limit=LONG_FORM)
    page.keyboard.press("Enter")
    page.wait_for_url(f"{server}/console/registers/dpias/new")
    shot(page, "dpia-form-new--dpo")

    # Enter in a text field presses the form's first button, Save (not "add a row"): without a
    # name, the errors come first and what was typed is kept.
    tab_to(page, "f-context-processing", limit=LONG_FORM)
    page.keyboard.type("Badges nominatifs pour entrer dans les trois sites")
    tab_to(page, "f-measures-0-title", limit=LONG_FORM)
    page.keyboard.press("Enter")
    expect(page.locator("#e-name")).to_be_visible()
    assert focused(page) == "error-summary"
    expect(page.locator("#f-context-processing")).to_have_value("Badges nominatifs pour entrer dans les trois sites")
    assert audit(page) == []
    shot(page, "dpia-form-errors--dpo")

    tab_to(page, "f-name", limit=LONG_FORM)
    page.keyboard.type("Badges d'accès aux locaux")
    tab_to(page, "f-measures-0-title", limit=LONG_FORM)
    page.keyboard.type("Journalisation")
    page.keyboard.press("Tab")
    page.keyboard.type("Les passages sont tracés.")
    tab_to(page, "f-measures-1-title", limit=LONG_FORM)
    page.keyboard.type("Chiffrement")
    tab_to(page, "Add a measure", limit=LONG_FORM)
    page.keyboard.press("Enter")
    # The form comes back with a third row, which has the focus; nothing was lost.
    expect(page.locator("#f-measures-2-title")).to_be_focused()
    assert focused(page) == "f-measures-2-title"
    expect(page.locator("#f-measures-1-title")).to_have_value("Chiffrement")
    expect(page.locator("#f-name")).to_have_value("Badges d'accès aux locaux")
    page.keyboard.type("Badges désactivés à distance")

    tab_to(page, "f-risks-illegitimate_access-impacts", limit=LONG_FORM)
    page.keyboard.type("suivi des déplacements")
    page.keyboard.press("Enter")
    page.keyboard.type("usurpation d'identité")
    tab_to(page, "f-risks-illegitimate_access-severity", limit=LONG_FORM)
    page.keyboard.type("3")
    assert page.locator("#f-risks-illegitimate_access-severity").input_value() == "3"
    tab_to(page, "f-risks-illegitimate_access-likelihood", limit=LONG_FORM)
    page.keyboard.type("2")
    tab_to(page, "f-action_plan-0-reference", limit=LONG_FORM)
    page.keyboard.type("3.2")
    assert page.locator("#f-action_plan-0-reference").input_value() == "3.2"
    page.keyboard.press("Tab")
    page.keyboard.type("Désactiver un badge perdu dans l'heure")
    page.keyboard.press("Tab")
    assert focused(page) == "f-action_plan-0-due_on"
    page.keyboard.type("01312027")
    tab_to(page, "f-action_plan-0-owner", limit=LONG_FORM)
    page.keyboard.type("Services généraux")
    page.keyboard.press("Tab")
    assert focused(page) == "f-action_plan-0-status"
    page.keyboard.type("in")
    assert page.locator("#f-action_plan-0-status").input_value() == "in_progress"
    tab_to(page, "f-validation-people_searched", limit=LONG_FORM)
    page.keyboard.press("Space")
    shot(page, "dpia-form-filled--dpo")
    tab_to(page, "Save", limit=LONG_FORM)
    page.keyboard.press("Enter")

    expect(page.get_by_role("status")).to_have_text("Saved.")
    expect(page.get_by_role("heading", level=1)).to_have_text("Badges d'accès aux locaux")
    assert audit(page) == []
    shot(page, "dpia-recorded--dpo")
    with httpx.Client(base_url=server, headers=auth(world.tokens[ADMIN])) as api:
        items = api.get("/api/v1/registers/dpias").json()["items"]
    entry = next(i for i in items if i["record"]["name"] == "Badges d'accès aux locaux")
    record = entry["record"]
    assert record["context"]["processing"] == "Badges nominatifs pour entrer dans les trois sites"
    assert [m["title"] for m in record["measures"]] == ["Journalisation", "Chiffrement", "Badges désactivés à distance"]
    access = record["risks"]["illegitimate_access"]
    assert access["impacts"] == ["suivi des déplacements", "usurpation d'identité"]
    assert (access["severity"], access["likelihood"]) == (3, 2)
    assert record["action_plan"] == [
        {
            "reference": "3.2",
            "action": "Désactiver un badge perdu dans l'heure",
            "due_on": "2027-01-31",
            "owner": "Services généraux",
            "status": "in_progress",
        }
    ]
    assert record["validation"]["people_searched"] is True

    # Edit it: validated by the DPO.
    tab_to(page, "Edit", limit=LONG_FORM)
    page.keyboard.press("Enter")
    page.wait_for_url(f"{server}/console/registers/dpias/{entry['id']}/edit")
    tab_to(page, "f-validation-dpo_status", limit=LONG_FORM)
    page.keyboard.type("f")
    tab_to(page, "f-validation-status", limit=LONG_FORM)
    page.keyboard.type("v")
    tab_to(page, "Save", limit=LONG_FORM)
    page.keyboard.press("Enter")
    expect(page.get_by_role("status")).to_have_text("Saved.")
    expect(page.locator(".toolbar .tag").first).to_have_text("validated")
    shot(page, "dpia-edited--dpo")
    with httpx.Client(base_url=server, headers=auth(world.tokens[ADMIN])) as api:
        after = api.get(f"/api/v1/registers/dpias/{entry['id']}").json()
    assert after["version"] == 2
    assert after["record"]["validation"]["status"] == "validated"
    assert after["record"]["validation"]["dpo_status"] == "favourable"
    assert after["record"]["measures"] == record["measures"], "what was not touched is kept"


def test_the_dpia_form_in_french(new_context: Callable[..., BrowserContext], server: str, world: World) -> None:
    page = new_context(locale="fr-FR").new_page()
    page.goto(f"{server}/console/sign-in")
    page.get_by_label("Clé d'API").fill(world.tokens[DPO])
    page.get_by_role("button", name="Se connecter avec la clé").click()
    page.wait_for_url(lambda url: "/sign-in" not in url)
    page.goto(f"{server}/console/registers/dpias/{world.dpia_id}/edit")
    expect(page.get_by_role("heading", level=1)).to_have_text("Modifier l'analyse d'impact")
    expect(page.get_by_label("Accès illégitime : gravité")).to_have_value("3")
    expect(page.get_by_role("button", name="Ajouter une mesure")).to_be_visible()
    assert audit(page) == []
    shot(page, "dpia-form-edit--fr")
