"""PII detection and redaction: detectors, hard negatives, structured-log keys, the logging filter, `gardien redact`."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import logging
import random
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gardien.cli import app
from gardien.core.keyring import Keyring
from gardien.privacy.detect import DEFAULT_KEY_NAMES, Scanner
from gardien.privacy.errors import OperatorError
from gardien.privacy.logs import (
    AUDIT,
    MANIFEST,
    SECURITY,
    JsonFormatter,
    MonthlyArchiveHandler,
    RedactingFilter,
    subject_references,
)
from gardien.privacy.operators import OperatorContext
from gardien.privacy.redact import Redactor

SCANNER = Scanner()


def found(text: str, scanner: Scanner = SCANNER) -> list[tuple[str, str]]:
    return [(f.entity, text[f.start : f.end]) for f in scanner.scan(text)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mail from jean.dupont@example.fr ok", [("EMAIL", "jean.dupont@example.fr")]),
        ("contact: anne-marie.oneil+tag@sub.example.co.uk.", [("EMAIL", "anne-marie.oneil+tag@sub.example.co.uk")]),
        ("login from 203.0.113.9 failed", [("IP_ADDRESS", "203.0.113.9")]),
        ("login from 2001:db8::8a2e:370:7334 failed", [("IP_ADDRESS", "2001:db8::8a2e:370:7334")]),
        ("peer ::ffff:192.0.2.1 closed", [("IP_ADDRESS", "::ffff:192.0.2.1")]),
        ("peer ::1 closed", [("IP_ADDRESS", "::1")]),
        ("appeler le 06 12 34 56 78", [("PHONE", "06 12 34 56 78")]),
        ("appeler le 01.23.45.67.89", [("PHONE", "01.23.45.67.89")]),
        ("bel 0470/12.34.56 svp", [("PHONE", "0470/12.34.56")]),
        ("bel +32 470 12 34 56 svp", [("PHONE", "+32 470 12 34 56")]),
        ("bel 0032 470 12 34 56 svp", [("PHONE", "0032 470 12 34 56")]),
        ("bel 0031612345678 svp", [("PHONE", "0031612345678")]),  # card-shaped, retried as a phone
        ("bel mij op 06-12345678", [("PHONE", "06-12345678")]),
        ("call +44 20 7946 0958 now", [("PHONE", "+44 20 7946 0958")]),
        ("fr +33 (0)6 12 34 56 78 end", [("PHONE", "+33 (0)6 12 34 56 78")]),
        ("card 2223003122003222 ok", [("CREDIT_CARD", "2223003122003222")]),
        ("card 4111-1111-1111-1111 ok", [("CREDIT_CARD", "4111-1111-1111-1111")]),
        ("payment by Zoé-Claude Carlier failed", [("PERSON", "Zoé-Claude Carlier")]),
        ("rappeler Thibaut du Charles demain", [("PERSON", "Thibaut du Charles")]),
        ("betaald door Matthias Van Parys", [("PERSON", "Matthias Van Parys")]),
        ("upstream said Service Unavailable on Monday", []),  # HTTP reason phrases are no names
        ("Accepted publickey for deploy", []),
    ],
)
def test_detectors(text: str, expected: list[tuple[str, str]]) -> None:
    assert found(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "request 550e8400-e29b-41d4-a716-446655440000 done",
        "at 2026-11-22T03:14:13.123Z took 877ms",
        "Nov 22 08:51:06 host sshd[1234]: session opened",
        "version v2.10.3 build 20261122.4 kernel 10.0.19041.1",
        "order 2022-687277 amount=1234.56 EUR",
        "ref 4111 1111 1111 1112 declined",
        "nir 2 55 08 14 168 025 39 rejected",
        "sha 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        "mac 00:1a:2b:3c:4d:5e up",
        "epoch 1700000000000 seq 18446744073709551615",
        "ratio 0.25 of 1.5 GB at 12:30",
        "tx 7d3f1c2a9b",
    ],
)
def test_hard_negatives_are_left_alone(text: str) -> None:
    assert found(text) == []


def test_structured_log_keys_type_their_values() -> None:
    text = 'user=jdoe name=Jean de la Tour action=login {"email": "x@y.z", "first_name": "Anne"} phone: 42'
    assert found(text, Scanner(entities=set())) == [
        ("PERSON", "Jean de la Tour"),
        ("EMAIL", "x@y.z"),
        ("PERSON", "Anne"),
        ("PHONE", "42"),
    ]


def test_field_names_match_in_any_case_and_only_whole() -> None:
    text = "EMAIL=a@b.fr \"Phone\": 0612345678 emails=3 x_email=4 'client_ip'=10.0.0.1 email-2=5"
    assert [(f.entity, f.detector, text[f.start : f.end]) for f in SCANNER.scan(text)] == [
        ("EMAIL", "key:EMAIL", "a@b.fr"),
        ("PHONE", "key:Phone", "0612345678"),
        ("IP_ADDRESS", "key:client_ip", "10.0.0.1"),
    ]
    assert found("Email_Address = jean@example.fr;", Scanner(entities=set())) == [("EMAIL", "jean@example.fr")]
    assert found("email=a@b.fr", Scanner(key_names={})) == [("EMAIL", "a@b.fr")]


def test_every_default_field_name_matches_in_any_case() -> None:
    rng = random.Random(11)
    scanner = Scanner(entities=set())
    for name, entity in DEFAULT_KEY_NAMES.items():
        spelled = "".join(c.upper() if rng.random() < 0.5 else c for c in name)
        for text in (f"{spelled}=v4lue", f'{{"{spelled}": "v4lue"}}', f"x {spelled} : v4lue"):
            assert found(text, scanner) == [(entity, "v4lue")], text
        assert found(f"{spelled}s=v4lue {spelled}_x=v4lue", scanner) == []


def test_field_names_outside_ascii_match_as_given_and_case_folded() -> None:
    scanner = Scanner(entities=set(), key_names={"Straße": "PERSON", "Prénom": "PERSON"})
    for text in ("straße=Jo", "STRASSE=Jo", "Strasse=Jo", "PRÉNOM=Jo", "prénom=Jo"):
        assert found(text, scanner) == [("PERSON", "Jo")], text


def test_a_quoted_value_of_a_field_of_no_interest_is_scanned_like_text() -> None:
    # "fe80" followed by ":" once read as a field name, which hid the address behind it.
    assert found('{"peer": "fe80::1", "via": \'fe80::2\'}') == [("IP_ADDRESS", "fe80::1"), ("IP_ADDRESS", "fe80::2")]
    assert found('{"FR7630006000011234567890189": 1}') == [("IBAN", "FR7630006000011234567890189")]
    scanner = Scanner(custom={"EMPLOYEE_ID": r"EMP-\d{6}"})
    assert found("ref_EMP-004211=done", scanner) == [("EMPLOYEE_ID", "EMP-004211")]


def test_scanning_a_whole_text_finds_what_scanning_its_lines_finds() -> None:
    lines = [
        "2026-11-22T03:14:13Z INFO login jean.dupont@example.fr from 203.0.113.9",
        'user=jdoe name=Jean de la Tour {"iban": "FR76 3000 6000 0112 3456 7890 189"}',
        "card 4111 1111 1111 1111 nir 2 55 08 14 168 025 38 tel +32 470 12 34 56",
        "",
        "peer ::ffff:192.0.2.1 Zoé-Claude Carlier",
    ]
    for scanner in (SCANNER, Scanner(custom={"EMPLOYEE_ID": r"EMP-\d{6}"})):
        text = "\n".join(lines)
        expected, offset = [], 0
        for line in lines:
            expected += [(f.start + offset, f.end + offset, f.entity) for f in scanner.scan(line)]
            offset += len(line) + 1
        assert [(f.start, f.end, f.entity) for f in scanner.scan(text)] == expected
        assert len(expected) == 9


def test_custom_patterns_and_keys() -> None:
    scanner = Scanner(key_names={"badge": "BADGE"}, custom={"EMPLOYEE_ID": r"EMP-\d{6}"})
    assert found("by EMP-004211 badge=7781 jean@example.fr", scanner) == [
        ("EMPLOYEE_ID", "EMP-004211"),
        ("BADGE", "7781"),
        ("EMAIL", "jean@example.fr"),
    ]
    with pytest.raises(OperatorError):
        Scanner(custom={"BAD": "("})
    with pytest.raises(OperatorError):
        Scanner(custom={"EMPTY": "x*"})
    with pytest.raises(OperatorError):
        Scanner(entities={"NAME"})


def test_redaction_styles(tmp_path: Path) -> None:
    text = "to jean@example.fr from 192.0.2.1"
    assert Redactor().redact(text) == "to <EMAIL> from <IP_ADDRESS>"
    assert Redactor(style="mask").redact(text) == "to *************** from *********"
    ctx = OperatorContext(keys=Keyring.open(tmp_path, "privacy.test"), scope="org")
    pseudonymised = Redactor(style="pseudonym", context=ctx).redact(text)
    assert pseudonymised.startswith("to <EMAIL:hma-")
    assert "jean" not in pseudonymised
    assert pseudonymised == Redactor(style="pseudonym", context=ctx).redact(text)
    with pytest.raises(OperatorError):
        Redactor(style="pseudonym")


def _logger(handler: logging.Handler) -> logging.Logger:
    logger = logging.getLogger(f"gardien.test.{time.monotonic_ns()}")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    return logger


def test_json_formatter_redacts_by_default_with_audit_and_security_levels(tmp_path: Path) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    log = _logger(handler)
    log.log(AUDIT, "export sent to %s", "jean@example.fr", extra={"email": "a@b.c", "order": "o-1"})
    log.log(SECURITY, "failed login from 198.51.100.7", extra={"detail": {"phone": "0612345678", "ok": 1}})
    try:
        raise ValueError("bad iban FR7630006000011234567890189")
    except ValueError:
        log.exception("payment failed")
    first, second, third = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["level"] == "AUDIT"
    assert first["message"] == "export sent to <EMAIL>"
    assert first["email"] == "<EMAIL>"
    assert first["order"] == "o-1"
    assert first["time"].endswith("Z")
    assert second["level"] == "SECURITY"
    assert second["message"] == "failed login from <IP_ADDRESS>"
    assert second["detail"] == {"phone": "<PHONE>", "ok": 1}
    assert "FR76" not in third["exception"]
    assert "<IBAN>" in third["exception"]
    assert logging.getLevelName(AUDIT) == "AUDIT"


def test_filter_on_a_plain_handler_and_subject_pseudonym(tmp_path: Path) -> None:
    ctx = OperatorContext(keys=Keyring.open(tmp_path, "privacy.test"), scope="org")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter(keys_context=ctx))
    handler.setFormatter(JsonFormatter(redaction=None))
    log = _logger(handler)
    log.info("login by %s", "jean@example.fr", extra={"subject": "user-42"})
    line = json.loads(stream.getvalue())
    assert line["message"] == "login by <EMAIL>"
    assert "subject" not in line
    assert line["subject_ref"] in subject_references("user-42", ctx)
    assert "user-42" not in stream.getvalue()


def test_subject_is_dropped_without_keys() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    _logger(handler).info("login", extra={"subject": "user-42"})
    assert "user-42" not in stream.getvalue()


def test_monthly_archives_with_sha256_manifest(tmp_path: Path) -> None:
    handler = MonthlyArchiveHandler(tmp_path, "app")
    handler.setFormatter(JsonFormatter())
    log = _logger(handler)

    def at(moment: str, message: str) -> None:
        record = log.makeRecord(log.name, logging.INFO, __file__, 1, message, (), None)
        record.created = time.mktime(time.strptime(moment, "%Y-%m-%d %H:%M")) - time.timezone
        log.handle(record)

    at("2026-10-30 12:00", "october to jean@example.fr")
    at("2026-10-31 23:59", "october again")
    at("2026-11-01 00:01", "november")
    at("2026-12-02 08:00", "december")
    handler.close()
    october = tmp_path / "app-2026-10.log.gz"
    november = tmp_path / "app-2026-11.log.gz"
    lines = gzip.decompress(october.read_bytes()).decode().splitlines()
    assert [json.loads(x)["message"] for x in lines] == ["october to <EMAIL>", "october again"]
    assert [json.loads(x)["message"] for x in gzip.decompress(november.read_bytes()).decode().splitlines()] == [
        "november"
    ]
    assert json.loads((tmp_path / "app.log").read_text())["message"] == "december"
    manifest = (tmp_path / MANIFEST).read_text().splitlines()
    assert manifest == [
        f"{hashlib.sha256(october.read_bytes()).hexdigest()}  app-2026-10.log.gz",
        f"{hashlib.sha256(november.read_bytes()).hexdigest()}  app-2026-11.log.gz",
    ]


def test_cli_redacts_files_and_stdin(tmp_path: Path) -> None:
    source = tmp_path / "app.log"
    source.write_text("login jean@example.fr from 192.0.2.1\nno personal data\n", encoding="utf-8")
    runner = CliRunner()
    result = runner.invoke(app, ["redact", str(source)])
    assert result.exit_code == 0, result.output
    assert result.stdout == "login <EMAIL> from <IP_ADDRESS>\nno personal data\n"
    result = runner.invoke(app, ["redact", "--style", "mask", "-e", "EMAIL"], input="a jean@example.fr 192.0.2.1\n")
    assert result.stdout == "a *************** 192.0.2.1\n"
    out = tmp_path / "out.log"
    result = runner.invoke(
        app,
        ["redact", "-p", "TICKET=T-\\d{4}", "--key", "badge=BADGE", "-o", str(out), "--stats", "-"],
        input="T-1234 badge=77\n",
    )
    assert result.exit_code == 0, result.output
    assert out.read_text() == "<TICKET> badge=<BADGE>\n"
    assert "TICKET\t1" in result.stderr
    assert runner.invoke(app, ["redact", "-e", "NAME"], input="x\n").exit_code == 2
    assert runner.invoke(app, ["redact", str(tmp_path / "missing.log")]).exit_code == 1
