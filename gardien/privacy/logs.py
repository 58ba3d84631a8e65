"""Logging without personal data: a redacting filter, a JSON formatter, AUDIT and SECURITY levels,
and monthly archives with a SHA-256 manifest.

    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())          # redacts on its own: redaction is on by default
    logging.getLogger().addHandler(handler)
    log.log(AUDIT, "export sent to %s", "jean@example.fr")   # {"message": "export sent to <EMAIL>", ...}
    log.info("login", extra={"subject": "user-42"})          # carries subject_ref, never the raw id

Attach ``RedactingFilter`` to a handler (not a logger) so that records of every logger going through
that handler are redacted, whatever formatter the handler uses.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import os
import shutil
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gardien.privacy.detect import Scanner
from gardien.privacy.operators import HmacParams, KeyedPseudonym, OperatorContext
from gardien.privacy.redact import Redactor

AUDIT = 25  # between INFO and WARNING: an auditable action, kept like the ledger's events
SECURITY = 35  # between WARNING and ERROR: a security-relevant event (failed login, denied access)
logging.addLevelName(AUDIT, "AUDIT")
logging.addLevelName(SECURITY, "SECURITY")

SUBJECT_DOMAIN = "log.subject"
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime", "taskName"}
_DONE = "_gardien_redacted"


def subject_pseudonym(subject: str, context: OperatorContext) -> str:
    """The ``subject_ref`` a log line about this subject carries (keyed; the active HMAC key)."""
    return str(KeyedPseudonym().operate(subject, HmacParams(domain=SUBJECT_DOMAIN, length=32), context))


def subject_references(subject: str, context: OperatorContext) -> list[str]:
    """Every ``subject_ref`` this subject's lines may carry, one per HMAC key ever used."""
    return KeyedPseudonym().every_form(subject, HmacParams(domain=SUBJECT_DOMAIN, length=32), context)


class RedactingFilter(logging.Filter):
    """Redacts a record's message, arguments, exception text and extra fields; never drops a record.

    A ``subject`` extra field is replaced by ``subject_ref``, its keyed pseudonym, when keys are
    given; without keys it is removed.
    """

    def __init__(self, redactor: Redactor | None = None, keys_context: OperatorContext | None = None) -> None:
        super().__init__()
        self.redactor = redactor or Redactor(Scanner())
        self.keys_context = keys_context if keys_context is not None and keys_context.keys is not None else None
        self.key_names = self.redactor.scanner.key_names

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, _DONE, False):
            return True
        record.msg = self.redactor.redact(record.getMessage())
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redactor.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redactor.redact(record.stack_info)
        for name in [n for n in record.__dict__ if n not in _STANDARD]:
            if name == "subject":
                subject = record.__dict__.pop("subject")
                if self.keys_context is not None and subject is not None:
                    record.subject_ref = subject_pseudonym(str(subject), self.keys_context)
                continue
            record.__dict__[name] = self._clean(name, record.__dict__[name])
        setattr(record, _DONE, True)
        return True

    def _clean(self, name: str, value: Any) -> Any:
        entity = self.key_names.get(name.casefold())
        if entity is not None and value is not None:
            return f"<{entity}>"
        if isinstance(value, str):
            return self.redactor.redact(value)
        if isinstance(value, Mapping):
            return {k: self._clean(str(k), v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self._clean("", v) for v in value]
        return value


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (RFC 3339, UTC), level, logger, message, extra fields, exception.

    It redacts the record itself unless a RedactingFilter already did; pass ``redaction=None`` to
    turn that off (only for logs that cannot hold personal data).
    """

    def __init__(self, redaction: RedactingFilter | bool | None = True) -> None:
        super().__init__()
        self.redaction: RedactingFilter | None = RedactingFilter() if redaction is True else redaction or None

    def format(self, record: logging.LogRecord) -> str:
        if self.redaction is not None:
            self.redaction.filter(record)
        moment = datetime.fromtimestamp(record.created, UTC)
        line: dict[str, Any] = {
            "time": moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name, value in record.__dict__.items():
            if name not in _STANDARD and name != _DONE:
                line[name] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = record.stack_info
        return json.dumps(line, ensure_ascii=False, default=str)


MANIFEST = "MANIFEST.sha256"


class MonthlyArchiveHandler(logging.FileHandler):
    """Writes ``<directory>/<name>.log``; at the first record of a new month (UTC), the previous month's
    file becomes ``<name>-YYYY-MM.log.gz`` and its SHA-256 is appended to ``MANIFEST.sha256`` in
    ``sha256sum`` format, so ``sha256sum -c MANIFEST.sha256`` checks every archive.
    """

    def __init__(self, directory: str | os.PathLike[str], name: str = "app") -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.stem = name
        path = self.directory / f"{name}.log"
        self.month = self._month_of_file(path)
        super().__init__(path, encoding="utf-8", delay=True)

    @staticmethod
    def _month_of_file(path: Path) -> str | None:
        if not path.exists() or path.stat().st_size == 0:
            return None
        return datetime.fromtimestamp(path.stat().st_mtime, UTC).strftime("%Y-%m")

    def emit(self, record: logging.LogRecord) -> None:
        month = datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m")
        if self.month is not None and month != self.month:
            self.archive(self.month)
        self.month = month
        super().emit(record)

    def archive(self, month: str) -> Path:
        """Compress the current file as the given month's archive and record it in the manifest."""
        self.acquire()
        try:
            if self.stream is not None:
                self.stream.close()
                self.stream = None
            source = Path(self.baseFilename)
            target = self.directory / f"{self.stem}-{month}.log.gz"
            with source.open("rb") as raw, gzip.open(target, "wb") as packed:
                shutil.copyfileobj(raw, packed)
            digest = hashlib.sha256(target.read_bytes()).hexdigest()
            with (self.directory / MANIFEST).open("a", encoding="utf-8") as manifest:
                manifest.write(f"{digest}  {target.name}\n")
            source.unlink()
            return target
        finally:
            self.release()
