"""The audit ledger's HTTP API as an application and an auditor see it: appending, validation and
limits, queries, proofs and checkpoints, exports, and the documentation endpoints.

Everything is checked from the outside: canonical bytes with the independent `rfc8785` package,
proofs with the Merkle verifiers, signatures with the published public keys only.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import hmac
import io
import json
import re
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import rfc8785
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from gardien.audit.checkpoint import Checkpoint, Note, NoteVerifier, check_note
from gardien.audit.merkle import verify_consistency, verify_inclusion
from gardien.audit.models import EVENTS
from gardien.audit.offline import verify_export
from gardien.core.errors import NotFound
from gardien.core.roles import Role
from gardien.core.runtime import Runtime
from tests.conftest import auth, sample_event

PROBLEM_JSON = "application/problem+json"
EVENTS_URL = "/api/v1/audit/events"
BATCH_URL = "/api/v1/audit/events/batch"
RFC3339_UTC = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z"
CSV_COLUMNS = [
    *("seq", "id", "occurred_at", "recorded_at", "module", "action", "crud", "outcome", "reason"),
    *("actor_type", "actor_id", "actor_display", "target_type", "target_id", "target_display"),
    *("source_ip", "source_user_agent", "request_id", "legal_basis", "data_categories", "changes", "fields"),
    "leaf_hash",
]
MANIFEST_MEMBERS = {
    "schema",
    "export_id",
    "org",
    "created_at",
    "format",
    "filter",
    "count",
    "first_seq",
    "last_seq",
    "payload_sha256",
    "payload_hmac",
    "checkpoint",
    "signature",
}


# --- helpers ----------------------------------------------------------------------------------


def canonical(event: dict[str, Any]) -> bytes:
    return bytes(rfc8785.dumps(event))


def leaf_of(event: dict[str, Any]) -> bytes:
    return hashlib.sha256(b"\x00" + canonical(event)).digest()


def ledger_size(runtime: Runtime, org_id: str) -> int:
    with runtime.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(EVENTS).where(EVENTS.c.org_id == org_id)).scalar_one())


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["type"].startswith("https://gardien.dev/problems/")
    assert body["title"] and "detail" in body
    return body


def error_fields(response: httpx.Response) -> list[str]:
    body = assert_problem(response, 422)
    assert body["type"].endswith("/validation")
    return [e["field"] for e in body["errors"]]


def append(client: TestClient, token: str, event: dict[str, Any]) -> dict[str, Any]:
    response = client.post(EVENTS_URL, json=event, headers=auth(token))
    assert response.status_code == 201, response.text
    receipt: dict[str, Any] = response.json()
    return receipt


def append_batch(client: TestClient, token: str, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    response = client.post(BATCH_URL, json={"events": events}, headers=auth(token))
    assert response.status_code == 201, response.text
    receipts: list[dict[str, Any]] = response.json()["receipts"]
    return receipts


def get_event(client: TestClient, token: str, event_id: str) -> dict[str, Any]:
    response = client.get(f"{EVENTS_URL}/{event_id}", headers=auth(token))
    assert response.status_code == 200, response.text
    event: dict[str, Any] = response.json()
    return event


def list_all(client: TestClient, token: str, **params: Any) -> list[dict[str, Any]]:
    """Every event matching the filter, walking the cursor."""
    events: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        query = dict(params, **({"cursor": cursor} if cursor else {}))
        response = client.get(EVENTS_URL, params=query, headers=auth(token))
        assert response.status_code == 200, response.text
        page = response.json()
        events.extend(page["events"])
        cursor = page["next_cursor"]
        if cursor is None:
            return events


def verifiers(client: TestClient) -> list[NoteVerifier]:
    response = client.get("/api/v1/audit/keys")
    assert response.status_code == 200
    return [NoteVerifier.from_vkey(key["vkey"]) for key in response.json()]


def open_checkpoint(runtime: Runtime, org_id: str, note_text: str, trusted: list[NoteVerifier]) -> Checkpoint:
    """Check a checkpoint note's signature with the published keys and return its body."""
    note = Note.parse(note_text)
    verdict = check_note(note, trusted)
    assert verdict.ok, verdict.detail
    checkpoint = Checkpoint.parse(note.body)
    assert checkpoint.origin == f"{runtime.settings.instance_name}/audit/{org_id}"
    assert len(checkpoint.extensions) == 1 and checkpoint.extensions[0].startswith("time ")
    return checkpoint


def wait_for_checkpoint(client: TestClient, token: str, size: int, timeout: float = 2.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        response = client.get("/api/v1/audit/checkpoints/latest", headers=auth(token))
        if response.status_code == 200 and response.json()["size"] >= size:
            latest: dict[str, Any] = response.json()
            return latest
        assert time.monotonic() < deadline, f"no checkpoint of size ≥ {size} after {timeout} s: {response.text}"
        time.sleep(0.02)


def key_id(token: str) -> str:
    return token.split("_")[1]


# --- appending --------------------------------------------------------------------------------


def test_append_one_event_returns_a_receipt_that_matches_the_sealed_event(
    client: TestClient, tokens: dict[Role, str], org: str
) -> None:
    writer, reader = tokens[Role.SERVICE], tokens[Role.AUDITOR]
    receipt = append(client, writer, sample_event())
    assert set(receipt) == {"id", "seq", "recorded_at", "leaf_hash"}
    assert receipt["seq"] == 0
    assert receipt["recorded_at"].endswith("Z")
    event = get_event(client, reader, receipt["id"])
    assert event["schema"] == "gardien.audit/v1"
    assert (event["id"], event["org"], event["seq"]) == (receipt["id"], org, 0)
    assert event["recorded_at"] == receipt["recorded_at"]
    assert event["occurred_at"] == event["recorded_at"], "occurred_at defaults to recorded_at"
    assert event["outcome"] == "success"
    assert event["actor"] == {"type": "user", "id": "u-42", "display": "Émilie Dupont"}
    assert event["changes"] == {"before": {"fee": 1200}, "after": {"fee": 1500}}
    # Absent members are omitted, never null.
    assert "reason" not in event and "request_id" not in event and "fields" not in event
    assert None not in event.values()
    assert receipt["leaf_hash"] == leaf_of(event).hex()


def test_append_batch_gives_consecutive_receipts_for_events_as_sealed(
    client: TestClient, tokens: dict[Role, str]
) -> None:
    writer, reader = tokens[Role.OPERATOR], tokens[Role.DPO]
    first = append(client, writer, sample_event())
    events = [
        sample_event(action=f"artist.step-{i}", occurred_at="2026-03-01T10:00:00+02:00", request_id=f"r-{i}")
        for i in range(5)
    ]
    receipts = append_batch(client, writer, events)
    assert [r["seq"] for r in receipts] == list(range(first["seq"] + 1, first["seq"] + 6))
    assert len({r["id"] for r in receipts}) == 5
    assert len({r["recorded_at"] for r in receipts}) == 1, "one batch, one transaction"
    for index, receipt in enumerate(receipts):
        event = get_event(client, reader, receipt["id"])
        assert event["seq"] == receipt["seq"]
        assert event["action"] == f"artist.step-{index}"
        assert event["request_id"] == f"r-{index}"
        assert event["occurred_at"] == "2026-03-01T08:00:00.000000Z", "normalised to UTC, six digits"
        assert receipt["leaf_hash"] == leaf_of(event).hex()


def test_free_json_members_keep_their_values_within_the_safe_number_range(
    client: TestClient, tokens: dict[Role, str]
) -> None:
    fields = {"max": 2**53 - 1, "min": -(2**53 - 1), "tenth": 0.1, "big": 1e300, "nested": [{"k": None}, True]}
    receipt = append(client, tokens[Role.SERVICE], sample_event(fields=fields))
    event = get_event(client, tokens[Role.ADMIN], receipt["id"])
    assert event["fields"] == fields
    assert receipt["leaf_hash"] == leaf_of(event).hex()


# --- validation -------------------------------------------------------------------------------


def _without_actor_id(event: dict[str, Any]) -> dict[str, Any]:
    event["actor"] = {"type": "user"}
    return event


INVALID_EVENTS: dict[str, tuple[dict[str, Any], str]] = {
    "missing actor id": (_without_actor_id(sample_event()), "actor.id"),
    "empty actor id": (sample_event(actor={"type": "user", "id": ""}), "actor.id"),
    "NUL in actor id": (sample_event(actor={"type": "user", "id": "u\x00"}), "actor.id"),
    "NUL in target id": (sample_event(target={"type": "artist", "id": "a\x00"}), "target.id"),
    "unknown member": (sample_event(colour="red"), "colour"),
    "unknown nested member": (sample_event(actor={"type": "user", "id": "u", "email": "e@x"}), "actor.email"),
    "unknown source member": (sample_event(source={"ip": "203.0.113.7", "port": 443}), "source.port"),
    "bad IPv4": (sample_event(source={"ip": "999.0.0.1"}), "source.ip"),
    "not an IP": (sample_event(source={"ip": "localhost"}), "source.ip"),
    "naive occurred_at": (sample_event(occurred_at="2026-03-01T10:00:00"), "occurred_at"),
    "unknown crud": (sample_event(crud="destroy"), "crud"),
    "unknown outcome": (sample_event(outcome="maybe"), "outcome"),
    "upper-case module": (sample_event(module="Bookings"), "module"),
    "action too long": (sample_event(action="a" * 129), "action"),
    "bad action": (sample_event(action="artist..update"), "action"),
    "bad data category": (sample_event(data_categories=["user.contact", "User Email"]), "data_categories.1"),
    "integer 2^53": (sample_event(fields={"n": 2**53}), "fields.n"),
    "integer -2^53": (sample_event(fields={"n": -(2**53)}), "fields.n"),
    "deep big integer": (sample_event(changes={"before": {"fee": [1, 2**60]}}), "changes.before.fee.1"),
}


@pytest.mark.parametrize("case", sorted(INVALID_EVENTS))
def test_invalid_event_is_a_422_naming_the_field_and_writes_nothing(
    case: str, client: TestClient, tokens: dict[Role, str], runtime: Runtime, org: str
) -> None:
    event, field = INVALID_EVENTS[case]
    append(client, tokens[Role.SERVICE], sample_event())
    before = ledger_size(runtime, org)
    single = client.post(EVENTS_URL, json=event, headers=auth(tokens[Role.SERVICE]))
    assert field in error_fields(single)
    batch = client.post(BATCH_URL, json={"events": [sample_event()] * 3 + [event]}, headers=auth(tokens[Role.SERVICE]))
    assert f"events.3.{field}" in error_fields(batch)
    assert ledger_size(runtime, org) == before


MINIMAL = b'{"module":"m","action":"a","crud":"read","actor":{"type":"u","id":"1"},'
RAW_INVALID_BODIES: dict[str, tuple[bytes, str]] = {
    "float overflow": (MINIMAL + b'"fields":{"x":1e400}}', "fields.x"),
    "NaN": (MINIMAL + b'"fields":{"x":NaN}}', "fields.x"),
    "-Infinity": (MINIMAL + b'"changes":{"after":-Infinity}}', "changes.after"),
    "5000-digit integer": (MINIMAL + b'"fields":{"x":' + b"9" * 5000 + b"}}", "body"),
    "lone surrogate in a member name": (MINIMAL + b'"fields":{"\\ud800":1}}', "fields.\\ud800"),
    "lone surrogate in a value": (MINIMAL + b'"fields":{"k":"\\udfff"}}', "fields.k"),
    "not JSON": (b'{"module": "m", ', "body"),
    "not an object": (b"[1, 2]", "body"),
    "not UTF-8": (b'{"module":"\xff"}', "body"),
}


@pytest.mark.parametrize("case", sorted(RAW_INVALID_BODIES))
def test_invalid_json_values_are_a_422_naming_the_member(
    case: str, client: TestClient, tokens: dict[Role, str], runtime: Runtime, org: str
) -> None:
    body, field = RAW_INVALID_BODIES[case]
    headers = {**auth(tokens[Role.SERVICE]), "content-type": "application/json"}
    response = client.post(EVENTS_URL, content=body, headers=headers)
    assert field in error_fields(response)
    assert ledger_size(runtime, org) == 0


def test_unknown_members_of_the_batch_envelope_and_an_empty_batch_are_refused(
    client: TestClient, tokens: dict[Role, str], runtime: Runtime, org: str
) -> None:
    token = tokens[Role.SERVICE]
    extra = client.post(BATCH_URL, json={"events": [sample_event()], "atomic": True}, headers=auth(token))
    assert error_fields(extra) == ["atomic"]
    assert "events" in error_fields(client.post(BATCH_URL, json={"events": []}, headers=auth(token)))
    assert ledger_size(runtime, org) == 0


# --- size limits ------------------------------------------------------------------------------


def _padded(pad: int) -> dict[str, Any]:
    return sample_event(fields={"pad": "x" * pad})


def _sealed_size_without_pad(client: TestClient, tokens: dict[Role, str]) -> int:
    """Canonical size of the sealed _padded(0) event; seq stays one digit for the next events."""
    receipt = append(client, tokens[Role.SERVICE], _padded(0))
    assert receipt["seq"] == 0
    return len(canonical(get_event(client, tokens[Role.AUDITOR], receipt["id"])))


def test_an_event_of_exactly_the_limit_is_accepted(
    client: TestClient, tokens: dict[Role, str], runtime: Runtime
) -> None:
    limit = runtime.settings.audit_max_event_bytes
    assert limit == 65_536
    base = _sealed_size_without_pad(client, tokens)
    receipt = append(client, tokens[Role.SERVICE], _padded(limit - base))
    assert receipt["seq"] == 2
    assert len(canonical(get_event(client, tokens[Role.AUDITOR], receipt["id"]))) == limit


def test_an_event_over_the_limit_is_a_413_alone_or_in_a_batch_and_the_batch_writes_nothing(
    client: TestClient, tokens: dict[Role, str], runtime: Runtime, org: str
) -> None:
    token = tokens[Role.SERVICE]
    append(client, token, sample_event())
    huge = _padded(runtime.settings.audit_max_event_bytes + 1)
    body = assert_problem(client.post(EVENTS_URL, json=huge, headers=auth(token)), 413)
    assert body["type"].endswith("/too-large")
    batch = client.post(BATCH_URL, json={"events": [sample_event(), sample_event(), huge]}, headers=auth(token))
    assert "events.2" in assert_problem(batch, 413)["detail"]
    assert ledger_size(runtime, org) == 1


def test_a_batch_of_the_maximum_size_is_accepted_and_one_more_is_a_413(
    client: TestClient, tokens: dict[Role, str], runtime: Runtime, org: str
) -> None:
    token = tokens[Role.SERVICE]
    maximum = runtime.settings.audit_max_batch
    assert maximum == 1_000
    event = sample_event(changes=None, source=None)
    refused = client.post(BATCH_URL, json={"events": [event] * (maximum + 1)}, headers=auth(token))
    assert str(maximum) in assert_problem(refused, 413)["detail"]
    assert ledger_size(runtime, org) == 0
    receipts = append_batch(client, token, [event] * maximum)
    assert [r["seq"] for r in receipts] == list(range(maximum))
    assert ledger_size(runtime, org) == maximum


# The batch route, and the routes the fast lane serves (which hand an oversized body over unread).
@pytest.mark.parametrize("url", [BATCH_URL, EVENTS_URL, "/api/v1/sca/decide"])
def test_a_body_over_the_limit_is_a_413_whether_declared_or_chunked(
    client: TestClient, tokens: dict[Role, str], runtime: Runtime, org: str, url: str
) -> None:
    limit = runtime.settings.max_body_bytes
    headers = {**auth(tokens[Role.SERVICE]), "content-type": "application/json"}
    declared = client.post(url, content=b" " * (limit + 1), headers=headers)
    assert assert_problem(declared, 413)["type"].endswith("/too-large")

    def chunks() -> Iterator[bytes]:
        for _ in range(8):
            yield b" " * (limit // 8)
        yield b" "

    chunked = client.post(url, content=chunks(), headers=headers)
    assert assert_problem(chunked, 413)["type"].endswith("/too-large")
    assert ledger_size(runtime, org) == 0


def test_a_chunked_body_over_the_limit_is_a_413_on_a_real_server(
    live_server: str, tokens: dict[Role, str], runtime: Runtime, org: str
) -> None:
    limit = runtime.settings.max_body_bytes
    headers = {**auth(tokens[Role.SERVICE]), "content-type": "application/json"}

    def chunks() -> Iterator[bytes]:
        for _ in range(8):
            yield b" " * (limit // 8)
        yield b" "

    with httpx.Client(base_url=live_server, timeout=30) as http:
        for url in (BATCH_URL, EVENTS_URL):
            response = http.post(url, content=chunks(), headers=headers)
            assert response.request.headers.get("transfer-encoding") == "chunked"
            assert_problem(response, 413)
        ok = http.post(EVENTS_URL, content=iter([orjson.dumps(sample_event())]), headers=headers)
        assert ok.status_code == 201, ok.text
    assert ledger_size(runtime, org) == 1


# --- queries ----------------------------------------------------------------------------------


@pytest.fixture
def catalogue(client: TestClient, tokens: dict[Role, str]) -> dict[str, str]:
    """Five events that differ in every filterable member, all in the past; name → id."""
    specs = {
        "e0": sample_event(
            module="bookings", action="artist.update", actor={"type": "user", "id": "u-1"},
            target={"type": "artist", "id": "a-1"}, occurred_at="2025-01-01T00:00:00Z",
        ),
        "e1": sample_event(
            module="bookings", action="artist.delete", crud="delete", actor={"type": "user", "id": "u-2"},
            target={"type": "artist", "id": "a-2"}, outcome="failure", reason="locked",
            occurred_at="2025-01-02T00:00:00Z",
        ),
        "e2": sample_event(
            module="billing", action="invoice.create", crud="create", actor={"type": "user", "id": "u-1"},
            target={"type": "invoice", "id": "i-1"}, occurred_at="2025-01-03T00:00:00Z",
        ),
        "e3": sample_event(
            module="billing", action="invoice.update", actor={"type": "service", "id": "u-3"},
            target={"type": "invoice", "id": "a-1"}, outcome="failure", reason="refused",
            occurred_at="2025-01-04T00:00:00Z",
        ),
        "e4": sample_event(
            module="crm", action="contact.read", crud="read", actor={"type": "user", "id": "u-2"},
            target=None, occurred_at="2025-01-05T02:00:00+02:00",
        ),
    }  # fmt: skip
    receipts = append_batch(client, tokens[Role.SERVICE], list(specs.values()))
    return {name: receipt["id"] for name, receipt in zip(specs, receipts, strict=True)}


FILTERS: list[tuple[dict[str, str], set[str]]] = [
    ({"module": "billing"}, {"e2", "e3"}),
    ({"action": "artist.delete"}, {"e1"}),
    ({"actor": "u-1"}, {"e0", "e2"}),
    ({"target": "a-1"}, {"e0", "e3"}),
    ({"target_type": "invoice"}, {"e2", "e3"}),
    ({"target": "a-1", "target_type": "artist"}, {"e0"}),
    ({"outcome": "failure"}, {"e1", "e3"}),
    ({"outcome": "success", "module": "crm"}, {"e4"}),
    ({"since": "2025-01-02T00:00:00Z", "until": "2025-01-04T00:00:00Z"}, {"e1", "e2"}),
    ({"since": "2025-01-05T01:00:00+01:00", "until": "2025-01-05T00:00:01Z"}, {"e4"}),
    ({"until": "2025-01-01T00:00:00Z"}, set()),
    ({"module": "billing", "actor": "u-1", "outcome": "failure"}, set()),
]


def test_each_filter_narrows_to_exactly_the_matching_events(
    client: TestClient, tokens: dict[Role, str], catalogue: dict[str, str]
) -> None:
    names = {event_id: name for name, event_id in catalogue.items()}
    reader = tokens[Role.AUDITOR]
    for params, expected in FILTERS:
        found = list_all(client, reader, **params)
        assert {names.get(e["id"], e["id"]) for e in found} == expected, params
        assert [e["seq"] for e in found] == sorted(e["seq"] for e in found)
    unfiltered = {e["id"] for e in list_all(client, reader)}
    assert set(catalogue.values()) <= unfiltered
    e4 = get_event(client, reader, catalogue["e4"])
    assert e4["occurred_at"] == "2025-01-05T00:00:00.000000Z" and "target" not in e4


def test_filters_that_are_not_valid_are_a_422(client: TestClient, tokens: dict[Role, str]) -> None:
    reader = tokens[Role.AUDITOR]
    cases = {
        "since": {"since": "2025-01-01T00:00:00"},
        "until": {"until": "yesterday"},
        "outcome": {"outcome": "maybe"},
        "module": {"module": "Not A Module"},
        "colour": {"colour": "red"},
        "limit": {"limit": 1001},
    }
    for field, params in cases.items():
        response = client.get(EVENTS_URL, params=params, headers=auth(reader))
        assert field in error_fields(response), params
        assert response.json()["errors"][0]["in"] == "query"
    assert "limit" in error_fields(client.get(EVENTS_URL, params={"limit": 0}, headers=auth(reader)))


def test_cursor_pagination_walks_every_event_once_in_sequence_order(
    client: TestClient, tokens: dict[Role, str]
) -> None:
    writer, reader = tokens[Role.SERVICE], tokens[Role.AUDITOR]
    ids = [r["id"] for r in append_batch(client, writer, [sample_event(module="paging") for _ in range(25)])]
    # Filtered: exactly the 25, in order, over pages of 4.
    pages = 0
    walked: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"module": "paging", "limit": 4, **({"cursor": cursor} if cursor else {})}
        page = client.get(EVENTS_URL, params=params, headers=auth(reader)).json()
        pages += 1
        assert len(page["events"]) <= 4
        walked.extend(page["events"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [e["id"] for e in walked] == ids
    assert pages == 7
    # Unfiltered: the ledger grows while we read (each page read is recorded), yet every event is
    # seen exactly once, in sequence order, without gaps.
    everything = list_all(client, reader, limit=7)
    assert [e["seq"] for e in everything] == list(range(len(everything)))
    assert ids == [e["id"] for e in everything if e["module"] == "paging"]


def _cursor(payload: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    ["!!!", "abc", _cursor([1]), _cursor({"after": "5"}), _cursor({"after": -2}), _cursor({"after": 2**63}),
     _cursor({"after": 2**70}), _cursor({"before": 3}), _cursor({"after": 1.5}), "x" * 201],
)  # fmt: skip
def test_a_cursor_this_api_did_not_return_is_a_422(cursor: str, client: TestClient, tokens: dict[Role, str]) -> None:
    response = client.get(EVENTS_URL, params={"cursor": cursor}, headers=auth(tokens[Role.AUDITOR]))
    assert error_fields(response) == ["cursor"]


def test_reading_events_is_itself_recorded_in_the_ledger(
    client: TestClient, tokens: dict[Role, str], catalogue: dict[str, str]
) -> None:
    reader = tokens[Role.AUDITOR]
    me = client.get("/api/v1/me", headers=auth(reader)).json()
    actor = {"type": "api_key", "id": me["key_id"], "display": me["key_name"]}
    listed = client.get(EVENTS_URL, params={"module": "billing"}, headers=auth(reader)).json()["events"]
    event = get_event(client, reader, catalogue["e0"])

    list_reads = list_all(client, tokens[Role.ADMIN], action="audit.events.read", actor=me["key_id"])
    billing_reads = [e for e in list_reads if e["fields"]["filter"] == {"module": "billing"}]
    assert len(billing_reads) == 1
    read = billing_reads[0]
    assert (read["module"], read["crud"], read["outcome"]) == ("audit", "read", "success")
    assert read["actor"] == actor
    assert read["fields"]["returned"] == len(listed) == 2
    assert read["seq"] > max(e["seq"] for e in listed)

    single_reads = list_all(client, tokens[Role.ADMIN], action="audit.event.read", target=event["id"])
    assert len(single_reads) == 1
    assert single_reads[0]["target"] == {"type": "audit_event", "id": event["id"]}
    assert single_reads[0]["actor"] == actor


def test_unknown_event_is_a_404_and_reading_it_is_not_recorded(
    client: TestClient, tokens: dict[Role, str], runtime: Runtime, org: str
) -> None:
    append(client, tokens[Role.SERVICE], sample_event())
    before = ledger_size(runtime, org)
    response = client.get(f"{EVENTS_URL}/01a20000-0000-7000-8000-000000000000", headers=auth(tokens[Role.AUDITOR]))
    assert assert_problem(response, 404)["type"].endswith("/not-found")
    assert ledger_size(runtime, org) == before


# --- proofs and checkpoints -------------------------------------------------------------------


def test_inclusion_proofs_verify_against_the_signed_checkpoint(
    client: TestClient, tokens: dict[Role, str], runtime: Runtime, org: str
) -> None:
    writer, verifier, reader = tokens[Role.SERVICE], tokens[Role.OPERATOR], tokens[Role.AUDITOR]
    receipts = append_batch(client, writer, [sample_event(action=f"step.n{i}") for i in range(11)])
    wait_for_checkpoint(client, verifier, receipts[-1]["seq"] + 1)
    trusted = verifiers(client)
    for receipt in (receipts[0], receipts[6], receipts[-1]):
        event = get_event(client, reader, receipt["id"])
        for response in (
            client.get(f"{EVENTS_URL}/{receipt['id']}/proof", headers=auth(verifier)),
            client.get("/api/v1/audit/proofs/inclusion", params={"seq": receipt["seq"]}, headers=auth(verifier)),
        ):
            assert response.status_code == 200, response.text
            proof = response.json()
            checkpoint = open_checkpoint(runtime, org, proof["checkpoint"]["note"], trusted)
            assert checkpoint.size == proof["tree_size"] == proof["checkpoint"]["size"]
            assert base64.b64decode(proof["checkpoint"]["root"]) == checkpoint.root
            leaf = base64.b64decode(proof["leaf_hash"])
            assert leaf == leaf_of(event) == bytes.fromhex(receipt["leaf_hash"])
            path = [base64.b64decode(h) for h in proof["hashes"]]
            assert verify_inclusion(leaf, receipt["seq"], checkpoint.size, path, checkpoint.root)
            assert not verify_inclusion(leaf, receipt["seq"] + 1, checkpoint.size, path, checkpoint.root)
            assert not verify_inclusion(hashlib.sha256(b"forged").digest(), receipt["seq"], checkpoint.size, path,
                                        checkpoint.root)  # fmt: skip


def test_a_proof_reuses_the_checkpoint_it_just_read_and_takes_one_round_trip(
    runtime: Runtime, org: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gardien.audit import proofs
    from gardien.audit.service import Ledger

    ledger = Ledger(runtime)
    trips: list[str] = []
    real_raw = proofs._raw

    def counted(conn: Any, sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
        trips.append(sql)
        return real_raw(conn, sql, params)

    monkeypatch.setattr(proofs, "_raw", counted)

    def check(seq: int) -> int:
        proof = ledger.inclusion_proof(org, seq)
        path = [base64.b64decode(h) for h in proof.hashes]
        root = base64.b64decode(proof.checkpoint.root)
        assert verify_inclusion(base64.b64decode(proof.leaf_hash), seq, proof.tree_size, path, root)
        return proof.tree_size

    ledger.append_batch(org, [sample_event(action=f"step.n{i}") for i in range(11)])
    ledger.checkpoint_now(org)
    size = ledger.checkpoint(org).size
    trips.clear()
    assert check(size - 11) == size and len(trips) == 2  # checkpoint and leaf, then the nodes
    trips.clear()
    assert check(size - 5) == size and len(trips) == 1  # leaf and nodes against the known checkpoint
    # An event the known checkpoint does not cover reads the newer one.
    ledger.append_batch(org, [sample_event() for _ in range(5)])
    ledger.checkpoint_now(org)
    trips.clear()
    assert check(size + 2) == size + 5 and len(trips) == 2
    # Nothing stored under that number (a purged event the manifest did not keep): 404 on both paths.
    with pytest.raises(NotFound):
        ledger.inclusion_proof(org, -1)


def test_upper_tree_nodes_are_cached_and_a_growing_tree_still_proves_from_the_database(
    runtime: Runtime, org: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gardien.audit import merkle, proofs
    from gardien.audit.service import Ledger

    ledger = Ledger(runtime)
    levels_read: list[int] = []  # the tree levels each proof of the ledger asks the table for
    real_raw = proofs._raw

    def recorded(conn: Any, sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
        at = 0
        for part in sql.split(" UNION ALL "):
            if "audit_tree_nodes" in part:
                levels_read.append(params[at + 1])  # org, level, start, end
            at += part.count("?")
        return real_raw(conn, sql, params)

    monkeypatch.setattr(proofs, "_raw", recorded)

    def reference(seq: int, size: int) -> list[bytes]:
        with runtime.engine.connect() as conn:
            return merkle.inclusion_proof(seq, size, proofs.node_fetcher(conn, org))

    def check(seq: int) -> tuple[int, list[bytes]]:
        proof = ledger.inclusion_proof(org, seq)
        path = [base64.b64decode(h) for h in proof.hashes]
        root = base64.b64decode(proof.checkpoint.root)
        assert verify_inclusion(base64.b64decode(proof.leaf_hash), seq, proof.tree_size, path, root)
        read = list(levels_read)
        assert path == reference(seq, proof.tree_size)
        levels_read[:] = read
        return proof.tree_size, path

    # 600 events: two level-8 nodes (256 events each) are stored.
    ledger.append_batch(org, [sample_event(action=f"step.n{i}") for i in range(600)])
    ledger.checkpoint_now(org)
    check(5)
    assert 8 in levels_read and len(ledger._nodes) == 2  # both level-8 nodes, read as one block
    levels_read.clear()
    check(300)
    check(590)
    assert levels_read and set(levels_read) == {4}  # warm: the upper band comes from the cache

    # The tree grows past what was cached: the missing node is read, not assumed absent.
    ledger.append_batch(org, [sample_event() for _ in range(300)])
    ledger.checkpoint_now(org)
    size, _ = check(700)  # past the checkpoint the ledger knows: it reads the new one
    assert size == 900 and len(ledger._nodes) == 2
    levels_read.clear()
    check(0)  # needs the level-8 node over events 512..767, stored after the cache was filled
    assert 8 in levels_read and len(ledger._nodes) == 3
    for seq in (255, 256, 511, 512, 767, 768, 899):
        check(seq)

    # Consistency proofs read through the same cache and agree with the uncached ones.
    with runtime.engine.connect() as conn:
        uncached = merkle.consistency_proof(600, 900, proofs.node_fetcher(conn, org))
    assert [base64.b64decode(h) for h in ledger.consistency_proof(org, 600, 900).hashes] == uncached


def test_a_full_node_cache_starts_again_empty() -> None:
    from gardien.audit.proofs import NodeCache

    cache = NodeCache(max_nodes=4)
    cache.put("org", 8, {0: b"a" * 32, 1: b"b" * 32, 2: b"c" * 32})
    assert cache.get("org", 8, 0, 3) == [b"a" * 32, b"b" * 32, b"c" * 32]
    assert cache.get("org", 8, 0, 4) is None  # a node it never read is a miss, never absent
    cache.put("org", 8, {1: b"b" * 32})  # already held: counted once
    assert len(cache) == 3
    cache.put("other", 12, {0: b"d" * 32, 1: b"e" * 32})
    assert len(cache) == 2 and cache.get("org", 8, 0, 1) is None
    assert cache.get("other", 12, 0, 2) == [b"d" * 32, b"e" * 32]


def test_proofs_read_through_connections_that_stay_in_autocommit(runtime: Runtime, org: str) -> None:
    from gardien.audit.service import Ledger

    ledger = Ledger(runtime)
    ledger.append_batch(org, [sample_event() for _ in range(3)])
    ledger.checkpoint_now(org)
    engine = runtime.autocommit_engine
    if runtime.engine.dialect.name == "sqlite":
        assert engine is runtime.engine
        return
    assert engine is not runtime.engine and engine is runtime.autocommit_engine
    for seq in range(3):
        ledger.inclusion_proof(org, seq)
    # A plain checkout, with no execution option: the pool's connections are in autocommit.
    with engine.connect() as conn:
        assert conn.connection.dbapi_connection.autocommit  # type: ignore[union-attr]
    with runtime.engine.connect() as conn:
        assert not conn.connection.dbapi_connection.autocommit  # type: ignore[union-attr]


def test_consistency_proof_between_two_checkpoints_verifies(
    client: TestClient, tokens: dict[Role, str], runtime: Runtime, org: str
) -> None:
    writer, verifier = tokens[Role.SERVICE], tokens[Role.OPERATOR]
    first = append_batch(client, writer, [sample_event() for _ in range(5)])
    old = wait_for_checkpoint(client, verifier, first[-1]["seq"] + 1)
    more = append_batch(client, writer, [sample_event() for _ in range(9)])
    new = wait_for_checkpoint(client, verifier, more[-1]["seq"] + 1)
    assert old["size"] < new["size"]
    response = client.get(
        "/api/v1/audit/proofs/consistency", params={"old": old["size"], "new": new["size"]}, headers=auth(verifier)
    )
    assert response.status_code == 200, response.text
    proof = response.json()
    trusted = verifiers(client)
    old_cp = open_checkpoint(runtime, org, proof["old_checkpoint"]["note"], trusted)
    new_cp = open_checkpoint(runtime, org, proof["new_checkpoint"]["note"], trusted)
    assert (old_cp.size, new_cp.size) == (proof["old_size"], proof["new_size"]) == (old["size"], new["size"])
    path = [base64.b64decode(h) for h in proof["hashes"]]
    assert verify_consistency(old_cp.size, new_cp.size, old_cp.root, new_cp.root, path)
    assert not verify_consistency(old_cp.size, new_cp.size, new_cp.root, new_cp.root, path)
    # The checkpoint of a given size is served by itself too, identical.
    by_size = client.get(f"/api/v1/audit/checkpoints/{old['size']}", headers=auth(verifier))
    assert by_size.json()["note"] == proof["old_checkpoint"]["note"]
    backwards = client.get(
        "/api/v1/audit/proofs/consistency", params={"old": new["size"], "new": old["size"]}, headers=auth(verifier)
    )
    assert_problem(backwards, 409)


def test_a_proof_for_an_event_not_yet_checkpointed_is_a_409(client: TestClient, tokens: dict[Role, str]) -> None:
    writer, verifier = tokens[Role.SERVICE], tokens[Role.OPERATOR]
    first = append(client, writer, sample_event())
    wait_for_checkpoint(client, verifier, 1)
    later = append(client, writer, sample_event())
    # Deterministically "not yet": the checkpoint of size 1 does not cover seq 1.
    response = client.get(f"{EVENTS_URL}/{later['id']}/proof", params={"size": 1}, headers=auth(verifier))
    body = assert_problem(response, 409)
    assert body["type"].endswith("/not-yet-sealed")
    assert "not covered" in body["detail"]
    ahead = client.get("/api/v1/audit/proofs/inclusion", params={"seq": 10_000}, headers=auth(verifier))
    assert_problem(ahead, 409)
    ok = client.get(f"{EVENTS_URL}/{first['id']}/proof", params={"size": 1}, headers=auth(verifier))
    assert ok.status_code == 200 and ok.json()["tree_size"] == 1
    missing = client.get("/api/v1/audit/checkpoints/999999", headers=auth(verifier))
    assert_problem(missing, 404)


def test_a_checkpoint_follows_within_about_a_second_without_new_events(
    client: TestClient, tokens: dict[Role, str], runtime: Runtime, org: str
) -> None:
    writer, verifier = tokens[Role.SERVICE], tokens[Role.OPERATOR]
    assert_problem(client.get("/api/v1/audit/checkpoints/latest", headers=auth(verifier)), 404)
    append(client, writer, sample_event())  # the first event of a ledger is sealed at once
    receipts = append_batch(client, writer, [sample_event() for _ in range(3)])
    started = time.monotonic()
    latest = wait_for_checkpoint(client, verifier, receipts[-1]["seq"] + 1, timeout=1.5)
    assert time.monotonic() - started < 1.2
    checkpoint = open_checkpoint(runtime, org, latest["note"], verifiers(client))
    assert checkpoint.size == latest["size"] == 4
    stamped = datetime.fromisoformat(checkpoint.extensions[0].removeprefix("time "))
    assert stamped == datetime.fromisoformat(latest["created_at"])


def test_verify_checks_the_ledger_and_a_kept_checkpoint_but_refuses_a_malformed_one(
    client: TestClient, tokens: dict[Role, str], runtime: Runtime, org: str
) -> None:
    writer, verifier = tokens[Role.SERVICE], tokens[Role.OPERATOR]
    append_batch(client, writer, [sample_event() for _ in range(3)])
    kept = wait_for_checkpoint(client, verifier, 3)
    report = client.post("/api/v1/audit/verify", json={"trusted_checkpoint": kept["note"]}, headers=auth(verifier))
    assert report.status_code == 200, report.text
    assert report.json()["status"] == "ok" and report.json()["events_checked"] >= 3
    before = ledger_size(runtime, org)
    garbage = client.post("/api/v1/audit/verify", json={"trusted_checkpoint": "not a note"}, headers=auth(verifier))
    assert error_fields(garbage) == ["trusted_checkpoint"]
    assert ledger_size(runtime, org) == before, "a refused request is not reported as a (failed) verification"


# --- exports ----------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["jsonl", "json", "csv"])
def test_export_with_a_filter_is_signed_complete_and_verifiable_offline(
    fmt: str, client: TestClient, tokens: dict[Role, str], runtime: Runtime, org: str, tmp_path: Path
) -> None:
    writer, reader = tokens[Role.SERVICE], tokens[Role.DPO]
    events = [sample_event(module="bookings" if i % 3 else "billing", fields={"i": i}) for i in range(9)]
    append_batch(client, writer, events)
    created = client.post(
        "/api/v1/audit/exports", json={"format": fmt, "filter": {"module": "bookings"}}, headers=auth(reader)
    )
    assert created.status_code == 201, created.text
    answer = created.json()
    manifest = answer["manifest"]
    export_id = answer["id"]
    assert answer["payload_url"] == f"/api/v1/audit/exports/{export_id}/payload"
    assert answer["manifest_url"] == f"/api/v1/audit/exports/{export_id}"

    expected = list_all(client, reader, module="bookings")
    assert len(expected) == 6
    assert set(manifest) == MANIFEST_MEMBERS
    assert manifest["schema"] == "gardien.audit.export/1"
    assert (manifest["export_id"], manifest["org"], manifest["format"]) == (export_id, org, fmt)
    assert manifest["filter"] == {"module": "bookings"}
    assert re.fullmatch(RFC3339_UTC, manifest["created_at"])
    assert manifest["count"] == 6
    assert (manifest["first_seq"], manifest["last_seq"]) == (expected[0]["seq"], expected[-1]["seq"])

    trusted = verifiers(client)
    checkpoint = open_checkpoint(runtime, org, manifest["checkpoint"], trusted)
    assert checkpoint.size > manifest["last_seq"]
    signature = manifest["signature"]
    assert signature["alg"] == "Ed25519"
    signer = next(v for v in trusted if (v.name, v.key_id.hex()) == (signature["key_name"], signature["key_id"]))
    unsigned = {k: v for k, v in manifest.items() if k != "signature"}
    assert signer.verify_bytes(canonical(unsigned), base64.b64decode(signature["value"]))
    assert client.get(answer["manifest_url"], headers=auth(reader)).json() == manifest

    download = client.get(answer["payload_url"], headers=auth(reader))
    assert download.status_code == 200
    payload = download.content
    assert hashlib.sha256(payload).hexdigest() == manifest["payload_sha256"]
    mac = manifest["payload_hmac"]
    assert (mac["alg"], mac["input"]) == ("HMAC-SHA256", "base64(payload)")
    secret = runtime.keyring.hmac_key(mac["kid"]).secret
    assert hmac.new(secret, base64.b64encode(payload), hashlib.sha256).hexdigest() == mac["digest"]

    lines = [canonical(e) for e in expected]
    if fmt == "jsonl":
        assert download.headers["content-type"].startswith("application/x-ndjson")
        assert payload == b"".join(line + b"\n" for line in lines)
    elif fmt == "json":
        assert download.headers["content-type"].startswith("application/json")
        assert payload == b"[" + b",".join(lines) + b"]"
    else:
        assert download.headers["content-type"].startswith("text/csv")
        rows = list(csv.reader(io.StringIO(payload.decode("utf-8"), newline="")))
        assert rows[0] == CSV_COLUMNS
        assert len(rows) == 7
        for row, event in zip(rows[1:], expected, strict=True):
            record = dict(zip(CSV_COLUMNS, row, strict=True))
            assert (int(record["seq"]), record["id"], record["module"]) == (event["seq"], event["id"], "bookings")
            assert record["actor_display"] == "Émilie Dupont" and record["source_ip"] == "203.0.113.7"
            assert record["data_categories"] == "user.financial"
            assert record["changes"] == canonical(event["changes"]).decode()
            assert record["fields"] == canonical(event["fields"]).decode()
            assert record["leaf_hash"] == leaf_of(event).hex()
            assert record["reason"] == "" and record["request_id"] == ""

    payload_path = tmp_path / f"audit-{export_id}.{fmt}"
    manifest_path = tmp_path / f"audit-{export_id}.{fmt}.manifest.json"
    payload_path.write_bytes(payload)
    manifest_path.write_text(json.dumps(manifest))
    result = verify_export(payload_path, manifest_path, trusted)
    assert result.ok, result.lines()
    assert result.count == 6

    flipped = bytearray(payload)
    flipped[len(flipped) // 2] ^= 0x01
    payload_path.write_bytes(bytes(flipped))
    assert not verify_export(payload_path, manifest_path, trusted).ok
    payload_path.write_bytes(payload)
    manifest_path.write_text(json.dumps(dict(manifest, count=manifest["count"] + 1)))
    assert not verify_export(payload_path, manifest_path, trusted).ok
    manifest_path.write_text(json.dumps(manifest))
    assert verify_export(payload_path, manifest_path, trusted).ok


def test_a_whole_ledger_export_recomputes_the_checkpoint_root(
    client: TestClient, tokens: dict[Role, str], tmp_path: Path
) -> None:
    append_batch(client, tokens[Role.SERVICE], [sample_event() for _ in range(13)])
    created = client.post("/api/v1/audit/exports", json={}, headers=auth(tokens[Role.AUDITOR]))
    assert created.status_code == 201, created.text
    manifest = created.json()["manifest"]
    assert manifest["format"] == "jsonl" and manifest["filter"] == {} and manifest["first_seq"] == 0
    payload = client.get(created.json()["payload_url"], headers=auth(tokens[Role.AUDITOR])).content
    (tmp_path / "p.jsonl").write_bytes(payload)
    (tmp_path / "p.jsonl.manifest.json").write_text(json.dumps(manifest))
    result = verify_export(tmp_path / "p.jsonl", tmp_path / "p.jsonl.manifest.json", verifiers(client))
    assert result.ok and result.root_checked, result.lines()


def test_creating_and_downloading_an_export_are_audit_events(client: TestClient, tokens: dict[Role, str]) -> None:
    append(client, tokens[Role.SERVICE], sample_event())
    reader = tokens[Role.AUDITOR]
    created = client.post("/api/v1/audit/exports", json={"format": "csv"}, headers=auth(reader)).json()
    export_id = created["id"]
    actor = {"type": "api_key", "id": key_id(reader), "display": "test auditor"}

    made = list_all(client, reader, action="audit.export.created", target=export_id)
    assert len(made) == 1
    assert made[0]["actor"] == actor and made[0]["target"] == {"type": "audit_export", "id": export_id}
    assert made[0]["fields"]["format"] == "csv"
    assert made[0]["fields"]["count"] == created["manifest"]["count"]
    assert made[0]["fields"]["payload_sha256"] == created["manifest"]["payload_sha256"]
    assert list_all(client, reader, action="audit.export.downloaded", target=export_id) == []

    assert client.get(created["payload_url"], headers=auth(reader)).status_code == 200
    downloads = list_all(client, reader, action="audit.export.downloaded", target=export_id)
    assert len(downloads) == 1 and downloads[0]["actor"] == actor
    missing = client.get("/api/v1/audit/exports/01a20000-0000-7000-8000-000000000000", headers=auth(reader))
    assert_problem(missing, 404)


# --- documentation ----------------------------------------------------------------------------


def test_openapi_and_docs_answer_and_document_the_paging_parameters(client: TestClient) -> None:
    spec = client.get("/openapi.json")
    assert spec.status_code == 200
    operation = spec.json()["paths"][EVENTS_URL]["get"]
    names = {p["name"] for p in operation["parameters"]}
    assert {"cursor", "limit", "since", "until", "module", "action", "actor", "target", "outcome"} <= names
    docs = client.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    assert client.get("/healthz").json()["status"] == "ok"
