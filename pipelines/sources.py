"""Source names: how a file path becomes the text a collection stores it under, and back.

One rule for ingest, delete, `--filter source=`, verify and the service: a path is made absolute
against the working folder and its symlinks are resolved (one source per real file; the same name
whether or not the file still exists), then written as POSIX text.

Linux file names are bytes and need not be UTF-8; payloads, JSON and logs must be. Bytes that do not
decode are written as `\\xNN` (the form Python's `backslashreplace` gives), so the stored name is
valid text, readable, and still names the file: `file_path` turns it back into the path. The escape
is the identity on every UTF-8 name; the one name it could confuse (a UTF-8 name that spells the
escape literally, next to the undecodable one) is reported by discovery instead of merged.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

_ESCAPE = re.compile(r"\\(\\|x[89a-f][0-9a-f])")


def valid(text: str) -> str:
    """Any string as valid UTF-8 text: undecodable bytes (surrogate escapes) shown as `\\xNN`. For
    messages, JSON and logs; stored source names use `escape_name`, which is also injective."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def escape_name(raw: str) -> str:
    """A path as Python decodes file names (undecodable bytes as surrogates) -> the stored, valid text.

    The identity for every UTF-8 name without a backslash (nearly all names on Linux). Otherwise a
    backslash is written `\\\\` and an undecodable byte `\\xNN`, so no two names share a stored name
    (a UTF-8 name that spells `\\xff` is `\\\\xff`, the byte 0xff alone is `\\xff`) and
    `unescape_name` gives back the exact bytes.
    """
    if "\\" not in raw and valid(raw) is raw:
        return raw
    return "".join(f"\\x{ord(ch) - 0xDC00:02x}" if 0xDC80 <= ord(ch) <= 0xDCFF else "\\\\" if ch == "\\" else ch
                   for ch in raw)


def unescape_name(text: str) -> str:
    """The inverse of `escape_name`: `\\\\` -> `\\`, `\\xNN` -> the byte, as a surrogate-escaped str."""
    out, pos = bytearray(), 0
    for m in _ESCAPE.finditer(text):
        out += text[pos : m.start()].encode("utf-8")
        out += b"\\" if m.group(1) == "\\" else bytes([int(m.group(1)[1:], 16)])
        pos = m.end()
    out += text[pos:].encode("utf-8")
    return out.decode("utf-8", "surrogateescape")


def source_name(path: str | os.PathLike[str]) -> str:
    """The stored name of a file: absolute, symlinks resolved, POSIX text, undecodable bytes escaped."""
    return escape_name(Path(os.path.realpath(os.fspath(path))).as_posix())


def file_path(source: str) -> Path:
    """The file a stored source names (its escapes turned back into bytes)."""
    return Path(unescape_name(source)) if "\\" in source else Path(source)


def source_query(text: str) -> str:
    """A source as a user names it (delete, `--filter source=`) -> the stored name: a service upload
    (`upload:<name>`) as it is, anything else as a path, resolved by the rule above."""
    if text.startswith("upload:"):
        return valid(text)
    return source_name(text)


def typed_source(text: str) -> str | None:
    """A path typed as a report shows it (escapes spelled out, e.g. `name_\\xff.txt`), made absolute:
    the stored name it may mean, if that differs from `source_query(text)`; else None."""
    if text.startswith("upload:") or "\\" not in text:
        return None
    literal = valid(Path(os.path.abspath(text)).as_posix())
    return None if literal == source_query(text) else literal


_BIDI = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def shown(text: str) -> str:
    """`text` for one line of a terminal report: control characters and bidi overrides in a file name
    (a newline could forge a report line, U+202E reverses what follows) spelled as escapes."""
    text = valid(text)
    if text.isprintable() and not _BIDI.intersection(text):
        return text
    return "".join(ch.encode("unicode_escape").decode("ascii") if not ch.isprintable() or ch in _BIDI else ch
                   for ch in text)


def valid_text(value: Any) -> Any:
    """`value` with every string made valid UTF-8 (surrogate escapes as `\\xNN`): JSON output, logs
    and HTTP bodies must be valid UTF-8 (RFC 8259) whatever file names or messages they carry."""
    if isinstance(value, str):
        return valid(value)
    if isinstance(value, dict):
        return {valid_text(k): valid_text(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [valid_text(v) for v in value]
    return value


def under(source: str, folder: str) -> bool:
    """Whether `source` lies below the folder named by the source text `folder`."""
    return source.startswith(folder.rstrip("/") + "/")
