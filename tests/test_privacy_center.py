"""The privacy center's pages over HTTP, on SQLite and PostgreSQL: every odd input answers a page in
the person's language with a 4xx, never a 500; the request's page needs its secret; the e-mail
carries the code and the link; one address cannot file without end."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient

from gardien.core import service as core
from gardien.core.runtime import Runtime
from gardien.rights.mail import Mailer
from tests.smtp_server import Inbox, body_of, smtp_fixture  # noqa: F401

FORM = {"content-type": "application/x-www-form-urlencoded"}


@pytest.fixture
def slug(runtime: Runtime, client: TestClient, smtp: Inbox) -> str:
    name = f"pc-{uuid.uuid4().hex[:8]}"
    with runtime.writes.begin() as session:
        core.create_org(session, slug=name, name="Les Ogres", country="FR")
    client.app.state.rights.mailer = Mailer(smtp.settings(runtime.settings))  # type: ignore[attr-defined]
    return name


def file(client: TestClient, slug: str, **values: str) -> Any:
    return client.post(f"/privacy/{slug}", data=values, follow_redirects=False)


def test_the_form_files_a_request_and_the_mail_links_to_its_page(client: TestClient, slug: str, smtp: Inbox) -> None:
    page = client.get(f"/privacy/{slug}", headers={"accept-language": "nl-BE,nl;q=0.9"})
    assert page.status_code == 200 and '<html lang="nl">' in page.text
    assert page.headers["content-security-policy"].startswith("default-src 'none'")
    filed = file(client, slug, type="access", email="emilie@example.org", lang="fr")
    assert filed.status_code == 303
    where = filed.headers["location"]
    assert re.fullmatch(rf"/privacy/{slug}/requests/[0-9a-f-]{{36}}\?k=[0-9a-f]{{32}}&lang=fr", where)
    [message] = smtp.to("emilie@example.org")
    assert message["Subject"].startswith("Votre code de vérification")
    assert f"http://testserver{where}" in body_of(message)
    status = client.get(where)
    assert status.status_code == 200 and "En attente de votre code" in status.text
    request_id = where.split("/")[4].split("?")[0]
    for bad in ("k=" + "0" * 32, "", "k=zz"):
        assert client.get(f"/privacy/{slug}/requests/{request_id}?{bad}").status_code == 403
    assert client.get(f"/privacy/other-{slug}/requests/{request_id}?{where.split('?')[1]}").status_code == 404


def test_odd_inputs_answer_4xx_pages_never_500(client: TestClient, slug: str) -> None:
    request_id = str(uuid.uuid4())
    too_many = b"&".join(b"a%d=1" % i for i in range(100))
    attempts: list[tuple[str, str, dict[str, Any], int]] = [
        ("POST", f"/privacy/{slug}", {"content": b"type=access&email=%ff%fe%00", "headers": FORM}, 422),
        ("POST", f"/privacy/{slug}", {"content": b"\xff\xfe\x00" * 50, "headers": FORM}, 422),
        ("POST", f"/privacy/{slug}", {"content": too_many, "headers": FORM}, 413),
        ("POST", f"/privacy/{slug}", {"content": b"x=" + b"a" * 40_000, "headers": FORM}, 413),
        ("POST", f"/privacy/{slug}", {"json": {"type": "access", "email": "a@b.org"}}, 422),
        (
            "POST",
            f"/privacy/{slug}",
            {"data": {"type": "nonsense", "email": "not an address", "note": "n" * 3000}},
            422,
        ),
        ("POST", f"/privacy/{slug}", {"data": {"type": "rectification", "email": "a@example.org"}}, 422),
        ("POST", f"/privacy/{slug}", {"data": {"type": "rectification", "email": "a@x.org", "field_1": "na me"}}, 422),
        ("POST", f"/privacy/{slug}", {"data": {"type": "access", "email": "@example.org", "lang": "xx" * 40}}, 422),
        ("POST", "/privacy/%00", {"data": {"type": "access"}}, 404),
        ("GET", f"/privacy/{'s' * 65}", {}, 404),
        ("GET", f"/privacy/{slug}/requests/{request_id}?k={'0' * 32}", {}, 403),
        ("GET", f"/privacy/{slug}/requests/not-an-id?k=1", {}, 404),
        ("GET", f"/privacy/{slug}/requests/{request_id}?k=%C3%A9%00", {}, 403),
        ("GET", f"/privacy/{slug}/requests/{request_id}%0A?k=1", {}, 404),
        ("GET", f"/privacy/{slug}/requests/{'x' * 4000}", {}, 404),
        ("POST", f"/privacy/{slug}/requests/{request_id}/code", {"data": {"k": "0", "code": "123456"}}, 403),
        ("POST", f"/privacy/{slug}/requests/{request_id}/resend", {"data": {}}, 403),
        ("GET", "/privacy/download/%E2%80%AE", {}, 403),
        ("GET", "/privacy/download/eyJwIjoxfQ.AAAA", {}, 403),
    ]
    for method, url, kwargs, status in attempts:
        answer = client.request(method, url, follow_redirects=False, **kwargs)
        assert answer.status_code == status, (method, url[:80], answer.status_code, answer.text[:200])
        if answer.headers["content-type"].startswith("text/html"):
            assert "<h1>" in answer.text
    # A language Gardien does not speak falls back to English.
    assert '<html lang="en">' in client.get(f"/privacy/{slug}?lang=%00").text


def test_wrong_then_right_code_and_the_cap_on_open_requests(client: TestClient, slug: str, smtp: Inbox) -> None:
    where = file(client, slug, type="erasure", email="jan@example.org", lang="en").headers["location"]
    base, query = where.split("?")
    token = query.split("&")[0][2:]
    wrong = client.post(f"{base}/code", data={"k": token, "code": "12345a", "lang": "en"})
    assert wrong.status_code == 422 and "The code has 6 digits." in wrong.text
    code = re.search(r"\b(\d{6})\b", body_of(smtp.to("jan@example.org")[-1]))
    assert code is not None
    other = "000000" if code.group(1) != "000000" else "111111"
    refused = client.post(f"{base}/code", data={"k": token, "code": other, "lang": "en"})
    assert refused.status_code == 422 and "4 attempt(s) left" in refused.text
    resent = client.post(f"{base}/resend", data={"k": token, "lang": "en"}, follow_redirects=False)
    assert resent.status_code == 303 and len(smtp.to("jan@example.org")) == 2
    fresh = re.search(r"\b(\d{6})\b", body_of(smtp.to("jan@example.org")[-1]))
    assert fresh is not None
    accepted = client.post(f"{base}/code", data={"k": token, "code": fresh.group(1)}, follow_redirects=False)
    assert accepted.status_code == 303
    # No data map: the request waits in progress for the DPO.
    assert "In progress" in client.get(accepted.headers["location"]).text

    for _ in range(4):
        assert file(client, slug, type="access", email="jan@example.org").status_code == 303
    capped = file(client, slug, type="access", email="JAN@example.org")
    assert capped.status_code == 429 and "Several requests are already open" in capped.text


def test_without_smtp_the_page_says_so_and_offers_a_new_code(client: TestClient, slug: str) -> None:
    client.app.state.rights.mailer = Mailer(client.app.state.runtime.settings)  # type: ignore[attr-defined]
    filed = file(client, slug, type="access", email="nomail@example.org", lang="en")
    assert filed.status_code == 303 and filed.headers["location"].endswith("&mail=failed")
    page = client.get(filed.headers["location"])
    assert "We could not send the e-mail" in page.text and "Send a new code" in page.text
