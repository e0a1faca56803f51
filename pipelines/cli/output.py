"""How every command prints: JSON (valid UTF-8) with `--json`, else its text."""

from __future__ import annotations

import argparse
import json

from pipelines.sources import valid_text


def out(args: argparse.Namespace, data: dict, text: str) -> None:
    print(json.dumps(valid_text(data), ensure_ascii=False, indent=2) if args.json else valid_text(text))
