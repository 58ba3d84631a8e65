"""The record of processing activities as a file: JSON, CSV, XLSX or ODS with the CNIL template's
columns, printable HTML and PDF.

One row per activity. The spreadsheet's column titles follow the CNIL template's "fiche" (see
docs/registers.md); processor activities (Art. 30(2)) get a sheet of their own.
"""

from __future__ import annotations

import csv
import io
import xml.etree.ElementTree as ET
import zipfile
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Literal

import orjson
from openpyxl import Workbook
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Alignment, Font

from gardien.registers.documents import render
from gardien.registers.pdf import Document
from gardien.registers.schemas import (
    ActivityOut,
    Contact,
    ControllerActivity,
    ProcessorActivity,
    SecurityMeasure,
    SettingsIn,
    Transfer,
    dump,
)
from gardien.registers.texts import in_french as fr

ExportFormat = Literal["json", "csv", "xlsx", "ods", "html", "pdf"]
ODS_MEDIA_TYPE = "application/vnd.oasis.opendocument.spreadsheet"
MEDIA_TYPES: dict[str, str] = {
    "json": "application/json",
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "ods": ODS_MEDIA_TYPE,
    "html": "text/html; charset=utf-8",
    "pdf": "application/pdf",
}
CONTROLLER_SHEET = "Registre (art. 30.1)"
PROCESSOR_SHEET = "Sous-traitant (art. 30.2)"
ODF = {
    "office": "urn:oasis:names:tc:opendocument:xmlns:office:1.0",
    "table": "urn:oasis:names:tc:opendocument:xmlns:table:1.0",
    "text": "urn:oasis:names:tc:opendocument:xmlns:text:1.0",
    "manifest": "urn:oasis:names:tc:opendocument:xmlns:manifest:1.0",
}

# A cell that starts with one of these is run as a formula by spreadsheet programs (CSV injection).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _contact(contact: Contact | None) -> str:
    if contact is None:
        return ""
    return ", ".join(part for part in (contact.name, contact.email, contact.phone, contact.address) if part)


def _lines(values: Sequence[str]) -> str:
    return "\n".join(values)


def _transfers(transfers: Sequence[Transfer]) -> str:
    return _lines(
        [
            f"{t.recipient}, {t.country}, {fr(t.safeguard.value)}" + (f", {t.documentation}" if t.documentation else "")
            for t in transfers
        ]
    )


def _security(measures: Sequence[SecurityMeasure], description: str | None) -> str:
    return _lines([fr(m.value) for m in measures] + ([description] if description else []))


Column = tuple[str, str, Callable[[ActivityOut, ControllerActivity, SettingsIn | None], str]]

CONTROLLER_COLUMNS: list[Column] = [
    ("reference", "Référence", lambda e, r, h: r.reference or ""),
    ("name", "Nom du traitement", lambda e, r, h: r.name),
    ("created_at", "Date de création", lambda e, r, h: e.created_at.date().isoformat()),
    ("updated_at", "Dernière mise à jour", lambda e, r, h: e.updated_at.date().isoformat()),
    ("controller", "Responsable du traitement", lambda e, r, h: _contact(h.controller) if h else ""),
    ("representative", "Représentant", lambda e, r, h: _contact(h.representative) if h else ""),
    ("joint_controllers", "Responsables conjoints", lambda e, r, h: _lines([_contact(c) for c in r.joint_controllers])),
    ("dpo", "Délégué à la protection des données", lambda e, r, h: _contact(h.dpo) if h else ""),
    ("description", "Description", lambda e, r, h: r.description or ""),
    ("main_purpose", "Finalité principale", lambda e, r, h: r.purposes[0].name),
    ("sub_purposes", "Sous-finalités", lambda e, r, h: _lines([p.name for p in r.purposes[1:]])),
    (
        "legal_basis",
        "Base légale",
        lambda e, r, h: _lines(
            [
                f"{p.name}: {fr(p.legal_basis.value)}"
                + (f" ({p.legitimate_interest})" if p.legitimate_interest else "")
                for p in r.purposes
            ]
        ),
    ),
    ("subject_categories", "Catégories de personnes concernées", lambda e, r, h: _lines(r.subject_categories)),
    (
        "data_categories",
        "Catégories de données et durées de conservation",
        lambda e, r, h: _lines(
            [
                f"{fr(d.category.value)}: {d.description or ''} — {d.retention or ''}".strip(" —:")
                for d in r.data_categories
            ]
        ),
    ),
    ("special_categories", "Données sensibles", lambda e, r, h: _lines([fr(c.value) for c in r.special_categories])),
    ("nir", "NIR", lambda e, r, h: "oui" if r.nir else "non"),
    (
        "recipients",
        "Destinataires",
        lambda e, r, h: _lines(
            [f"{x.name} ({fr(x.kind.value)}{', ' + x.country if x.country else ''})" for x in r.recipients]
        ),
    ),
    (
        "transfers",
        "Transferts hors UE",
        lambda e, r, h: _transfers(r.transfers),
    ),
    ("retention", "Durée de conservation", lambda e, r, h: r.retention or ""),
    (
        "security_measures",
        "Mesures de sécurité",
        lambda e, r, h: _security(r.security_measures, r.security_description),
    ),
]

Fiche = tuple[ActivityOut, list[tuple[str, str]]]
ProcessorColumn = tuple[str, str, Callable[[ActivityOut, ProcessorActivity], str]]

PROCESSOR_COLUMNS: list[ProcessorColumn] = [
    ("reference", "Référence", lambda e, r: r.reference or ""),
    ("name", "Nom du traitement", lambda e, r: r.name),
    ("updated_at", "Dernière mise à jour", lambda e, r: e.updated_at.date().isoformat()),
    ("controllers", "Responsables de traitement", lambda e, r: _lines([_contact(c.controller) for c in r.controllers])),
    (
        "representatives",
        "Représentants",
        lambda e, r: _lines([_contact(c.representative) for c in r.controllers if c.representative]),
    ),
    (
        "dpos",
        "Délégués à la protection des données",
        lambda e, r: _lines([_contact(c.dpo) for c in r.controllers if c.dpo]),
    ),
    ("processing_categories", "Catégories de traitements", lambda e, r: _lines(r.processing_categories)),
    (
        "transfers",
        "Transferts hors UE",
        lambda e, r: _transfers(r.transfers),
    ),
    (
        "security_measures",
        "Mesures de sécurité",
        lambda e, r: _security(r.security_measures, r.security_description),
    ),
]


def _safe(value: str) -> str:
    return "'" + value if value.startswith(FORMULA_START) else value


def controller_rows(entries: Sequence[ActivityOut], header: SettingsIn | None) -> list[list[str]]:
    return [
        [_safe(get(e, e.record, header)) for _, _, get in CONTROLLER_COLUMNS]
        for e in entries
        if isinstance(e.record, ControllerActivity)
    ]


def processor_rows(entries: Sequence[ActivityOut]) -> list[list[str]]:
    return [
        [_safe(get(e, e.record)) for _, _, get in PROCESSOR_COLUMNS]
        for e in entries
        if isinstance(e.record, ProcessorActivity)
    ]


def to_json(entries: Sequence[ActivityOut], header: SettingsIn | None, generated_at: datetime) -> bytes:
    return orjson.dumps(
        {
            "generated_at": generated_at,
            "header": dump(header) if header is not None else None,
            "activities": [dump(e) for e in entries],
        },
        option=orjson.OPT_INDENT_2,
    )


def to_csv(entries: Sequence[ActivityOut], header: SettingsIn | None) -> bytes:
    """Controller activities, one per row, with the column keys as the header."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([key for key, _, _ in CONTROLLER_COLUMNS])
    writer.writerows(controller_rows(entries, header))
    # A BOM, so that spreadsheet programs read the accents as UTF-8.
    return b"\xef\xbb\xbf" + out.getvalue().encode()


def to_xlsx(entries: Sequence[ActivityOut], header: SettingsIn | None) -> bytes:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = CONTROLLER_SHEET
    _fill(sheet, [label for _, label, _ in CONTROLLER_COLUMNS], controller_rows(entries, header))
    _fill(
        book.create_sheet(PROCESSOR_SHEET),
        [label for _, label, _ in PROCESSOR_COLUMNS],
        processor_rows(entries),
    )
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _fill(sheet: Any, titles: list[str], rows: list[list[str]]) -> None:
    sheet.append(titles)
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    for row in rows:
        # XML 1.0 cannot carry most control characters; they show as U+FFFD rather than fail the file.
        sheet.append([ILLEGAL_CHARACTERS_RE.sub("\ufffd", value) for value in row])
    wrap = Alignment(wrap_text=True, vertical="top")
    for column in sheet.columns:
        for cell in column:
            cell.alignment = wrap
            # Only ever text: openpyxl would otherwise store a leading "=" as a formula.
            if cell.value is not None:
                cell.data_type = "s"
        sheet.column_dimensions[column[0].column_letter].width = 28
    sheet.freeze_panes = "A2"


def _ods_sheet(spreadsheet: ET.Element, name: str, titles: list[str], rows: list[list[str]]) -> None:
    table = ET.SubElement(spreadsheet, _odf("table", "table"), {_odf("table", "name"): name})
    ET.SubElement(table, _odf("table", "table-column"), {_odf("table", "number-columns-repeated"): str(len(titles))})
    for values in [titles, *rows]:
        row = ET.SubElement(table, _odf("table", "table-row"))
        for value in values:
            cell = ET.SubElement(row, _odf("table", "table-cell"), {_odf("office", "value-type"): "string"})
            # One paragraph per line: how ODS keeps line breaks inside a cell.
            for line in ILLEGAL_CHARACTERS_RE.sub("\ufffd", value).split("\n"):
                ET.SubElement(cell, _odf("text", "p")).text = line


def _odf(prefix: str, name: str) -> str:
    return f"{{{ODF[prefix]}}}{name}"


def to_ods(entries: Sequence[ActivityOut], header: SettingsIn | None) -> bytes:
    """The same two sheets as the XLSX, as an OpenDocument spreadsheet (ODF 1.2), written directly."""
    for prefix, uri in ODF.items():
        ET.register_namespace(prefix, uri)
    content = ET.Element(_odf("office", "document-content"), {_odf("office", "version"): "1.2"})
    spreadsheet = ET.SubElement(ET.SubElement(content, _odf("office", "body")), _odf("office", "spreadsheet"))
    _ods_sheet(
        spreadsheet, CONTROLLER_SHEET, [label for _, label, _ in CONTROLLER_COLUMNS], controller_rows(entries, header)
    )
    _ods_sheet(spreadsheet, PROCESSOR_SHEET, [label for _, label, _ in PROCESSOR_COLUMNS], processor_rows(entries))
    manifest = ET.Element(_odf("manifest", "manifest"), {_odf("manifest", "version"): "1.2"})
    for path, media in (("/", ODS_MEDIA_TYPE), ("content.xml", "text/xml")):
        ET.SubElement(
            manifest,
            _odf("manifest", "file-entry"),
            {_odf("manifest", "full-path"): path, _odf("manifest", "media-type"): media},
        )
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as package:
        # ODF 1.2 §3.3: the media type first, stored uncompressed, so that tools recognise the file.
        package.writestr(zipfile.ZipInfo("mimetype"), ODS_MEDIA_TYPE, compress_type=zipfile.ZIP_STORED)
        package.writestr(
            "content.xml", ET.tostring(content, xml_declaration=True, encoding="utf-8"), zipfile.ZIP_DEFLATED
        )
        package.writestr(
            "META-INF/manifest.xml", ET.tostring(manifest, xml_declaration=True, encoding="utf-8"), zipfile.ZIP_DEFLATED
        )
    return out.getvalue()


def _fiches(entries: Sequence[ActivityOut], header: SettingsIn | None) -> tuple[list[Fiche], list[Fiche]]:
    """Each activity with its (label, value) pairs: controller ones, then processor ones."""
    controller = [
        (e, [(label, get(e, e.record, header)) for _, label, get in CONTROLLER_COLUMNS])
        for e in entries
        if isinstance(e.record, ControllerActivity)
    ]
    processor = [
        (e, [(label, get(e, e.record)) for _, label, get in PROCESSOR_COLUMNS])
        for e in entries
        if isinstance(e.record, ProcessorActivity)
    ]
    return controller, processor


def to_pdf(entries: Sequence[ActivityOut], header: SettingsIn | None, generated_at: datetime) -> bytes:
    """The printable register as a PDF: the header, then one fiche per activity, as in the HTML."""
    controller, processor = _fiches(entries, header)
    doc = Document(
        "Registre des activités de traitement", f"Article 30 du RGPD — édité le {generated_at:%Y-%m-%d %H:%M} UTC"
    )
    if header is not None:
        doc.pairs(
            [
                ("Responsable du traitement", _contact(header.controller)),
                ("Représentant", _contact(header.representative)),
                ("Délégué à la protection des données", _contact(header.dpo)),
            ]
        )
    doc.heading(f"Activités de traitement ({len(controller)})")
    for entry, fields in controller:
        doc.heading(entry.record.name)
        doc.pairs(fields)
    if processor:
        doc.heading("Traitements effectués en qualité de sous-traitant (article 30.2)")
        for entry, fields in processor:
            doc.heading(entry.record.name)
            doc.pairs(fields)
    return doc.bytes()


def to_html(entries: Sequence[ActivityOut], header: SettingsIn | None, generated_at: datetime) -> str:
    controller, processor = _fiches(entries, header)
    return render(
        "register.html",
        {
            "language": "fr",
            "header": header,
            "generated_at": generated_at.strftime("%Y-%m-%d %H:%M UTC"),
            "controller": controller,
            "processor": processor,
        },
    )


def export(entries: Sequence[ActivityOut], header: SettingsIn | None, fmt: ExportFormat, now: datetime) -> bytes:
    if fmt == "json":
        return to_json(entries, header, now)
    if fmt == "csv":
        return to_csv(entries, header)
    if fmt == "xlsx":
        return to_xlsx(entries, header)
    if fmt == "ods":
        return to_ods(entries, header)
    if fmt == "pdf":
        return to_pdf(entries, header, now)
    return to_html(entries, header, now).encode()
