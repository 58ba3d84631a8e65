"""The privacy center in a real headless Chromium (Debian's, driven by Playwright), against a real
Gardien server, a real SMTP server (aiosmtpd) and a host database the request runs over.

A person files a request, reads the code in the e-mail the SMTP server received, types it, follows
the request to its end and downloads the package; in fr, nl and en, with the keyboard where it
matters. Screenshots go to test-artifacts/privacy-center/.
"""

from __future__ import annotations

import io
import re
import time
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest
from axe_playwright_python.sync_playwright import Axe
from fastapi import FastAPI
from playwright.sync_api import Browser, Page, Playwright, expect, sync_playwright

from gardien.app import create_app
from gardien.core import service as core
from gardien.core.runtime import Runtime
from gardien.rights.mail import Mailer
from tests.conftest import IN_CI, serve
from tests.datamap_samples import Host, sqlite_host_fixture  # noqa: F401
from tests.smtp_server import Inbox, body_of, smtp_fixture  # noqa: F401

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "privacy-center"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-sync"]
DPO = {"type": "api_key", "id": "dpo-key", "display": "DPO"}

# One engine is enough in a browser: the workflow's own tests cover both.
pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

WORDS = {
    "access": {"fr": "Accès à mes données", "nl": "Inzage in mijn gegevens", "en": "Access to my data"},
    "erasure": {"fr": "Effacement (droit à l'oubli)", "nl": "Wissing (recht op vergetelheid)", "en": "Erasure"},
    "email": {"fr": "Votre adresse e-mail", "nl": "Uw e-mailadres", "en": "Your e-mail address"},
    "submit": {"fr": "Envoyer la demande", "nl": "Verzoek versturen", "en": "Send the request"},
    "code": {"fr": "Code reçu par e-mail", "nl": "Code ontvangen per e-mail", "en": "Code received by e-mail"},
    "completed": {"fr": "Terminée", "nl": "Afgehandeld", "en": "Completed"},
    "download": {"fr": "Télécharger vos données", "nl": "Uw gegevens downloaden", "en": "Download your data"},
    "subject": {"fr": "Votre code de vérification", "nl": "Uw verificatiecode", "en": "Your verification code"},
}


@dataclass
class Center:
    url: str
    slug: str
    org: str
    app: FastAPI
    inbox: Inbox

    def page_url(self, lang: str) -> str:
        return f"{self.url}/privacy/{self.slug}?lang={lang}"

    def code_for(self, address: str) -> tuple[str, str]:
        """(code, link to the request's page) from the last e-mail to `address`."""
        deadline = time.monotonic() + 10
        while not self.inbox.to(address):
            if time.monotonic() > deadline:
                raise AssertionError(f"no e-mail to {address}")
            time.sleep(0.05)
        body = body_of(self.inbox.to(address)[-1])
        code = re.search(r"\b(\d{6})\b", body)
        link = re.search(r"(http://\S+)", body)
        assert code is not None and link is not None, body
        return code.group(1), link.group(1)


@pytest.fixture
def center(runtime: Runtime, smtp: Inbox, sqlite_host: Host) -> Iterator[Center]:
    slug = f"ogres-{uuid.uuid4().hex[:8]}"
    with runtime.writes.begin() as session:
        org = core.create_org(session, slug=slug, name="Les Ogres", country="BE").id
    app = create_app(runtime=runtime)
    app.state.rights.mailer = Mailer(smtp.settings(runtime.settings))
    app.state.datamaps.register(org, "shop", sqlite_host.map_yaml(), DPO)
    with serve(app) as url:
        yield Center(url, slug, org, app, smtp)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing: `make chromium` installs Debian's chromium"
        if IN_CI:
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    driver: Playwright
    with sync_playwright() as driver:
        launched = driver.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1024, "height": 900}, accept_downloads=True)
    context.set_default_timeout(10_000)
    yield context.new_page()
    context.close()


def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def violations(page: Page) -> list[str]:
    found = Axe().run(page).response["violations"]
    return [f"{v['id']} ({v['impact']}): {v['help']} — {[n['target'] for n in v['nodes']]}" for v in found]


def wait_for_status(page: Page, text: str) -> None:
    deadline = time.monotonic() + 20
    while page.locator("#status").inner_text() != text:
        if time.monotonic() > deadline:
            raise AssertionError(f"status stayed {page.locator('#status').inner_text()!r}")
        time.sleep(0.3)
        page.reload()


@pytest.mark.parametrize("lang", ["fr", "nl", "en"])
def test_a_person_asks_for_a_copy_proves_the_address_and_downloads_it(page: Page, center: Center, lang: str) -> None:
    page.goto(center.page_url(lang))
    expect(page.locator("html")).to_have_attribute("lang", lang)
    assert violations(page) == []
    shot(page, f"{lang}-1-form")
    page.get_by_label(WORDS["access"][lang]).check()
    page.get_by_label(WORDS["email"][lang]).fill("ana@example.org")
    page.get_by_role("button", name=WORDS["submit"][lang]).click()

    code, link = center.code_for("ana@example.org")
    message = center.inbox.to("ana@example.org")[-1]
    assert str(message["Subject"]).startswith(WORDS["subject"][lang])
    assert page.url == link  # the e-mail links to the very page the person is on
    assert violations(page) == []
    shot(page, f"{lang}-2-code")
    page.get_by_label(WORDS["code"][lang]).fill(code)
    page.get_by_label(WORDS["code"][lang]).press("Enter")
    wait_for_status(page, WORDS["completed"][lang])
    assert violations(page) == []
    shot(page, f"{lang}-3-completed")

    with page.expect_download() as caught:
        page.get_by_role("link", name=re.compile(WORDS["download"][lang])).click()
    archive = zipfile.ZipFile(io.BytesIO(Path(caught.value.path()).read_bytes()))
    data = orjson.loads(archive.read("data.json"))
    assert [c["name"] for c in data["tables"]["shop.customers"]] == ["Ana Peeters"]


def test_the_keyboard_alone_files_an_erasure_and_the_kept_invoices_are_explained(
    page: Page, center: Center, sqlite_host: Host
) -> None:
    page.goto(center.page_url("nl"))
    page.keyboard.press("Tab")
    expect(page.locator(".skip")).to_be_focused()
    page.keyboard.press("Enter")  # to the main content, past the language links
    page.keyboard.press("Tab")
    expect(page.locator("#type-access")).to_be_focused()
    # The radio buttons are one tab stop; the arrow keys move through them and choose.
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")
    expect(page.locator("#type-erasure")).to_be_checked()
    page.keyboard.press("Tab")
    expect(page.locator("#email")).to_be_focused()
    page.keyboard.type("ana@example.org")
    page.keyboard.press("Enter")  # submits the form
    code, _ = center.code_for("ana@example.org")
    expect(page.get_by_label(WORDS["code"]["nl"])).to_be_visible()
    page.get_by_label(WORDS["code"]["nl"]).focus()
    page.keyboard.type(code)
    page.keyboard.press("Enter")
    wait_for_status(page, WORDS["completed"]["nl"])
    body = page.locator("main").inner_text()
    assert "Uw gegevens zijn gewist." in body
    assert "Accounting records, 10 years" in body and "2034-03-01" in body  # the map's reason, no nl text
    shot(page, "nl-erasure-completed")
    assert [c["id"] for c in sqlite_host.rows("shop.customers")] == [2, 3]


def test_wrong_inputs_answer_pages_that_say_what_is_wrong(page: Page, center: Center) -> None:
    page.goto(center.page_url("en"))
    page.get_by_role("button", name=WORDS["submit"]["en"]).click()
    summary = page.get_by_role("alert")
    expect(summary).to_contain_text("The request was not sent")
    expect(summary).to_contain_text("Your e-mail address — This field is required.")
    expect(page.locator("#email")).to_have_attribute("aria-invalid", "true")
    assert violations(page) == []
    shot(page, "en-errors")

    page.get_by_label("Rectification").check()
    page.get_by_label(WORDS["email"]["en"]).fill("ana@example.org")
    page.get_by_label("Data item 1").select_option("postcode")
    page.get_by_label("Correct value 1").fill("not a postcode")
    page.get_by_role("button", name=WORDS["submit"]["en"]).click()
    expect(page.get_by_role("alert")).to_contain_text("For a rectification: what to correct — postcode: does not match")
    expect(page.get_by_label("Correct value 1")).to_have_value("not a postcode")
    assert center.inbox.to("ana@example.org") == []

    page.get_by_label("Correct value 1").fill("1050")
    page.get_by_role("button", name=WORDS["submit"]["en"]).click()
    code, link = center.code_for("ana@example.org")
    page.get_by_label(WORDS["code"]["en"]).fill("000000" if code != "000000" else "111111")
    page.get_by_role("button", name="Confirm").click()
    expect(page.locator("#code-error")).to_contain_text("4 attempt(s) left")
    expect(page.get_by_label(WORDS["code"]["en"])).to_have_attribute("aria-invalid", "true")
    shot(page, "en-wrong-code")

    tampered = re.sub(r"k=[0-9a-f]+", "k=" + "0" * 32, link)
    assert page.goto(tampered).status == 403  # type: ignore[union-attr]
    expect(page.get_by_role("alert")).to_contain_text("This link is not valid")
    assert page.goto(f"{center.url}/privacy/no-such-org").status == 404  # type: ignore[union-attr]
    assert page.goto(f"{center.url}/privacy/download/forged.token").status == 403  # type: ignore[union-attr]
    expect(page.get_by_role("alert")).to_contain_text("This link is not valid")
