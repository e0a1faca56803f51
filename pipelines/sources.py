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

_ESCAPE = re.compile(r"\\x([89a-f][0-9a-f])")


def escape_name(raw: str) -> str:
    """A path string as Python decodes file names (undecodable bytes as surrogates) -> valid text."""
    try:
        raw.encode("utf-8")
        return raw
    except UnicodeEncodeError:
        return raw.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def is_escaped(text: str) -> bool:
    """Whether `text` may be an escaped name (it spells at least one `\\xNN` of a non-ASCII byte)."""
    return bool(_ESCAPE.search(text))


def unescape_name(text: str) -> str:
    """The inverse of `escape_name` on its output: `\\xNN` back to the byte, as a surrogate-escaped str."""
    out, pos = bytearray(), 0
    for m in _ESCAPE.finditer(text):
        out += text[pos : m.start()].encode("utf-8")
        out.append(int(m.group(1), 16))
        pos = m.end()
    out += text[pos:].encode("utf-8")
    return out.decode("utf-8", "surrogateescape")


def source_name(path: str | os.PathLike[str]) -> str:
    """The stored name of a file: absolute, symlinks resolved, POSIX text, undecodable bytes escaped."""
    return escape_name(Path(os.path.realpath(os.fspath(path))).as_posix())


def file_path(source: str) -> Path:
    """The file a stored source names: the name itself, or the name with its escapes turned back into bytes."""
    path = Path(source)
    if is_escaped(source) and not os.path.lexists(path):
        raw = Path(unescape_name(source))
        if os.path.lexists(raw):
            return raw
    return path


def source_query(text: str) -> str:
    """A source as a user names it (delete, `--filter source=`) -> the stored name: a service upload
    (`upload:<name>`) as it is, anything else as a path, resolved by the rule above."""
    if text.startswith("upload:"):
        return escape_name(text)
    return source_name(text)


def valid_text(value: Any) -> Any:
    """`value` with every string made valid UTF-8 (surrogate escapes as `\\xNN`): JSON output, logs
    and HTTP bodies must be valid UTF-8 (RFC 8259) whatever file names or messages they carry."""
    if isinstance(value, str):
        return escape_name(value)
    if isinstance(value, dict):
        return {valid_text(k): valid_text(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [valid_text(v) for v in value]
    return value


def under(source: str, folder: str) -> bool:
    """Whether `source` lies below the folder named by the source text `folder`."""
    return source.startswith(folder.rstrip("/") + "/")
