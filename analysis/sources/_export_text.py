"""Text tables as spreadsheets and browsers save them: encoding, delimiter and decimal-comma detection.

A CSV reaches us from Excel in a European locale as often as from pandas: `;`-separated with `0,93` for 0.93,
in cp1252 or as UTF-16 ("Unicode text"), with or without a byte-order mark. Read naively such a file becomes one
text column and the run looks empty ("Steps 0"). These helpers turn the raw bytes into text plus a delimiter, and
text columns holding decimal-comma numbers into numbers; a binary file is refused with a clear message.
"""

from __future__ import annotations

import codecs
import csv
import re

import pandas as pd

__all__ = ["BinaryContent", "decimal_comma_columns", "decode_table_bytes", "excel_sep_line", "sniff_delimiter"]

DELIMITERS = (",", ";", "\t", "|")
_SNIFF_LINES = 30
_SNIFF_CHARS = 1 << 20  # a header longer than this (a very wide table) is judged by the header alone
_DECIMAL_COMMA = re.compile(r"^\s*[-+]?(\d{1,3}(\.\d{3})+|\d+)(,\d+)?([eE][-+]?\d+)?\s*$")


class BinaryContent(ValueError):
    """The bytes are not text in any encoding a spreadsheet or a script would write (an image, an archive...)."""


def decode_table_bytes(raw: bytes) -> tuple[str, str]:
    """(text, encoding name) of a text table: a byte-order mark decides (UTF-8, UTF-16), else UTF-16 without
    one when every other byte is NUL, else UTF-8, else cp1252 (Excel's "CSV" on Western Windows), else latin-1.
    Raises BinaryContent for bytes that are no text (NUL bytes, many control characters)."""
    if raw.startswith(b"PK\x03\x04"):
        raise BinaryContent("the file is a zip archive (an Excel workbook?), not a text table: save it as CSV")
    if raw.startswith(codecs.BOM_UTF8):
        return _checked(raw[len(codecs.BOM_UTF8) :].decode("utf-8", errors="replace"), "UTF-8 with BOM")
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return _checked(raw.decode("utf-16", errors="replace"), "UTF-16")
    head = raw[:4096]
    if len(head) >= 4:
        even_nul, odd_nul = head[0::2].count(0), head[1::2].count(0)
        half = len(head) // 2
        if odd_nul > 0.9 * half and even_nul < 0.1 * half:
            return _checked(raw.decode("utf-16-le", errors="replace"), "UTF-16 LE")
        if even_nul > 0.9 * half and odd_nul < 0.1 * half:
            return _checked(raw.decode("utf-16-be", errors="replace"), "UTF-16 BE")
    if b"\x00" in head:
        raise BinaryContent("the file holds binary data (NUL bytes), not a text table")
    try:
        return _checked(raw.decode("utf-8"), "UTF-8")
    except UnicodeDecodeError:
        pass
    try:
        return _checked(raw.decode("cp1252"), "cp1252")
    except UnicodeDecodeError:  # bytes cp1252 leaves undefined (0x81, 0x8d, ...)
        return _checked(raw.decode("latin-1"), "latin-1")


def _checked(text: str, encoding: str) -> tuple[str, str]:
    sample = text[:4096]
    if sample:
        control = sum(1 for ch in sample if ord(ch) < 32 and ch not in "\t\r\n\x0c")
        bad = control + sample.count("\ufffd")
        if "\x00" in sample or bad > max(2, len(sample) // 50):
            raise BinaryContent("the file holds binary data, not a text table")
    return text, encoding


def excel_sep_line(text: str) -> tuple[str, str | None]:
    """Excel's `sep=;` first line (it names the delimiter): (text without it, the delimiter), else (text, None)."""
    first, _, rest = text.partition("\n")
    m = re.fullmatch(r'"?sep=(.)"?\r?', first)
    return (rest, m.group(1)) if m else (text, None)


def sniff_delimiter(text: str) -> str:
    """The delimiter that splits the first lines into the same number (> 1) of fields, the widest such split
    winning (`;` beats `,` for `step;recall` / `0;0,93`); `,` when none is consistent (then pandas reports the
    ragged row). Quotes are honoured, so a `,` inside a quoted field does not count."""
    head = text[:_SNIFF_CHARS]
    first_break = head.find("\n")
    if first_break < 0 and len(text) > _SNIFF_CHARS:  # a header longer than the sample: count on the header
        counts = {sep: head.count(sep) for sep in DELIMITERS}
        best = max(counts, key=counts.__getitem__)
        return best if counts[best] else ","
    lines = [line for line in head.splitlines()[:_SNIFF_LINES] if line.strip()]
    if len(text) > len(head) and len(lines) > 1:
        lines = lines[:-1]  # the sample may end inside a line
    if not lines:
        return ","
    best_sep, best_width = ",", 1
    for sep in DELIMITERS:
        try:
            widths = {len(row) for row in csv.reader(lines, delimiter=sep) if row}
        except csv.Error:
            continue
        if len(widths) == 1:
            width = widths.pop()
            if width > best_width:
                best_sep, best_width = sep, width
    if best_width > 1:
        return best_sep
    counts = {sep: lines[0].count(sep) for sep in DELIMITERS}  # no consistent split: trust the header
    best = max(counts, key=counts.__getitem__)
    return best if counts[best] else ","


def decimal_comma_columns(frame: pd.DataFrame) -> list[str]:
    """Text columns whose every value is a number written with a decimal comma (`0,93`, `1.234,5`, `-2,5e-3`),
    converted in place to floats; returns their names. A column with one value that is not such a number stays
    text."""
    converted = []
    for col in frame.columns:
        series = frame[col]
        if series.dtype != object and str(series.dtype) not in ("str", "string"):
            continue
        values = series.dropna()
        if not len(values) or not all(isinstance(v, str) for v in values):
            continue
        texts = values.astype(str)
        if not texts.str.contains(",", regex=False).any() or not texts.str.match(_DECIMAL_COMMA).all():
            continue
        cleaned = series.where(series.isna(), series.astype(str).str.strip())
        cleaned = cleaned.str.replace(".", "", regex=False).str.replace(",", ".", regex=False)
        frame[col] = pd.to_numeric(cleaned, errors="coerce")
        converted.append(str(col))
    return converted
