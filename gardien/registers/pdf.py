"""PDF documents (fpdf2, pure Python): the period report and the printable register.

The PDF standard fonts are used, so nothing is embedded and no font file is needed; they cover
Windows-1252, which holds every letter of French, Dutch and German and the usual typography (— « » €).
Characters outside it are written as their closest Windows-1252 form, or "?" (see `_text`).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence

from fpdf import FPDF
from fpdf.fonts import FontFace

from gardien.registers.charts import Series

ENCODING = "windows-1252"
HEADINGS = FontFace(emphasis="BOLD", fill_color=(235, 235, 235))
BODY = 9.5
LINE = 4.6


def _text(value: object) -> str:
    """A value as text the standard fonts can draw: decomposed accents kept, the rest as "?"."""
    text = "—" if value is None else str(value)
    try:
        text.encode(ENCODING)
        return text
    except UnicodeEncodeError:
        pass
    out = []
    for char in text:
        try:
            char.encode(ENCODING)
            out.append(char)
        except UnicodeEncodeError:
            plain = unicodedata.normalize("NFKD", char).encode(ENCODING, "ignore").decode(ENCODING)
            out.append(plain or "?")
    return "".join(out)


class Document(FPDF):
    """An A4 document with a running footer: title on the left, page number on the right."""

    def __init__(self, title: str, subtitle: str) -> None:
        super().__init__(orientation="P", unit="mm", format="A4")
        self.core_fonts_encoding = ENCODING
        self.running_title = _text(title)
        self.set_title(self.running_title)
        self.set_creator("Gardien")
        self.set_auto_page_break(True, margin=16)
        self.set_margins(16, 16, 16)
        self.add_page()
        self.set_font("helvetica", "B", 15)
        self.multi_cell(0, 7, self.running_title, new_x="LMARGIN", new_y="NEXT")
        self.set_font("helvetica", "", BODY)
        self.set_text_color(70)
        self.multi_cell(0, LINE, _text(subtitle), new_x="LMARGIN", new_y="NEXT")
        self.set_text_color(0)
        self.ln(2)

    def footer(self) -> None:
        self.set_y(-11)
        self.set_font("helvetica", "", 7.5)
        self.set_text_color(110)
        self.cell(0, 4, self.running_title, align="L")
        self.cell(0, 4, f"{self.page_no()}/{{nb}}", align="R")
        self.set_text_color(0)

    def heading(self, text: str) -> None:
        if self.get_y() > self.h - 40:
            self.add_page()
        self.ln(2)
        self.set_font("helvetica", "B", 11.5)
        self.multi_cell(0, 6, _text(text), new_x="LMARGIN", new_y="NEXT")
        self.set_draw_color(150)
        self.line(self.l_margin, self.get_y(), self.w - self.r_margin, self.get_y())
        self.ln(1.5)
        self.set_font("helvetica", "", BODY)

    def paragraph(self, text: str) -> None:
        self.multi_cell(0, LINE, _text(text), new_x="LMARGIN", new_y="NEXT")
        self.ln(1)

    def pairs(self, rows: Sequence[tuple[str, object]]) -> None:
        """Label and value, one row each."""
        self.grid(None, [[label, value] for label, value in rows], (70, 112))

    def grid(self, head: Sequence[str] | None, rows: Sequence[Sequence[object]], widths: Sequence[float]) -> None:
        self.set_draw_color(170)
        # Cells take the current fill colour; the charts leave theirs behind.
        self.set_fill_color(255, 255, 255)
        with self.table(
            col_widths=tuple(widths),
            first_row_as_headings=head is not None,
            line_height=LINE,
            text_align="LEFT",
            headings_style=HEADINGS,
        ) as table:
            if head is not None:
                row = table.row()
                for cell in head:
                    row.cell(_text(cell))
            for values in rows:
                row = table.row()
                for value in values:
                    row.cell(_text(value))
        self.ln(2)

    def bars(self, title: str, categories: Sequence[str], series: Sequence[Series]) -> None:
        """Grouped bars drawn with rectangles, each labelled with its value (same data as the SVG)."""
        height, label_room = 42.0, 12.0
        if self.get_y() + height + label_room + 14 > self.h - 16:
            self.add_page()
        self.set_font("helvetica", "B", BODY)
        self.cell(0, 6, _text(title), new_x="LMARGIN", new_y="NEXT")
        self.set_font("helvetica", "", 7.5)
        x = self.l_margin
        for s in series:
            self.set_fill_color(*_rgb(s.colour))
            self.rect(x, self.get_y() + 1, 3, 3, style="F")
            self.set_xy(x + 4, self.get_y())
            self.cell(self.get_string_width(_text(s.name)) + 6, 5, _text(s.name))
            x = self.get_x()
        self.ln(6)
        top = max([v for s in series for v in s.values] + [1])
        width = self.w - self.l_margin - self.r_margin
        base = self.get_y() + height
        group = width / max(len(categories), 1)
        bar = min(12.0, group * 0.8 / max(len(series), 1))
        self.set_draw_color(80)
        self.line(self.l_margin, base, self.l_margin + width, base)
        for index, category in enumerate(categories):
            start = self.l_margin + index * group + (group - bar * len(series)) / 2
            for position, s in enumerate(series):
                value = s.values[index]
                tall = (height - 5) * value / top
                left = start + position * bar
                self.set_fill_color(*_rgb(s.colour))
                if tall > 0:
                    self.rect(left, base - tall, bar - 0.6, tall, style="F")
                self.set_xy(left - 2, base - tall - 4)
                self.cell(bar + 3.4, 4, str(value), align="C")
            self.set_xy(self.l_margin + index * group, base + 1)
            self.cell(group, 4, _text(category), align="C")
        self.set_xy(self.l_margin, base + label_room / 2 + 2)
        self.set_font("helvetica", "", BODY)

    def bytes(self) -> bytes:
        return bytes(self.output())


def _rgb(colour: str) -> tuple[int, int, int]:
    value = colour.lstrip("#")
    return int(value[0:2], 16), int(value[2:4], 16), int(value[4:6], 16)
