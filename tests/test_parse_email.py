"""E-mail (EML): charsets of text parts are detected like text files'; Subject and From are text."""

from __future__ import annotations

import io
import warnings
from email import encoders
from email.generator import BytesGenerator
from email.header import Header
from email.mime.base import MIMEBase
from email.mime.multipart import MIMEMultipart
from email.mime.nonmultipart import MIMENonMultipart
from email.mime.text import MIMEText
from pathlib import Path

from ingest.limits import Limits
from ingest.parse import parse_file

BODY = ("Sehr geehrte Frau Schäfer,\nder Vermieter beschließt die Rückzahlung der Kaution für die Wohnung "
        "in der Hauptstraße.\n")
ATTACHMENT = "Die Eigentümerversammlung beschließt: Größere Schäden trägt die Gemeinschaft – „sofort“.\n"
SUBJECT = "Kündigung der Wohnung zum 31. März"


def _plain_part(data: bytes, filename: str | None = None, base64: bool = False) -> MIMENonMultipart:
    """A text/plain part with no charset parameter, as some mailers and scanners write them."""
    part = MIMENonMultipart("text", "plain")
    part.set_payload(data)
    if base64:
        encoders.encode_base64(part)
    else:
        part["Content-Transfer-Encoding"] = "8bit"
    if filename:
        part.add_header("Content-Disposition", "attachment", filename=filename)
    return part


def _write_eml(path: Path, msg) -> Path:
    buf = io.BytesIO()
    BytesGenerator(buf).flatten(msg)
    path.write_bytes(buf.getvalue())
    return path


def _message(*parts) -> MIMEMultipart:
    msg = MIMEMultipart()
    msg["From"] = Header("Jürgen Müller", "utf-8").encode() + " <juergen.mueller@example.de>"
    msg["To"] = "mieter@example.de"
    msg["Subject"] = Header(SUBJECT, "iso-8859-1")  # RFC 2047: =?iso-8859-1?q?K=FCndigung...?=
    msg["Date"] = "Mon, 03 Feb 2025 10:00:00 +0100"
    for part in parts:
        msg.attach(part)
    return msg


def test_text_parts_without_charset_are_detected_not_mojibake(tmp_path):
    """#10.12: a Latin-1 body and a CP1252 attachment, both without a charset, decode correctly."""
    msg = _message(_plain_part(BODY.encode("latin-1")),
                   _plain_part(ATTACHMENT.encode("cp1252"), "beschluss.txt", base64=True))
    doc = parse_file(_write_eml(tmp_path / "mail.eml", msg))
    assert "\ufffd" not in doc.text
    assert "der Vermieter beschließt die Rückzahlung der Kaution" in doc.text
    assert "Die Eigentümerversammlung beschließt: Größere Schäden trägt die Gemeinschaft – „sofort“." in doc.text


def test_subject_and_sender_are_part_of_the_document(tmp_path):
    """#10.12: Subject and From (RFC 2047 encoded words with umlauts) open the document as a section."""
    msg = _message(_plain_part(BODY.encode("latin-1")))
    doc = parse_file(_write_eml(tmp_path / "mail.eml", msg))
    assert doc.text.startswith(f"Betreff: {SUBJECT}")
    assert "Von: Jürgen Müller <juergen.mueller@example.de>" in doc.text
    assert "=?" not in doc.text
    first = doc.sections[0]
    assert doc.text[first.start : first.end] == f"Betreff: {SUBJECT}"
    for s in doc.sections:
        assert doc.text[s.start : s.end].strip() == doc.text[s.start : s.end] != ""
    assert doc.metadata["title"] == SUBJECT
    assert doc.metadata["file_type"] == "eml"


def test_declared_charset_that_is_wrong_and_utf8_parts(tmp_path):
    """#10.12: a part declared us-ascii that holds CP1252 is detected too; a correct UTF-8 part is kept."""
    wrong = _plain_part("Die Größe der Wohnung beträgt 80 m².\n".encode("cp1252"))
    wrong.set_param("charset", "us-ascii")
    right = MIMEText("Übergabe am Freitag, Schlüssel bei Frau Weiß.\n", "plain", "utf-8")
    doc = parse_file(_write_eml(tmp_path / "mail.eml", _message(wrong, right)))
    assert "Die Größe der Wohnung beträgt 80 m²." in doc.text
    assert "Übergabe am Freitag, Schlüssel bei Frau Weiß." in doc.text


def test_raw_8bit_headers_and_body_without_mime_headers(tmp_path):
    """#10.12: umlauts written raw (Latin-1) into Subject and From, and a body without any charset."""
    raw = ("From: Jürgen Weiß <j@example.de>\nSubject: Kündigung zum März\nContent-Type: text/plain\n\n"
           "Die Größe beträgt 80 m².\n").encode("latin-1")
    doc = parse_file(_write_bytes(tmp_path / "alt.eml", raw))
    assert doc.text == "Betreff: Kündigung zum März\n\nVon: Jürgen Weiß <j@example.de>\n\nDie Größe beträgt 80 m²."


def _write_bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_text_file_attached_as_octet_stream_raises_no_encoding_warning(tmp_path):
    """#10.12 (E3): a CP1252 .txt file attached as application/octet-stream (as many mailers attach files)
    is decoded by the project (ingest.email_parse) and handed on as UTF-8 text, so unstructured does not
    guess its encoding again and warn on stderr (EncodingDetectionWarning "inferred as 'windows-1250'",
    printed by the CLI although the text was right)."""
    attachment = MIMEBase("application", "octet-stream")
    attachment.set_payload(ATTACHMENT.encode("cp1252"))
    encoders.encode_base64(attachment)
    attachment.add_header("Content-Disposition", "attachment", filename="beschluss.txt")
    path = _write_eml(tmp_path / "mail.eml", _message(_plain_part(BODY.encode("latin-1")), attachment))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        doc = parse_file(path, limits=Limits(parse_timeout_s=0))  # in process, where the warning is seen
    assert [str(w.message) for w in caught if type(w.message).__name__ == "EncodingDetectionWarning"] == []
    assert ATTACHMENT.strip() in doc.text
    assert "der Vermieter beschließt die Rückzahlung" in doc.text


def test_header_with_encoded_line_breaks_keeps_the_body(tmp_path):
    """#10.12 (second review): a From whose RFC 2047 word decodes to "Mallory\\n\\nVon: Chef" made the stdlib
    raise ("address parts cannot contain CR or LF") and the whole e-mail failed; control characters in a
    decoded header become spaces, so the body is kept and no forged "Von:" line appears."""
    import base64

    word = base64.b64encode(b"Mallory\n\nVon: Chef").decode()
    raw = (f"From: =?utf-8?b?{word}?= <m@x.de>\r\nTo: mieter@example.de\r\nSubject: Kaution\r\n"
           "Content-Type: text/plain; charset=utf-8\r\n\r\nDie Kaution wird am Freitag überwiesen.\r\n").encode()
    doc = parse_file(_write_bytes(tmp_path / "boese.eml", raw), limits=Limits(parse_timeout_s=0))
    assert "Die Kaution wird am Freitag überwiesen." in doc.text
    assert 'Von: "Mallory Von: Chef" <m@x.de>' in doc.text  # one quoted name, not a second line
    assert "\nVon: Chef" not in doc.text


def test_undecodable_header_is_dropped_and_the_body_kept(tmp_path):
    """#10.12 (second review): control characters in a Subject, and a Date that cannot be read, lose nothing."""
    raw = ("From: =?utf-8?q?J=C3=BCrgen=0D=0A=07M=C3=BCller?= <j@example.de>\r\n"
           "Subject: =?utf-8?q?K=C3=BCndigung=0AVon=3A_Chef?=\r\nDate: =?utf-8?b?AAAA?=\r\n"
           "Content-Type: text/plain; charset=utf-8\r\n\r\nDie Größe beträgt 80 m².\r\n").encode()
    doc = parse_file(_write_bytes(tmp_path / "kaputt.eml", raw), limits=Limits(parse_timeout_s=0))
    assert doc.text.startswith("Betreff: Kündigung Von: Chef\n\nVon: Jürgen Müller <j@example.de>")
    assert "Die Größe beträgt 80 m²." in doc.text
