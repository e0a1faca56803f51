"""Structured logs: key=value text for people, one JSON object per line for machines."""

from __future__ import annotations

import json
import logging
import sys

from pipelines.sources import valid, valid_text

AUDIT = logging.getLogger("german_rag.audit")
AUDIT.setLevel(logging.INFO)  # audit lines go out whatever the log level (handlers are unfiltered)
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


class _Formatter(logging.Formatter):
    def __init__(self, as_json: bool) -> None:
        super().__init__()
        self.as_json = as_json

    def format(self, record: logging.LogRecord) -> str:
        extra = {k: v for k, v in record.__dict__.items() if k not in _STANDARD}
        base = {"ts": round(record.created, 3), "level": record.levelname, "logger": record.name,
                "msg": record.getMessage(), **extra}
        if record.exc_info:
            base["exc"] = self.formatException(record.exc_info)
        if self.as_json:
            return json.dumps(valid_text(base), ensure_ascii=False, default=str)
        fields = " ".join(f"{k}={v}" for k, v in extra.items())
        return valid(f"{record.levelname.lower()} {record.name}: {record.getMessage()} {fields}".rstrip())


def setup_logging(level: str = "WARNING", as_json: bool = False) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter(as_json))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("httpx", "pdfminer", "unstructured", "transformers", "huggingface_hub", "urllib3"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
    logging.getLogger("pdfminer").setLevel(logging.ERROR)


def audit(action: str, tenant: str | None, key: str, **fields: object) -> None:
    """One structured line per write or delete (CLI and service): who (tenant, `*` for the local owner; the key's
    label, never the key), what, on which source or doc id, counts."""
    AUDIT.info("audit", extra={"action": action, "tenant": tenant if tenant is not None else "*", "key": key,
                               **fields})
