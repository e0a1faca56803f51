"""E-mail (EML) before unstructured sees it: text parts' charsets, and Subject and From as text.

The stdlib decodes a text part without a charset parameter as ASCII with replacement characters
("beschlie��t"); German mail from old clients and scanners often is Latin-1 or CP1252 without saying
so, or says us-ascii. Each text part is therefore checked: a declared charset that decodes the bytes
is kept, anything else is detected as for text files (`decode_bytes`) and written into the part, so
unstructured's partitioner (body, attachments and all) then decodes it correctly. A text file attached
as application/octet-stream (as many mailers attach any file) is decoded the same way and handed on
as UTF-8 text/plain: unstructured would otherwise guess its encoding once more on its own (and warn
about the guess on stderr, "inferred as 'windows-1250'", for text the project had read right).

Who wrote a mail and what it is about are what a reader searches for, so Subject and From become
the document's first sections ("Betreff: …", "Von: …"), RFC 2047 encoded words decoded; they are also
its metadata `title` and `author` (the sender's name, else the address), and the Date header its `date`.

unstructured partitions attachments too, with none of the checks a file gets (page count, zip bombs,
the parse budget): a 20 KB mail could carry a DOCX bomb. Every attachment of a type the parser reads
is therefore checked like a file first (`check_attachment`); one that fails is replaced by a one-line
note ("[Anhang x.docx nicht gelesen: …]"), so the mail's own text is still indexed and the reader
sees that something was left out.
"""

from __future__ import annotations

import logging
import re
import tempfile
from collections.abc import Callable
from email import policy
from email.header import Header, decode_header, make_header
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import formataddr, getaddresses, parseaddr, parsedate_to_datetime
from pathlib import Path

from ingest.budget import EmailBudget, count_mime_parts
from ingest.limits import LimitError, Limits
from ingest.schema import ParseError
from ingest.textfile import decode_bytes

log = logging.getLogger(__name__)
# (label, header): the sections an e-mail document opens with, in this order
# Attachments unstructured partitions as text files by their name (ingest.parse.TEXT_EXTENSIONS)
TEXT_ATTACHMENTS = (".txt", ".text", ".md", ".markdown", ".csv", ".tsv")
HEADER_ROWS = (("Betreff", "Subject"), ("Von", "From"))
# Control characters (line breaks above all) in a decoded header value: an RFC 2047 word may hide
# "\n\nVon: Chef", which made the stdlib refuse the address (and the whole mail) or would forge a line.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
_ADDRESS_HEADERS = {"from", "to", "cc", "bcc", "reply-to", "sender", "resent-from", "resent-to", "resent-cc"}


# (temporary file, label) -> None, or the bytes to partition instead (an attached mail, prepared like
# this one); raises ParseError if it may not be parsed
AttachmentCheck = Callable[[Path, str], bytes | None]


def prepare_email(data: bytes, source: str, limits: Limits | None = None,
                  check_attachment: AttachmentCheck | None = None
                  ) -> tuple[bytes, list[tuple[str, str]], dict[str, str]]:
    """(message bytes with every text part's charset declared correctly, header rows, metadata).

    Header rows are (text, category) pairs: the subject is a Title (the heading of what follows).
    Its parts and their text are counted against `max_elements` (ingest.budget) before partitioning;
    the parts from their boundary lines even before the message is parsed.
    """
    budget = EmailBudget(source, limits or Limits())
    refused = 0
    budget.add_parts(count_mime_parts(data))
    msg = BytesParser(policy=policy.default).parsebytes(data)
    for part in msg.walk():
        _clean_headers(part)
        if part.is_multipart():
            continue
        budget.add_text(part)
        name = (part.get_filename() or "").lower()
        if part.is_attachment() and name.endswith(TEXT_ATTACHMENTS) and part.get_content_maintype() != "text":
            if not _as_text(part, source):
                refused += 1
            continue
        if part.get_content_maintype() == "text":
            _fix_charset(part, source)
        if part.is_attachment() and check_attachment is not None and not _attachment_ok(part, check_attachment):
            refused += 1
    rows, meta = _header_rows(msg)
    if refused:
        meta["attachments_refused"] = str(refused)
    return msg.as_bytes(), rows, meta


def _attachment_ok(part: EmailMessage, check: AttachmentCheck) -> bool:
    """Check one binary attachment like a file; a refused one is replaced by a note naming it."""
    name = _attachment_name(part)
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes) or not payload:
        return True
    suffix = Path(name).suffix.lower()[:16]
    with tempfile.TemporaryDirectory(prefix="german-rag-eml-") as tmp:
        path = Path(tmp) / f"anhang{suffix}"
        path.write_bytes(payload)
        try:
            replacement = check(path, name)
        except ParseError as exc:
            _refuse(part, name, exc)
            return False
    if replacement is not None:  # an attached mail, its own parts checked: partitioned as prepared
        part.set_content(replacement, maintype="application", subtype="octet-stream", disposition="attachment",
                         filename=part.get_filename())
    return True


def _clean_headers(part: EmailMessage) -> None:
    """Headers that decode to control characters get them replaced by a space; any that still cannot be
    decoded is dropped. One bad header then never costs the body (the stdlib raises on such an address
    when it is read or written again: "address parts cannot contain CR or LF")."""
    items = list(part.raw_items())
    cleaned = [(name, _clean_header(name, raw)) for name, raw in items]
    if all(new == raw for (_, raw), (_, new) in zip(items, cleaned, strict=True)):
        return
    for name in {name for name, _ in items}:
        del part[name]
    for name, value in cleaned:
        if value is not None:
            part.set_raw(name, value)  # raw and in order: no check of how often a header may appear


def _clean_header(name: str, raw: str) -> str | None:
    """`raw` where it decodes cleanly; else its decoded text without control characters, encoded again;
    None where it cannot be decoded at all."""
    try:
        # the parse's own policy (policy.default, see prepare_email): its header classes decode `raw`
        if not _CONTROL.search(str(policy.default.header_factory(name, raw))):
            return raw
    except Exception:  # the stdlib's header parsers raise many kinds on hostile input
        pass
    try:
        if name.lower() in _ADDRESS_HEADERS:
            return ", ".join(formataddr((_plain(text), _plain(addr)), charset="utf-8")
                             for text, addr in getaddresses([raw]))
        return Header(_plain(raw), "utf-8").encode()
    except Exception:
        return None


def _plain(raw: str) -> str:
    """RFC 2047 words decoded, control characters replaced by a space."""
    text = str(make_header(decode_header(raw)))
    return " ".join(_CONTROL.sub(" ", text).split())


def _fix_charset(part: EmailMessage, source: str) -> None:
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes) or not payload:
        return
    declared = part.get_param("charset")
    if isinstance(declared, str):
        try:
            payload.decode(declared)
            return
        except (UnicodeDecodeError, LookupError):
            pass  # wrong or unknown: detect instead
    try:
        encoding = decode_bytes(payload, source)[1]
    except ParseError:
        return  # binary data in a text part: left to the partitioner as it is
    part.set_param("charset", encoding)


def _attachment_name(part: EmailMessage) -> str:
    return _plain(part.get_filename() or "anhang")[:200]


def _refuse(part: EmailMessage, name: str, exc: ParseError) -> None:
    """Replace an attachment that may not be parsed by a one-line note naming it (the reason goes to the
    log: it may name server paths)."""
    log.warning("e-mail attachment not parsed", extra={"attachment": name, "error": str(exc)})
    why = "über einer Grenze" if isinstance(exc, LimitError) else "nicht lesbar"
    part.set_content(f"[Anhang {name} nicht gelesen: {why}]", subtype="plain", charset="utf-8",
                     disposition="attachment", filename=f"{name}.txt")


def _as_text(part: EmailMessage, source: str) -> bool:
    """A text file in a binary part (application/octet-stream), decoded here and made UTF-8 text/plain;
    False (and a note instead) when its bytes are not text: unstructured would refuse the whole mail."""
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes) or not payload:
        return True
    try:
        text = decode_bytes(payload, source)[0]
    except ParseError as exc:
        _refuse(part, _attachment_name(part), exc)
        return False
    part.set_content(text, subtype="plain", charset="utf-8", disposition="attachment",
                     filename=part.get_filename())
    return True


def _header(msg: EmailMessage, name: str) -> str:
    """A header as text. Raw 8-bit bytes in it (not RFC 2047 encoded, as old clients write umlauts) are
    decoded like a text file; the stdlib would turn them into replacement characters."""
    raw = next((value for key, value in msg.raw_items() if key.lower() == name.lower()), None)
    if raw is None:
        return ""
    if any("\udc80" <= ch <= "\udcff" for ch in raw):
        text = decode_bytes(raw.encode("ascii", "surrogateescape"), name)[0]
    else:
        text = str(msg.get(name, ""))
    return " ".join(text.split())


def _header_rows(msg: EmailMessage) -> tuple[list[tuple[str, str]], dict[str, str]]:
    values = {name: _header(msg, name) for _, name in HEADER_ROWS}
    rows = [(f"{label}: {values[name]}", "Title" if name == "Subject" else "EmailHeader")
            for label, name in HEADER_ROWS if values[name]]
    meta = {}
    if values["Subject"]:
        meta["title"] = values["Subject"]
    if author := _author(values["From"]):
        meta["author"] = author
    if date := _date(_header(msg, "Date")):
        meta["date"] = date
    return rows, meta


def _author(value: str) -> str:
    """The sender's display name, or the address where the From header has no name."""
    name, address = parseaddr(value)
    return " ".join((name or address).split())


def _date(value: str) -> str | None:
    try:
        return parsedate_to_datetime(value).isoformat() if value else None
    except (TypeError, ValueError):
        return None
