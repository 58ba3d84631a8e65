"""The access package: one ZIP with data.json, one CSV per table and a README (Art. 15(1)(a–h)).

The portability package (Art. 20) has the same shape, holds only what the person provided (the
fields the map marks `provided`, and the keys that tie rows together), and its README says so.

Rows found by the walk go to one temporary file per table as JSON lines, so that memory stays flat
however many rows a person has; the ZIP is then written entry by entry from those files.
"""

from __future__ import annotations

import base64
import csv
import io
import tempfile
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import Decimal
from typing import IO, Any

import orjson

from gardien.datamap.mapfile import DataMap, RecipientIn, Text, text_in

LANGS = ("en", "fr", "nl")


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    return value


@dataclass
class RowSpool:
    """The rows found, per table, in temporary files."""

    files: dict[str, IO[bytes]] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    columns: dict[str, list[str]] = field(default_factory=dict)

    def __call__(self, table: str, rows: Sequence[Mapping[str, Any]]) -> None:
        spool = self.files.get(table)
        if spool is None:
            spool = self.files[table] = tempfile.TemporaryFile()  # noqa: SIM115 (closed by close())
            self.columns[table] = [str(k) for k in rows[0]]
        for row in rows:
            spool.write(orjson.dumps({str(k): _plain(v) for k, v in row.items()}, default=str))
            spool.write(b"\n")
        self.counts[table] = self.counts.get(table, 0) + len(rows)

    def rows(self, table: str) -> Any:
        spool = self.files[table]
        spool.seek(0)
        for line in spool:
            yield orjson.loads(line)

    def close(self) -> None:
        for spool in self.files.values():
            spool.close()


@dataclass
class ProvidedOnly:
    """A row sink keeping, per table, the primary key and the fields the person provided (Art. 20).

    A table none of whose fields was provided is left out of the package altogether.
    """

    spool: RowSpool
    datamap: DataMap
    primary_key: Callable[[str], Sequence[str]]
    _columns: dict[str, list[str]] = field(default_factory=dict)

    def columns(self, table: str) -> list[str]:
        chosen = self._columns.get(table)
        if chosen is None:
            spec = self.datamap.tables[table]
            provided = [name for name, f in spec.fields.items() if f.provided]
            keys = list(self.primary_key(table))
            chosen = self._columns[table] = (keys + [n for n in provided if n not in keys]) if provided else []
        return chosen

    def __call__(self, table: str, rows: Sequence[Mapping[str, Any]]) -> None:
        chosen = self.columns(table)
        if chosen:
            self.spool(table, [{name: row[name] for name in chosen if name in row} for row in rows])


def write_package(
    out: IO[bytes],
    datamap: DataMap,
    spool: RowSpool,
    identities: Mapping[str, Any],
    generated_at: datetime,
    *,
    portable: bool = False,
) -> None:
    tables = sorted(spool.files)
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        with archive.open("data.json", "w", force_zip64=True) as entry:
            head = {
                "format": "gardien-portability/1" if portable else "gardien-access/1",
                "subject": dict(identities),
                "generated_at": generated_at.isoformat(),
                "counts": spool.counts,
            }
            entry.write(orjson.dumps(head)[:-1] + b',"tables":{')
            for t, table in enumerate(tables):
                entry.write((b"," if t else b"") + orjson.dumps(table) + b":[")
                for r, row in enumerate(spool.rows(table)):
                    entry.write((b"," if r else b"") + orjson.dumps(row))
                entry.write(b"]")
            entry.write(b"}}")
        for table in tables:
            with archive.open(f"{table}.csv", "w", force_zip64=True) as raw:
                text = io.TextIOWrapper(raw, encoding="utf-8", newline="")
                writer = csv.DictWriter(text, fieldnames=spool.columns[table], extrasaction="ignore")
                writer.writeheader()
                for row in spool.rows(table):
                    writer.writerow({k: _csv_cell(v) for k, v in row.items()})
                text.flush()
                text.detach()
        if portable:
            archive.writestr("README.md", portability_readme(spool.counts, generated_at))
        else:
            archive.writestr("README.md", readme(datamap, spool.counts, generated_at))


def _csv_cell(value: Any) -> Any:
    # A leading =, +, - or @ makes spreadsheets run the cell as a formula (CSV injection).
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@"):
        return "'" + value
    if isinstance(value, dict | list):
        return orjson.dumps(value).decode()
    return value


HEADINGS: dict[str, dict[str, str]] = {
    "title": {
        "en": "Your personal data: copy and information (GDPR Art. 15)",
        "fr": "Vos données personnelles : copie et informations (RGPD art. 15)",
        "nl": "Uw persoonsgegevens: kopie en informatie (AVG art. 15)",
    },
    "files": {
        "en": "data.json holds all the data we found about you; each CSV file holds one table of it.",
        "fr": "data.json contient toutes les données trouvées à votre sujet ; "
        "chaque fichier CSV en contient une table.",
        "nl": "data.json bevat alle gegevens die we over u vonden; elk CSV-bestand bevat één tabel daarvan.",
    },
    "controller": {"en": "Controller", "fr": "Responsable du traitement", "nl": "Verwerkingsverantwoordelijke"},
    "dpo": {
        "en": "Data protection officer",
        "fr": "Délégué à la protection des données",
        "nl": "Functionaris voor gegevensbescherming",
    },
    "a": {
        "en": "(a) Purposes of the processing",
        "fr": "(a) Finalités du traitement",
        "nl": "(a) Verwerkingsdoeleinden",
    },
    "basis": {"en": "Legal basis", "fr": "Base juridique", "nl": "Rechtsgrond"},
    "b": {
        "en": "(b) Categories of personal data concerned",
        "fr": "(b) Catégories de données à caractère personnel concernées",
        "nl": "(b) Betrokken categorieën van persoonsgegevens",
    },
    "c": {
        "en": "(c) Recipients or categories of recipients",
        "fr": "(c) Destinataires ou catégories de destinataires",
        "nl": "(c) Ontvangers of categorieën van ontvangers",
    },
    "d": {
        "en": "(d) Storage period, or the criteria used to determine it",
        "fr": "(d) Durée de conservation, ou les critères utilisés pour la déterminer",
        "nl": "(d) Bewaartermijn, of de criteria om die te bepalen",
    },
    "e": {
        "en": "(e) Your rights",
        "fr": "(e) Vos droits",
        "nl": "(e) Uw rechten",
    },
    "e_text": {
        "en": "You may ask us to rectify or erase your personal data, to restrict its processing, or object to it.",
        "fr": "Vous pouvez nous demander la rectification ou l'effacement de vos données, la limitation de leur "
        "traitement, ou vous opposer à celui-ci.",
        "nl": "U kunt ons vragen uw persoonsgegevens te rectificeren of te wissen, de verwerking ervan te beperken, "
        "of er bezwaar tegen maken.",
    },
    "f": {
        "en": "(f) Right to lodge a complaint with a supervisory authority",
        "fr": "(f) Droit d'introduire une réclamation auprès d'une autorité de contrôle",
        "nl": "(f) Recht om een klacht in te dienen bij een toezichthoudende autoriteit",
    },
    "g": {
        "en": "(g) Source of the data not collected from you",
        "fr": "(g) Source des données qui n'ont pas été collectées auprès de vous",
        "nl": "(g) Bron van de gegevens die niet bij u zijn verzameld",
    },
    "h": {
        "en": "(h) Automated decision-making, including profiling",
        "fr": "(h) Prise de décision automatisée, y compris le profilage",
        "nl": "(h) Geautomatiseerde besluitvorming, met inbegrip van profilering",
    },
    "transfers": {
        "en": "Transfers to third countries (Art. 15(2))",
        "fr": "Transferts vers des pays tiers (art. 15(2))",
        "nl": "Doorgiften naar derde landen (art. 15(2))",
    },
    "rows": {"en": "rows", "fr": "lignes", "nl": "rijen"},
    "unset": {
        "en": "Not stated in the data map: ask the controller.",
        "fr": "Non indiqué dans la cartographie : interrogez le responsable du traitement.",
        "nl": "Niet vermeld in de gegevenskaart: vraag het de verwerkingsverantwoordelijke.",
    },
}


def _line(text: Text | None, lang: str) -> str:
    return text_in(text, lang) or HEADINGS["unset"][lang]


def recipients_text(recipients: Sequence[RecipientIn]) -> list[str]:
    return [" — ".join(p for p in (r.name, r.country, r.contact) if p) for r in recipients]


def readme(datamap: DataMap, counts: Mapping[str, int], generated_at: datetime) -> str:
    notice = datamap.notice
    categories = sorted({c for table in counts for c in datamap.tables[table].categories})
    sections = []
    for lang in LANGS:
        h = HEADINGS
        lines = [f"# {h['title'][lang]}", "", f"_{generated_at.date().isoformat()}_", "", h["files"][lang], ""]
        lines += [f"- {table}: {n} {h['rows'][lang]}" for table, n in sorted(counts.items())]
        if notice.controller is not None:
            lines += ["", f"## {h['controller'][lang]}", "", _line(notice.controller, lang)]
        if notice.dpo is not None:
            lines += ["", f"## {h['dpo'][lang]}", "", _line(notice.dpo, lang)]
        lines += ["", f"## {h['a'][lang]}", ""]
        lines += [f"- {text_in(p, lang)}" for p in notice.purposes] or [h["unset"][lang]]
        if notice.legal_basis is not None:
            lines += ["", f"{h['basis'][lang]}: {_line(notice.legal_basis, lang)}"]
        lines += ["", f"## {h['b'][lang]}", ""]
        lines += [f"- {c}" for c in categories] or ["-"]
        lines += ["", f"## {h['c'][lang]}", ""]
        lines += [f"- {r}" for r in recipients_text(datamap.recipients)] or [h["unset"][lang]]
        lines += ["", f"## {h['d'][lang]}", "", _line(notice.retention, lang)]
        lines += ["", f"## {h['e'][lang]}", "", h["e_text"][lang]]
        lines += ["", f"## {h['f'][lang]}", "", _line(notice.supervisory_authority, lang)]
        lines += ["", f"## {h['g'][lang]}", "", _line(notice.source, lang)]
        lines += ["", f"## {h['h'][lang]}", "", _line(notice.automated_decisions, lang)]
        if notice.transfers is not None:
            lines += ["", f"## {h['transfers'][lang]}", "", _line(notice.transfers, lang)]
        sections.append("\n".join(lines))
    return "\n\n---\n\n".join(sections) + "\n"


PORTABILITY: dict[str, dict[str, str]] = {
    "title": {
        "en": "The personal data you provided to us (GDPR Art. 20)",
        "fr": "Les données personnelles que vous nous avez fournies (RGPD art. 20)",
        "nl": "De persoonsgegevens die u ons hebt verstrekt (AVG art. 20)",
    },
    "body": {
        "en": "This package holds the data you provided to us, in structured, commonly used and machine-readable "
        "formats: data.json holds every table in one JSON document, and each CSV file (UTF-8, comma-separated, "
        "header row) one table. You may pass them to another controller. Data we inferred or derived about you "
        "is not included; ask for a copy of all your data (Art. 15) to receive it.",
        "fr": "Ce paquet contient les données que vous nous avez fournies, dans des formats structurés, couramment "
        "utilisés et lisibles par machine : data.json réunit toutes les tables dans un document JSON, et chaque "
        "fichier CSV (UTF-8, séparé par des virgules, ligne d'en-tête) en contient une. Vous pouvez les "
        "transmettre à un autre responsable du traitement. Les données que nous avons déduites ou dérivées à "
        "votre sujet n'y figurent pas ; demandez une copie de toutes vos données (art. 15) pour les recevoir.",
        "nl": "Dit pakket bevat de gegevens die u ons hebt verstrekt, in gestructureerde, gangbare en "
        "machineleesbare formaten: data.json bevat alle tabellen in één JSON-document, elk CSV-bestand (UTF-8, "
        "kommagescheiden, met kopregel) één tabel. U kunt ze aan een andere verwerkingsverantwoordelijke "
        "doorgeven. Gegevens die wij over u afleidden, zitten er niet in; vraag een kopie van al uw gegevens "
        "(art. 15) om die te ontvangen.",
    },
}


def portability_readme(counts: Mapping[str, int], generated_at: datetime) -> str:
    sections = []
    for lang in LANGS:
        lines = [f"# {PORTABILITY['title'][lang]}", "", f"_{generated_at.date().isoformat()}_", ""]
        lines += [PORTABILITY["body"][lang], ""]
        lines += [f"- {table}: {n} {HEADINGS['rows'][lang]}" for table, n in sorted(counts.items())]
        sections.append("\n".join(lines))
    return "\n\n---\n\n".join(sections) + "\n"
