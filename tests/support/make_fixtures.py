"""Rebuild tests/fixtures/ from ../shared/data: the small real excerpts the suite runs on in a fresh clone.

    python tests/support/make_fixtures.py [--data ../shared/data]

What is copied and why is listed in tests/fixtures/README.md (with the licences). Run it only when the
selection changes: the fixtures are committed, and the tests never need ../shared/data to use them.
The hand-written fixtures (documents/html/, texte/) are not touched.
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"

LAWS = ["b/burlg", "p/prodhaftg", "a/arbzg", "k/kschg"]  # whole small laws
GG_LINES = 495  # the Grundgesetz up to the end of Art. 19 (the Grundrechte)
OFFICE = ["ONLYOFFICE-Beispieldokument.docx", "ONLYOFFICE-Beispiel-Tabellenblatt.xlsx"]
PPTX = "ONLYOFFICE-Beispielpräsentation.pptx"  # its photos are downscaled: 1.1 MB -> under 100 kB
PDFS = ["bgbl1_2016_j0408_0010.pdf", "MustangGnuaccountingBeispielRE-20201121_508.pdf",
        "bgbl1_2020_j1890-1_0100.pdf"]
XQUAD_ARTICLES = 8  # of 48: 40 paragraphs
GERMANDPR_ITEMS = 20  # of 1,025 questions


def copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)


def shrink_jpeg(data: bytes, width: int = 96) -> bytes:
    """The same picture, `width` pixels wide: the slides' text is what the parser tests read."""
    from PIL import Image

    image = Image.open(io.BytesIO(data)).convert("RGB")
    image.thumbnail((width, width * 4))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=50)
    return out.getvalue()


def shrink_pptx(src: Path, dst: Path) -> None:
    """Copy a PPTX entry by entry (order and names kept), with its JPEG media downscaled."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename.startswith("ppt/media/") and info.filename.lower().endswith((".jpg", ".jpeg")):
                data = shrink_jpeg(data)
            zout.writestr(info, data, compress_type=zipfile.ZIP_DEFLATED)


def xquad_slice(src: Path, dst: Path, articles: int) -> None:
    """The first `articles` articles of XQuAD German, in the same SQuAD v1.1 JSON format."""
    raw = json.loads(src.read_text(encoding="utf-8"))
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text(json.dumps({"data": raw["data"][:articles], "version": raw["version"]}, ensure_ascii=False),
                   encoding="utf-8")


def germandpr_slice(src: Path, dst: Path, items: int) -> None:
    """The first `items` questions of the GermanDPR-derived test set, in the same JSON format."""
    raw = json.loads(src.read_text(encoding="utf-8"))
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text(json.dumps(raw[:items], ensure_ascii=False, indent=1), encoding="utf-8")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    data: Path = p.parse_args(argv).data
    for law in LAWS:
        copy(data / "gesetze" / law / "index.md", FIXTURES / "gesetze" / law / "index.md")
    lines = (data / "gesetze/g/gg/index.md").read_text(encoding="utf-8").splitlines(keepends=True)
    (FIXTURES / "gesetze/g/gg").mkdir(parents=True, exist_ok=True)
    (FIXTURES / "gesetze/g/gg/index.md").write_text("".join(lines[:GG_LINES]), encoding="utf-8")
    copy(data / "gesetze/LICENSE", FIXTURES / "gesetze/LICENSE")
    for name in OFFICE:
        copy(data / "documents/office" / name, FIXTURES / "documents/office" / name)
    shrink_pptx(data / "documents/office" / PPTX, FIXTURES / "documents/office" / PPTX)
    for name in PDFS:
        copy(data / "documents/pdf" / name, FIXTURES / "documents/pdf" / name)
    xquad_slice(data / "xquad-de/xquad.de.json", FIXTURES / "xquad-de/xquad.de.json", XQUAD_ARTICLES)
    germandpr_slice(data / "germandpr-derived/germandpr_test.json",
                    FIXTURES / "germandpr-derived/germandpr_test.json", GERMANDPR_ITEMS)


if __name__ == "__main__":
    main()
