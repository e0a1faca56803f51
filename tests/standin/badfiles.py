"""Generators of bad (and good) input files for the reliability tests: every file is made here, for real."""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

GERMAN = ("Die Kündigungsfrist beträgt vier Wochen zum Fünfzehnten oder zum Ende eines Kalendermonats. "
          "Der Arbeitgeber muss die Größe des Betriebs berücksichtigen. ")


def pdf_bytes(pages: list[str]) -> bytes:
    """A valid PDF with one line of text (Helvetica) per page; an empty string makes a page without text."""
    objs: list[bytes] = []
    n = len(pages)
    kids = " ".join(f"{3 + 2 * i} 0 R" for i in range(n))
    font = 3 + 2 * n
    objs.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    objs.append(f"<< /Type /Pages /Kids [{kids}] /Count {n} >>".encode())
    for i, text in enumerate(pages):
        objs.append(f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents {4 + 2 * i} 0 R "
                    f"/Resources << /Font << /F1 {font} 0 R >> >> >>".encode())
        stream = (f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET" if text else "0 0 m 100 100 l S").encode("latin-1")
        objs.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
    objs.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>")
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for i, body in enumerate(objs, 1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % i + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1))
    out.writelines(b"%010d 00000 n \n" % off for off in offsets)
    out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, xref))
    return out.getvalue()


def encrypted_pdf(path: Path) -> None:
    import pypdf

    reader = pypdf.PdfReader(io.BytesIO(pdf_bytes(["Geheimer Vertrag zur Kuendigung"])))
    writer = pypdf.PdfWriter(clone_from=reader)
    writer.encrypt(user_password="geheim", owner_password="geheim", algorithm="AES-128")
    with path.open("wb") as fh:
        writer.write(fh)


def docx(path: Path, paragraphs: list[str]) -> None:
    import docx as python_docx

    d = python_docx.Document()
    for p in paragraphs:
        d.add_paragraph(p)
    d.save(str(path))


def encrypted_ooxml(path: Path) -> None:
    """A password-protected DOCX or XLSX (an OLE compound file holding EncryptionInfo), by msoffcrypto."""
    from msoffcrypto.format.ooxml import OOXMLFile

    plain = path.with_name("plain-" + path.name)
    if path.suffix == ".xlsx":
        xlsx(plain, 3, 3)
    else:
        docx(plain, [GERMAN])
    with plain.open("rb") as src, path.open("wb") as dst:
        OOXMLFile(src).encrypt("geheim", dst)
    plain.unlink()


def docx_bomb(path: Path, unpacked_bytes: int) -> None:
    """A real DOCX with one extra member of zeros that compresses ~1000:1."""
    docx(path, [GERMAN])
    with (zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED) as zf,
          zf.open("word/media/bomb.bin", "w", force_zip64=True) as fh):
        block = b"\0" * (1 << 20)
        for _ in range(unpacked_bytes // len(block)):
            fh.write(block)


def xlsx(path: Path, rows: int, cols: int) -> None:
    import openpyxl

    wb = openpyxl.Workbook()
    ws = wb.active
    for r in range(rows):
        ws.append([f"Zelle {r}-{c} Größe" for c in range(cols)])
    wb.save(str(path))


def truncated(data: bytes) -> bytes:
    return data[: len(data) // 2]


def deep_path(root: Path, total_chars: int) -> Path:
    """A folder chain whose full path is longer than PATH_MAX; made with relative mkdir/chdir steps."""
    name = "v" * 200
    here = os.getcwd()
    depth = total_chars // (len(name) + 1) + 1
    os.chdir(root)
    try:
        for _ in range(depth):
            os.mkdir(name)
            os.chdir(name)
        Path("tief.txt").write_text(GERMAN, encoding="utf-8")
    finally:
        os.chdir(here)
    return root.joinpath(*[name] * depth) / "tief.txt"
