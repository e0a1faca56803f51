"""Markdown front matter: a YAML mapping between a first line `---` and a closing `---` or `...` line.

Markdown also starts files with a `---` rule, and `---|---` separates a table's header; neither is
metadata. So a block counts as front matter only when it is closed by a line that is exactly `---`
or `...` *and* its content parses as a YAML mapping; anything else stays text, whole.

Metadata is not searchable text, so prose in the front matter (a string value of three words or more,
e.g. `Hinweis: Die Kaution ist getrennt anzulegen.` between two rules) is kept at the start of the
body as `Key: value`: a block that happens to parse as YAML never makes a sentence vanish.
"""

from __future__ import annotations

import datetime as dt
import re

import yaml

MAX_FRONT_MATTER_CHARS = 64 * 1024  # a bigger "front matter" is prose; YAML is not parsed past this
_OPEN = re.compile(r"---[ \t]*\r?\n")
_CLOSE = re.compile(r"^(?:---|\.\.\.)[ \t]*\r?$", re.MULTILINE)

Scalar = str | int | float | bool


def split_front_matter(text: str) -> tuple[str, dict[str, Scalar]]:
    """(body, metadata): the text without its front matter and the front matter's scalar keys.

    Text without a valid front matter comes back unchanged with empty metadata.
    """
    opening = _OPEN.match(text)
    if opening is None:
        return text, {}
    closing = _CLOSE.search(text, opening.end(), opening.end() + MAX_FRONT_MATTER_CHARS)
    if closing is None:
        return text, {}
    try:
        data = yaml.safe_load(text[opening.end() : closing.start()])
    except Exception:  # YAMLError, and ValueError/OverflowError from constructors (`date: 2024-13-45`)
        return text, {}
    if not isinstance(data, dict):
        return text, {}
    body = text[closing.end() :].lstrip("\r\n")
    prose = [f"{key}: {value}" for key, value in data.items()
             if isinstance(key, str) and isinstance(value, str) and len(value.split()) >= 3]
    return "\n\n".join([*prose, body]) if prose else body, _scalars(data)


def _scalars(data: dict) -> dict[str, Scalar]:
    """Keys whose values are scalars (dates as ISO strings); lists and nested maps are left out."""
    out: dict[str, Scalar] = {}
    for key, value in data.items():
        if isinstance(value, dt.date):
            value = value.isoformat()
        if isinstance(key, str) and isinstance(value, str | int | float | bool):
            out[key] = value
    return out
