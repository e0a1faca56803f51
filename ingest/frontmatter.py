"""Markdown front matter: a YAML mapping between a first line `---` and a closing `---` or `...` line.

Markdown also starts files with a `---` rule, and `---|---` separates a table's header; neither is
metadata. So a block counts as front matter only when it is closed by a line that is exactly `---`
or `...` *and* its content parses as a YAML mapping; anything else stays text, whole.
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
    except yaml.YAMLError:
        return text, {}
    if not isinstance(data, dict):
        return text, {}
    body = text[closing.end() :].lstrip("\r\n")
    return body, _scalars(data)


def _scalars(data: dict) -> dict[str, Scalar]:
    """Keys whose values are scalars (dates as ISO strings); lists and nested maps are left out."""
    out: dict[str, Scalar] = {}
    for key, value in data.items():
        if isinstance(value, dt.date):
            value = value.isoformat()
        if isinstance(key, str) and isinstance(value, str | int | float | bool):
            out[key] = value
    return out
