"""Decoding plain-text files: UTF-8 first, BOMs honoured, legacy encodings detected."""

from __future__ import annotations

import codecs
from pathlib import Path

from ingest.schema import ParseError

_BOMS = [
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
]


def decode_bytes(data: bytes, name: str) -> tuple[str, str]:
    """Return (text, encoding). German legacy files are mostly CP1252 / Latin-1."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return data.decode(encoding), encoding
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    if b"\x00" in data[:4096]:
        raise ParseError(f"{name}: binary data, not text (NUL bytes and no UTF-16 byte order mark)")
    # Not UTF-8: German legacy files are almost always CP1252 (a superset of Latin-1's printable
    # range). Detection guesses wrong on short German texts (it picks CP1250 for `m²`), so it only
    # runs when CP1252 cannot decode the bytes.
    try:
        return data.decode("cp1252"), "cp1252"
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    best = from_bytes(data[:1_000_000]).best()
    if best is not None:
        try:
            return data.decode(best.encoding), best.encoding
        except (UnicodeDecodeError, LookupError):
            pass
    return data.decode("latin-1"), "latin-1"


def decode_text(path: Path, source: str | None = None) -> tuple[str, str]:
    """The file's text and encoding; errors name `source` (the stored name), else the path."""
    name = source or str(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ParseError(f"{name}: cannot read file: {exc.strerror or exc}") from exc
    return decode_bytes(data, name)
